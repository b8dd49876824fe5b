"""stuck-update: a rolling update (or rollback) that stopped making progress for longer than its
own configuration could take, named by the task it waits for; reported, or rolled back when set."""

from __future__ import annotations

from dataclasses import replace

import pytest

from swarm_medic.core.errors import SettingsError
from swarm_medic.core.model import (
    Action,
    ActionKind,
    Service,
    Severity,
    Target,
    Task,
    UpdateConfig,
    UpdateStatus,
)
from swarm_medic.core.runbook import Runbook
from tests import builders as b
from tests.builders import NOW
from tests.unit.runbooks.kit import REGISTRY, detect
from tests.unit.runbooks.two_workers import ctx

STUCK: Runbook = REGISTRY.runbooks["stuck-update"]
NO_SUCH_NODE = "no suitable node (scheduling constraints not satisfied on 1 node)"

STARTED = NOW - 400  # past the 305 s one replica may take with the defaults (5 s + 5 m margin)


def updating(
    state: str = "updating",
    *,
    started: float | None = STARTED,
    previous: bool = True,
    replicas: int | None = 1,
    config: UpdateConfig | None = None,
    mode: str = "replicated",
) -> Service:
    svc = b.service(
        "svc1",
        name="web",
        replicas=replicas,
        mode=mode,
        update=UpdateStatus(state, "update in progress", started_at=started),
        previous=previous,
    )
    return replace(svc, update_config=config or UpdateConfig())


def spec_task(
    tid: str,
    state: str,
    *,
    new: bool = True,
    since: float | None = None,
    desired: str = "running",
    err: str = "",
    message: str = "",
    node_id: str = "n1",
    slot: int | None = 1,
) -> Task:
    """A task of the new spec (created after the update started) or of the old one."""
    created = STARTED + 1 if new else STARTED - 3600
    t = b.task(
        tid,
        node_id=node_id,
        state=state,
        desired=desired,
        slot=slot,
        err=err,
        message=message,
        timestamp=since if since is not None else created,
    )
    return replace(t, created_at=created)


# start-first: the old task still serves while the new one cannot be placed
PENDING = [
    spec_task("old", "running", new=False),
    spec_task("new", "pending", node_id="", err=NO_SUCH_NODE, message="pending task scheduling"),
]


def test_a_stuck_update_names_the_task_it_waits_for() -> None:
    (f,) = detect(STUCK, ctx([updating()], PENDING))
    assert f.runbook == "stuck-update"
    assert f.key == f"stuck-update:svc1:updating:{STARTED:.0f}"
    assert f.target == Target.for_service("svc1")
    assert f.severity is Severity.CRITICAL
    assert f.task_ids == ("new",)
    assert f.summary == (
        "update of web stuck: in progress for 400s (it could take 305s), no new task up for "
        f"400s; waiting for task new pending: {NO_SUCH_NODE}"
    )
    assert f.advice == (
        f"task new pending: {NO_SUCH_NODE} (the scheduler cannot place it: fix the constraint "
        "or free the resources) — fix the cause, or roll back: `docker service rollback web`"
    )
    assert f.details["could_take_seconds"] == "305"
    assert not f.actionable  # report by default
    assert STUCK.plan(f, ctx([updating()], PENDING)) is None


def test_an_old_task_that_does_not_stop_blocks_too() -> None:
    tasks = [
        spec_task("old", "running", new=False, desired="shutdown"),
        spec_task("gone", "shutdown", new=False, desired="shutdown"),  # stopped: not blocking
    ]
    (f,) = detect(STUCK, ctx([updating()], tasks))
    assert f.task_ids == ("old",)
    assert "old task old on worker-1 still running, told to shutdown" in f.summary


def test_no_task_at_all_says_the_updater_hangs() -> None:
    (f,) = detect(STUCK, ctx([updating()], [spec_task("old", "running", new=False)]))
    assert f.task_ids == ()
    assert "the updater itself hangs" in f.advice


@pytest.mark.parametrize(
    ("svc", "tasks"),
    [
        pytest.param(updating(started=NOW - 100), PENDING, id="just-started"),
        pytest.param(
            # 10 replicas, one at a time, 10 s apart: 10 x 15 s + 5 m could be 450 s; it has
            # run 1000 s but a new task came up 100 s ago (< 15 s + 5 m): slow, progressing
            updating(
                started=NOW - 1000, replicas=10, config=UpdateConfig(parallelism=1, delay=10.0)
            ),
            [
                *[spec_task(f"n{i}", "running", since=NOW - 100 * i, slot=i) for i in (1, 2, 3)],
                spec_task("n4", "preparing", slot=4),
            ],
            id="slow-but-progressing",
        ),
        pytest.param(
            # 20 replicas with a 30 s delay could take 20 x 35 s + 5 m
            updating(started=NOW - 900, replicas=20, config=UpdateConfig(delay=30.0)),
            PENDING,
            id="within-what-its-config-allows",
        ),
        pytest.param(updating("completed"), PENDING, id="completed"),
        pytest.param(updating("paused"), PENDING, id="paused-is-paused-update-s"),
        pytest.param(updating("rollback_completed"), PENDING, id="rollback-completed"),
        pytest.param(updating(started=None), PENDING, id="start-unknown"),
        pytest.param(
            replace(b.service("svc1", name="web"), update_status=None), PENDING, id="no-update"
        ),
    ],
)
def test_no_stuck_update(svc: Service, tasks: list[Task]) -> None:
    assert detect(STUCK, ctx([svc], tasks)) == []


