"""Eyes and hands of one node: probes from this node's side of each overlay, and the
node-local actions the brain may ask for.

Every instance, workers included, runs one. The brain (the instance on the leader) sends a
probe plan; the agent answers from this node:

- targets on this node are probed from the overlay network's own namespace (`1-<net id>`,
  the node's bridge on that overlay): the node's view of its local containers;
- targets on other nodes, `tasks.<svc>` and VIPs are probed from the sandbox of a container
  attached to that overlay on this node (the only place with the embedded DNS, and the path
  a peer's traffic takes). The container is only used as a vantage point: nothing runs in it;
- published ports (node address : port) are probed from the agent's own namespace, joining
  none: the host's when swarm-medic runs on the host, its container's when it runs as the
  stack (whose traffic to a node address leaves through docker_gwbridge, NATed as any
  client's), in a thread of their own while the overlay probes run.

The actions (an allow-list of two). The first: retire the container of swarm task T of
service S on this node, after checking that the container's own swarm labels say exactly that
and that swarm made it (named as swarm names task containers, with labels that did not come
from its image: a `docker commit` of a task container copies the labels into the image, and
every container run from it would otherwise pass for the task). Retiring is what swarm itself does
to a task it shuts down: the container's own stop signal and stop timeout, then removal; it
runs in the background so a long stop never holds the brain's request. A node started with
--dry-run refuses it and says what it would have retired, whatever the brain's setting.

The second: prune this node (disk-pressure), toward `target` percent used on its data root's
filesystem, keeping every image the request's `keep` names and every container of a task in
`wanted`. In the background, one at a time (asked again while one runs: answered ok, nothing
new started), stopping as soon as the data root is at or below the target (statvfs, as its
disk reading): (a) the build cache; (b) stopped containers of no wanted task; (c) dangling
images no container uses; (d) unused images, oldest first. What may go is core/prune.plan's
decision, made again after (b) from fresh lists; nothing is ever forced, and whatever the
engine says is in use (409) is skipped. Logs are never touched: containers on json-file with
no max-size and the largest log files are reported. `on_pruned` gets the summary. A node in
--dry-run refuses it and says what it would remove.

Plans and answers are protocol types; the answer lists are positional (entry i answers plan
entry i), and every probe stands alone: one target that cannot be probed fails only itself.

A plan of protocol 3 carries a standing duty for the tcp targets instead (core/duty.py): the
agent keeps the lists and the history (`Watch`), probes this round's pick the same way as a
positional plan's targets, and answers its state. One brain at a time: a second request waits
for the first (two brains exist only for the seconds an election takes).
"""

from __future__ import annotations

import contextlib
import os
import threading
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial

import msgspec

from swarm_medic.core import prune
from swarm_medic.core.duty import Watch, digest_of
from swarm_medic.core.errors import Conflict, EngineError, NotFound
from swarm_medic.core.model import ContainerDetail, EngineContainer, Image, LocalContainer
from swarm_medic.core.protocol import (
    MAX_CONTAINERS,
    MAX_ERRORS,
    MAX_FAILS,
    MAX_ID,
    MAX_LOSSY,
    MAX_TEXT,
    PRUNE_NODE,
    REMOVE_TASK_CONTAINER,
    ActAnswer,
    ActRequest,
    Container,
    DnsResult,
    Duty,
    Lossy,
    ProbeAnswer,
    ProbePlan,
    TcpResult,
)
from swarm_medic.nodes.health import Health
from swarm_medic.nodes.probe import (
    SMALL,
    echo_all,
    in_netns,
    interface_mtu,
    interface_up,
    resolve_a,
    route_mtu,
    tcp_connect_all,
)
from swarm_medic.swarm import NodeLocal

DOCKER_NETNS = "/var/run/docker/netns"
NO_VANTAGE = "no vantage point"

__all__ = ["ALLOWED", "PRUNE_NODE", "REMOVE_TASK_CONTAINER", "AgentError", "NodeAgent"]

ALLOWED = (REMOVE_TASK_CONTAINER, PRUNE_NODE)  # the hand's allow-list


TASK_LABEL = "com.docker.swarm.task.id"
TASK_NAME_LABEL = "com.docker.swarm.task.name"
DEFAULT_STOP_TIMEOUT = 10.0  # the engine's own default when a container sets none


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
    threading.Thread(target=fn, name="swarm-medic-hand", daemon=True).start()


