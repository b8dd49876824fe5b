"""Time to find a one-node-one-task fault at 100 nodes x 2,000 tasks, from the probe plans alone.

Run: .venv/bin/python -m benchmarks.coverage [--samples N] [--seed S]   (always exits 0)

Pure: no network, no engine, no clock. The world is probe_bench's (100 nodes, 2,000 probed
tasks on 10 overlays, built on the fake engine); the probing is whatever `reach.plans` makes
of it with the daemon's defaults (the probe budget, --probe-failures K, --probe-interval,
--probe-grace), so the figure follows the design that stands, not a model of it.

A fault: from one node, one task stops answering, just before round `onset` is probed (the
worst moment within a round). Each round the node's plan comes from `reach.plans` with the
suspects `Reachability.suspects()` names after the node's answers so far (every target
answers but that one); the fault is found in the round whose answer makes the pair's count
of failed probes in a row reach K, as `unreachable-endpoint` asks. Time to find = rounds from
the onset to that one, inclusive, x the interval. Pairs and onsets are drawn at random
(seeded) from every pair the full plan (`reach.FULL`: every node probes every target it
should reach) names, and from the first two periods of the rotation.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from swarm_medic.core.model import Snapshot
from swarm_medic.core.protocol import ProbeAnswer, ProbePlan, TcpResult
from swarm_medic.core.reach import (
    DEFAULT_BUDGET,
    FULL,
    Budget,
    Plans,
    Reachability,
    Suspects,
    plans,
)
from swarm_medic.core.settings import ProbeSettings, SafetySettings

SAMPLES, SEED = 300, 20
Pair = tuple[str, str]  # (from node, task id)


@dataclass(frozen=True)
class Probing:
    """What decides when a pair is probed: the daemon's settings and probe budget."""

    scope: SafetySettings = field(default_factory=SafetySettings)
    grace: float = ProbeSettings().probe_grace
    interval: float = ProbeSettings().probe_interval
    failures: int = ProbeSettings().probe_failures  # K
    budget: Budget = DEFAULT_BUDGET

    def plans(self, snap: Snapshot, round_no: int, suspects: Suspects | None = None) -> Plans:
        return plans(
            snap,
            self.scope,
            snap.taken_at,
            grace=self.grace,
            round_no=round_no,
            budget=self.budget,
            suspects=suspects,
        )

    def target(self) -> float:
        """The goal of issue 20: every pair probed within 60 s, plus the K confirmations."""
        return 60.0 + self.failures * self.interval


def every_pair(snap: Snapshot, probing: Probing) -> list[Pair]:
    """Every (node, task) pair that should be probed: those of the full plan."""
    full = plans(snap, probing.scope, snap.taken_at, grace=probing.grace, budget=FULL)
    return sorted({(n, t.task) for n, p in full.by_node.items() for t in p.tcp})


def _answer(node: str, plan: ProbePlan, dead: str) -> ProbeAnswer:
    ok, bad = TcpResult(True, "", 0.3), TcpResult(False, "timeout", 1000.0)
    return ProbeAnswer(node=node, tcp=tuple(bad if t.task == dead else ok for t in plan.tcp))


@dataclass
class _Fault:
    pair: Pair
    onset: int
    reach: Reachability = field(default_factory=Reachability)
    found: int | None = None  # rounds from the onset to the finding, inclusive


def _suspected(s: Suspects) -> bool:
    return any(any(m.values()) for m in (s.tcp, s.dns, s.vip, s.ports))


