"""Probe-round benchmark: the brain's CPU per round and the answer bytes per node per round at
100 nodes x 2,000 probed tasks, over the real signed HTTP channel on loopback.

Run: .venv/bin/python -m benchmarks.probe_bench   (a measurement: it always exits 0)

The clock readings (issue 19's clock-skew: each answer says the node's clock and how long it
held the request, the brain measures the offset and keeps it) are measured against a baseline
in the same run: agents that answer without them (`--agents-unclocked`, the endpoint as it
was) and a brain that reads none, with the same rotation.

The 100 simulated agents live in one subprocess (`--agents`): one HTTP server
(swarm_medic.web.http.serve) on 127.0.0.1, port 0, whose control routes each request to the
NodeEndpoint of the node named in its signed X-Medic-Node header (every node's address is
127.0.0.1, so the Prober's own URL logic is used unchanged). Each endpoint verifies the
request, decodes the plan, answers from a simulated agent (every target answers but one dead
task, no namespaces) and seals the answer. The brain (this process) only plans, signs, sends,
verifies, decodes and folds: its CPU is measured alone with time.process_time.
"""

from __future__ import annotations

import gc
import json
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry

from swarm_medic.core.model import Snapshot
from swarm_medic.core.protocol import (
    MAX_REQUEST,
    ActAnswer,
    ActRequest,
    Container,
    DnsResult,
    ProbeAnswer,
    ProbePlan,
    TcpResult,
    encode,
    spoken,
)
from swarm_medic.core.reach import DEFAULT_BUDGET, FULL, Budget, Clock, Reachability
from swarm_medic.core.runbook import TaskClock, context
from swarm_medic.core.settings import HttpSettings, ProbeSettings, Settings
from swarm_medic.nodes.agent import NodeAgent
from swarm_medic.nodes.channel import H_NODE, RequestAuth
from swarm_medic.nodes.endpoint import NodeEndpoint
from swarm_medic.nodes.rounds import Prober
from swarm_medic.pipeline import observe, registry
from swarm_medic.swarm.fake import FakeEngine
from swarm_medic.telemetry.journal import Journal
from swarm_medic.telemetry.metrics import Metrics

SEED, NOW, NODES, SERVICES, PER_SERVICE, NETS = 20240611, 1_700_000_000.0, 100, 200, 10, 10
ROUNDS, WARMUP = 9, 2
SECRET = "probe-bench-secret"  # noqa: S105 - a loopback-only benchmark key
BRAIN = "brain-manager"  # the brain's node is not one of the 100: every node is asked over HTTP
TARGET_CPU_MS, TARGET_BYTES = 50.0, 64 * 1024
INTERVAL = ProbeSettings().probe_interval
K = ProbeSettings().probe_failures


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


class SimAgent(NodeAgent):
    """A node's eyes without namespaces: every target answers but the dead task."""

    def __init__(self, node_id: str, containers: tuple[Container, ...], dead: str) -> None:
        super().__init__(FakeEngine(node_id=node_id), node_id)
        self.listed = containers
        self.dead = dead

    def probe(self, plan: ProbePlan) -> ProbeAnswer:
        ok, bad = TcpResult(True, "", 0.35), TcpResult(False, "timeout", 1000.0)
        return ProbeAnswer(
            node=self.node_id,
            ipvs=True,
            tcp=tuple(bad if t.task == self.dead else ok for t in plan.tcp),
            dns=(DnsResult(("10.0.0.2", "10.0.0.3")),) * len(plan.dns),
            vip=(ok,) * len(plan.vip),
            containers=self.listed,
        )

    def act(self, request: ActRequest) -> ActAnswer:
        return ActAnswer(ok=False)


class _Unclocked(NodeEndpoint):
    """The endpoint as it was before the clock readings: the agent's answer, unstamped."""

    def _probe(self, body: bytes, peer: str) -> bytes:
        theirs, plan = spoken(body, ProbePlan, limit=MAX_REQUEST, ours=self.protocol)
        self._heard(peer, theirs)
        return encode(self.agent.probe(plan), speaks=self.protocol, reader=theirs)


