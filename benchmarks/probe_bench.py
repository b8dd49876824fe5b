"""Probe-round benchmark: 100 nodes x 2,000 probed tasks, 15 s rounds, over the real signed HTTP
channel on loopback (issue 6; issue 20, section 2).

Run: .venv/bin/python -m benchmarks.probe_bench   (a measurement: it always exits 0)

Four ways to probe the same swarm, measured in one run, each against agents of its own:

- duty: this release. Every node holds a standing duty (protocol 3, core/duty.py) and probes
  its targets / `cover` each round, so every (node, task) pair comes round within
  --probe-coverage (60 s: 4 rounds); the brain folds what changed;
- windows: the same coverage without duties, as this brain plans for a node of protocol 2:
  positional windows of its targets / `cover` a round, every result folded by the brain;
- rotation: the release before's plans: every node a 40-target window a round, 50 rounds to
  come back to a pair;
- full: every node probes every task every round (the rotation's own baseline).

The 100 simulated agents of each way live in one subprocess (`--agents`): one HTTP server
(swarm_medic.web.http.serve) on 127.0.0.1, port 0, whose control routes each request to the
NodeEndpoint of the node named in its signed X-Medic-Node header (every node's address is
127.0.0.1, so the Prober's own URL logic is used unchanged). Each endpoint verifies the
request, decodes the plan, answers from a real NodeAgent whose probes are simulated (`SimAgent`:
no namespaces; every target answers but one task dead from everywhere and the faults below) and
seals the answer; the CPU each node's handler takes is measured there (time.thread_time). The
brain (this process) plans, signs, sends, verifies, decodes and folds: its CPU is measured alone
with time.process_time.

Time to find. FAULTS one-node-one-task faults (task T unreachable from node N only, every other
pair answering) start at random times after the warm-up; each round the brain runs the
`unreachable-endpoint` runbook over the matrix, as the daemon's scan does, and a fault is found
at the first round whose finding names T and N. Its time to find: that round's time minus the
fault's start.

A node's own CPU (`--node`): one real NodeAgent in a subprocess of its own, holding a duty of
2,000 targets, each round answering a signed request through its endpoint and making its probes
as real non-blocking TCP connects (probe.tcp_connect_all) to a listener on 127.0.0.1, whose
accepts are this process's; its CPU per round is that subprocess's time.process_time.

After an election: a new brain (new Prober, empty matrix) asks nodes that hold their duty and
history: the cost of its first rounds.
"""

from __future__ import annotations

import gc
import json
import math
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from swarm_medic.core import duty, reach
from swarm_medic.core.model import Snapshot
from swarm_medic.core.parsers import DAY
from swarm_medic.core.protocol import (
    MAX_TARGETS,
    PROBE_PATH,
    PROTOCOL,
    ActAnswer,
    ActRequest,
    Container,
    DnsResult,
    ProbeAnswer,
    ProbePlan,
    TcpResult,
    encode,
)
from swarm_medic.core.reach import DEFAULT_BUDGET, FULL, Budget, Reachability
from swarm_medic.core.runbook import TaskClock, context
from swarm_medic.core.settings import HttpSettings, ProbeSettings, Settings
from swarm_medic.nodes import probe as probes
from swarm_medic.nodes.agent import NodeAgent
from swarm_medic.nodes.channel import H_NODE, RequestAuth, sign
from swarm_medic.nodes.endpoint import NodeEndpoint
from swarm_medic.nodes.rounds import Prober
from swarm_medic.pipeline import observe, registry
from swarm_medic.swarm.fake import FakeEngine
from swarm_medic.telemetry.journal import Journal
from swarm_medic.telemetry.metrics import Metrics

