"""unreachable-endpoint: a running task that other nodes cannot reach on its overlay, judged from
the from-node x to-task matrix of the probe rounds; the cause says where it breaks, and the task
is replaced through its own node."""

from __future__ import annotations

import pytest

from swarm_medic.core.model import ActionKind, Severity, Snapshot, SwarmInfo, Target
from swarm_medic.core.reach import Cell, Reachability
from swarm_medic.core.runbook import Runbook
from tests.builders import NOW
from tests.unit.runbooks.kit import REGISTRY, detect
from tests.unit.runbooks.overlay import TASK_NODE, K, ctx, matrix, service, snapshot, task

UNREACHABLE: Runbook = REGISTRY.runbooks["unreachable-endpoint"]


@pytest.mark.parametrize(
    ("fails", "cause", "from_nodes"),
    [
        ({("n2", "t1"): K}, "some-nodes", "n2"),
        ({("n2", "t1"): K, ("n3", "t1"): K}, "task-node", "n2,n3"),
        ({("n1", "t1"): K, ("n2", "t1"): K, ("n3", "t1"): K}, "container", "n1,n2,n3"),
        ({("n1", "t1"): K}, "container", "n1"),
    ],
    ids=["some-nodes", "task-node", "container-everywhere", "container-own-node"],
)
def test_unreachable_endpoint_cause_from_the_matrix(
    fails: dict[tuple[str, str], int], cause: str, from_nodes: str
) -> None:
    (f,) = detect(UNREACHABLE, ctx(matrix(fails)))
    assert f.cause == cause
    assert f.key == "unreachable-endpoint:t1"
    assert f.task_ids == ("t1",)
    assert f.details == {"from": from_nodes}
    assert f.target == Target.for_task("t1", "n1")
    assert set(f.node_ids) == {"n1", *from_nodes.split(",")}
    assert f.actionable
    assert f.severity is Severity.CRITICAL
    assert "10.0.1.2:80" in f.summary


def test_unreachable_endpoint_names_the_bad_nodes_by_hostname() -> None:
    (f,) = detect(UNREACHABLE, ctx(matrix({("n2", "t1"): K})))
    assert "worker-1 is Running but unreachable from worker-2 (timeout)" in f.summary
    assert "worker-2" in f.advice


def test_unreachable_endpoint_below_the_failure_threshold_is_nothing() -> None:
    assert detect(UNREACHABLE, ctx(matrix({("n2", "t1"): K - 1, ("n3", "t1"): K - 1}))) == []


def test_a_vantage_from_which_nothing_of_the_service_answers_does_not_count() -> None:
    # n2 reaches none of the service's tasks (not even its own): its view proves nothing
    everything_from_n2 = {("n2", t): K for t in TASK_NODE}
    assert detect(UNREACHABLE, ctx(matrix(everything_from_n2))) == []


def test_only_the_vantages_that_see_other_tasks_are_counted() -> None:
    # n3 sees nothing of the service; n2 fails only t1: the finding is from n2 only, and
    # as the one other node that counts fails, the cause is the task's node
    fails = {("n2", "t1"): K, **{("n3", t): K for t in TASK_NODE}}
    (f,) = detect(UNREACHABLE, ctx(matrix(fails)))
    assert f.details["from"] == "n2"
    assert f.node_ids == ("n1", "n2")
    assert f.cause == "task-node"


def test_a_single_task_service_is_never_judged() -> None:
    snap = snapshot(tasks=[task("t1")])
    r = Reachability(round_at=NOW, rounds=5)
    r.tcp[("n2", "t1")] = Cell(False, "timeout", K, NOW)
    assert detect(UNREACHABLE, ctx(r, snap)) == []


def test_a_service_out_of_scope_is_not_considered() -> None:
    snap = snapshot(svc=service(labels={}))
    assert detect(UNREACHABLE, ctx(matrix({("n2", "t1"): K}), snap)) == []


def test_tasks_that_are_not_running_are_not_judged() -> None:
    snap = snapshot(tasks=[task("t1", state="shutdown"), task("t2"), task("t3")])
    assert detect(UNREACHABLE, ctx(matrix({("n2", "t1"): K}), snap)) == []