def serve_agents(clocked: bool = True) -> None:
    """The subprocess: 100 agents behind one port, routed by the signed node header."""
    from swarm_medic.web.http import serve
    from swarm_medic.web.httphead import Limits

    # One port takes what 100 nodes' ports would: up to 32 requests at once (the prober's
    # pool), where each real node sees one at a time. With a real node's 4 control workers
    # the other 28 would be refused as busy, which measures nothing about the brain.
    # one server stands in for NODES nodes, each of which sees the brain's one connection: the
    # per-address share a real node keeps (16) would evict the brain's own requests here
    limits = Limits(control_workers=32, connections=4 * NODES, per_address=4 * NODES)

    eng, dead = build()
    snap = observe.take_snapshot(eng, NOW)
    names = {s.id: s.name for s in snap.services}
    mine: dict[str, list[Container]] = {}
    for t in snap.tasks:
        cid = (t.id * 3)[:64]
        name = f"{names[t.service_id]}.{t.slot}.{t.id}"
        mine.setdefault(t.node_id, []).append(Container(cid, t.id, t.service_id, "running", name))
    journal = Journal(Metrics(CollectorRegistry()), _Quiet())
    kind = NodeEndpoint if clocked else _Unclocked
    endpoints = {
        n.id: kind(
            SimAgent(n.id, tuple(mine.get(n.id, ())), dead), RequestAuth(SECRET.encode()), journal
        )
        for n in snap.nodes
    }

    def control(
        path: str, headers: Mapping[str, str], body: bytes, peer: str
    ) -> tuple[int, dict[str, Any]]:
        node = {k.lower(): v for k, v in headers.items()}.get(H_NODE.lower(), "")
        ep = endpoints.get(node)
        if ep is None:
            return 404, {"error": "no such node"}
        return ep.handle(path, headers, body, peer)

    server = serve("127.0.0.1", 0, CollectorRegistry(), lambda: (True, {}), control, limits=limits)
    print(server.server_address[1], flush=True)
    sys.stdin.read()  # until the parent closes our stdin
    server.shutdown()


class _Quiet:
    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: None


class _Measured(Prober):
    """Keeps each answer body (to size the envelope after the timed part)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.bodies: list[bytes] = []

    def _remote(self, node_id: str, path: str, body: bytes) -> bytes:
        raw = super()._remote(node_id, path, body)
        self.bodies.append(raw)
        return raw


class _Unmeasured(_Measured):
    """The brain as it was before the clock readings: it times nothing and keeps nothing."""

    def _measured(self, node_id: str, plan: ProbePlan) -> tuple[ProbeAnswer, Clock | None]:
        return self._probe(node_id, plan), None


def _wire_bytes(body: bytes) -> int:
    # exactly what http.py sends for the sealed envelope: json.dumps with its defaults
    return len(json.dumps({"sig": "0" * 64, "body": body.decode()}).encode())


def run(
    snap: Snapshot, port: int, budget: Budget, dead: str, *, clocked: bool = True
) -> dict[str, float]:
    settings = Settings(
        probes=ProbeSettings(secret=SECRET, probe_grace=0.0), http=HttpSettings(http_port=port)
    )
    agent = NodeAgent(FakeEngine(node_id=BRAIN), BRAIN)
    kind = _Measured if clocked else _Unmeasured
    prober = kind(settings.probes, agent, port=port, scope=settings.safety, budget=budget)
    reach = Reachability()
    unreachable = registry.load([registry.builtin_dir()]).runbooks["unreachable-endpoint"]
    cpu: list[float] = []
    sizes: list[float] = []
    detected = 0
    for r in range(WARMUP + ROUNDS):
        now = NOW + r * INTERVAL
        prober.bodies.clear()
        gc.collect()
        start = time.process_time()
        answers = prober.run(snap, now, reach.suspects())
        reach.record(snap, answers, now, period=prober.period, clocks=prober.clocks)
        spent = time.process_time() - start
        if prober.failures:
            raise RuntimeError(f"round {r}: {sorted(prober.failures.items())[:3]}")
        if r >= WARMUP:
            cpu.append(spent * 1000)
            sizes.append(statistics.mean(_wire_bytes(b) for b in prober.bodies))
        ctx = context(snap, now, settings, TaskClock(), reach=reach)
        if not detected and any(f.task_ids == (dead,) for f in unreachable.detect(ctx)):
            detected = r + 1
    if clocked and len(reach.clocks) != NODES:
        raise RuntimeError(f"{len(reach.clocks)} clocks read of {NODES} nodes")
    return {
        "cpu_ms": statistics.median(cpu),
        "bytes": statistics.median(sizes),
        "period": float(prober.period),
        "probes": float(reach.probes_last_round),
        "detect_rounds": float(detected),
        "skew_detect_ms": _skew_detect_ms(snap, settings, reach) if clocked else 0.0,
    }


def _skew_detect_ms(snap: Snapshot, settings: Settings, reach: Reachability) -> float:
    """CPU ms of one clock-skew detect over the readings of every node (once per scan)."""
    skew = registry.load([registry.builtin_dir()]).runbooks["clock-skew"]
    ctx = context(snap, reach.round_at, settings, TaskClock(), reach=reach)
    runs = []
    for _ in range(ROUNDS):
        start = time.process_time()
        list(skew.detect(ctx))
        runs.append((time.process_time() - start) * 1000)
    return statistics.median(runs)


def _agents(clocked: bool = True) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks.probe_bench",
            "--agents" if clocked else "--agents-unclocked",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None  # noqa: S101 - Popen with stdout=PIPE
    return proc, int(proc.stdout.readline())


def measure_all() -> dict[str, dict[str, float]]:
    eng, dead = build()
    snap = observe.take_snapshot(eng, NOW)
    proc, port = _agents()
    bare, bare_port = _agents(clocked=False)
    try:
        # with and without the clocks twice each, alternating: a run's place in the sequence
        # (the warm-up of the interpreter, the other load of the machine) weighs as much as
        # the clocks, so each figure is the better of its two runs
        pairs = [
            (
                run(snap, bare_port, DEFAULT_BUDGET, dead, clocked=False),
                run(snap, port, DEFAULT_BUDGET, dead),
            )
            for _ in range(2)
        ]
        return {
            "rotation": min((c for _, c in pairs), key=lambda r: r["cpu_ms"]),
            "baseline": run(snap, port, FULL, dead),
            "unclocked": min((u for u, _ in pairs), key=lambda r: r["cpu_ms"]),
        }
    finally:
        for p in (proc, bare):
            assert p.stdin is not None  # noqa: S101 - Popen with stdin=PIPE
            p.stdin.close()
            p.wait(timeout=30)


def measure() -> dict[str, float]:
    return _figures(measure_all()["rotation"])


def main() -> int:
    got = measure_all()
    new, old, bare = got["rotation"], got["baseline"], got["unclocked"]
    b = DEFAULT_BUDGET
    cpu_x, bytes_x = old["cpu_ms"] / new["cpu_ms"], old["bytes"] / new["bytes"]
    print(f"""\