SEED, NOW, NODES, SERVICES, PER_SERVICE, NETS = 20240611, 1_700_000_000.0, 100, 200, 10, 10
INTERVAL = ProbeSettings().probe_interval  # 15 s
COVERAGE = ProbeSettings().probe_coverage  # 60 s
K = ProbeSettings().probe_failures
SECRET = "probe-bench-secret"  # noqa: S105 - a loopback-only benchmark key
BRAIN = "brain-manager"  # the brain's node is not one of the 100: every node is asked over HTTP
TARGET_CPU_MS, TARGET_BYTES, TARGET_NODE_MS = 50.0, 64 * 1024, 200.0
TARGET_FIND_S = COVERAGE + (K - 1) * INTERVAL  # every pair within 60 s, then K - 1 confirmations
FAULTS, FIRST_FAULT, FAULT_ROUNDS = 40, 8, 10  # faults start in rounds 8-17
MEASURED = 9  # rounds whose CPU is the figure: the median of those after the warm-up


@dataclass(frozen=True)
class Way:
    name: str
    protocol: int  # what the brain speaks: 2 sends positional plans to every node
    budget: Budget
    coverage: float
    rounds: int  # enough to find every fault (or to show it is not found)
    warmup: int  # rounds before the CPU counts: a duty's lists sent and covered once


WAYS = (
    Way("duty", PROTOCOL, DEFAULT_BUDGET, COVERAGE, 32, 6),
    # the same coverage without duties: what this brain sends a node of protocol 2
    Way("windows", 2, DEFAULT_BUDGET, COVERAGE, FIRST_FAULT + FAULT_ROUNDS + 8, 2),
    Way("rotation", 2, DEFAULT_BUDGET, DAY, FIRST_FAULT + FAULT_ROUNDS + 55, 2),
    Way("full", 2, FULL, DAY, FIRST_FAULT + FAULT_ROUNDS + 4, 2),
)


@dataclass(frozen=True)
class Fault:
    node: str
    task: str
    round: int  # the first round that sees it
    start: float  # when it started: between the round before and that one


def build() -> tuple[FakeEngine, str]:
    """100 ready nodes, 200 services x 10 running tasks on 10 overlays (2,000 probed tasks,
    each with a VIP); returns the engine and one task that is dead from everywhere."""
    rng = random.Random(SEED)
    eng = FakeEngine(node_id=BRAIN, now=NOW)
    nodes = [eng.add_node(f"n{i:03d}", node_id=f"node{i:03d}", role="worker") for i in range(NODES)]
    labels = {"swarm-medic.enable": "true", "swarm-medic.probe.port": "8080"}
    dead = ""
    for s in range(SERVICES):
        net = f"overlay{s % NETS:02d}aaaaaaaaaaaaaaaaaa"
        sid = eng.add_service(f"svc-{s:03d}", replicas=PER_SERVICE, labels=labels)
        eng._services[sid]["Endpoint"] = {
            "VirtualIPs": [{"NetworkID": net, "Addr": f"10.{s % NETS}.255.{s // NETS + 2}/16"}]
        }
        for t in range(PER_SERVICE):
            tid = eng.add_task(sid, node_id=rng.choice(nodes), slot=t + 1, since=NOW - 3600)
            ip = f"10.{s % NETS}.{s // NETS}.{t + 2}/16"
            eng._tasks[tid]["NetworksAttachments"] = [
                {"Network": {"ID": net, "Spec": {"Name": f"ov{s % NETS}"}}, "Addresses": [ip]}
            ]
            dead = dead or tid
    return eng, dead


def faults(snap: Snapshot, dead: str) -> list[Fault]:
    """FAULTS (node, task) pairs, distinct nodes and distinct services, each unreachable from
    its node only from a random time on: the same list in every process (seeded). A node is
    only paired with a task on an overlay it has a task on: no other pair is ever probed (the
    node is not on that overlay: nothing there should reach it)."""
    rng = random.Random(SEED + 1)
    on = reach.targets(snap, Settings().safety, NOW, 0.0).nets_on_node
    nodes = [n.id for n in snap.nodes if n.id != BRAIN]
    services = [s.id for s in snap.services]
    rng.shuffle(nodes)
    rng.shuffle(services)
    out: list[Fault] = []
    for sid in services:
        task = next(t for t in snap.tasks_of(sid) if t.id != dead)
        net = task.addresses[0][0]
        node = next((n for n in nodes if net in on.get(n, ())), None)
        if node is None:
            continue
        nodes.remove(node)
        first = FIRST_FAULT + rng.randrange(FAULT_ROUNDS)
        out.append(Fault(node, task.id, first, (first - 1 + rng.random()) * INTERVAL))
        if len(out) == FAULTS:
            break
    return out


