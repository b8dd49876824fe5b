"""stuck-task: tasks that do not reach running, by cause and threshold; and TaskClock,
which tells how long a task has been in its state."""

from __future__ import annotations

import pytest

from runbooks.stuck_task import DEFAULT_STUCK_AFTER
from swarm_medic.core.model import Action, ActionKind, Finding, Severity
from swarm_medic.core.runbook import Runbook, TaskClock
from tests.builders import NOW
from tests.unit.runbooks.kit import REGISTRY, detect
from tests.unit.runbooks.one_worker import ERR_IMAGE, ctx, node, service, task

STUCK: Runbook = REGISTRY.runbooks["stuck-task"]

ERR_CONSTRAINTS = "no suitable node (scheduling constraints not satisfied on 1 node)"
ERR_RESOURCES = "no suitable node (insufficient resources on 1 node)"
ERR_MAX_REPLICAS = "no suitable node (max replicas per node limit exceed)"
ERR_NETWORK = "failed to allocate network IP for task: could not find an available IP"


# --- stuck-task: causes --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "err", "message", "cause", "actionable"),
    [
        # scheduling causes: nothing fits in these setups (see the service/nodes below)
        ("pending", ERR_CONSTRAINTS, "pending task scheduling", "constraints", False),
        ("pending", ERR_RESOURCES, "pending task scheduling", "resources", False),
        ("pending", ERR_MAX_REPLICAS, "pending task scheduling", "max-replicas", False),
        # causes a restart cannot fix
        ("preparing", ERR_IMAGE, "preparing", "image", False),
        ("preparing", "", "pulling image failed: manifest unknown", "image", False),
        ("new", ERR_NETWORK, "created", "network", False),
        ("pending", "", "no available IP address", "network", False),
        # an unexplained hang: restartable only once the task reached a node
        ("assigned", "", "scheduler assigned task to node", "hang", True),
        ("accepted", "", "accepted", "hang", True),
        ("preparing", "", "preparing", "hang", True),
        ("starting", "", "starting", "hang", True),
        ("new", "", "created", "hang", False),
        ("allocated", "", "", "hang", False),
        ("pending", "", "pending task scheduling", "hang", False),
        ("ready", "", "", "hang", False),
    ],
)
def test_stuck_task_causes(
    state: str, err: str, message: str, cause: str, actionable: bool
) -> None:
    # A service no node can take: the constraint excludes the only node, the reservation
    # exceeds its CPUs, and its one-per-node slot is taken by a running task.
    svc = service(constraints=("node.labels.zone==eu",), cpus=4, max_per_node=1)
    running = task("t-run", "running", node_id="n1")
    stuck = task("t1", state, err=err, message=message, node_id="n1" if state != "pending" else "")
    (f,) = detect(STUCK, ctx([svc], [running, stuck]))
    assert f.runbook == "stuck-task"
    assert f.cause == cause
    assert f.actionable is actionable
    assert f.key == f"stuck-task:svc1:{cause}"
    assert f.task_ids == ("t1",)
    limit = f"{DEFAULT_STUCK_AFTER[state]:.0f}s (default)"
    assert f.details == {
        "states": state,
        "oldest_seconds": "1000",
        "threshold": f"{state} after {limit}",
    }
    assert f.severity is (Severity.WARNING if cause == "hang" else Severity.CRITICAL)
    assert f.summary == (
        f"1 task(s) of web stuck in {state} for up to 1000s (stuck {state} after {limit})"
    )
    assert (STUCK.plan(f, ctx([svc], [running, stuck])) is not None) is actionable


# Per scheduling cause: a service n1 cannot take, and a second node n2 that can.
SCHEDULING_SETUPS = {
    "constraints": (
        ERR_CONSTRAINTS,
        service(constraints=("node.labels.zone==eu",)),
        node("n2", "worker-2", {"zone": "eu"}),
    ),
    "resources": (ERR_RESOURCES, service(cpus=1.5), node("n2", "worker-2", cpus=4)),
    "max-replicas": (ERR_MAX_REPLICAS, service(max_per_node=1), node("n2", "worker-2")),
}


@pytest.mark.parametrize("cause", list(SCHEDULING_SETUPS))
@pytest.mark.parametrize("fits_now", [False, True])
def test_scheduling_cause_is_actionable_only_when_a_node_fits_now(
    cause: str, fits_now: bool
) -> None:
    err, svc, n2 = SCHEDULING_SETUPS[cause]
    nodes = [node("n1"), n2] if fits_now else [node("n1")]
    tasks = [task("t-run", "running", node_id="n1"), task("t1", "pending", err=err)]
    c = ctx([svc], tasks, nodes)
    (f,) = detect(STUCK, c)
    assert f.cause == cause
    assert f.actionable is fits_now
    if fits_now:
        assert STUCK.plan(f, c) == Action(
            ActionKind.FORCE_UPDATE,
            "svc1",
            "web",
            42,
            "a node can take the pending task now: nudge the scheduler",
        )
        assert f.advice.endswith(f"worker-1: {_N1_MISS[cause]}")
    else:
        assert STUCK.plan(f, c) is None
        assert f.advice == f"scheduler says {err!r}. worker-1: {_N1_MISS[cause]}"


