"""paused-update: an update swarm paused is rolled back when the new spec failed by
itself, resumed when a node stopped its task, and only reported when nothing tells why."""

from __future__ import annotations

from dataclasses import replace

import pytest

from swarm_medic.core.model import Action, ActionKind, Node, Service, Severity, Task, UpdateStatus
from swarm_medic.core.runbook import Runbook
from tests.builders import NOW
from tests.unit.runbooks.kit import REGISTRY, detect
from tests.unit.runbooks.one_worker import ctx, node, service, task

PAUSED: Runbook = REGISTRY.runbooks["paused-update"]


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