class SimAgent(NodeAgent):
    """A real agent whose probes are simulated: every target answers but the dead task and
    this node's fault, from the round it starts (rounds: this node's requests, one a round);
    `tasks.<svc>` answers the service's running tasks, as in a healthy swarm."""

    def __init__(
        self,
        node_id: str,
        containers: tuple[Container, ...],
        dead: str,
        fault: Fault | None,
        truth: Mapping[tuple[str, str], tuple[str, ...]],
    ) -> None:
        super().__init__(FakeEngine(node_id=node_id), node_id)
        self.listed = containers
        self.dead = dead
        self.fault = fault
        self.truth = truth
        self.round = 0

    def probe(self, plan: ProbePlan) -> ProbeAnswer:
        self.round += 1
        return super().probe(plan)

    def answer(self, plan: ProbePlan) -> ProbeAnswer:
        ok, bad = TcpResult(True, "", 0.35), TcpResult(False, "timeout", 1000.0)
        broken = {self.dead}
        if self.fault is not None and self.round >= self.fault.round:
            broken.add(self.fault.task)
        return ProbeAnswer(
            node=self.node_id,
            ipvs=True,
            tcp=tuple(bad if t.task in broken else ok for t in plan.tcp),
            dns=tuple(DnsResult(self.truth.get((d.service, d.net), ())) for d in plan.dns),
            vip=(ok,) * len(plan.vip),
            containers=self.listed,
        )

    def act(self, request: ActRequest) -> ActAnswer:
        return ActAnswer(ok=False)


class _Quiet:
    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: None


def serve_agents() -> None:
    """The subprocess: 100 agents behind one port, routed by the signed node header; when its
    stdin closes, the CPU each node's handler took, request by request, as one JSON line."""
    from swarm_medic.web.http import serve
    from swarm_medic.web.httphead import Limits

    # One port takes what 100 nodes' ports would: the brain's 100 requests at once, where each
    # real node sees one. A real node's 4 control workers, its per-address share (16), the
    # slots it keeps for the brain (32) and its 8 MiB of bodies at once would refuse or evict
    # most of them here, which measures nothing about the brain.
    limits = Limits(
        control_workers=NODES,
        connections=4 * NODES,
        per_address=4 * NODES,
        reserved_connections=4 * NODES,
        body_budget_bytes=NODES << 20,
    )

    eng, dead = build()
    snap = observe.take_snapshot(eng, NOW)
    names = {s.id: s.name for s in snap.services}
    mine: dict[str, list[Container]] = {}
    for t in snap.tasks:
        cid = (t.id * 3)[:64]
        name = f"{names[t.service_id]}.{t.slot}.{t.id}"
        mine.setdefault(t.node_id, []).append(Container(cid, t.id, t.service_id, "running", name))
    journal = Journal(Metrics(CollectorRegistry()), _Quiet())
    broken = {f.node: f for f in faults(snap, dead)}
    endpoints = {
        n.id: NodeEndpoint(
            SimAgent(n.id, tuple(mine.get(n.id, ())), dead, broken.get(n.id), snap.running_ips),
            RequestAuth(SECRET.encode()),
            journal,
        )
        for n in snap.nodes
    }
    spent: list[float] = []
    lock = threading.Lock()

    def control(
        path: str, headers: Mapping[str, str], body: bytes, peer: str
    ) -> tuple[int, dict[str, Any]]:
        node = {k.lower(): v for k, v in headers.items()}.get(H_NODE.lower(), "")
        ep = endpoints.get(node)
        if ep is None:
            return 404, {"error": "no such node"}
        start = time.thread_time()
        answer = ep.handle(path, headers, body, peer)
        with lock:
            spent.append(time.thread_time() - start)
        return answer

    server = serve("127.0.0.1", 0, CollectorRegistry(), lambda: (True, {}), control, limits=limits)
    print(server.server_address[1], flush=True)
    sys.stdin.read()  # until the parent closes our stdin
    server.shutdown()
    print(json.dumps({"handler_ms": [s * 1000 for s in spent]}), flush=True)


