"""Reachability: what to probe (plans from a snapshot) and what the probes said (history).
Pure: the brain's prober (rounds.py) does the I/O.

The matrix is (from node x to task): the last answer and how many rounds in a row it failed.
Runbooks read it through `Context.reach`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from swarm_medic.model import Service, Snapshot, Task
from swarm_medic.policy import scope_reason
from swarm_medic.settings import Settings

PORT_LABEL = "swarm-medic.probe.port"


def probe_port(service: Service) -> int | None:
    raw = service.labels.get(PORT_LABEL)
    if raw is not None:
        try:
            port = int(raw)
        except ValueError:
            return None
        return port if 0 < port < 65536 else None
    return service.target_ports[0] if service.target_ports else None


def probed_services(snap: Snapshot, settings: Settings) -> list[tuple[Service, int]]:
    """Services in scope with a port to probe: the only ones whose network we touch."""
    out = []
    for svc in snap.services:
        port = probe_port(svc)
        if port is not None and scope_reason(svc, settings) is None:
            out.append((svc, port))
    return out


def running(t: Task) -> bool:
    return t.state == "running" and t.desired_state == "running"


def plans(snap: Snapshot, settings: Settings, now: float) -> dict[str, dict[str, Any]]:
    """node id -> probe plan for every ready node with a task on a probed overlay."""
    per_node: dict[str, dict[str, list[dict[str, Any]]]] = {}
    nets_on_node: dict[str, set[str]] = {}
    targets: list[tuple[Service, int, Task, str, str]] = []
    for svc, port in probed_services(snap, settings):
        for t in snap.tasks_of(svc.id):
            if not running(t) or now - t.timestamp < settings.probe_grace:
                continue
            for net, _, ip in t.addresses:
                targets.append((svc, port, t, net, ip))
                nets_on_node.setdefault(t.node_id, set()).add(net)
    ready = [n for n in snap.nodes if n.state == "ready"]
    for node in ready:
        mine = nets_on_node.get(node.id, set())
        plan: dict[str, list[dict[str, Any]]] = {"tcp": [], "dns": [], "vip": []}
        for svc, port, t, net, ip in targets:
            if net in mine:
                plan["tcp"].append(
                    {
                        "net": net,
                        "task": t.id,
                        "service": svc.id,
                        "ip": ip,
                        "port": port,
                        "local": t.node_id == node.id,
                    }
                )
        seen: set[tuple[str, str]] = set()
        for svc, port, _, net, _ in targets:
            if net not in mine or (svc.id, net) in seen:
                continue
            seen.add((svc.id, net))
            plan["dns"].append({"net": net, "service": svc.id, "name": f"tasks.{svc.name}"})
            for vnet, vip in svc.vips:
                if vnet == net and svc.endpoint_mode == "vip":
                    plan["vip"].append({"net": net, "service": svc.id, "ip": vip, "port": port})
        # every ready node is asked, probes or not: its answer lists its task containers
        per_node[node.id] = plan
    return per_node


@dataclass
class Cell:
    ok: bool
    error: str
    fails: int  # rounds in a row this probe failed
    at: float


@dataclass
class Reachability:
    round_at: float = 0.0
    rounds: int = 0
    tcp: dict[tuple[str, str], Cell] = field(default_factory=dict)  # (from node, task id)
    vip: dict[tuple[str, str, str], Cell] = field(default_factory=dict)  # (node, svc, net)
    # (node, service, net) -> (IPs answered, since when they disagree with swarm or None)
    dns: dict[tuple[str, str, str], tuple[tuple[str, ...], float | None]] = field(
        default_factory=dict
    )
    ipvs: dict[str, bool] = field(default_factory=dict)
    containers: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)
    probes_last_round: int = 0

    def record(self, snap: Snapshot, answers: Mapping[str, Mapping[str, Any]], now: float) -> None:
        """Folds one round's answers (node id -> agent answer) into the history."""
        self.round_at, self.rounds = now, self.rounds + 1
        self.probes_last_round = 0
        seen_tcp: set[tuple[str, str]] = set()
        seen_vip: set[tuple[str, str, str]] = set()
        seen_dns: set[tuple[str, str, str]] = set()
        truth = snap.running_ips
        for node, ans in answers.items():
            self.errors[node] = [str(e) for e in ans.get("errors") or ()]
            self.ipvs[node] = bool(ans.get("ipvs"))
            self.containers[node] = [c for c in ans.get("containers") or () if isinstance(c, dict)]
            for r in ans.get("tcp") or ():
                if not isinstance(r, Mapping):
                    continue
                key = (node, str(r.get("task")))
                seen_tcp.add(key)
                if r.get("ok") is None:
                    continue  # no vantage point this round: no opinion, history kept
                self.probes_last_round += 1
                self.tcp[key] = _fold(self.tcp.get(key), bool(r["ok"]), str(r.get("error")), now)
            for r in ans.get("vip") or ():
                if isinstance(r, Mapping):
                    vkey = (node, str(r.get("service")), str(r.get("net")))
                    seen_vip.add(vkey)
                    self.probes_last_round += 1
                    self.vip[vkey] = _fold(
                        self.vip.get(vkey), bool(r.get("ok")), str(r.get("error")), now
                    )
            for r in ans.get("dns") or ():
                if not isinstance(r, Mapping):
                    continue
                dkey = (node, str(r.get("service")), str(r.get("net")))
                seen_dns.add(dkey)
                if r.get("ips") is None:
                    continue  # the lookup failed: no new answer, the last one stands
                self.probes_last_round += 1
                ips = tuple(sorted(str(i) for i in r["ips"]))
                want = truth.get((dkey[1], dkey[2]), ())
                prev = self.dns.get(dkey)
                since = None if ips == want else (prev[1] if prev and prev[1] else now)
                self.dns[dkey] = (ips, since)
        # probes not asked any more (task gone, node gone) are forgotten
        self.tcp = {k: v for k, v in self.tcp.items() if k in seen_tcp}
        self.vip = {k: v for k, v in self.vip.items() if k in seen_vip}
        self.dns = {k: v for k, v in self.dns.items() if k in seen_dns}

    def from_nodes(self, task_id: str) -> dict[str, Cell]:
        return {node: c for (node, t), c in self.tcp.items() if t == task_id}


def _fold(prev: Cell | None, ok: bool, error: str, now: float) -> Cell:
    fails = 0 if ok else (prev.fails + 1 if prev else 1)
    return Cell(ok, "" if ok else error, fails, now)


def running_ips(snap: Snapshot, service_id: str, net: str) -> tuple[str, ...]:
    return snap.running_ips.get((service_id, net), ())
