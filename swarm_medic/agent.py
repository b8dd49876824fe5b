"""Eyes and hands of one node: probes from this node's side of each overlay, and the one
node-local action the brain may ask for.

Every instance, workers included, runs one. The brain (the instance on the leader) sends a
probe plan; the agent answers from this node:

- targets on this node are probed from the overlay network's own namespace (`1-<net id>`,
  the node's bridge on that overlay): the node's view of its local containers;
- targets on other nodes, `tasks.<svc>` and VIPs are probed from the sandbox of a container
  attached to that overlay on this node (the only place with the embedded DNS, and the path
  a peer's traffic takes). The container is only used as a vantage point: nothing runs in it.

The one action (an allow-list of one): retire the container of swarm task T of service S on
this node, after checking that the container's own swarm labels say exactly that and that
swarm made it (named as swarm names task containers, with labels that did not come from its
image: a `docker commit` of a task container copies the labels into the image, and every
container run from it would otherwise pass for the task). Retiring is what swarm itself does
to a task it shuts down: the container's own stop signal, its own grace period (StopTimeout,
which swarm sets from the service's stop_grace_period), then removal; it runs in the
background so a long grace period never holds the brain's request.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from swarm_medic.errors import EngineError
from swarm_medic.model import ContainerDetail, LocalContainer
from swarm_medic.probe import in_netns, interface_up, resolve_a, tcp_connect_all
from swarm_medic.swarm import Engine

DOCKER_NETNS = "/var/run/docker/netns"
REMOVE_TASK_CONTAINER = "remove_task_container"


TASK_LABEL = "com.docker.swarm.task.id"
DEFAULT_STOP_TIMEOUT = 10.0  # the engine's own default when a container sets none
TASK_NAME_LABEL = "com.docker.swarm.task.name"


class AgentError(Exception):
    """A request the agent will not carry out; the message says why."""


def not_swarm_made(d: ContainerDetail, task_id: str) -> str:
    """Why this container is not the one swarm created for `task_id` ("" when it is)."""
    if d.labels.get(TASK_LABEL) != task_id:
        return f"its task label is {d.labels.get(TASK_LABEL)!r}, not {task_id!r}"
    if d.image_labels.get(TASK_LABEL):
        return (
            "its image carries swarm task labels (made by `docker commit` of a task "
            "container), so its own labels may be copies"
        )
    expected = d.labels.get(TASK_NAME_LABEL)
    if not d.name.endswith("." + task_id) or (expected and d.name != expected):
        return f"its name {d.name!r} is not the name swarm gives task {task_id}'s container"
    return ""


def _background(fn: Callable[[], None]) -> None:
    threading.Thread(target=fn, name="swarm-medic-retire", daemon=True).start()


def _str(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise AgentError(f"field {key!r} must be a non-empty string")
    return value


def _port(obj: Mapping[str, Any]) -> int:
    port = obj.get("port")
    if not isinstance(port, int) or not 0 < port < 65536:
        raise AgentError("field 'port' must be a TCP port")
    return port


class NodeAgent:
    def __init__(
        self,
        engine: Engine,
        node_id: str = "",
        *,
        netns_dir: str = DOCKER_NETNS,
        timeout: float = 1.0,
        spawn: Callable[[Callable[[], None]], None] = _background,
        on_retired: Callable[[str, str], None] = lambda container_id, error: None,
    ) -> None:
        self.engine = engine
        self._spawn = spawn  # runs a retirement (stop, then remove); tests run it inline
        self._on_retired = on_retired  # (container id, "" or what went wrong)
        self._retiring: set[str] = set()
        self._details: dict[str, ContainerDetail] = {}
        self._retiring_lock = threading.Lock()
        self._node_id = node_id
        self._sandboxes: dict[str, str] = {}
        self.netns_dir = netns_dir.rstrip("/")
        self.timeout = timeout

    @property
    def node_id(self) -> str:
        if not self._node_id:  # asked once, when first needed: the engine may start later
            self._node_id = self.engine.info().node_id
        return self._node_id

    def _sandbox(self, container_id: str) -> str:
        # A container keeps its sandbox for life: one inspect per container, not per round.
        if container_id not in self._sandboxes:
            self._sandboxes[container_id] = self._path(self.engine.sandbox(container_id))
        return self._sandboxes[container_id]

    def _path(self, sandbox_key: str) -> str:
        # dockerd reports its own path; in a container the folder is mounted elsewhere.
        name = os.path.basename(sandbox_key)
        return f"{self.netns_dir}/{name}"

    def _vantages(
        self,
        containers: Sequence[LocalContainer],
        nets: set[str],
        targets: set[str],
        errors: list[str],
    ) -> dict[str, str]:
        """One sound container sandbox per overlay network: network id -> netns path.

        A vantage point whose own overlay interface is down would make every peer look
        unreachable, so each candidate is checked first; containers that are not themselves
        probed this round are preferred (a target may be the broken one)."""
        out: dict[str, str] = {}
        for net in sorted(nets):
            cands = [
                (c, ip)
                for c in containers
                if c.state == "running"
                for n, ip in c.networks
                if n == net
            ]
            cands.sort(key=lambda ci: ci[0].task_id in targets)
            for c, ip in cands:
                try:
                    path = self._sandbox(c.id)
                    if in_netns(path, partial(interface_up, ip), timeout=5):
                        out[net] = path
                        break
                except (EngineError, OSError, TimeoutError) as exc:
                    errors.append(f"vantage {c.id[:12]}: {exc}")
            else:
                if cands:
                    errors.append(f"no sound vantage point on network {net[:12]}")
        return out

    def probe(self, plan: Mapping[str, Any]) -> dict[str, Any]:
        tcp_in = [p for p in plan.get("tcp") or () if isinstance(p, Mapping)]
        dns_in = [p for p in plan.get("dns") or () if isinstance(p, Mapping)]
        vip_in = [p for p in plan.get("vip") or () if isinstance(p, Mapping)]
        errors: list[str] = []
        containers = self.engine.local_containers()
        alive = {c.id for c in containers}
        self._sandboxes = {k: v for k, v in self._sandboxes.items() if k in alive}
        self._details = {k: v for k, v in self._details.items() if k in alive}
        nets = {str(p.get("net")) for p in (*tcp_in, *dns_in, *vip_in)}
        targets = {str(p.get("task")) for p in tcp_in}
        vantage = self._vantages(containers, nets, targets, errors)

        # group every probe by the namespace it runs from: one thread per namespace
        jobs: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
        tcp_out: list[dict[str, Any]] = []
        for p in tcp_in:
            net = str(p.get("net"))
            try:
                _str(p, "ip")
                _port(p)
            except AgentError as exc:
                errors.append(f"bad tcp probe: {exc}")
                continue
            path = f"{self.netns_dir}/1-{net[:10]}" if p.get("local") else vantage.get(net)
            if path is None or not os.path.exists(path):
                tcp_out.append({**_echo(p), "ok": None, "error": "no vantage point"})
                continue
            jobs.setdefault(path, []).append(("tcp", p))
        for kind, items in (("dns", dns_in), ("vip", vip_in)):
            for p in items:
                path = vantage.get(str(p.get("net")))
                if path is None:
                    continue
                jobs.setdefault(path, []).append((kind, p))

        dns_out: list[dict[str, Any]] = []
        vip_out: list[dict[str, Any]] = []
        for path, batch in sorted(jobs.items()):
            try:
                res = in_netns(
                    path, partial(self._run, batch), timeout=self.timeout * (2 + len(batch)) + 5
                )
            except (OSError, TimeoutError) as exc:
                errors.append(f"{os.path.basename(path)}: {exc}")
                continue
            tcp_out += res["tcp"]
            dns_out += res["dns"]
            vip_out += res["vip"]
        return {
            "node": self.node_id,
            "ipvs": os.path.exists("/proc/net/ip_vs"),
            "tcp": tcp_out,
            "dns": dns_out,
            "vip": vip_out,
            "errors": errors,
            "containers": [self._describe(c, errors) for c in containers],
        }

    def _describe(self, c: LocalContainer, errors: list[str]) -> dict[str, Any]:
        """A task container as the brain needs it to judge an orphan: for a running one, also
        its own stop timeout and whether swarm made it (inspected once in its life)."""
        out: dict[str, Any] = {
            "id": c.id,
            "task": c.task_id,
            "service": c.service_id,
            "state": c.state,
        }
        if c.state != "running":
            return out
        try:
            if c.id not in self._details:
                self._details[c.id] = self.engine.container_detail(c.id)
        except EngineError as exc:
            errors.append(f"inspect {c.id[:12]}: {exc}")
            return out
        d = self._details[c.id]
        out |= {
            "name": d.name,
            "stop_timeout": d.stop_timeout,
            "swarm_made": not not_swarm_made(d, c.task_id),
        }
        return out

    def _run(self, items: list[tuple[str, Mapping[str, Any]]]) -> dict[str, list[Any]]:
        """Inside one namespace: all TCP probes at once, then DNS and VIPs."""
        out: dict[str, list[Any]] = {"tcp": [], "dns": [], "vip": []}
        conns = [(k, p) for k, p in items if k in ("tcp", "vip")]
        results = tcp_connect_all([(str(p["ip"]), int(p["port"])) for _, p in conns], self.timeout)
        for (kind, p), r in zip(conns, results, strict=True):
            out[kind].append(
                {**_echo(p), "ok": r.ok, "error": r.error, "ms": round(r.seconds * 1000, 2)}
            )
        for kind, p in items:
            if kind != "dns":
                continue
            try:
                ips: list[str] | None = resolve_a(str(p.get("name")), self.timeout)
                err = ""
            except (OSError, ValueError) as exc:
                ips, err = None, f"{type(exc).__name__}: {exc}"
            out["dns"].append({**_echo(p), "ips": ips, "error": err})
        return out

    # --- hands --------------------------------------------------------------------------------

    def act(self, request: Mapping[str, Any]) -> dict[str, Any]:
        kind = request.get("kind")
        if kind != REMOVE_TASK_CONTAINER:
            raise AgentError(f"action {kind!r} is not allowed (allowed: {REMOVE_TASK_CONTAINER})")
        task, service = _str(request, "task"), _str(request, "service")
        mine = [c for c in self.engine.local_containers() if c.task_id == task]
        if not mine:
            raise AgentError(f"no container of task {task} on node {self.node_id}")
        (c,) = mine[:1]
        if c.service_id != service or (c.node_id and c.node_id != self.node_id):
            raise AgentError(
                f"container {c.id[:12]} of task {task} belongs to service {c.service_id} on "
                f"node {c.node_id}, not to service {service} on {self.node_id}: refusing"
            )
        detail = self.engine.container_detail(c.id)
        why = not_swarm_made(detail, task)
        if why:
            raise AgentError(
                f"container {c.id[:12]} is not swarm's container of task {task}: {why}"
            )
        self._retire(detail)
        return {
            "ok": True,
            "container": c.id,
            "task": task,
            "node": self.node_id,
            "stop_timeout": detail.stop_timeout,
        }

    def _retire(self, d: ContainerDetail) -> None:
        with self._retiring_lock:
            if d.id in self._retiring:
                return  # asked again while it stops: one retirement per container
            self._retiring.add(d.id)

        def run() -> None:
            error = ""
            try:
                self.engine.stop_container(d.id, d.stop_timeout or DEFAULT_STOP_TIMEOUT)
                self.engine.remove_container(d.id)
            except EngineError as exc:
                error = str(exc)
            finally:
                with self._retiring_lock:
                    self._retiring.discard(d.id)
            self._on_retired(d.id, error)

        self._spawn(run)


def _echo(p: Mapping[str, Any]) -> dict[str, Any]:
    return {k: p[k] for k in ("net", "task", "service", "ip", "port", "name") if k in p}