class _Measured(Prober):
    """Keeps each answer body (to size the envelope after the timed part)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.bodies: list[bytes] = []

    def _opened(self, node_id: str, nonce: str, envelope: bytes) -> bytes:
        raw = super()._opened(node_id, nonce, envelope)
        self.bodies.append(raw)
        return raw


def _wire_bytes(body: bytes) -> int:
    # exactly what http.py sends for the sealed envelope: json.dumps with its defaults
    return len(json.dumps({"sig": "0" * 64, "body": body.decode()}).encode())


class Brain:
    """A brain as the daemon runs one: a Prober, the matrix it folds into, the runbook that
    finds an unreachable task."""

    def __init__(self, way: Way, port: int) -> None:
        self.settings = Settings(
            probes=ProbeSettings(secret=SECRET, probe_grace=0.0, probe_coverage=way.coverage),
            http=HttpSettings(http_port=port),
        )
        agent = NodeAgent(FakeEngine(node_id=BRAIN), BRAIN)
        self.prober = _Measured(
            self.settings.probes,
            agent,
            port=port,
            scope=self.settings.safety,
            budget=way.budget,
            protocol=way.protocol,
        )
        self.reach = Reachability()
        self.runbook = registry.load([registry.builtin_dir()]).runbooks["unreachable-endpoint"]

    def round(self, snap: Snapshot, now: float) -> float:
        """One round; its CPU in ms (plan, exchanges, fold)."""
        self.prober.bodies.clear()
        gc.collect()
        start = time.process_time()
        answers = self.prober.run(snap, now, self.reach.suspects())
        self.reach.record(snap, answers, now, period=self.prober.period, lists=self.prober.lists)
        spent = (time.process_time() - start) * 1000
        if self.prober.failures:
            raise RuntimeError(f"at {now}: {sorted(self.prober.failures.items())[:3]}")
        return spent

    def found(self, snap: Snapshot, now: float) -> set[tuple[str, str]]:
        """(node, task) pairs the runbook names as unreachable now."""
        ctx = context(snap, now, self.settings, TaskClock(), reach=self.reach)
        return {
            (node, task)
            for f in self.runbook.detect(ctx)
            for task in f.task_ids
            for node in str(f.details.get("from", "")).split(",")
        }


def _agents() -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.probe_bench", "--agents"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None  # noqa: S101 - Popen with stdout=PIPE
    return proc, int(proc.stdout.readline())


def _closed(proc: subprocess.Popen[str]) -> dict[str, Any]:
    """Ends the agents' subprocess; what it measured."""
    assert proc.stdin is not None and proc.stdout is not None  # noqa: S101 - PIPEs
    proc.stdin.close()
    said = proc.stdout.readline()
    proc.wait(timeout=30)
    return dict(json.loads(said)) if said else {}


