"""The built-in runbooks (stuck-task, paused-update, repeated-rejection) and TaskClock."""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

import pytest

from swarm_medic.core.model import (
    Action,
    ActionKind,
    Finding,
    Node,
    Resources,
    Service,
    Severity,
    Snapshot,
    SwarmInfo,
    Task,
    UpdateStatus,
)
from swarm_medic.core.runbook import Context, Runbook, TaskClock, context
from swarm_medic.core.settings import Settings
from swarm_medic.pipeline import registry

NOW = 1_700_000_000.0
CPU = 1_000_000_000
GIB = 1 << 30

REGISTRY = registry.load([registry.builtin_dir()])
STUCK: Runbook = REGISTRY.runbooks["stuck-task"]
PAUSED: Runbook = REGISTRY.runbooks["paused-update"]
REJECTED: Runbook = REGISTRY.runbooks["repeated-rejection"]

ERR_CONSTRAINTS = "no suitable node (scheduling constraints not satisfied on 1 node)"
ERR_RESOURCES = "no suitable node (insufficient resources on 1 node)"
ERR_MAX_REPLICAS = "no suitable node (max replicas per node limit exceed)"
ERR_IMAGE = "No such image: shop/web:9.9"
ERR_NETWORK = "failed to allocate network IP for task: could not find an available IP"


# --- builders --------------------------------------------------------------------------------


def node(
    nid: str = "n1",
    hostname: str = "worker-1",
    labels: dict[str, str] | None = None,
    cpus: int = 2,
) -> Node:
    return Node(
        id=nid,
        hostname=hostname,
        role="worker",
        availability="active",
        state="ready",
        labels=MappingProxyType(labels or {"zone": "us"}),
        resources=Resources(cpus * CPU, 4 * GIB),
    )


def service(
    sid: str = "svc1",
    *,
    name: str = "web",
    labels: dict[str, str] | None = None,
    constraints: tuple[str, ...] = (),
    cpus: float = 0,
    max_per_node: int = 0,
    update: UpdateStatus | None = None,
    previous: bool = False,
) -> Service:
    return Service(
        id=sid,
        name=name,
        version=42,
        labels=MappingProxyType(labels or {}),
        replicas=1,
        image="shop/web:9.9",
        constraints=constraints,
        max_replicas_per_node=max_per_node,
        reservations=Resources(int(cpus * CPU), 0),
        update_status=update,
        has_previous_spec=previous,
    )


def task(
    tid: str,
    state: str,
    *,
    age: float = 1000.0,
    err: str = "",
    message: str = "",
    sid: str = "svc1",
    node_id: str = "",
    desired: str = "running",
) -> Task:
    return Task(
        id=tid,
        service_id=sid,
        slot=1,
        node_id=node_id,
        state=state,
        desired_state=desired,
        message=message,
        err=err,
        timestamp=NOW - age,
    )


def ctx(
    services: list[Service],
    tasks: list[Task],
    nodes: list[Node] | None = None,
    clock: TaskClock | None = None,
) -> Context:
    snap = Snapshot(
        taken_at=NOW,
        info=SwarmInfo("n1", "10.0.0.1", "active", True),
        nodes=tuple(nodes if nodes is not None else [node()]),
        services=tuple(services),
        tasks=tuple(tasks),
    )
    return context(snap, NOW, Settings(), clock or TaskClock())


def detect(rb: Runbook, c: Context) -> list[Finding]:
    return list(rb.detect(c))


def test_registry_loads_the_three_builtin_runbooks() -> None:
    files = registry.builtin_dir().glob("*.py")
    assert sorted(REGISTRY.runbooks) == sorted(
        f.stem.replace("_", "-") for f in files if not f.name.startswith("_")
    )
    assert {"stuck-task", "paused-update", "repeated-rejection"} <= set(REGISTRY.runbooks)
    assert not REGISTRY.errors
    assert REGISTRY.errors == []


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
    assert f.details == {"states": state, "oldest_seconds": "1000"}
    assert f.severity is (Severity.WARNING if cause == "hang" else Severity.CRITICAL)
    assert f.summary == f"1 task(s) of web stuck in {state} for up to 1000s"
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
    assert f.details == {"states": "preparing,starting", "oldest_seconds": "900"}
    assert f.summary == "3 task(s) of web stuck in preparing/starting for up to 900s"
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