def rounds_to_find(
    snap: Snapshot, probing: Probing, faults: Sequence[tuple[Pair, int]], horizon: int
) -> list[int | None]:
    """For each (pair, onset round): the rounds until the fault is found, or None if not
    within `horizon` rounds of its onset. All faults advance round by round together (each
    with its own history, as if alone in the swarm), so the plans without suspects, the same
    for every fault, are made once per round."""
    todo = [_Fault(pair, onset) for pair, onset in faults]
    pending = sorted(todo, key=lambda f: f.onset)
    r = pending[0].onset if pending else 0
    while pending:
        baseline = probing.plans(snap, r)
        still = []
        for f in pending:
            if r < f.onset:
                still.append(f)
                continue
            node, task = f.pair
            suspects = f.reach.suspects()
            made = probing.plans(snap, r, suspects) if _suspected(suspects) else baseline
            mine = made.by_node.get(node)
            # before its first probe the fault leaves no trace: nothing to fold
            if mine is not None and (f.reach.rounds or any(t.task == task for t in mine.tcp)):
                now = snap.taken_at + r * probing.interval
                answers = {node: (mine, _answer(node, mine, task))}
                f.reach.record(snap, answers, now, period=made.period)
                cell = f.reach.tcp.get(f.pair)
                if cell is not None and cell.fails >= probing.failures:
                    f.found = r - f.onset + 1
                    continue
            if r - f.onset + 1 < horizon:
                still.append(f)
        pending, r = still, r + 1
    return [f.found for f in todo]


@dataclass(frozen=True)
class Found:
    """Seconds from a fault to its finding over the samples; `missed`: not found in time."""

    worst_s: float | None
    median_s: float | None
    samples: int
    missed: int
    period: int


def summary(rounds: Sequence[int | None], interval: float, period: int) -> Found:
    found = [r * interval for r in rounds if r is not None]
    missed = len(rounds) - len(found)
    return Found(
        worst_s=max(found) if found and not missed else None,  # a miss has no worst
        median_s=statistics.median(found) if found else None,
        samples=len(rounds),
        missed=missed,
        period=period,
    )


def measure_world(
    snap: Snapshot, probing: Probing, *, samples: int = SAMPLES, seed: int = SEED
) -> Found:
    period = probing.plans(snap, 0).period
    rng = random.Random(seed)
    universe = every_pair(snap, probing)
    faults = [(rng.choice(universe), rng.randrange(2 * period)) for _ in range(samples)]
    # long enough for a first probe within a period and then K more periods of re-probes:
    # a design that passes a pair by for longer is reported as missing it
    horizon = period * (probing.failures + 1) + probing.failures
    return summary(rounds_to_find(snap, probing, faults, horizon), probing.interval, period)


def world() -> Snapshot:
    """probe_bench's world: the figures of both describe one swarm."""
    from benchmarks.probe_bench import NOW, build
    from swarm_medic.pipeline import observe

    return observe.take_snapshot(build()[0], NOW)


def measure(*, samples: int = SAMPLES, seed: int = SEED) -> Found:
    return measure_world(world(), Probing(), samples=samples, seed=seed)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.coverage", description=__doc__)
    ap.add_argument("--samples", type=int, default=SAMPLES)
    ap.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args(argv)
    snap, probing = world(), Probing()
    start = time.process_time()
    got = measure_world(snap, probing, samples=args.samples, seed=args.seed)
    spent = time.process_time() - start
    b = probing.budget
    tasks = len({t for _, t in every_pair(snap, probing)})
    print(
        f"swarm: {len(snap.nodes)} nodes, {tasks} probed tasks; budget per node per round "
        f"{b.tcp} tcp + up to {b.suspects} suspects; rounds every {probing.interval:g} s, "
        f"K = {probing.failures}; the plans cover every pair in {got.period} rounds"
    )
    shown = {k: "n/a" if v is None else f"{v:,.0f} s" for k, v in vars(got).items()}
    print(
        f"time to find a one-node-one-task fault over {got.samples} random (pair, onset), "
        f"seed {args.seed}: worst {shown['worst_s']}, median {shown['median_s']}, "
        f"target worst <= {probing.target():g} s ({spent:.1f} s of CPU)"
    )
    if got.missed:
        print(f"{got.missed} faults were not found within the horizon: no worst case")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