def _log_size(path: str) -> int:
    return os.stat(path).st_size


def _clip(text: str, limit: int = MAX_TEXT) -> str:
    # the brain refuses a whole answer with an over-long string: clip here, not there
    return text if len(text) <= limit else text[: limit - 3] + "..."


Job = tuple[str, int]  # ("tcp" | "dns" | "vip", index in the plan list)
PathKey = tuple[str, str]  # (overlay, the peer node)
MTU_PATHS = 16  # paths one overlay namespace checks per round: the failing, then the oldest
PATH_MEMORY = 40  # rounds a path not checked again is remembered


@dataclass
class PathState:
    """What this node knows of its path to one peer node over one overlay: the task it
    checks it with, the size that task's route takes (the overlay's MTU, this side), and how
    many checks in a row lost the large echo while the small one passed."""

    ip: str
    size: int = 0
    fails: int = 0
    checked: int = 0  # the answer (round) it was last checked in


class NodeAgent:
    """This node's eyes and hands, behind the channel: the brain cannot see into another
    node's namespaces or touch its containers, so every instance answers probe plans and the
    allow-listed actions for its own node, checked here and not trusted from the request."""

    def __init__(
        self,
        engine: NodeLocal,
        node_id: str = "",
        *,
        netns_dir: str = DOCKER_NETNS,
        timeout: float = 1.0,
        dry_run: bool = False,
        spawn: Callable[[Callable[[], None]], None] = _background,
        on_retired: Callable[[str, str], None] = lambda container_id, error: None,
        on_pruned: Callable[[prune.Pruned], None] = lambda summary: None,
        health: Health | None = None,
        log_size: Callable[[str], int] = _log_size,
    ) -> None:
        """`NodeAgent` answers the brain for this node: probes from its side of each overlay,
        and the hand's two actions. `spawn` runs a retirement or a prune (tests run it
        inline); `on_retired(container id, "" or what went wrong)` and `on_pruned(summary)`
        report how they ended; `health` measures this node's certificate and disks (default:
        under the engine's data root); `log_size` the size of a container's log file."""
        self.engine = engine
        self._spawn = spawn
        self._on_retired = on_retired
        self._on_pruned = on_pruned
        self.log_size = log_size
        self._retiring: set[str] = set()
        self._retiring_lock = threading.Lock()
        self._pruning = False  # one prune at a time on this node
        self._details: dict[str, ContainerDetail] = {}
        self._node_id = node_id
        self._sandboxes: dict[str, str] = {}
        self.netns_dir = netns_dir.rstrip("/")
        self.timeout = timeout
        self.dry_run = dry_run
        self._watch: Watch | None = None  # the standing duty, from the first brain that sends one
        self._watch_lock = threading.Lock()
        self.health = health or Health(lambda: self.engine.info().docker_root_dir)
        self._paths: dict[PathKey, PathState] = {}  # overlay-mtu: this node's paths
        self._answers = 0  # answers made: the rounds the path memory counts in
        self._checked = 0  # paths checked in this answer
        self._path_error = ""  # why no path could be checked in this answer ("": none)
        self._node_addr = ""

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

    def probe(self, plan: ProbePlan) -> ProbeAnswer:
        """The answer to a plan: positional, or the state of its duty (ProtocolError for a duty
        larger than a node holds)."""
        if plan.duty is None:
            return self.answer(plan)
        return self._listed(plan, self._watched(plan, plan.duty))

    def _listed(self, plan: ProbePlan, answer: ProbeAnswer) -> ProbeAnswer:
        """The answer with its container list's digest, and without the list if the brain
        holds it already (protocol 3)."""
        digest = digest_of(answer.containers)
        if digest == plan.listed:
            return msgspec.structs.replace(answer, containers=(), listed=digest)
        return msgspec.structs.replace(answer, listed=digest)

    def _watched(self, plan: ProbePlan, duty: Duty) -> ProbeAnswer:
        with self._watch_lock:
            if self._watch is None:
                self._watch = Watch(phase=zlib.crc32(self.node_id.encode()))
            watch = self._watch
            watch.hold(duty)
            picked = watch.pick(duty.take, duty.suspects)
            positional = msgspec.structs.replace(plan, tcp=tuple(picked), duty=None, listed=None)
            got = self.answer(positional)
            said = watch.record(picked, got.tcp)
            return msgspec.structs.replace(got, tcp=(), duty=watch.state(said))

    def answer(self, plan: ProbePlan) -> ProbeAnswer:
        """A positional plan's answer: entry i of each list answers entry i of the plan's."""
        errors: list[str] = []
        self._answers += 1
        self._checked, self._path_error = 0, ""
        containers = self.engine.local_containers()
        alive = {c.id for c in containers}
        self._sandboxes = {k: v for k, v in self._sandboxes.items() if k in alive}
        self._details = {k: v for k, v in self._details.items() if k in alive}
        me = self.node_id
        nets = {p.net for p in plan.tcp} | {p.net for p in plan.dns} | {p.net for p in plan.vip}
        targets = {p.task for p in plan.tcp}
        vantage = self._vantages(containers, nets, targets, errors)

        tcp: list[TcpResult] = [TcpResult(None, NO_VANTAGE)] * len(plan.tcp)
        dns: list[DnsResult] = [DnsResult(None, NO_VANTAGE)] * len(plan.dns)
        vip: list[TcpResult] = [TcpResult(None, NO_VANTAGE)] * len(plan.vip)
        # group every probe by the namespace it runs from: one thread per namespace
        published = self._start_ports(plan)
        jobs: dict[str, list[Job]] = {}
        for i, t in enumerate(plan.tcp):
            path = f"{self.netns_dir}/1-{t.net[:10]}" if t.node == me else vantage.get(t.net)
            if path is not None and os.path.exists(path):
                jobs.setdefault(path, []).append(("tcp", i))
        for i, d in enumerate(plan.dns):
            if (path := vantage.get(d.net)) is not None:
                jobs.setdefault(path, []).append(("dns", i))
        for i, v in enumerate(plan.vip):
            if (path := vantage.get(v.net)) is not None:
                jobs.setdefault(path, []).append(("vip", i))

        for path, batch in sorted(jobs.items()):
            done: list[tuple[str, int, TcpResult | DnsResult | None]]
            try:
                done = in_netns(
                    path,
                    partial(self._run, plan, batch),
                    timeout=self.timeout * (2 + len(batch)) + 5,
                )
            except (OSError, TimeoutError) as exc:
                errors.append(f"{os.path.basename(path)}: {exc}")
                done = [(kind, i, None) for kind, i in batch]
            for kind, i, res in done:
                if kind == "dns":
                    dns[i] = res if isinstance(res, DnsResult) else DnsResult(None, NO_VANTAGE)
                elif isinstance(res, TcpResult):
                    (tcp if kind == "tcp" else vip)[i] = res
        ports = self._ports_done(plan, published, errors)
        cert = self.health.cert_not_after(errors)
        disks = self.health.disks(errors)
        listed = [self._describe(c, errors) for c in containers[:MAX_CONTAINERS]]
        if len(containers) > MAX_CONTAINERS:
            errors.append(f"{len(containers)} task containers: listing the first {MAX_CONTAINERS}")
        lossy = self._lossy(errors)
        return ProbeAnswer(
            node=me,
            ipvs=os.path.exists("/proc/net/ip_vs"),
            tcp=tuple(tcp),
            dns=tuple(dns),
            vip=tuple(vip),
            ports=ports,
            errors=tuple(_clip(e) for e in errors[:MAX_ERRORS]),
            containers=tuple(listed),
            cert_not_after=cert,
            disks=disks,
            lossy=lossy,
            paths_checked=self._checked,
            underlay_mtu=self._underlay_mtu(errors),
        )

    def _underlay_mtu(self, errors: list[str]) -> int | None:
        """The MTU of this node's link that holds its swarm address, if that link is in this
        instance's namespace (on the host, not in a container)."""
        try:
            if not self._node_addr:
                self._node_addr = self.engine.info().node_addr
            return interface_mtu(self._node_addr) if self._node_addr else None
        except (EngineError, OSError) as exc:
            errors.append(f"underlay MTU: {exc}")
            return None

    def _lossy(self, errors: list[str]) -> tuple[Lossy, ...]:
        """The paths that lose large packets, and the ones not checked for long forgotten."""
        if self._path_error:
            errors.append(f"overlay-mtu: {self._path_error}")
        old = self._answers - PATH_MEMORY
        self._paths = {k: p for k, p in self._paths.items() if p.checked > old}
        bad = sorted(((k, p) for k, p in self._paths.items() if p.fails > 0), key=lambda kp: kp[0])
        return tuple(
            Lossy(net=net, node=node, ip=p.ip, size=p.size, fails=min(p.fails, MAX_FAILS))
            for (net, node), p in bad[:MAX_LOSSY]
        )

    def _check_paths(self, passed: dict[PathKey, str]) -> None:
        """Inside one overlay namespace: a small and a full-size echo with don't-fragment to
        one task per peer node (`passed`: a task whose connect passed this round), the failing
        paths first, then the least recently checked. A path that passes small packets and
        loses large ones is what a TCP connect cannot see: the handshake is small."""
        nets = {net for net, _ in passed}
        for key, p in self._paths.items():
            if key[0] in nets and p.fails > 0:
                passed[key] = p.ip  # the failing ones are checked with the task they failed on
        keys = sorted(
            passed,
            key=lambda k: (
                -(self._paths[k].fails if k in self._paths else 0),
                self._paths[k].checked if k in self._paths else 0,
                k,
            ),
        )[:MTU_PATHS]
        sizes = {k: route_mtu(passed[k]) or 0 for k in keys}
        keys = [k for k in keys if sizes[k] > SMALL]
        probes = [(passed[k], size) for k in keys for size in (SMALL, sizes[k])]
        results = echo_all(probes, self.timeout)
        for n, k in enumerate(keys):
            small, large = results[2 * n], results[2 * n + 1]
            had = self._paths.get(k)
            p = had if had is not None and had.ip == passed[k] else PathState(passed[k])
            self._paths[k] = p
            p.size, p.checked = sizes[k], self._answers
            self._checked += 1
            if small.ok is None and small.error.startswith("no raw socket"):
                self._path_error = small.error  # CAP_NET_RAW missing: said, once an answer
            if small.ok is not True or large.ok is None:
                # the task is gone, blocks ICMP, or no raw socket here: no opinion, and the
                # next passing task of that node takes the path over
                del self._paths[k]
            elif large.ok:
                p.fails = 0
            else:
                p.fails += 1

    def _start_ports(self, plan: ProbePlan) -> Future[list[TcpResult]] | None:
        """The published-port connects, started in a thread of their own: they overlap the
        namespace batches, so they add no time to the answer."""
        if not plan.ports:
            return None
        fut: Future[list[TcpResult]] = Future()
        addrs = [(p.ip, p.port) for p in plan.ports]

        def run() -> None:
            try:
                fut.set_result(
                    [
                        TcpResult(r.ok, _clip(r.error), round(max(r.seconds, 0.0) * 1000, 2))
                        for r in tcp_connect_all(addrs, self.timeout)
                    ]
                )
            except Exception as exc:  # noqa: BLE001 - handed to the answering thread
                fut.set_exception(exc)

        threading.Thread(target=run, name="swarm-medic-ports", daemon=True).start()
        return fut

    def _ports_done(
        self, plan: ProbePlan, fut: Future[list[TcpResult]] | None, errors: list[str]
    ) -> tuple[TcpResult, ...]:
        if fut is None:
            return ()
        try:
            return tuple(fut.result(timeout=self.timeout + 5))
        except Exception as exc:  # noqa: BLE001 - no opinion on any port, the rest stands
            errors.append(f"published ports: {type(exc).__name__}: {exc}")
            return (TcpResult(None, "not probed"),) * len(plan.ports)

    def _describe(self, c: LocalContainer, errors: list[str]) -> Container:
        """A task container as the brain needs it to judge an orphan: for a running one, also
        its own stop timeout and whether swarm made it (inspected once in its life)."""
        stop_timeout, swarm_made = None, None
        if c.state == "running" and c.task_id:
            try:
                if c.id not in self._details:
                    self._details[c.id] = self.engine.container_detail(c.id)
                d = self._details[c.id]
                stop_timeout = d.stop_timeout
                swarm_made = not not_swarm_made(d, c.task_id)
            except EngineError as exc:
                errors.append(f"inspect {c.id[:12]}: {exc}")
        return Container(
            id=c.id[:MAX_ID],
            task=c.task_id[:MAX_ID],
            service=c.service_id[:MAX_ID],
            state=_clip(c.state),
            name=_clip(c.name),
            stop_timeout=stop_timeout,
            swarm_made=swarm_made,
        )

    def _run(
        self, plan: ProbePlan, batch: list[Job]
    ) -> list[tuple[str, int, TcpResult | DnsResult | None]]:
        """Inside one namespace: all TCP connects at once, then each DNS lookup on its own."""
        out: list[tuple[str, int, TcpResult | DnsResult | None]] = []
        conns = [(k, i) for k, i in batch if k != "dns"]
        addrs = [
            (plan.tcp[i].ip, plan.tcp[i].port) if k == "tcp" else (plan.vip[i].ip, plan.vip[i].port)
            for k, i in conns
        ]
        me = self.node_id
        passed: dict[PathKey, str] = {}
        for (kind, i), r in zip(conns, tcp_connect_all(addrs, self.timeout), strict=True):
            ms = round(max(r.seconds, 0.0) * 1000, 2)
            out.append((kind, i, TcpResult(r.ok, _clip(r.error), ms)))
            if kind == "tcp" and r.ok and plan.tcp[i].node != me:
                passed.setdefault((plan.tcp[i].net, plan.tcp[i].node), plan.tcp[i].ip)
        for kind, i in batch:
            if kind != "dns":
                continue
            try:
                ips = resolve_a(plan.dns[i].name, self.timeout)
                out.append((kind, i, DnsResult(tuple(ips))))
            except (OSError, ValueError) as exc:
                out.append((kind, i, DnsResult(None, _clip(f"{type(exc).__name__}: {exc}"))))
        # last: an echo lost to a task that just went waits out the timeout, and the DNS
        # answers must be as fresh as they were before these checks existed
        if passed:
            self._check_paths(passed)
        return out

    # --- hands --------------------------------------------------------------------------------

    def act(self, request: ActRequest) -> ActAnswer:
        if request.kind == PRUNE_NODE:
            return self._prune(request)
        if request.kind != REMOVE_TASK_CONTAINER:
            raise AgentError(
                f"action {request.kind!r} is not allowed (allowed: {', '.join(ALLOWED)})"
            )
        task, service = request.task, request.service
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
        if self.dry_run:
            # this node's own --dry-run binds its hand, whatever the brain was started with
            return ActAnswer(ok=False, container=c.id, task=task, node=self.node_id, dry_run=True)
        self._retire(detail)
        return ActAnswer(
            ok=True,
            container=c.id,
            task=task,
            node=self.node_id,
            stop_timeout=detail.stop_timeout,
        )

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

    # --- the prune (disk-pressure) --------------------------------------------------------------

    def _prune(self, request: ActRequest) -> ActAnswer:
        me = self.node_id
        if request.task != me or request.service != me:
            raise AgentError(f"a prune of node {request.task} was asked of node {me}: refusing")
        errors: list[str] = []
        disk = self.health.data_root_disk(errors)
        if disk is None or disk.total <= 0:
            why = "; ".join(errors) or "its size is 0"
            raise AgentError(f"the data root cannot be measured ({why}): not pruning")
        before = _used(disk.total, disk.free)
        if self.dry_run:
            # this node's own --dry-run binds its hand, whatever the brain was started with
            planned = prune.plan(
                self.engine.images(), self.engine.all_containers(), request.keep, request.wanted
            )
            said = (
                f"dry-run, nothing removed: from {before:.1f}% toward {request.target}% used "
                f"it would prune the build cache, then {planned.describe()}"
            )
            return ActAnswer(ok=False, node=me, dry_run=True, detail=_clip(said))
        with self._retiring_lock:
            if self._pruning:
                said = "a prune is under way on this node already: nothing new started"
                return ActAnswer(ok=True, node=me, detail=said)
            self._pruning = True
        self._spawn(partial(self._run_prune, request, before, disk.free))
        said = f"pruning from {before:.1f}% toward {request.target}% used"
        return ActAnswer(ok=True, node=me, detail=said)

    def _run_prune(self, request: ActRequest, before: float, free_before: int) -> None:
        run = _PruneRun(self, request, before, free_before)
        try:
            run.steps()
        except Exception as exc:  # noqa: BLE001 - a prune that broke is reported, not fatal
            run.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            with self._retiring_lock:
                self._pruning = False
        self._on_pruned(run.summary(self.node_id, before, free_before))