# --- paused-update -------------------------------------------------------------------------

PAUSED_MSG = "update paused due to failure or early termination of task t9"


def paused_service(state: str = "paused", *, previous: bool = True) -> Service:
    return service(update=UpdateStatus(state, PAUSED_MSG, started_at=NOW - 300), previous=previous)


# the task the pause names, as swarm leaves it when the new spec fails by itself
FAILED_T9 = task("t9", "failed", err="task: non-zero exit (3)", node_id="n1", desired="shutdown")
FAILED_WHY = "task t9 on worker-1 failed by itself: task: non-zero exit (3)"


def test_paused_update_rolls_back_when_the_new_spec_failed() -> None:
    c = ctx([paused_service()], [FAILED_T9])
    (f,) = detect(PAUSED, c)
    assert f.runbook == "paused-update"
    assert f.key == f"paused-update:svc1:paused:{NOW - 300:.0f}"
    assert f.summary == f"update of web is paused: {PAUSED_MSG} ({FAILED_WHY})"
    assert f.cause == "new-spec-failed"
    assert f.severity is Severity.CRITICAL
    assert f.actionable is True
    assert f.advice == "roll back to the previous spec"
    assert f.details == {"update_message": PAUSED_MSG, "why": FAILED_WHY, "task": "t9"}
    assert PAUSED.plan(f, c) == Action(
        ActionKind.ROLLBACK,
        "svc1",
        "web",
        42,
        "update paused: the new spec failed; roll back to the previous spec",
    )


@pytest.mark.parametrize(
    ("paused_task", "nodes", "why"),
    [
        pytest.param(
            task("t9", "shutdown", node_id="n1", desired="shutdown"),
            [node()],
            "the orchestrator shut it down",
            id="shut-down-by-the-orchestrator",
        ),
        pytest.param(
            task("t9", "running", node_id="n1", desired="shutdown"),
            [replace(node(), availability="drain")],
            "its node is ready/drain",
            id="node-drained-task-still-stopping",
        ),
        pytest.param(
            task("t9", "running", node_id="n1", desired="shutdown"),
            [replace(node(), state="down")],
            "its node is down/active",
            id="node-down",
        ),
        pytest.param(
            task("t9", "orphaned", node_id="n1", desired="shutdown"),
            [node()],
            "the orchestrator shut it down",
            id="orphaned",
        ),
    ],
)
def test_paused_update_is_resumed_when_its_node_stopped_the_task(
    paused_task: Task, nodes: list[Node], why: str
) -> None:
    for action in ("rollback", "retry"):  # the setting is about failed specs only
        c = ctx([paused_service()], [paused_task], nodes)
        rb = PAUSED.with_settings(action=action)
        (f,) = detect(rb, c)
        assert f.cause == "stopped-by-node" and why in f.summary and f.actionable
        assert f.advice == "resume the update: `docker service update web`"
        planned = rb.plan(f, c)
        assert planned is not None and planned.kind is ActionKind.RESUME_UPDATE
        assert planned.service_version == 42


@pytest.mark.parametrize(
    "tasks",
    [[], [task("t9", "running", node_id="n1")]],
    ids=["task-gone-from-history", "task-still-running"],
)
def test_paused_update_with_no_telling_why_is_report_only(tasks: list[Task]) -> None:
    c = ctx([paused_service()], tasks)
    (f,) = detect(PAUSED, c)
    assert f.cause == "cause-unknown" and not f.actionable
    assert "docker service rollback web" in f.advice and "docker service update web" in f.advice
    assert PAUSED.plan(f, c) is None