_N1_MISS = {
    "constraints": "node.labels.zone is 'us', needs 'eu'",
    "resources": "0.50 CPUs free, needs 1.50",  # t-run (1.5 CPUs reserved) runs on n1
    "max-replicas": "already runs 1 (max 1 per node)",
}


def test_constraint_diagnosis_names_the_constraint_and_the_node() -> None:
    svc = service(constraints=("node.labels.zone==eu",))
    nodes = [node("n1", "worker-1", {"zone": "us"}), node("n2", "worker-2", {"disk": "ssd"})]
    (f,) = detect(STUCK, ctx([svc], [task("t1", "pending", err=ERR_CONSTRAINTS)], nodes))
    assert f.advice == (
        f"scheduler says {ERR_CONSTRAINTS!r}. "
        "worker-1: node.labels.zone is 'us', needs 'eu'; "
        "worker-2: node.labels.zone is not set"
    )


def test_resource_diagnosis_says_what_is_free() -> None:
    svc = service(cpus=4)
    (f,) = detect(STUCK, ctx([svc], [task("t1", "pending", err=ERR_RESOURCES)]))
    assert f.advice.endswith("worker-1: 2.00 CPUs free, needs 4.00")


def test_image_and_hang_advice() -> None:
    svc = service()
    c = ctx([svc], [task("t1", "preparing", err=ERR_IMAGE), task("t2", "starting")])
    by_cause = {f.cause: f for f in detect(STUCK, c)}
    assert sorted(by_cause) == ["hang", "image"]
    image, hang = by_cause["image"], by_cause["hang"]
    assert image.advice == f"the image 'shop/web:9.9' cannot be used: {ERR_IMAGE}"
    assert hang.advice == "no error reported; the task has not moved out of starting"


# --- stuck-task: thresholds ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "age", "found"),
    [
        ("pending", 59.0, False),
        ("pending", 60.0, True),
        ("assigned", 119.0, False),
        ("assigned", 121.0, True),
        ("preparing", 299.0, False),
        ("preparing", 300.0, True),
        ("starting", 10.0, False),
    ],
)
def test_default_thresholds(state: str, age: float, found: bool) -> None:
    assert bool(detect(STUCK, ctx([service()], [task("t1", state, age=age)]))) is found


def test_settings_thresholds() -> None:
    c = ctx([service()], [task("t1", "pending", age=6)])
    assert detect(STUCK, c) == []
    assert [f.task_ids for f in detect(STUCK.with_settings(after="pending=5s"), c)] == [("t1",)]


@pytest.mark.parametrize(
    ("labels", "stuck"),
    [
        ({}, []),
        ({"swarm-medic.stuck-after.pending": "5s"}, ["p"]),
        ({"swarm-medic.stuck-after.starting": "5s"}, ["s"]),
        ({"swarm-medic.stuck-after": "5s"}, ["p", "s"]),
        ({"swarm-medic.stuck-after": "5"}, ["p", "s"]),
        ({"swarm-medic.stuck-after": "soon"}, []),  # a bad label keeps the defaults
        ({"swarm-medic.stuck-after.zombie": "5s"}, []),
        ({"swarm-medic.stuck-after": "5s", "swarm-medic.stuck-after.pending": "1h"}, ["s"]),
        # out of range (zero, or infinite from 309 digits) is as bad as unreadable
        ({"swarm-medic.stuck-after": "0s"}, []),
        (
            {"swarm-medic.stuck-after": "5s", "swarm-medic.stuck-after.pending": "9" * 309},
            ["p", "s"],
        ),
        ({"swarm-medic.stuck-after": "5s", "swarm-medic.stuck-after.pending": "0"}, ["p", "s"]),
    ],
)
def test_label_thresholds(labels: dict[str, str], stuck: list[str]) -> None:
    tasks = [task("p", "pending", age=6), task("s", "starting", age=6)]
    findings = detect(STUCK, ctx([service(labels=labels)], tasks))
    assert sorted(t for f in findings for t in f.task_ids) == stuck