swarm: {NODES} nodes, {SERVICES} services x {PER_SERVICE} tasks = {SERVICES * PER_SERVICE} probed \
tasks on {NETS} overlays; agents in a subprocess on 127.0.0.1 (one port, routed by node id)
budget per node per round: {b.tcp} tcp, {b.dns} dns, {b.vip} vip, + up to {b.suspects} suspects each
median of {ROUNDS} rounds after {WARMUP} warm-up rounds (brain CPU: time.process_time)

                              rotation     baseline (every pair every round)
  brain CPU ms per round    {new["cpu_ms"]:10.1f}   {old["cpu_ms"]:10.1f}   ({cpu_x:.1f}x)
  answer bytes per node     {new["bytes"]:10.0f}   {old["bytes"]:10.0f}   ({bytes_x:.1f}x)
  probes folded per round   {new["probes"]:10.0f}   {old["probes"]:10.0f}
  rounds to cover all pairs {new["period"]:10.0f}   {old["period"]:10.0f}
  rounds to detect a dead task (K={K}) {new["detect_rounds"]:4.0f}   \
{old["detect_rounds"]:10.0f}

the nodes' clocks read (rotation, against agents and a brain without them, same run)
                              with clocks  without
  brain CPU ms per round    {new["cpu_ms"]:10.1f}   {bare["cpu_ms"]:10.1f}   \
({new["cpu_ms"] / bare["cpu_ms"]:.2f}x)
  answer bytes per node     {new["bytes"]:10.0f}   {bare["bytes"]:10.0f}   \
(+{new["bytes"] - bare["bytes"]:.0f} bytes, {new["bytes"] / bare["bytes"]:.3f}x)
  clock-skew detect, {NODES} readings: {new["skew_detect_ms"]:.2f} ms CPU per scan

target: brain CPU <= {TARGET_CPU_MS:.0f} ms: {"PASS" if new["cpu_ms"] <= TARGET_CPU_MS else "FAIL"}
target: answer <= {TARGET_BYTES} bytes per node: \
{"PASS" if new["bytes"] <= TARGET_BYTES else "FAIL"}""")
    print(json.dumps(_figures(new)))
    return 0


def _figures(new: Mapping[str, float]) -> dict[str, float]:
    return {"probe_round_cpu_ms_100n": new["cpu_ms"], "probe_bytes_per_node_100n": new["bytes"]}


if __name__ == "__main__":
    if sys.argv[1:] in (["--agents"], ["--agents-unclocked"]):
        serve_agents(clocked=sys.argv[1] == "--agents")
        raise SystemExit(0)
    raise SystemExit(main())