def test_an_update_whose_new_tasks_stopped_coming_up_is_stuck() -> None:
    svc = updating(started=NOW - 2000, replicas=10, config=UpdateConfig(delay=10.0))
    tasks = [
        spec_task("n1", "running", since=NOW - 1500, slot=1),  # came up, then nothing since
        spec_task("n2", "preparing", slot=2, message="preparing"),
    ]
    (f,) = detect(STUCK, ctx([svc], tasks))
    assert f.task_ids == ("n2",)
    assert "no new task up for 1500s" in f.summary
    assert "task n2 on worker-1 preparing: preparing" in f.summary


@pytest.mark.parametrize(
    ("svc", "tasks", "total", "between"),
    [
        pytest.param(
            updating(replicas=5, config=UpdateConfig(parallelism=2)),
            [],
            3 * 5 + 300,
            305,
            id="3-batches",
        ),
        pytest.param(
            updating(replicas=5, config=UpdateConfig(parallelism=0, delay=1.0)),
            [],
            6 + 300,
            306,
            id="all-at-once",
        ),
        pytest.param(updating(replicas=0), [], 5 + 300, 305, id="scaled-to-zero"),
        pytest.param(
            updating(mode="global", replicas=None),
            [
                spec_task("a", "running", node_id="n1", slot=None),
                spec_task("b", "pending", node_id="n2", slot=None),
                spec_task("c", "shutdown", node_id="n3", slot=None, desired="shutdown"),
            ],
            2 * 5 + 300,
            305,
            id="global-counts-its-nodes",
        ),
    ],
)
def test_how_long_an_update_could_take(
    svc: Service, tasks: list[Task], total: float, between: float
) -> None:
    from runbooks.stuck_update import budget

    assert budget(svc, tasks, 300.0) == (total, between)


def test_the_key_is_stable_and_a_new_update_is_a_new_incident() -> None:
    (a,) = detect(STUCK, ctx([updating()], PENDING))
    (b_,) = detect(STUCK, ctx([updating()], PENDING, now=NOW + 60))
    assert a.key == b_.key
    again = updating(started=NOW - 999)
    tasks = [replace(t, created_at=NOW - 998 if t.id == "new" else t.created_at) for t in PENDING]
    (c,) = detect(STUCK, ctx([again], tasks))
    assert c.key != a.key


def test_action_rollback_rolls_an_updating_service_back() -> None:
    rb = STUCK.with_settings(action="rollback", margin="5s")
    svc = updating(started=NOW - 30)  # 5 s + 5 s could do: 30 s is stuck with margin 5s
    c = ctx([svc], PENDING)
    (f,) = detect(rb, c)
    assert f.actionable
    assert "rolling back to the previous spec" in f.advice
    assert rb.plan(f, c) == Action(
        ActionKind.ROLLBACK,
        "svc1",
        "web",
        1,
        "update stuck: no task of the new spec comes up; roll back to the previous spec",
    )


def test_rollback_needs_a_previous_spec_and_a_stuck_rollback_is_only_reported() -> None:
    rb = STUCK.with_settings(action="rollback")
    c = ctx([updating(previous=False)], PENDING)
    (f,) = detect(rb, c)
    assert not f.actionable and rb.plan(f, c) is None

    c = ctx([updating("rollback_started")], PENDING)
    (f,) = detect(rb, c)
    assert f.key == f"stuck-update:svc1:rollback_started:{STARTED:.0f}"
    assert f.summary.startswith("rollback of web stuck")
    assert "the rollback itself is stuck" in f.advice
    assert not f.actionable and rb.plan(f, c) is None
    # a finding that says actionable is still not acted on once the action is report
    acting = replace(f, actionable=True)
    assert STUCK.plan(acting, c) is None


def test_stuck_update_settings() -> None:
    assert STUCK.values.margin == 300.0 and STUCK.values.action == "report"
    assert STUCK.with_settings(margin="5s").values.margin == 5.0
    for key, bad in (("margin", "0s"), ("margin", "soon"), ("action", "retry")):
        with pytest.raises(SettingsError, match=f"'stuck-update', setting '{key}'"):
            STUCK.with_settings(**{key: bad})