def test_paused_update_without_previous_spec_is_report_only() -> None:
    c = ctx([paused_service(previous=False)], [FAILED_T9])
    (f,) = detect(PAUSED, c)
    assert f.actionable is False
    assert f.advice == "no previous spec to roll back to; fix the spec by hand"
    assert PAUSED.plan(f, c) is None


@pytest.mark.parametrize("previous", [True, False])
def test_paused_update_retry_setting(previous: bool) -> None:
    c = ctx([paused_service(previous=previous)], [FAILED_T9])
    rb = PAUSED.with_settings(action="retry")
    (f,) = detect(rb, c)
    assert f.actionable is True
    assert rb.plan(f, c) == Action(
        ActionKind.RETRY_UPDATE, "svc1", "web", 42, "update paused: retry it"
    )


@pytest.mark.parametrize("action", ["rollback", "retry"])
def test_rollback_paused_is_report_only(action: str) -> None:
    c = ctx([paused_service("rollback_paused")], [])
    rb = PAUSED.with_settings(action=action)
    (f,) = detect(rb, c)
    assert f.cause == "rollback_paused"
    assert f.summary == f"update of web is rollback paused: {PAUSED_MSG}"
    assert f.actionable is False
    assert rb.plan(f, c) is None


@pytest.mark.parametrize(
    "update",
    [
        None,
        UpdateStatus("updating"),
        UpdateStatus("completed"),
        UpdateStatus("rollback_started"),
        UpdateStatus("rollback_completed"),
    ],
)
def test_no_paused_update(update: UpdateStatus | None) -> None:
    assert detect(PAUSED, ctx([service(update=update, previous=True)], [])) == []


def test_paused_update_unknown_start() -> None:
    svc = service(update=UpdateStatus("paused", "x"), previous=True)
    (f,) = detect(PAUSED, ctx([svc], []))
    assert f.key == "paused-update:svc1:paused:?"


# --- repeated-rejection --------------------------------------------------------------------


def rejected(tid: str, age: float, err: str = ERR_IMAGE, node_id: str = "n1") -> Task:
    return task(tid, "rejected", age=age, err=err, node_id=node_id, desired="shutdown")


def test_repeated_rejection_one_finding() -> None:
    tasks = [
        rejected("r3", 10, node_id="n2"),
        rejected("r1", 300),
        rejected("r2", 600),  # exactly at the window's edge counts
        task("ok", "running", node_id="n1"),
    ]
    c = ctx([service()], tasks)
    (f,) = detect(REJECTED, c)
    assert f.runbook == "repeated-rejection"
    assert f.key == f"repeated-rejection:svc1:{ERR_IMAGE}"
    assert f.summary == f"web: 3 tasks rejected with {ERR_IMAGE!r}"
    assert f.task_ids == ("r1", "r2", "r3")
    assert f.node_ids == ("n1", "n2")
    assert f.details == {"error": ERR_IMAGE}
    assert f.actionable is False
    assert "--with-registry-auth" in f.advice
    assert REJECTED.plan(f, c) is None


@pytest.mark.parametrize(
    "tasks",
    [
        pytest.param([rejected("r1", 10), rejected("r2", 20)], id="below-threshold"),
        pytest.param(
            [rejected("r1", 10), rejected("r2", 20), rejected("r3", 601)], id="one-outside-window"
        ),
        pytest.param(
            [rejected("r1", 10), rejected("r2", 20), rejected("r3", 30, err="other")],
            id="different-errors",
        ),
        pytest.param(
            [rejected("r1", 10, err=""), rejected("r2", 20, err=""), rejected("r3", 30, err="")],
            id="no-error-text",
        ),
        pytest.param(
            [
                rejected("r1", 10),
                rejected("r2", 20),
                task("f3", "failed", err=ERR_IMAGE, desired="shutdown"),
            ],
            id="failed-is-not-rejected",
        ),
    ],
)
def test_no_repeated_rejection(tasks: list[Task]) -> None:
    assert detect(REJECTED, ctx([service()], tasks)) == []