def measure_way(way: Way, snap: Snapshot, dead: str) -> dict[str, Any]:
    proc, port = _agents()
    try:
        brain = Brain(way, port)
        cpu: list[float] = []
        sizes: list[float] = []
        probes_folded: list[float] = []
        first_rounds: list[float] = []
        detected = 0
        found: dict[Fault, float] = {}
        todo = faults(snap, dead)
        for r in range(1, way.rounds + 1):
            now = NOW + r * INTERVAL
            spent = brain.round(snap, now)
            if r <= way.warmup:
                first_rounds.append(spent)
            elif len(cpu) < MEASURED:
                cpu.append(spent)
                sizes.append(statistics.mean(_wire_bytes(b) for b in brain.prober.bodies))
                probes_folded.append(brain.reach.probes_last_round)
            named = brain.found(snap, now)
            if not detected and any(task == dead for _, task in named):
                detected = r
            for f in todo:
                if f not in found and (f.node, f.task) in named:
                    found[f] = r * INTERVAL - f.start
        out: dict[str, Any] = {
            "cpu_ms": statistics.median(cpu),
            "cpu_ms_max": max(cpu),
            "first_rounds_ms": first_rounds,
            "bytes": statistics.median(sizes),
            "probes": statistics.median(probes_folded),
            "period": float(cover_rounds(way, snap, brain.prober)),
            "detect_rounds": float(detected),
            "found": len(found),
            "faults": len(todo),
            "find_s": sorted(found.values()),
            "rounds": way.rounds,
        }
        if way.name == "duty":
            out["election_ms"] = after_election(way, port, snap)
    finally:
        handled = _closed(proc).get("handler_ms", [])
    out["handler_ms_median"] = statistics.median(handled) if handled else None
    out["handler_ms_max"] = max(handled) if handled else None
    return out


def cover_rounds(way: Way, snap: Snapshot, prober: Prober) -> int:
    """Rounds within which every (node, task) pair is probed: the cover, with a coverage
    bound; otherwise a window's targets over its size, for the node with the most targets."""
    if way.coverage < DAY:
        return prober.cover  # a duty's, or windows sized to it
    tg = reach.targets(snap, Settings().safety, NOW, 0.0)
    most = max(sum(len(tg.tcp[net]) for net in nets) for nets in tg.nets_on_node.values())
    return math.ceil(most / min(way.budget.tcp, MAX_TARGETS))


def after_election(way: Way, port: int, snap: Snapshot) -> list[float]:
    """A new brain's first rounds, asking nodes that hold their duty and its history."""
    brain = Brain(way, port)
    at = NOW + (way.rounds + 1) * INTERVAL
    return [brain.round(snap, at + i * INTERVAL) for i in range(3)]


# --- one real node: its own CPU per round -------------------------------------------------------


class _Connecting(NodeAgent):
    """A real agent whose tcp probes are real connects to `port` on 127.0.0.1 (no namespaces to
    join here: the connects are what a node does inside them)."""

    def __init__(self, node_id: str, port: int) -> None:
        super().__init__(FakeEngine(node_id=node_id), node_id, timeout=1.0)
        self.port = port

    def answer(self, plan: ProbePlan) -> ProbeAnswer:
        done = probes.tcp_connect_all([("127.0.0.1", self.port)] * len(plan.tcp), self.timeout)
        return ProbeAnswer(
            node=self.node_id,
            tcp=tuple(TcpResult(r.ok, r.error, round(r.seconds * 1000, 2)) for r in done),
        )