def test_no_rounds_yet_is_nothing() -> None:
    assert detect(UNREACHABLE, ctx(None)) == []
    assert detect(UNREACHABLE, ctx(Reachability())) == []


def test_unreachable_endpoint_plans_to_replace_the_task_on_its_node() -> None:
    c = ctx(matrix({("n2", "t2"): 0, ("n1", "t2"): K, ("n3", "t2"): K}))
    (f,) = detect(UNREACHABLE, c)
    assert f.cause == "task-node"
    action = UNREACHABLE.plan(f, c)
    assert action is not None
    assert action.kind is ActionKind.REPLACE_TASK
    assert (action.service_id, action.service_name, action.service_version) == ("s1", "web", 7)
    assert (action.task_id, action.node_id) == ("t2", "n2")
    assert "task-node" in action.reason


def test_unreachable_endpoint_plans_nothing_for_a_removed_service() -> None:
    (f,) = detect(UNREACHABLE, ctx(matrix({("n2", "t1"): K})))
    gone = Snapshot(NOW, SwarmInfo("n1", "", "active", True), (), (), ())
    assert UNREACHABLE.plan(f, ctx(None, gone)) is None


def test_own_node_bridge_counts_even_without_a_sound_container_vantage() -> None:
    # Seen on the 3-node lab: t3's overlay interface is down and t3 is the only container of
    # the network on n3, so n3 has no container vantage for the other tasks (no cells) and
    # only its bridge probe of t3, failing for one round less than the others. Still
    # "container": it fails even from its own node.
    r = matrix({("n1", "t3"): K, ("n2", "t3"): K, ("n3", "t3"): 1})
    del r.tcp[("n3", "t1")], r.tcp[("n3", "t2")]
    (f,) = detect(UNREACHABLE, ctx(r))
    assert f.cause == "container"
    assert f.details["from"] == "n1,n2,n3"


def test_own_node_alone_does_not_raise_it() -> None:
    # only the task's own bridge fails (every other node reaches it): not raised
    r = matrix({("n3", "t3"): K})
    del r.tcp[("n3", "t1")], r.tcp[("n3", "t2")]
    assert detect(UNREACHABLE, ctx(r)) == []


def test_two_tasks_unreachable_in_the_same_round_are_two_findings() -> None:
    # t1 from n2 only, t3 from n1 only: each judged on its own vantages
    found = detect(UNREACHABLE, ctx(matrix({("n2", "t1"): K, ("n1", "t3"): K})))
    assert sorted((f.task_ids, f.details["from"]) for f in found) == [
        (("t1",), "n2"),
        (("t3",), "n1"),
    ]


def test_the_tasks_own_node_answering_with_no_opinion_yet_holds_the_finding_back() -> None:
    """The lab's medics start together: the task's own node answers its first round before it
    holds the lists of its standing duty, and the finding, judged without its vantage, named
    the path ("some-nodes") where the container's own interface was down. It waits one round
    for that vantage; a home node that does not answer, or that holds other opinions, does
    not hold it back."""
    r = matrix({("n2", "t1"): K, ("n3", "t1"): K})
    for t in TASK_NODE:
        del r.tcp[("n1", t)]  # n1, the task's node, holds no opinion on anything yet
    r.answered.update({"n1": r.rounds, "n2": r.rounds, "n3": r.rounds})
    assert detect(UNREACHABLE, ctx(r)) == []
    # one round later, still no opinion from it (its probes cannot run): judged without it
    for n in ("n2", "n3"):
        r.tcp[(n, "t1")] = Cell(False, "timeout", K + 1, NOW)
    (f,) = detect(UNREACHABLE, ctx(r))
    assert f.details == {"from": "n2,n3"}
    for n in ("n2", "n3"):
        r.tcp[(n, "t1")] = Cell(False, "timeout", K, NOW)
    r.answered["n1"] = r.rounds - 1  # its medic does not answer: judged without it
    (f,) = detect(UNREACHABLE, ctx(r))
    assert f.details == {"from": "n2,n3"}
    r.answered["n1"] = r.rounds
    r.tcp[("n1", "t2")] = Cell(True, "", 0, NOW)  # it holds opinions, not on t1: judged
    (f,) = detect(UNREACHABLE, ctx(r))
    assert f.details == {"from": "n2,n3"}