def _used(total: int, free: int) -> float:
    """Percent used, as the brain judges a disk reading (disk-pressure)."""
    return 100.0 * (total - free) / total if total > 0 else 0.0


class _PruneRun:
    """One prune, step by step, stopping as soon as the data root is at or below its target
    (or can no longer be measured: when in doubt, stop)."""

    def __init__(self, agent: NodeAgent, request: ActRequest, used: float, free: int) -> None:
        self.agent = agent
        self.engine = agent.engine
        self.request = request
        self.target = request.target
        self.counts = {"containers": 0, "dangling": 0, "images": 0, "in_use": 0}
        self.build: int | None = None
        self.notes: list[str] = []
        self.errors: list[str] = []
        self.reached = False
        self.used_after, self.free_after = used, free  # as last measured
        self.containers: tuple[EngineContainer, ...] | None = None

    def done(self) -> bool:
        """At or below the target now (or not measurable: stop)."""
        errors: list[str] = []
        disk = self.agent.health.data_root_disk(errors)
        if disk is None or disk.total <= 0:
            self.notes.append("stopped: " + ("; ".join(errors) or "the data root has no size"))
            return True
        self.used_after, self.free_after = _used(disk.total, disk.free), disk.free
        self.reached = self.used_after <= self.target
        return self.reached

    def steps(self) -> None:
        if self.done():
            return
        try:  # (a) the build cache
            self.build = self.engine.prune_build_cache()
        except NotFound:
            self.notes.append("the engine has no builder: no build cache pruned")
        except EngineError as exc:
            self.errors.append(f"build cache: {exc}")
        if self.done():
            return
        keep, wanted = self.request.keep, self.request.wanted
        listed = self.engine.all_containers()
        for c in prune.plan(self.engine.images(), listed, keep, wanted).containers:  # (b)
            if self.done():
                return
            if self._remove("containers", c.id, partial(self.engine.remove_container, force=False)):
                self.counts["containers"] += 1
        if self.done():
            return
        # (c) and (d), decided again on what is there now: a container that could not be
        # removed, or one started since, keeps its image
        self.containers = self.engine.all_containers()
        fresh = prune.plan(self.engine.images(), self.containers, keep, wanted)
        for step, images in (("dangling", fresh.dangling), ("images", fresh.images)):
            for image in images:
                if self.done():
                    return
                self._remove_image(step, image)
        self.done()

    def _remove(self, step: str, what: str, remove: Callable[[str], None]) -> bool:
        try:
            remove(what)
        except Conflict:
            self.counts["in_use"] += 1  # the engine says something uses it: skipped
            return False
        except NotFound:
            return True  # gone already
        except EngineError as exc:
            self.errors.append(f"{step}: {exc}")
            return False
        return True

    def _remove_image(self, step: str, image: Image) -> None:
        # by each of its tags (the last one takes the image), or by ID when it has none
        if all(
            self._remove(step, ref, self.engine.remove_image) for ref in prune.refs_to_remove(image)
        ):
            self.counts[step] += 1

    def summary(self, node: str, before: float, free_before: int) -> prune.Pruned:
        containers = self.containers  # as listed after (b), if it ran
        if containers is None:
            try:  # the logs as they are now
                containers = self.engine.all_containers()
            except EngineError as exc:
                self.errors.append(f"list containers for the logs: {exc}")
                containers = ()
        sizes = []
        for c in containers:
            # a log not readable from here (or gone) is not reported
            with contextlib.suppress(OSError):
                if c.log_path:
                    sizes.append((c.log_path, self.agent.log_size(c.log_path)))
        unbounded = prune.unbounded_logs(containers)
        return prune.Pruned(
            node=node,
            target=self.target,
            used_before=round(before, 1),
            used_after=round(self.used_after, 1),
            freed=max(0, self.free_after - free_before),
            build_cache=self.build,
            containers=self.counts["containers"],
            dangling=self.counts["dangling"],
            images=self.counts["images"],
            in_use=self.counts["in_use"],
            reached=self.reached,
            unbounded_logs=len(unbounded),
            unbounded=tuple(c.name or c.id[:12] for c in unbounded[: prune.LOGS_SHOWN]),
            largest_logs=prune.largest(sizes),
            notes=tuple(self.notes),
            errors=tuple(self.errors[:MAX_ERRORS]),
        )
