"""benchmarks/coverage.py: time to find a one-node-one-task fault, on worlds small enough to
count by hand.

The world: two nodes, one overlay, four probed tasks (two on each node), so each node has 4
targets. With a budget of 1 TCP target per round a node's window moves one target a round:
every pair is probed once every 4 rounds, and over 4 consecutive onsets the wait for a given
pair's first probe is 1, 2, 3 and 4 rounds, each once, wherever its node's phase starts.
"""

from __future__ import annotations

import pytest

from benchmarks import coverage
from benchmarks.coverage import Probing, rounds_to_find, summary
from swarm_medic.core.model import Snapshot
from swarm_medic.core.reach import Budget
from tests import builders as build

NET = "net0123456789abcdef0"
PAIR = ("n1", "t2")  # n1 probing a task on n2


def world() -> Snapshot:
    svc = build.service(
        "s1", labels={"swarm-medic.enable": "true"}, ports=(80,), replicas=None, vips=()
    )
    tasks = [
        build.task(
            f"t{i}",
            sid="s1",
            node_id="n1" if i < 2 else "n2",
            timestamp=build.NOW - 3600,
            addresses=((NET, "ov", f"10.0.0.{i + 2}"),),
        )
        for i in range(4)
    ]
    nodes = [build.node("n1", addr="10.9.0.1"), build.node("n2", addr="10.9.0.2")]
    return build.snapshot(nodes=nodes, services=[svc], tasks=tasks)


def probing(budget: Budget, k: int = 3) -> Probing:
    return Probing(interval=15.0, failures=k, budget=budget)


def test_every_pair_is_each_node_to_each_task_on_its_overlay() -> None:
    pairs = coverage.every_pair(world(), probing(Budget(tcp=1)))
    assert pairs == [(n, f"t{i}") for n in ("n1", "n2") for i in range(4)]


@pytest.mark.parametrize("k", [1, 2, 3])
def test_with_suspects_re_probed_a_fault_is_found_k_minus_1_rounds_after_its_first_probe(
    k: int,
) -> None:
    got = rounds_to_find(world(), probing(Budget(tcp=1), k), [(PAIR, o) for o in range(4)], 50)
    assert sorted(r for r in got if r is not None) == [w + k - 1 for w in (1, 2, 3, 4)]


def test_without_suspect_re_probes_each_confirmation_waits_for_the_window() -> None:
    budget = Budget(tcp=1, suspects=0)
    got = rounds_to_find(world(), probing(budget), [(PAIR, o) for o in range(4)], 50)
    # K = 3 probes of the pair, 4 rounds apart
    assert sorted(r for r in got if r is not None) == [w + 2 * 4 for w in (1, 2, 3, 4)]


def test_when_every_pair_is_probed_every_round_a_fault_takes_k_rounds() -> None:
    got = rounds_to_find(world(), probing(Budget()), [(PAIR, o) for o in (0, 7, 30)], 50)
    assert got == [3, 3, 3]


def test_a_fault_not_found_within_the_horizon_is_none() -> None:
    budget = Budget(tcp=1, suspects=0)
    got = rounds_to_find(world(), probing(budget), [(PAIR, o) for o in range(4)], 10)
    assert sorted(got, key=lambda r: r or 0) == [None, None, 9, 10]


def test_the_summary_is_in_seconds_and_a_miss_leaves_no_worst_case() -> None:
    assert summary([3, 4, 5, 6], 15.0, 4) == coverage.Found(90.0, 67.5, 4, 0, 4)
    assert summary([3, None, 5], 15.0, 4) == coverage.Found(None, 60.0, 3, 1, 4)


def test_the_measurement_samples_pairs_and_onsets_and_takes_the_worst() -> None:
    got = coverage.measure_world(world(), probing(Budget(tcp=1)), samples=200, seed=1)
    # 8 pairs x 8 onsets: every first-probe wait from 1 to 4 rounds occurs among 200 draws
    assert (got.worst_s, got.samples, got.missed, got.period) == ((4 + 2) * 15.0, 200, 0, 4)
    assert got.median_s is not None
    assert (1 + 2) * 15.0 <= got.median_s <= (4 + 2) * 15.0


def test_the_target_is_a_minute_plus_the_confirmation_rounds() -> None:
    assert Probing(interval=15.0, failures=3).target() == 105.0
