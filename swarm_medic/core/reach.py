"""Reachability: what to probe (plans from a snapshot) and what the probes said (history).
Pure: the brain's prober (rounds.py) does the I/O.

The matrix is (from node x to task): the last answer and how many probes of that pair in a
row failed. Runbooks read it through `Context.reach`.

**Published ports.** Besides the overlays, every node connects to every node address a
service's TCP port is published on (`published_targets`: mode ingress, every ready node's
address; mode host, the addresses of the nodes that run one of its tasks), from its own
network namespace, as a client outside the swarm would: `Reachability.ports`, (from node,
address, port) -> Cell. Only services in scope whose tasks have settled (every task meant to run
is running, past --probe-grace, and no update in progress) are probed; udp and sctp ports are
not (a TCP connect says nothing about them). They rotate like the rest, `Budget.ports` per node
per round plus the suspects.

**Rotation.** Every node probing every task every round is O(nodes x tasks) per round. Each
node instead probes a window of at most `Budget.tcp` of its targets (the tasks on the
overlays it has a task on, in a fixed order), the window moving by its own size each round
from a per-node phase, so every (node, task) pair is probed at least once every
`ceil(targets / Budget.tcp)` rounds (`Plans.period`); DNS names and VIPs rotate the same
way. Pairs whose last probe failed ("suspects") are probed again every round on top of the
window (up to `Budget.suspects` per node), so a fault is confirmed in K rounds once seen,
not K x period. With fewer targets than the budget, nothing changes: every pair every round.

**Coverage.** With `cover` (the rounds in --probe-coverage), a node's tcp window is never
smaller than its targets / `cover`, so every (node, task) pair comes round within that many
rounds whatever the size of the swarm. Nodes of protocol 3 are not sent windows at all: they
hold a standing duty (core/duty.py) and answer their state, which `record` folds cell by cell,
touching only what changed since the node's last answer. Plans still carry their DNS names,
VIPs and published ports as windows.

**Clocks.** A node's answer says its wall clock and how long it held the request; the brain
times the exchange, and keeps each node's last reading (`Clock`: the offset from the brain's
clock, corrected by the round trip, with its error bound), also when the node refused the
brain's request for its timestamp (then the offset is the node's own word, unsigned). A node
that left the swarm is forgotten.

**Node health.** A node's answer says its swarm certificate's expiry and its data root's (and
raft folder's) free space (`Health`); the brain keeps each node's last word, with when it
heard it, while the node is in the swarm: a node that goes Down keeps the expiry it last said
(the stale-certificate finding needs exactly that), one that left is forgotten.

**Expiry.** A node's container list and errors come from this round's answer only: a node
that failed the round contributes none (its hand is never asked to remove what it listed in
the past). Probe cells and the node's IPVS flag are kept until they are `period + 1` rounds
old (a pair is re-probed at least every `period` rounds, plus one missed round), and cells of
tasks no longer running are dropped at once, as are those of a published port whose service is
no longer settled or no longer publishes it on that address. A duty's cells are the node's
word, said again every round: they stand while it answers, go with an overlay it no longer
reports, and with all of the node's once it has not answered for `period + 1` rounds.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from swarm_medic.core.duty import NetList
from swarm_medic.core.model import UPDATE_IN_FLIGHT, Node, Service, Snapshot, Task
from swarm_medic.core.protocol import (
    MAX_NAMES,
    MAX_PORTS,
    MAX_TARGETS,
    Container,
    Disk,
    DnsTarget,
    Failing,
    Lossy,
    NetState,
    PortTarget,
    ProbeAnswer,
    ProbePlan,
    TcpTarget,
    VipTarget,
    Watched,
    is_ipv4,
)
from swarm_medic.core.scope import scope_reason
from swarm_medic.core.settings import SafetySettings

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


def probed_services(snap: Snapshot, scope: SafetySettings) -> list[tuple[Service, int]]:
    """Services in scope with a port to probe: the only ones whose network we touch."""
    out = []
    for svc in snap.services:
        port = probe_port(svc)
        if port is not None and scope_reason(svc, scope) is None:
            out.append((svc, port))
    return out


def running(t: Task) -> bool:
    return t.state == "running" and t.desired_state == "running"


UNSPECIFIED = "0.0.0.0"  # noqa: S104 - an address compared, never bound


@dataclass(frozen=True, slots=True)
class Published:
    """One address a service's TCP port is published on: what the published-port probes
    connect to (`ip`:`port`), and whose it is (`node`, the node with that address)."""

    service: str  # service id
    port: int  # the published port (PublishedPort.published)
    target: int  # the container's port behind it
    mode: str  # ingress | host
    node: str
    ip: str


def node_address(node: Node) -> str | None:
    """The node's address as the published-port probes may use it: a dotted-quad IPv4 that is
    not 0.0.0.0 (which some managers report and which would connect to the prober's own
    host), or None. The cluster says it; nothing else is ever connected to."""
    return node.addr if is_ipv4(node.addr) and node.addr != UNSPECIFIED else None


def settled(snap: Snapshot, svc: Service) -> bool:
    """Every task of the service meant to run is running (one at least), and no update or
    rollback is under way: a port that does not answer then is not churn."""
    if svc.update_status is not None and svc.update_status.state in UPDATE_IN_FLIGHT:
        return False
    meant = [t for t in snap.tasks_of(svc.id) if t.desired_state == "running"]
    return bool(meant) and all(t.state == "running" for t in meant)


def published_targets(
    snap: Snapshot, services: Sequence[Service] | None = None, *, since: float | None = None
) -> list[Published]:
    """Every (service, published TCP port, node address) to probe, for the settled services
    of `services` (default: all), in a fixed order. `since`: only tasks running since then
    (or before) count, as --probe-grace asks. Mode ingress: every ready node's address (the
    routing mesh answers on all of them) once a task counts; mode host: the ready nodes that
    run a task that counts. udp and sctp ports are left out."""
    out: list[Published] = []
    ready = [n for n in snap.nodes if n.state == "ready"]
    for svc in snap.services if services is None else services:
        ports = [p for p in svc.published if p.protocol == "tcp"]
        if not ports or not settled(snap, svc):
            continue
        homes = {
            t.node_id
            for t in snap.tasks_of(svc.id)
            if running(t) and t.node_id and (since is None or t.timestamp <= since)
        }
        if not homes:
            continue
        for p in ports:
            for n in ready if p.mode == "ingress" else [n for n in ready if n.id in homes]:
                ip = node_address(n)
                if ip is not None:
                    out.append(Published(svc.id, p.published, p.target, p.mode, n.id, ip))
    out.sort(key=lambda x: (x.ip, x.port, x.service))
    return out


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
    # published ports: every node probes the same list (each node's address x each port), so
    # a port dead on one node is seen by several vantages in its first rounds
    ports: int = 64
    suspects: int = 20  # re-probed every round, per node and per kind


DEFAULT_BUDGET = Budget()
FULL = Budget(
    tcp=MAX_TARGETS, dns=MAX_NAMES, vip=MAX_NAMES, ports=MAX_PORTS, suspects=0
)  # the old O(n x t)


@dataclass(frozen=True)
class Suspects:
    """Pairs whose last probe failed (or whose DNS disagrees): probed again next round."""

    tcp: Mapping[str, Collection[str]] = field(default_factory=dict)  # node -> task ids
    dns: Mapping[str, Collection[tuple[str, str]]] = field(default_factory=dict)  # (svc, net)
    vip: Mapping[str, Collection[tuple[str, str]]] = field(default_factory=dict)
    ports: Mapping[str, Collection[tuple[str, int]]] = field(default_factory=dict)  # (ip, port)


@dataclass(frozen=True)
class _Kind:
    """One kind of probe target, as the plans rotate it: `name` is its field in `Budget`,
    `Suspects` and `ProbePlan`; `limit` the protocol's cap on one plan; `key` how `Suspects`
    names a target; `per_net`: each node probes the targets on its own overlays (False: one
    list for every node, the published ports)."""

    name: str
    limit: int
    key: Callable[[Any], object]
    per_net: bool = True


_KINDS = (
    _Kind("tcp", MAX_TARGETS, lambda x: x.task),
    _Kind("dns", MAX_NAMES, lambda x: (x.service, x.net)),
    _Kind("vip", MAX_NAMES, lambda x: (x.service, x.net)),
    _Kind("ports", MAX_PORTS, lambda x: (x.ip, x.port), per_net=False),
)


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
    lookup: Lookup,
    taken: list[Any],
    *,
    nets: Collection[str] | None,
    round_no: int,
    cap: int,
) -> list[Any]:
    """Up to `cap` suspect targets not already in this round's window, rotating when
    there are more suspects than the cap. `nets`: only targets on these networks (None: any,
    for published ports, which are on no overlay)."""
    if not keys or cap <= 0:
        return []
    order = sorted(keys, key=str)
    start = (round_no * cap) % len(order)
    have = {id(x) for x in taken}
    out: list[Any] = []
    for key in order[start:] + order[:start]:
        for net, x in lookup.get(key, ()):
            if id(x) not in have and (nets is None or net in nets):
                out.append(x)
                have.add(id(x))
        if len(out) >= cap:
            break
    return out[:cap]


@dataclass
class Targets:
    """Every probe target of a snapshot, per overlay network, in a fixed order."""

    tcp: dict[str, list[TcpTarget]] = field(default_factory=dict)
    dns: dict[str, list[DnsTarget]] = field(default_factory=dict)
    vip: dict[str, list[VipTarget]] = field(default_factory=dict)
    nets_on_node: dict[str, set[str]] = field(default_factory=dict)
    ports: list[PortTarget] = field(default_factory=list)  # the same for every node

    def segments(self, kind: _Kind, nets: Sequence[str] | None = None) -> list[list[Any]]:
        """The targets of `kind` a node on `nets` probes, one segment per network (None:
        every network's, in the order they were found)."""
        if not kind.per_net:
            return [self.ports]
        per_net: dict[str, list[Any]] = getattr(self, kind.name)
        return list(per_net.values()) if nets is None else [per_net[n] for n in nets]


def targets(snap: Snapshot, scope: SafetySettings, now: float, grace: float) -> Targets:
    """Every target of the services in `scope` whose tasks have run for `grace`."""
    out = Targets()
    for svc, port in probed_services(snap, scope):
        svc_nets: set[str] = set()
        for t in snap.tasks_of(svc.id):
            if not running(t) or now - t.timestamp < grace or not t.node_id:
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
    in_scope = [svc for svc in snap.services if scope_reason(svc, scope) is None]
    seen: set[tuple[str, int]] = set()
    for pub in published_targets(snap, in_scope, since=now - grace):
        if (pub.ip, pub.port) not in seen:  # two services never answer on one ip:port
            seen.add((pub.ip, pub.port))
            out.ports.append(PortTarget(ip=pub.ip, port=pub.port))
    return out


# suspect key -> (network, target) of each target it names; "" for a published port's network
Lookup = dict[object, list[tuple[str, Any]]]


def _lookup(kind: _Kind, tg: Targets) -> Lookup:
    out: Lookup = {}
    for segment in tg.segments(kind):
        for x in segment:
            out.setdefault(kind.key(x), []).append((x.net if kind.per_net else "", x))
    return out


# The nodes a round asks. Not only "ready": a new leader marks every node "unknown" until it
# has heard from it, which can last over a minute after an election, and a brain that asked
# only ready nodes then probed from its own node alone, blind exactly when the swarm was
# shaken. An unknown node costs at most its own timeout, in parallel, recorded as its own
# failure. "down" nodes are not asked: swarm has heard nothing from them for its grace period.
ASKED = frozenset({"ready", "unknown", "disconnected"})


def plans(
    snap: Snapshot,
    scope: SafetySettings,
    now: float,
    *,
    grace: float,
    round_no: int = 0,
    budget: Budget = DEFAULT_BUDGET,
    suspects: Suspects | None = None,
    cover: int | None = None,
    duties: Collection[str] = (),
    given: Targets | None = None,
) -> Plans:
    """A probe plan for every ready node (a node without a task on a probed overlay gets an
    empty one: its answer still lists its task containers), for the services in `scope`
    whose tasks have run for `grace` (--probe-grace).

    Each kind of target (tcp, dns, vip, published ports) the same way: a window of at most its
    budget of the node's targets (published ports: the same list for every node, each from its
    own phase), plus up to `budget.suspects` of those whose last probe from that node failed;
    beyond the cap the rest wait for later rounds (every pair within `period`).

    `cover`: a node's tcp window is at least its targets / `cover` (every pair within that
    many rounds). `duties`: nodes that hold a standing duty for their tcp targets (protocol 3)
    and get no tcp window. `given`: the targets, when the caller has them already."""
    tg = given if given is not None else targets(snap, scope, now, grace)
    sus = suspects or Suspects()
    # a lookup costs O(targets): built only for a kind with suspect pairs
    lookups = {k.name: _lookup(k, tg) if getattr(sus, k.name) else {} for k in _KINDS}
    caps = {k.name: min(getattr(budget, k.name), k.limit) for k in _KINDS}
    out: dict[str, ProbePlan] = {}
    period = 1
    for node in snap.nodes:
        if node.state not in ASKED:
            continue
        mine = sorted(tg.nets_on_node.get(node.id, ()))
        phase = zlib.crc32(node.id.encode())
        picked: dict[str, tuple[Any, ...]] = {}
        for k in _KINDS:
            if k.name == "tcp" and node.id in duties:
                picked["tcp"] = ()
                continue
            segments, cap = tg.segments(k, mine), caps[k.name]
            if k.name == "tcp" and cover is not None:
                cap = min(k.limit, max(cap, -(-sum(len(s) for s in segments) // max(1, cover))))
            window = _window(segments, phase, round_no, cap)
            window += _extra(
                getattr(sus, k.name).get(node.id, ()),
                lookups[k.name],
                window,
                nets=mine if k.per_net else None,
                round_no=round_no,
                cap=min(budget.suspects, k.limit - len(window)),
            )
            picked[k.name] = tuple(window)
            period = max(period, _period(segments, cap))
        out[node.id] = ProbePlan(
            tcp=picked["tcp"], dns=picked["dns"], vip=picked["vip"], ports=picked["ports"]
        )
    return Plans(out, period)


@dataclass(frozen=True, slots=True)
class Clock:
    """A node's clock against the brain's, as last measured.

    `offset`: node minus brain, in seconds (positive: the node is ahead); the true offset is
    within `error` of it. `at`: the brain's time of the reading. `refused`: the node refused
    the brain's signed request as too far off (`channel.ClockRefused`): the offset is what the
    node said of the request's timestamp, unsigned, not a signed answer."""

    offset: float
    error: float
    at: float
    refused: bool = False


@dataclass(frozen=True, slots=True)
class Health:
    """A node's own word on its health, as it last said it (`at`: the brain's time).
    `cert_not_after`: its swarm certificate's notAfter (None: not known); `disks`: its data
    root's filesystem and its raft folder's, when that is another one (empty: not measured);
    `lossy`: its paths that lose large packets while small ones pass (overlay-mtu), and
    `underlay_mtu` its own link's MTU (None: not known)."""

    at: float
    cert_not_after: float | None = None
    disks: tuple[Disk, ...] = ()
    lossy: tuple[Lossy, ...] = ()
    underlay_mtu: int | None = None


def measured(node_clock: float, held: float, sent: float, received: float) -> Clock:
    """The offset of a node that answered at `node_clock` after holding the request `held`
    seconds, asked at `sent` and heard at `received` (the brain's clock): NTP's reckoning,
    node_clock - (sent + received + held) / 2, within half the round trip left once the node's
    own time is taken out (the network's, each way unknown)."""
    trip = max(0.0, received - sent - held)
    return Clock(node_clock - (sent + received + held) / 2, trip / 2, received)


def refused_at(skew: float, sent: float, received: float) -> Clock:
    """The offset of a node that refused the request signed at `sent` as `skew` seconds off
    (its clock minus the timestamp, when the request reached it): the request's trip there is
    somewhere in the exchange, so the offset is skew minus half of it, within the other half."""
    trip = max(0.0, received - sent)
    return Clock(skew - trip / 2, trip / 2, received, refused=True)


@dataclass(slots=True)
class Cell:
    ok: bool
    error: str
    fails: int  # probes of this pair in a row that failed (not rounds: see the rotation)
    at: float
    round: int = 0  # Reachability.rounds when last probed


Key3 = tuple[str, str, str]
PortKey = tuple[str, str, int]  # (from node, address, published port)


class Matrix(dict[tuple[str, str], Cell]):
    """(from node, task id) -> Cell, indexed by task so `from_nodes` costs O(nodes), not
    O(matrix). Write it with `m[key] = cell` (a cell that expires by age: a probe's result),
    `m.put(key, cell)` (a node's word, said again every round: it does not age) and
    `del m[key]` only: those keep the index, the failing keys and the count per node."""

    def __init__(self) -> None:
        super().__init__()
        self.by_task: dict[str, dict[str, Cell]] = {}
        self.suspect: set[tuple[str, str]] = set()  # keys whose last probe failed
        self.per_node: dict[str, int] = {}  # cells held per vantage node
        # the keys of the cells that expire by age, least recently probed first: a duty's
        # cells are not here, so the expiry reads only the expired ones and one more
        self.aged: dict[tuple[str, str], None] = {}

    def __setitem__(self, key: tuple[str, str], cell: Cell) -> None:
        self._put(key, cell)
        self.aged.pop(key, None)
        self.aged[key] = None

    def put(self, key: tuple[str, str], cell: Cell) -> None:
        self._put(key, cell)
        self.aged.pop(key, None)

    def _put(self, key: tuple[str, str], cell: Cell) -> None:
        if key not in self:
            self.per_node[key[0]] = self.per_node.get(key[0], 0) + 1
        super().__setitem__(key, cell)
        self.by_task.setdefault(key[1], {})[key[0]] = cell
        if cell.ok:
            self.suspect.discard(key)
        else:
            self.suspect.add(key)

    def probed(self, key: tuple[str, str], cell: Cell) -> None:
        """`cell`, already held under `key`, changed in place by a new probe: the hot path of
        the positional answers, with no index to rebuild."""
        self.aged.pop(key, None)
        self.aged[key] = None
        if cell.ok:
            self.suspect.discard(key)
        else:
            self.suspect.add(key)

    def __delitem__(self, key: tuple[str, str]) -> None:
        super().__delitem__(key)
        self.suspect.discard(key)
        self.aged.pop(key, None)
        left = self.per_node[key[0]] - 1
        if left:
            self.per_node[key[0]] = left
        else:
            del self.per_node[key[0]]
        cells = self.by_task.get(key[1])
        if cells is not None:
            cells.pop(key[0], None)
            if not cells:
                del self.by_task[key[1]]

    def expire(self, oldest: int) -> None:
        """Drops the cells that age, last probed in round `oldest` or before."""
        expired = []
        for key in self.aged:
            if self[key].round > oldest:
                break
            expired.append(key)
        for key in expired:
            del self[key]

    def failing_per_node(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for node, _ in self.suspect:
            out[node] = out.get(node, 0) + 1
        return out


@dataclass(slots=True)
class _View:
    """What the brain last folded of one node's state of one overlay's list."""

    held: NetList
    ok: int  # the bitmap as a number: bit i, target i answered
    failing: dict[int, Failing]
    said: NetState  # as the node said it


@dataclass
class Reachability:
    round_at: float = 0.0
    rounds: int = 0
    tcp: Matrix = field(default_factory=Matrix)  # (from node, task id)
    vip: dict[Key3, Cell] = field(default_factory=dict)  # (node, svc, net)
    # (node, service, net) -> (IPs answered, since when they disagree with swarm or None)
    dns: dict[Key3, tuple[tuple[str, ...], float | None]] = field(default_factory=dict)
    ipvs: dict[str, bool] = field(default_factory=dict)
    ports: dict[PortKey, Cell] = field(default_factory=dict)  # published ports
    containers: dict[str, tuple[Container, ...]] = field(default_factory=dict)  # this round
    errors: dict[str, tuple[str, ...]] = field(default_factory=dict)  # this round
    probes_last_round: int = 0
    period: int = 1  # of the last round's plans
    answered: dict[str, int] = field(default_factory=dict)  # node -> round of its last answer
    # node -> overlay -> what the brain last folded of the node's duty there
    _views: dict[str, dict[str, _View]] = field(default_factory=dict, repr=False)
    clocks: dict[str, Clock] = field(default_factory=dict)  # node -> its last clock reading
    health: dict[str, Health] = field(default_factory=dict)  # node -> its last health word
    _dns_round: dict[Key3, int] = field(default_factory=dict, repr=False)
    _services: frozenset[str] = field(default_factory=frozenset, repr=False)

    def record(
        self,
        snap: Snapshot,
        answers: Mapping[str, tuple[ProbePlan, ProbeAnswer]],
        now: float,
        *,
        period: int = 1,
        lists: Mapping[str, NetList] | None = None,
        clocks: Mapping[str, Clock] | None = None,
    ) -> None:
        """Folds one round's answers (node id -> (plan sent, its answer)) and clock readings
        into the history. Costs O(probes this round + running tasks + expired cells), not
        O(matrix); a duty's state costs what changed since the node's last answer. `lists`: the
        overlays' lists the duties of this round named (core/duty.py)."""
        self.round_at, self.rounds = now, self.rounds + 1
        known = {n.id for n in snap.nodes}  # a node that left is forgotten
        self.clocks = {n: c for n, c in {**self.clocks, **(clocks or {})}.items() if n in known}
        self.health = {n: h for n, h in self.health.items() if n in known}
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
            if ans.cert_not_after is not None or ans.disks is not None or ans.lossy is not None:
                self.health[node] = Health(
                    now, ans.cert_not_after, ans.disks or (), ans.lossy or (), ans.underlay_mtu
                )
            if plan.duty is not None and ans.duty is not None:
                self._fold_duty(node, ans.duty, lists or {}, now, rnd)
            elif node in self._views:
                # no duty this round (a node that does not read one answers none): what it
                # said of its duty goes, what it probes now comes in as cells that age
                self._drop_views(node)
            for target, r in zip(plan.tcp, ans.tcp, strict=False):
                if r.ok is None:
                    continue  # no vantage point this round: no opinion, history kept
                self.probes_last_round += 1
                key = (node, target.task)
                cell = self.tcp.get(key)
                if cell is None:
                    self.tcp[key] = _fold(None, r.ok, r.error, now, rnd)
                else:
                    # the hot path (every probe of a known pair): the cell changes in place
                    # (the task index holds the same object), its key moves to the end
                    _refold(cell, r.ok, r.error, now, rnd)
                    self.tcp.probed(key, cell)
            for vt, r in zip(plan.vip, ans.vip, strict=False):
                if r.ok is None:
                    continue
                self.probes_last_round += 1
                vkey = (node, vt.service, vt.net)
                self.vip[vkey] = _fold(self.vip.pop(vkey, None), r.ok, r.error, now, rnd)
            self._record_ports(node, plan, ans, now)
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

    def _fold_duty(
        self, node: str, said: Watched, lists: Mapping[str, NetList], now: float, rnd: int
    ) -> None:
        """One node's state of its duty: per overlay, only the places whose state changed since
        its last answer are written (nothing, when nothing changed). A state of a list that is
        not this round's (the node holds an older one) is no opinion: its cells go."""
        self.probes_last_round += said.probed
        views = self._views.setdefault(node, {})
        seen: set[str] = set()
        for st in said.nets:
            held = lists.get(st.net)
            if held is None or st.digest != held.digest:
                continue
            seen.add(st.net)
            view = views.get(st.net)
            if view is not None and view.held is held and view.said == st:
                continue  # the steady state: not one cell touched, nothing decoded
            ok = int.from_bytes(st.ok, "little")
            failing = {f.at: f for f in st.failing}
            if view is not None and view.held is held:
                changed = _bits(view.ok ^ ok)
                changed.update(view.failing, failing)
                places: Collection[int] = changed
            else:
                if view is not None:
                    self._drop_cells(node, view.held, keep=held)
                places = range(len(held.tcp))
            views[st.net] = new = _View(held, ok, failing, st)
            self._write(node, new, places, now, rnd)
        for net in [n for n in views if n not in seen]:
            self._drop_cells(node, views.pop(net).held)
        if not views:
            del self._views[node]

    def _write(self, node: str, new: _View, places: Collection[int], now: float, rnd: int) -> None:
        """The cells of `places` in `new`'s list as it says them, each written if it differs."""
        tcp, failing, ok = new.held.tcp, new.failing, new.ok
        for i in places:
            key = (node, tcp[i].task)
            f = failing.get(i)
            cell = self.tcp.get(key)
            if f is not None:
                if cell is None or cell.ok or (cell.fails, cell.error) != (f.fails, f.error):
                    self.tcp.put(key, Cell(False, f.error, f.fails, now, rnd))
            elif (ok >> i) & 1:
                if cell is None or not cell.ok:
                    self.tcp.put(key, Cell(True, "", 0, now, rnd))
            elif cell is not None:
                del self.tcp[key]  # no opinion now

    def _drop_cells(self, node: str, held: NetList, keep: NetList | None = None) -> None:
        tasks = {t.task for t in held.tcp}
        if keep is not None:
            tasks -= {t.task for t in keep.tcp}  # the new list's places are all written anew
        for task in tasks:
            if (node, task) in self.tcp:
                del self.tcp[(node, task)]

    def _drop_views(self, node: str) -> None:
        for view in self._views.pop(node, {}).values():
            self._drop_cells(node, view.held)

    def _expire(self, snap: Snapshot) -> None:
        oldest = self.rounds - self.period - 1  # kept: probed in a round after this one
        gone = [t for t in self.tcp.by_task if not _is_running(snap, t)]
        for t in gone:
            for node in list(self.tcp.by_task[t]):
                del self.tcp[(node, t)]
        self.tcp.expire(oldest)
        for vkey in _not_since(self.vip, oldest):
            del self.vip[vkey]
        self._expire_ports(snap, oldest)
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
            self._drop_views(node)
            self.ipvs.pop(node, None)

    def _record_ports(self, node: str, plan: ProbePlan, ans: ProbeAnswer, now: float) -> None:
        # an older node answers no ports at all (protocol.check_aligned): zip stops at once
        for pt, r in zip(plan.ports, ans.ports, strict=False):
            if r.ok is None:
                continue
            self.probes_last_round += 1
            key = (node, pt.ip, pt.port)
            self.ports[key] = _fold(self.ports.pop(key, None), r.ok, r.error, now, self.rounds)

    def _expire_ports(self, snap: Snapshot, oldest: int) -> None:
        for key in _not_since(self.ports, oldest):
            del self.ports[key]
        if self.ports:
            # a port no longer published there, or whose service is updating or has a task
            # not running: its history goes at once, so a later fault counts from zero
            live = {(p.ip, p.port) for p in published_targets(snap)}
            for key in [k for k in self.ports if (k[1], k[2]) not in live]:
                del self.ports[key]

    def from_nodes(self, task_id: str) -> dict[str, Cell]:
        return dict(self.tcp.by_task.get(task_id, {}))

    def failing_tasks(self) -> set[str]:
        """Tasks whose last probe from some node failed: O(failing pairs), so a runbook that
        looks only at those costs what the faults do, not what the swarm's size does."""
        return {task for _, task in self.tcp.suspect}

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
        ports: dict[str, set[tuple[str, int]]] = {}
        for (node, ip, port), c in self.ports.items():
            if c.fails:
                ports.setdefault(node, set()).add((ip, port))
        return Suspects(tcp=tcp, dns=dns, vip=vip, ports=ports)


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


def _bits(x: int) -> set[int]:
    """The places of the bits set in `x`: O(bits set), for the few that changed."""
    out = set()
    while x:
        low = x & -x
        out.add(low.bit_length() - 1)
        x ^= low
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
