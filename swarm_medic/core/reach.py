"""Reachability: what to probe (plans from a snapshot) and what the probes said (history).
Pure: the brain's prober (rounds.py) does the I/O.

The matrix is (from node x to task): the last answer and how many probes of that pair in a
row failed. Runbooks read it through `Context.reach`.

**Rotation.** Every node probing every task every round is O(nodes x tasks) per round. Each
node instead probes a window of at most `Budget.tcp` of its targets (the tasks on the
overlays it has a task on, in a fixed order), the window moving by its own size each round
from a per-node phase, so every (node, task) pair is probed at least once every
`ceil(targets / Budget.tcp)` rounds (`Plans.period`); DNS names and VIPs rotate the same
way. Pairs whose last probe failed ("suspects") are probed again every round on top of the
window (up to `Budget.suspects` per node), so a fault is confirmed in K rounds once seen,
not K x period. With fewer targets than the budget, nothing changes: every pair every round.

**Expiry.** A node's container list and errors come from this round's answer only: a node
that failed the round contributes none (its hand is never asked to remove what it listed in
the past). Probe cells and the node's IPVS flag are kept until they are `period + 1` rounds
old (a pair is re-probed at least every `period` rounds, plus one missed round), and cells of
tasks no longer running are dropped at once.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from swarm_medic.core.model import Service, Snapshot, Task
from swarm_medic.core.protocol import (
    MAX_NAMES,
    MAX_TARGETS,
    Container,
    DnsTarget,
    ProbeAnswer,
    ProbePlan,
    TcpTarget,
    VipTarget,
    is_ipv4,
)
from swarm_medic.core.scope import scope_reason
from swarm_medic.core.settings import Settings

T = TypeVar("T")

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


@dataclass(frozen=True)
class Budget:
    """Targets one node probes per round (before suspects). At 100 nodes x 2,000 tasks the
    defaults keep each answer near 5 KB (limit 64 KiB) and take the brain from ~516 to ~79
    ms of CPU per round on the dev VM (benchmarks/probe_bench.py); most of what is left is
    one fresh TCP connection and HTTP exchange per node per round. Every pair is probed
    within ceil(targets / tcp) rounds: 50 rounds (12.5 min at 15 s) for 2,000 targets."""

    tcp: int = 40
    dns: int = 8
    vip: int = 8
    suspects: int = 20  # re-probed every round, per node and per kind


DEFAULT_BUDGET = Budget()
FULL = Budget(tcp=MAX_TARGETS, dns=MAX_NAMES, vip=MAX_NAMES, suspects=0)  # the old O(n x t)


@dataclass(frozen=True)
class Suspects:
    """Pairs whose last probe failed (or whose DNS disagrees): probed again next round."""

    tcp: Mapping[str, Collection[str]] = field(default_factory=dict)  # node -> task ids
    dns: Mapping[str, Collection[tuple[str, str]]] = field(default_factory=dict)  # (svc, net)
    vip: Mapping[str, Collection[tuple[str, str]]] = field(default_factory=dict)


@dataclass(frozen=True)
class Plans:
    by_node: dict[str, ProbePlan]
    period: int = 1  # rounds in which the rotation probes every (node, target) pair


def _window(segments: Sequence[Sequence[T]], phase: int, round_no: int, cap: int) -> list[T]:
    """`cap` items of the concatenated segments starting at (phase + round_no * cap) mod
    total, wrapping: consecutive rounds take consecutive windows, so `ceil(total / cap)`
    rounds cover every item. Costs O(cap + segments), never O(total)."""
    total = sum(len(s) for s in segments)
    if total <= cap:
        return [x for s in segments for x in s]
    out: list[T] = []
    pos = (phase + round_no * cap) % total
    while len(out) < cap:
        base = 0
        for seg in segments:
            if pos < base + len(seg):
                off = pos - base
                take = min(cap - len(out), len(seg) - off)
                out.extend(seg[off : off + take])
                pos = (pos + take) % total
                break
            base += len(seg)
    return out


def _period(segments: Sequence[Sequence[object]], cap: int) -> int:
    total = sum(len(s) for s in segments)
    return max(1, math.ceil(total / cap)) if cap > 0 else 1


def _extra(
    keys: Collection[object],
    lookup: Mapping[object, Sequence[T]],
    taken: list[T],
    *,
    nets: Collection[str],
    net_of: Mapping[int, str],
    round_no: int,
    cap: int,
) -> list[T]:
    """Up to `cap` suspect targets not already in this round's window, rotating when
    there are more suspects than the cap."""
    if not keys or cap <= 0:
        return []
    order = sorted(keys, key=str)
    start = (round_no * cap) % len(order)
    have = {id(x) for x in taken}
    out: list[T] = []
    for key in order[start:] + order[:start]:
        for x in lookup.get(key, ()):
            if id(x) not in have and net_of[id(x)] in nets:
                out.append(x)
                have.add(id(x))
        if len(out) >= cap:
            break
    return out[:cap]


@dataclass
class _Targets:
    """Every probe target of a snapshot, per overlay network, in a fixed order."""

    tcp: dict[str, list[TcpTarget]] = field(default_factory=dict)
    dns: dict[str, list[DnsTarget]] = field(default_factory=dict)
    vip: dict[str, list[VipTarget]] = field(default_factory=dict)
    nets_on_node: dict[str, set[str]] = field(default_factory=dict)


def _targets(snap: Snapshot, settings: Settings, now: float) -> _Targets:
    out = _Targets()
    for svc, port in probed_services(snap, settings):
        svc_nets: set[str] = set()
        for t in snap.tasks_of(svc.id):
            if not running(t) or now - t.timestamp < settings.probe_grace or not t.node_id:
                continue
            for net, _, ip in t.addresses:
                if not net or not is_ipv4(ip):
                    continue  # the protocol carries IPv4 only: a bad address fails nothing else
                out.tcp.setdefault(net, []).append(
                    TcpTarget(net=net, task=t.id, service=svc.id, node=t.node_id, ip=ip, port=port)
                )
                out.nets_on_node.setdefault(t.node_id, set()).add(net)
                svc_nets.add(net)
        for net in sorted(svc_nets):
            name = f"tasks.{svc.name}"
            out.dns.setdefault(net, []).append(DnsTarget(net=net, service=svc.id, name=name))
            out.vip.setdefault(net, []).extend(
                VipTarget(net=net, service=svc.id, ip=vip_ip, port=port)
                for vnet, vip_ip in svc.vips
                if svc.endpoint_mode == "vip" and vnet == net and is_ipv4(vip_ip)
            )
    # a fixed order, whatever order the engine listed things in: the rotation relies on it
    for targets in out.tcp.values():
        targets.sort(key=lambda x: (x.task, x.ip))
    for names in out.dns.values():
        names.sort(key=lambda x: x.service)
    for vips in out.vip.values():
        vips.sort(key=lambda x: (x.service, x.ip))
    return out


Lookup = dict[object, list[T]]


def _lookups(
    tg: _Targets,
) -> tuple[Lookup[TcpTarget], Lookup[DnsTarget], Lookup[VipTarget], dict[int, str]]:
    by_task: Lookup[TcpTarget] = {}
    by_dns: Lookup[DnsTarget] = {}
    by_vip: Lookup[VipTarget] = {}
    net_of: dict[int, str] = {}
    for tl in tg.tcp.values():
        for x in tl:
            by_task.setdefault(x.task, []).append(x)
            net_of[id(x)] = x.net
    for dl in tg.dns.values():
        for d in dl:
            by_dns.setdefault((d.service, d.net), []).append(d)
            net_of[id(d)] = d.net
    for vl in tg.vip.values():
        for v in vl:
            by_vip.setdefault((v.service, v.net), []).append(v)
            net_of[id(v)] = v.net
    return by_task, by_dns, by_vip, net_of


def plans(
    snap: Snapshot,
    settings: Settings,
    now: float,
    *,
    round_no: int = 0,
    budget: Budget = DEFAULT_BUDGET,
    suspects: Suspects | None = None,
) -> Plans:
    """A probe plan for every ready node (a node without a task on a probed overlay gets an
    empty one: its answer still lists its task containers)."""
    tg = _targets(snap, settings, now)
    sus = suspects or Suspects()
    # the lookups cost O(targets): only built when some pair is suspect
    by_task, by_dns, by_vip, net_of = _lookups(tg if sus.tcp or sus.dns or sus.vip else _Targets())
    cap_tcp = min(budget.tcp, MAX_TARGETS)
    cap_dns, cap_vip = min(budget.dns, MAX_NAMES), min(budget.vip, MAX_NAMES)
    out: dict[str, ProbePlan] = {}
    period = 1
    for node in snap.nodes:
        if node.state != "ready":
            continue
        mine = sorted(tg.nets_on_node.get(node.id, ()))
        segs_tcp = [tg.tcp[n] for n in mine]
        segs_dns = [tg.dns[n] for n in mine]
        segs_vip = [tg.vip[n] for n in mine]
        phase = zlib.crc32(node.id.encode())
        tcp = _window(segs_tcp, phase, round_no, cap_tcp)
        dns = _window(segs_dns, phase, round_no, cap_dns)
        vip = _window(segs_vip, phase, round_no, cap_vip)
        tcp += _extra(
            sus.tcp.get(node.id, ()),
            by_task,
            tcp,
            nets=mine,
            net_of=net_of,
            round_no=round_no,
            cap=min(budget.suspects, MAX_TARGETS - len(tcp)),
        )
        dns += _extra(
            sus.dns.get(node.id, ()),
            by_dns,
            dns,
            nets=mine,
            net_of=net_of,
            round_no=round_no,
            cap=min(budget.suspects, MAX_NAMES - len(dns)),
        )
        vip += _extra(
            sus.vip.get(node.id, ()),
            by_vip,
            vip,
            nets=mine,
            net_of=net_of,
            round_no=round_no,
            cap=min(budget.suspects, MAX_NAMES - len(vip)),
        )
        period = max(
            period,
            _period(segs_tcp, cap_tcp),
            _period(segs_dns, cap_dns),
            _period(segs_vip, cap_vip),
        )
        out[node.id] = ProbePlan(tcp=tuple(tcp), dns=tuple(dns), vip=tuple(vip))
    return Plans(out, period)


@dataclass
class Cell:
    ok: bool
    error: str
    fails: int  # probes of this pair in a row that failed (not rounds: see the rotation)
    at: float
    round: int = 0  # Reachability.rounds when last probed


Key3 = tuple[str, str, str]


class Matrix(dict[tuple[str, str], Cell]):
    """(from node, task id) -> Cell, indexed by task so `from_nodes` costs O(nodes), not
    O(matrix). Write it with `m[key] = cell` and `del m[key]` only: those keep the index."""

    def __init__(self) -> None:
        super().__init__()
        self.by_task: dict[str, dict[str, Cell]] = {}
        self.suspect: set[tuple[str, str]] = set()  # keys whose last probe failed

    def __setitem__(self, key: tuple[str, str], cell: Cell) -> None:
        super().__setitem__(key, cell)
        self.by_task.setdefault(key[1], {})[key[0]] = cell

    def __delitem__(self, key: tuple[str, str]) -> None:
        super().__delitem__(key)
        self.suspect.discard(key)
        cells = self.by_task.get(key[1])
        if cells is not None:
            cells.pop(key[0], None)
            if not cells:
                del self.by_task[key[1]]


@dataclass
class Reachability:
    round_at: float = 0.0
    rounds: int = 0
    tcp: Matrix = field(default_factory=Matrix)  # (from node, task id)
    vip: dict[Key3, Cell] = field(default_factory=dict)  # (node, svc, net)
    # (node, service, net) -> (IPs answered, since when they disagree with swarm or None)
    dns: dict[Key3, tuple[tuple[str, ...], float | None]] = field(default_factory=dict)
    ipvs: dict[str, bool] = field(default_factory=dict)
    containers: dict[str, tuple[Container, ...]] = field(default_factory=dict)  # this round
    errors: dict[str, tuple[str, ...]] = field(default_factory=dict)  # this round
    probes_last_round: int = 0
    period: int = 1  # of the last round's plans
    answered: dict[str, int] = field(default_factory=dict)  # node -> round of its last answer
    _dns_round: dict[Key3, int] = field(default_factory=dict, repr=False)
    _services: frozenset[str] = field(default_factory=frozenset, repr=False)

    def record(
        self,
        snap: Snapshot,
        answers: Mapping[str, tuple[ProbePlan, ProbeAnswer]],
        now: float,
        *,
        period: int = 1,
    ) -> None:
        """Folds one round's answers (node id -> (plan sent, its answer)) into the history.
        Costs O(probes this round + running tasks + expired cells), not O(matrix)."""
        self.round_at, self.rounds = now, self.rounds + 1
        self.period = max(1, period)
        self.probes_last_round = 0
        rnd = self.rounds
        truth = snap.running_ips
        self.containers = {}
        self.errors = {}
        for node, (plan, ans) in answers.items():
            self.answered[node] = rnd
            self.errors[node] = ans.errors
            self.ipvs[node] = ans.ipvs
            self.containers[node] = ans.containers
            for target, r in zip(plan.tcp, ans.tcp, strict=False):
                if r.ok is None:
                    continue  # no vantage point this round: no opinion, history kept
                self.probes_last_round += 1
                key = (node, target.task)
                cell = self.tcp.get(key)
                if cell is None:
                    self.tcp[key] = cell = _fold(None, r.ok, r.error, now, rnd)
                else:
                    # the hot path (every probe of a known pair): the cell changes in place
                    # (the task index holds the same object) and moves to the end, so the
                    # dict stays ordered by last probe, with no Python-level index upkeep
                    _refold(cell, r.ok, r.error, now, rnd)
                    dict.__delitem__(self.tcp, key)
                    dict.__setitem__(self.tcp, key, cell)
                if cell.fails:
                    self.tcp.suspect.add(key)
                else:
                    self.tcp.suspect.discard(key)
            for vt, r in zip(plan.vip, ans.vip, strict=False):
                if r.ok is None:
                    continue
                self.probes_last_round += 1
                vkey = (node, vt.service, vt.net)
                self.vip[vkey] = _fold(self.vip.pop(vkey, None), r.ok, r.error, now, rnd)
            for dt, d in zip(plan.dns, ans.dns, strict=False):
                if d.ips is None:
                    continue  # the lookup failed: no new answer, the last one stands
                self.probes_last_round += 1
                dkey = (node, dt.service, dt.net)
                ips = tuple(sorted(d.ips))
                want = truth.get((dt.service, dt.net), ())
                last = self.dns.get(dkey)
                since = None if ips == want else (last[1] if last and last[1] else now)
                self.dns[dkey] = (ips, since)
                self._dns_round.pop(dkey, None)
                self._dns_round[dkey] = rnd  # ordered by last probe, as the cells
        self._expire(snap)

    def _expire(self, snap: Snapshot) -> None:
        oldest = self.rounds - self.period - 1  # kept: probed in a round after this one
        gone = [t for t in self.tcp.by_task if not _is_running(snap, t)]
        for t in gone:
            for node in list(self.tcp.by_task[t]):
                del self.tcp[(node, t)]
        for key in _not_since(self.tcp, oldest):
            del self.tcp[key]
        for vkey in _not_since(self.vip, oldest):
            del self.vip[vkey]
        services = frozenset(svc.id for svc in snap.services)
        if services != self._services:  # rare: a sweep of DNS and VIP cells only then
            self._services = services
            for vkey in [k for k in self.vip if k[1] not in services]:
                del self.vip[vkey]
            for dkey in [k for k in self.dns if k[1] not in services]:
                self.dns.pop(dkey)
                self._dns_round.pop(dkey, None)
        expired = []
        for dkey, r in self._dns_round.items():
            if r > oldest:
                break
            expired.append(dkey)
        for dkey in expired:
            del self._dns_round[dkey]
            self.dns.pop(dkey, None)
        for node in [n for n, r in self.answered.items() if r <= oldest]:
            del self.answered[node]
            self.ipvs.pop(node, None)

    def from_nodes(self, task_id: str) -> dict[str, Cell]:
        return dict(self.tcp.by_task.get(task_id, {}))

    def suspects(self) -> Suspects:
        """Pairs to probe again next round whatever the rotation says."""
        tcp: dict[str, set[str]] = {}
        for node, t in self.tcp.suspect:
            tcp.setdefault(node, set()).add(t)
        vip: dict[str, set[tuple[str, str]]] = {}
        for (node, sid, net), c in self.vip.items():
            if c.fails:
                vip.setdefault(node, set()).add((sid, net))
        dns: dict[str, set[tuple[str, str]]] = {}
        for (node, sid, net), (_, since) in self.dns.items():
            if since is not None:
                dns.setdefault(node, set()).add((sid, net))
        return Suspects(tcp=tcp, dns=dns, vip=vip)


K = TypeVar("K")


def _not_since(cells: Mapping[K, Cell], oldest: int) -> list[K]:
    """Keys of cells last probed in round `oldest` or before. The dicts are kept in order of
    last probe (record re-inserts), so this reads only the expired ones and one more."""
    out = []
    for key, cell in cells.items():
        if cell.round > oldest:
            break
        out.append(key)
    return out


def _is_running(snap: Snapshot, task_id: str) -> bool:
    t = snap.task(task_id)
    return t is not None and running(t)


def _refold(cell: Cell, ok: bool, error: str, now: float, rnd: int) -> None:
    cell.fails = 0 if ok else cell.fails + 1
    cell.ok, cell.error, cell.at, cell.round = ok, "" if ok else error, now, rnd


def _fold(prev: Cell | None, ok: bool, error: str, now: float, rnd: int) -> Cell:
    fails = 0 if ok else (prev.fails + 1 if prev else 1)
    return Cell(ok, "" if ok else error, fails, now, rnd)


def running_ips(snap: Snapshot, service_id: str, net: str) -> tuple[str, ...]:
    return snap.running_ips.get((service_id, net), ())
