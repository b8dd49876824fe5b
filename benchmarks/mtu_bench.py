"""What overlay-mtu's probes add to a probe round at 100 nodes (issue 19, section 6).

Run: .venv/bin/python -m benchmarks.mtu_bench   (a measurement: it always exits 0)

The brain's side, in one run, three ways over the same 100 nodes:

- without: each node's answer as it was before overlay-mtu (its health fields only): the
  baseline;
- healthy: each answer with the overlay-mtu fields a healthy node sends (16 paths checked,
  none lossy, its underlay MTU);
- fault: one node's underlay loses large packets: it says 99 lossy paths, every other node
  one (its path to that node).

For each: the bytes of one node's answer as sent (protocol.encode), and the brain's CPU per
round (time.process_time, median of ROUNDS) to decode the 100 answers (protocol.decode),
fold them (Reachability.record) and run the overlay-mtu runbook over the result.

The node's side: one overlay namespace's checks a round, 16 paths of a small and a
full-size ICMP echo each (probe.echo_all, a real raw socket), to 127.0.0.1: the CPU of the
echoes themselves, without the namespace join the TCP probes pay already. Needs CAP_NET_RAW
(root); without it that figure is null.
"""

from __future__ import annotations

import gc
import json
import statistics
import time
from typing import Any

from swarm_medic.core.model import Node, Snapshot, SwarmInfo
from swarm_medic.core.protocol import Lossy, ProbeAnswer, ProbePlan, decode, encode
from swarm_medic.core.reach import Reachability
from swarm_medic.core.runbook import context
from swarm_medic.core.settings import Settings
from swarm_medic.nodes.agent import MTU_PATHS
from swarm_medic.nodes.probe import echo_all
from swarm_medic.pipeline import registry

NODES, ROUNDS, NOW = 100, 21, 1_700_000_000.0
NET = "ovbench0000000000000000000"
LIMIT = 1 << 24


def _snapshot() -> Snapshot:
    nodes = tuple(
        Node(
            id=f"node{i:03d}",
            hostname=f"n{i:03d}",
            role="worker",
            availability="active",
            state="ready",
            addr=f"10.0.{i // 250}.{i % 250 + 1}",
        )
        for i in range(NODES)
    )
    return Snapshot(
        taken_at=NOW,
        info=SwarmInfo("brain", "10.1.0.1", "active", True),
        nodes=nodes,
        services=(),
        tasks=(),
    )


def _answers(way: str) -> dict[str, bytes]:
    out = {}
    for i in range(NODES):
        me = f"node{i:03d}"
        fields: dict[str, Any] = {"node": me, "cert_not_after": NOW + 86400.0, "disks": ()}
        if way != "without":
            lossy: tuple[Lossy, ...] = ()
            if way == "fault":
                bad = "node000"
                peers = [f"node{j:03d}" for j in range(NODES) if j != i] if me == bad else [bad]
                lossy = tuple(
                    Lossy(net=NET, node=p, ip=f"10.9.{j // 250}.{j % 250 + 1}", size=1450, fails=3)
                    for j, p in enumerate(peers)
                )
            fields |= {"lossy": lossy, "paths_checked": MTU_PATHS, "underlay_mtu": 1500}
        out[me] = encode(ProbeAnswer(**fields))
    return out


def brain_round(way: str) -> dict[str, float]:
    snap, wire = _snapshot(), _answers(way)
    rb = registry.load([registry.builtin_dir()]).runbooks["overlay-mtu"]
    reach = Reachability()
    runs, found = [], 0
    for r in range(ROUNDS):
        gc.collect()
        start = time.process_time()
        answers = {n: (ProbePlan(), decode(b, ProbeAnswer, limit=LIMIT)) for n, b in wire.items()}
        now = NOW + 15.0 * r
        reach.record(snap, answers, now)
        found = len(list(rb.detect(context(snap, now, Settings(), reach=reach))))
        runs.append((time.process_time() - start) * 1000)
    sizes = sorted(len(b) for b in wire.values())
    return {
        "brain_ms": round(statistics.median(runs), 3),
        "bytes_median": sizes[len(sizes) // 2],
        "bytes_max": sizes[-1],
        "findings": found,
    }


def node_echoes(rounds: int = ROUNDS) -> float | None:
    """CPU ms per round of one overlay namespace's path checks, echoes to 127.0.0.1."""
    targets = [("127.0.0.1", size) for _ in range(MTU_PATHS) for size in (64, 1450)]
    if echo_all(targets[:1], 1.0)[0].ok is None:
        return None  # no raw socket here
    runs = []
    for _ in range(rounds):
        gc.collect()
        start = time.process_time()
        echo_all(targets, 1.0)
        runs.append((time.process_time() - start) * 1000)
    return round(statistics.median(runs), 3)


def measure() -> dict[str, Any]:
    ways = {way: brain_round(way) for way in ("without", "healthy", "fault")}
    without, healthy, fault = ways["without"], ways["healthy"], ways["fault"]
    return {
        "mtu_bytes_added_healthy": healthy["bytes_median"] - without["bytes_median"],
        "mtu_bytes_added_fault_worst": fault["bytes_max"] - without["bytes_max"],
        "mtu_brain_ms_without": without["brain_ms"],
        "mtu_brain_ms_healthy": healthy["brain_ms"],
        "mtu_brain_ms_fault": fault["brain_ms"],
        "mtu_findings_fault": fault["findings"],
        "mtu_node_ms_per_namespace": node_echoes(),
    }


def main() -> int:
    got = measure()
    print(
        f"overlay-mtu at {NODES} nodes, brain CPU per round (decode, fold, runbook), median of "
        f"{ROUNDS}: without its fields {got['mtu_brain_ms_without']} ms, healthy "
        f"{got['mtu_brain_ms_healthy']} ms, one node's underlay losing large packets "
        f"{got['mtu_brain_ms_fault']} ms ({got['mtu_findings_fault']} finding); bytes added to "
        f"an answer: {got['mtu_bytes_added_healthy']} healthy, "
        f"{got['mtu_bytes_added_fault_worst']} for the faulty node's; a node's echoes per overlay "
        f"namespace a round ({MTU_PATHS} paths x 2): {got['mtu_node_ms_per_namespace']} ms CPU"
    )
    print(json.dumps(got))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