def test_repeated_rejection_settings_and_two_errors() -> None:
    mount = 'invalid mount config for type "bind": bind source path does not exist: /data'
    tasks = [
        rejected("a1", 10),
        rejected("a2", 20),
        rejected("b1", 10, mount),
        rejected("b2", 900, mount),
    ]
    assert detect(REJECTED, ctx([service()], tasks)) == []  # 3 within 10 minutes, by default
    rb = REJECTED.with_settings(threshold="2", window="1000")
    findings = detect(rb, ctx([service()], tasks))
    assert [(f.details["error"], f.task_ids) for f in findings] == [
        (ERR_IMAGE, ("a1", "a2")),
        (mount, ("b1", "b2")),
    ]
    assert findings[1].advice.startswith("a mount source is missing")


@pytest.mark.parametrize(
    ("err", "start"),
    [
        ("No such image: x:1", "the image cannot be found"),
        ("secret not found: db_pass", "a secret or config"),
        ("exec format error", "look at the error"),
    ],
)
def test_rejection_advice(err: str, start: str) -> None:
    tasks = [rejected(f"r{i}", 10 + i, err=err) for i in range(3)]
    (f,) = detect(REJECTED, ctx([service()], tasks))
    assert f.advice.startswith(start)


def test_repeated_rejection_ends_when_a_task_runs_after_the_rejections() -> None:
    # The fix (e.g. the right image) makes a task run; the rejected tasks linger in the task
    # history for a while, but the incident is over.
    tasks = [
        rejected("r1", 30),
        rejected("r2", 20),
        rejected("r3", 10),
        task("fixed", "running", age=5, node_id="n1"),
    ]
    assert detect(REJECTED, ctx([service()], tasks)) == []
    tasks[-1] = task("old", "running", age=40, node_id="n1")
    assert len(detect(REJECTED, ctx([service()], tasks))) == 1


# --- node-down ---------------------------------------------------------------------------

NODE_DOWN: Runbook = REGISTRY.runbooks["node-down"]


def down_node(nid: str, role: str = "worker", state: str = "down") -> Node:
    return Node(
        id=nid,
        hostname=f"host-{nid}",
        role=role,
        availability="active",
        state=state,
        message="heartbeat failure",
        addr=f"10.99.0.{len(nid)}",
    )


@pytest.mark.parametrize(
    ("state", "role", "severity"),
    [
        ("down", "worker", Severity.WARNING),
        ("unknown", "worker", Severity.WARNING),
        ("disconnected", "worker", Severity.WARNING),
        ("down", "manager", Severity.CRITICAL),
    ],
)
def test_node_down_lists_the_tasks_swarm_still_shows(
    state: str, role: str, severity: Severity
) -> None:
    tasks = [
        task("t1", "running", node_id="n2"),
        task("t2", "running", node_id="n2", sid="svc2"),
        task("t3", "running", node_id="n1"),
        task("t4", "shutdown", node_id="n2", desired="shutdown"),
        task("t5", "running", node_id="n2", desired="shutdown"),  # given up, still shown
    ]
    c = ctx(
        [service(), service("svc2", name="db")], tasks, nodes=[node(), down_node("n2", role, state)]
    )
    (f,) = detect(NODE_DOWN, c)
    assert f.key == "node-down:n2"
    assert f.node_ids == ("n2",)
    assert f.severity is severity
    assert f.cause == state
    assert "3 task(s)" in f.summary  # t5: swarm gave up on it but still shows it running
    assert "heartbeat failure" in f.summary
    assert "db.1 (running, desired running)" in f.advice
    assert "web.1 (running, desired running)" in f.advice
    assert not f.actionable
    assert NODE_DOWN.plan(f, c) is None


def test_ready_nodes_make_no_node_down_finding() -> None:
    assert detect(NODE_DOWN, ctx([service()], [task("t1", "running", node_id="n1")])) == []