def node_cpu(port: int, rounds: int) -> list[float]:
    """The subprocess `--node`: one node's CPU per round, each a signed request through its
    endpoint, its duty 2,000 targets (this benchmark's swarm, seen from one node), probed as
    real connects to 127.0.0.1:`port`. The first request names the lists (it holds none), the
    second sends them, the others name them again, as a brain does."""
    eng, _ = build()
    snap = observe.take_snapshot(eng, NOW)
    me = snap.nodes[1].id
    tg = reach.targets(snap, Settings().safety, NOW, 0.0)
    ls = duty.lists(tg.tcp)
    nets = sorted(tg.nets_on_node[me])
    cover = int(COVERAGE // INTERVAL)

    def duty_plan(held: Mapping[str, str] | None) -> ProbePlan:
        return ProbePlan(duty=duty.duty(nets, ls, held, cover=cover, least=DEFAULT_BUDGET.tcp))

    named, sent = duty_plan(None), duty_plan({})
    journal = Journal(Metrics(CollectorRegistry()), _Quiet())
    endpoint = NodeEndpoint(_Connecting(me, port), RequestAuth(SECRET.encode()), journal)
    out = []
    for r in range(rounds):
        body = encode(sent if r == 1 else named)
        headers = sign(SECRET.encode(), "POST", PROBE_PATH, body, time.time(), node=me)
        gc.collect()
        start = time.process_time()
        code, _ = endpoint.handle(PROBE_PATH, headers, body, "127.0.0.1")
        out.append((time.process_time() - start) * 1000)
        if code != 200:
            raise RuntimeError(f"the node answered {code}")
    return out


def measure_node(rounds: int = 10) -> dict[str, Any]:
    """One node's CPU per round, in a subprocess of its own; the accepts are this process's."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=4096)
    port = listener.getsockname()[1]
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.probe_bench", "--node", str(port), str(rounds)],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        stop.set()
        thread.join()
        listener.close()
    spent: list[float] = json.loads(done.stdout.strip().splitlines()[-1])
    return {"rounds_ms": spent, "targets": _node_targets()}


def _node_targets() -> int:
    eng, _ = build()
    snap = observe.take_snapshot(eng, NOW)
    tg = reach.targets(snap, Settings().safety, NOW, 0.0)
    return sum(len(tg.tcp[net]) for net in tg.nets_on_node[snap.nodes[1].id])


# --- the report ----------------------------------------------------------------------------------


def measure_all() -> dict[str, Any]:
    eng, dead = build()
    snap = observe.take_snapshot(eng, NOW)
    out: dict[str, Any] = {way.name: measure_way(way, snap, dead) for way in WAYS}
    out["node"] = measure_node()
    return out


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return values[min(len(values) - 1, int(q * len(values)))]


def figures(got: Mapping[str, Any]) -> dict[str, float | None]:
    """The figures `python -m benchmarks` reports: this release's, then the same run's
    baselines (the same coverage without duties, the release before's rotation, every pair
    every round)."""
    duty, node = got["duty"], got["node"]
    out: dict[str, float | None] = {
        "probe_round_cpu_ms_100n": duty["cpu_ms"],
        "probe_bytes_per_node_100n": duty["bytes"],
        "probe_find_s_worst_100n": _worst(duty),
        "probe_node_cpu_ms_100n": max(node["rounds_ms"]),
        "probe_find_s_median_100n": _median(duty),
    }
    for way in ("windows", "rotation", "full"):
        w = got[way]
        out |= {
            f"probe_round_cpu_ms_100n_{way}": w["cpu_ms"],
            f"probe_bytes_per_node_100n_{way}": w["bytes"],
            f"probe_find_s_worst_100n_{way}": _worst(w),
            f"probe_find_s_median_100n_{way}": _median(w),
        }
    return out


def _worst(w: Mapping[str, Any]) -> float | None:
    return max(w["find_s"]) if w["find_s"] and w["found"] == w["faults"] else None


def _median(w: Mapping[str, Any]) -> float | None:
    return statistics.median(w["find_s"]) if w["find_s"] else None


def measure() -> dict[str, float | None]:
    return figures(measure_all())


def _find(w: Mapping[str, Any]) -> str:
    s = w["find_s"]
    if not s:
        return f"none of {w['faults']} found in {w['rounds']} rounds"
    worst = f"{max(s):.0f}" if w["found"] == w["faults"] else f">{w['rounds'] * INTERVAL:.0f}"
    return (
        f"median {statistics.median(s):.0f} s, 90% {_pct(s, 0.9):.0f} s, worst {worst} s "
        f"({w['found']}/{w['faults']} found within {w['rounds']} rounds)"
    )


def _pass(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main() -> int:
    got = measure_all()
    duty, win, rot, full = got["duty"], got["windows"], got["rotation"], got["full"]
    node = got["node"]
    b = DEFAULT_BUDGET
    fig = figures(got)
    worst = fig["probe_find_s_worst_100n"]
    node_ms = max(node["rounds_ms"])

    def row(label: str, key: str, fmt: str = "10.1f") -> str:
        values = [format(w[key], fmt) for w in (duty, win, rot, full)]
        return f"  {label:<32}" + "".join(f"{v:>12}" for v in values)

    print(f"""\
swarm: {NODES} nodes, {SERVICES} services x {PER_SERVICE} tasks = {SERVICES * PER_SERVICE} probed \
tasks on {NETS} overlays, rounds every {INTERVAL:.0f} s; agents in a subprocess on 127.0.0.1 \
(one port, routed by node id)
duty: every pair within {COVERAGE:.0f} s (each node its targets / {duty["period"]:.0f} a round, \
at least {b.tcp}); windows: as many, positional; rotation: {b.tcp} tcp a round; \
each + {b.dns} dns, {b.vip} vip, suspects
brain CPU: median of {MEASURED} rounds after the warm-up (time.process_time)

                                          duty     windows    rotation        full
{row("brain CPU ms per round", "cpu_ms")}
{row("  worst of those rounds", "cpu_ms_max")}
{row("answer bytes per node", "bytes", "10.0f")}
{row("probes per round (all nodes)", "probes", "10.0f")}
{row("rounds to cover every (node, task)", "period", "10.0f")}
{row("rounds to find a dead task (K=3)", "detect_rounds", "10.0f")}
{row("node handler CPU ms, median", "handler_ms_median", "10.2f")}
{row("node handler CPU ms, worst", "handler_ms_max", "10.2f")}

brain CPU of the first rounds, ms: duty {", ".join(f"{x:.0f}" for x in duty["first_rounds_ms"])} \
(names the lists, sends them, {duty["period"]:.0f} rounds covering); \
rotation {", ".join(f"{x:.0f}" for x in rot["first_rounds_ms"])}
after an election (a new brain, nodes holding their duty and history), ms: \
{", ".join(f"{x:.0f}" for x in duty["election_ms"])}

time to find a one-node-one-task fault ({FAULTS} faults, each from a random time):
  duty      {_find(duty)}
  windows   {_find(win)}
  rotation  {_find(rot)}
  full      {_find(full)}

one node's own CPU per round (real connects to 127.0.0.1, its duty {node["targets"]} targets), ms: \
{", ".join(f"{x:.0f}" for x in node["rounds_ms"])} (the first names the lists, the second \
sends them)

target: brain CPU <= {TARGET_CPU_MS:.0f} ms: {_pass(duty["cpu_ms"] <= TARGET_CPU_MS)} \
(same run: the same coverage without duties takes {win["cpu_ms"] / duty["cpu_ms"]:.1f}x it, \
the rotation, covering in 50 rounds, {rot["cpu_ms"] / duty["cpu_ms"]:.1f}x, the full plan \
{full["cpu_ms"] / duty["cpu_ms"]:.1f}x)
target: answer <= {TARGET_BYTES} bytes per node: \
{_pass(duty["bytes"] <= TARGET_BYTES)}
target: every fault found within {TARGET_FIND_S:.0f} s ({COVERAGE:.0f} s + {K - 1} \
confirmations): {_pass(worst is not None and worst <= TARGET_FIND_S)}
target: a node's CPU <= {TARGET_NODE_MS:.0f} ms a round: \
{_pass(node_ms <= TARGET_NODE_MS)} (the worst of its {len(node["rounds_ms"])} rounds: \
{node_ms:.0f} ms)""")
    print(json.dumps(fig))
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--agents"]:
        serve_agents()
        raise SystemExit(0)
    if sys.argv[1:2] == ["--node"]:
        print(json.dumps(node_cpu(int(sys.argv[2]), int(sys.argv[3]))))
        raise SystemExit(0)
    raise SystemExit(main())