def test_per_state_label_wins_whatever_the_label_order() -> None:
    labels = {"swarm-medic.stuck-after.pending": "1h", "swarm-medic.stuck-after": "5s"}
    tasks = [task("p", "pending", age=6), task("s", "starting", age=6)]
    findings = detect(STUCK, ctx([service(labels=labels)], tasks))
    assert sorted(t for f in findings for t in f.task_ids) == ["s"]


# --- stuck-task: grouping and filtering ----------------------------------------------------


def test_several_stuck_tasks_of_one_cause_make_one_finding() -> None:
    tasks = [
        task("t3", "starting", age=400, node_id="n2"),
        task("t1", "starting", age=900, node_id="n1"),
        task("t2", "preparing", age=350, node_id="n1"),
    ]
    findings = detect(STUCK, ctx([service()], tasks))
    assert len(findings) == 1
    (f,) = findings
    assert f.key == "stuck-task:svc1:hang"
    assert f.task_ids == ("t1", "t2", "t3")
    assert f.node_ids == ("n1", "n2")
    assert f.details == {
        "states": "preparing,starting",
        "oldest_seconds": "900",
        "threshold": "preparing after 300s (default); starting after 300s (default)",
    }
    assert f.summary.startswith("3 task(s) of web stuck in preparing/starting for up to 900s")
    assert f.actionable is True
    action = STUCK.plan(f, ctx([service()], tasks))
    assert action is not None
    assert action.reason == "tasks hang in preparing,starting with no error: replace them"


def test_two_causes_make_two_findings() -> None:
    tasks = [task("a", "starting"), task("b", "preparing", err=ERR_IMAGE)]
    keys = [f.key for f in detect(STUCK, ctx([service()], tasks))]
    assert keys == ["stuck-task:svc1:hang", "stuck-task:svc1:image"]


def test_hang_across_pending_and_starting_is_not_restartable() -> None:
    tasks = [task("a", "starting"), task("b", "pending")]
    (f,) = detect(STUCK, ctx([service()], tasks))
    assert (f.cause, f.actionable) == ("hang", False)


def test_tasks_not_meant_to_run_and_running_tasks_are_ignored() -> None:
    tasks = [
        task("a", "pending", desired="shutdown"),
        task("b", "running"),
        task("c", "failed", err="task: non-zero exit (1)"),
        task("d", "rejected", err=ERR_IMAGE),
    ]
    assert detect(STUCK, ctx([service()], tasks)) == []


def test_findings_per_service() -> None:
    svcs = [service("svc1"), service("svc2", name="api")]
    tasks = [task("a", "starting", sid="svc1"), task("b", "starting", sid="svc2")]
    findings = detect(STUCK, ctx(svcs, tasks))
    assert [(f.service_id, f.service_name, f.task_ids) for f in findings] == [
        ("svc1", "web", ("a",)),
        ("svc2", "api", ("b",)),
    ]


def test_stuck_plan_none_when_not_actionable_or_service_gone() -> None:
    svc = service()
    c = ctx([svc], [task("a", "pending")])
    (f,) = detect(STUCK, c)
    assert STUCK.plan(f, c) is None
    gone = ctx([], [])
    hang = Finding("stuck-task", "k", "s", "hang", service_id="svc1", actionable=True)
    assert STUCK.plan(hang, gone) is None


# --- TaskClock -----------------------------------------------------------------------------


def test_task_clock_uses_the_engine_timestamp_when_it_is_in_the_past() -> None:
    clock = TaskClock()
    t = task("t1", "pending", age=70)
    clock.observe([t], NOW - 5)
    assert clock.age(t, NOW) == 70.0


def test_task_clock_future_timestamp_uses_first_sighting() -> None:
    clock = TaskClock()
    future = task("t1", "pending", age=-3600)  # the node's clock runs an hour ahead
    clock.observe([future], NOW - 100)
    clock.observe([future], NOW - 50)  # seen again in the same state: first sighting kept
    assert clock.age(future, NOW) == 100.0
    # ... so the stuck-task runbook still sees it as stuck
    (f,) = detect(STUCK, ctx([service()], [future], clock=clock))
    assert f.task_ids == ("t1",)
    assert f.details["oldest_seconds"] == "100"


def test_task_clock_resets_on_state_change_and_forgets_unseen_tasks() -> None:
    clock = TaskClock()
    pending = task("t1", "pending", age=-3600)
    clock.observe([pending], NOW - 100)
    starting = task("t1", "starting", age=-3600)
    clock.observe([starting], NOW - 10)
    assert clock.age(starting, NOW) == 10.0
    assert clock.age(pending, NOW) == 0.0  # the remembered state is no longer pending
    clock.observe([], NOW)
    assert clock.age(starting, NOW) == 0.0
    assert TaskClock().age(starting, NOW) == 0.0  # never seen
