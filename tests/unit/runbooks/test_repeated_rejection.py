"""repeated-rejection: tasks of a service rejected again and again with one error, within
a window; never acts."""

from __future__ import annotations

import pytest

from swarm_medic.core.model import Task
from swarm_medic.core.runbook import Runbook
from tests.unit.runbooks.kit import REGISTRY, detect
from tests.unit.runbooks.one_worker import ERR_IMAGE, ctx, service, task

REJECTED: Runbook = REGISTRY.runbooks["repeated-rejection"]


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
