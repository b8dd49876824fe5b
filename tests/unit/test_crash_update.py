"""The crash-loop and stuck-update runbooks: the faults, the healthy churn that looks like them,
stable keys and their settings."""

from __future__ import annotations

from dataclasses import replace

import pytest

from swarm_medic.core.errors import SettingsError
from swarm_medic.core.model import (
    Action,
    ActionKind,
    Finding,
    Service,
    Severity,
    Target,
    Task,
    UpdateConfig,
    UpdateStatus,
)
from swarm_medic.core.runbook import Context, Runbook, TaskClock, context
from swarm_medic.core.settings import Settings
from swarm_medic.pipeline import registry
from tests import builders as b

NOW = b.NOW
MIB = 1 << 20
REGISTRY = registry.load([registry.builtin_dir()])
CRASH: Runbook = REGISTRY.runbooks["crash-loop"]
STUCK: Runbook = REGISTRY.runbooks["stuck-update"]
EXIT_3 = "task: non-zero exit (3)"
EXIT_137 = "task: non-zero exit (137)"
UNHEALTHY = "task: non-zero exit (137): dockerexec: unhealthy container"
NO_SUCH_NODE = "no suitable node (scheduling constraints not satisfied on 1 node)"


def ctx(services: list[Service], tasks: list[Task], now: float = NOW) -> Context:
    snap = b.snapshot(
        nodes=[b.node("n1", hostname="worker-1"), b.node("n2", hostname="worker-2")],
        services=services,
        tasks=tasks,
        taken_at=now,
    )
    return context(snap, now, Settings(), TaskClock())


def detect(rb: Runbook, c: Context) -> list[Finding]:
    return list(rb.detect(c))


def test_both_runbooks_load_with_their_settings() -> None:
    assert not REGISTRY.errors
    assert [s.name for s in CRASH.settings] == ["threshold", "window"]
    assert [s.name for s in STUCK.settings] == ["margin", "action"]
    assert CRASH.plan_fn is None  # report only, always


# --- crash-loop ------------------------------------------------------------------------------


def web(**fields: object) -> Service:
    return replace(b.service("svc1", name="web"), **fields)  # type: ignore[arg-type]


def ended(
    tid: str,
    age: float,
    *,
    state: str = "failed",
    code: int | None = 3,
    err: str | None = None,
    slot: int | None = 1,
    node_id: str = "n1",
    sid: str = "svc1",
) -> Task:
    """A task that ended `age` seconds ago, as swarm leaves it (desired shutdown)."""
    if err is None:
        err = f"task: non-zero exit ({code})" if state == "failed" and code else ""
    t = b.task(
        tid,
        sid=sid,
        node_id=node_id,
        state=state,
        desired="shutdown",
        slot=slot,
        err=err,
        message="started" if state == "failed" else state,
        timestamp=NOW - age,
    )
    return replace(t, exit_code=code, created_at=NOW - age - 2)


def up(tid: str, since: float, *, slot: int | None = 1, node_id: str = "n1") -> Task:
    """A task running for `since` seconds."""
    t = b.task(tid, node_id=node_id, slot=slot, timestamp=NOW - since)
    return replace(t, created_at=NOW - since - 1)


LOOP = [ended("t1", 300), ended("t2", 200), ended("t3", 100), up("t4", 5)]


def test_a_crash_loop_is_one_critical_report_with_the_exits_and_the_last_task() -> None:
    (f,) = detect(CRASH, ctx([web()], LOOP))
    assert f.runbook == "crash-loop"
    assert f.key == "crash-loop:svc1"
    assert f.severity is Severity.CRITICAL
    assert f.target == Target.for_service("svc1")
    assert f.summary == "web: 3 tasks ended by themselves within 10m; the last: exit 3"
    assert f.cause == "exit"
    assert f.task_ids == ("t1", "t2", "t3")
    assert f.node_ids == ("n1",)
    assert f.logs_of == "t3"  # the last one that crashed: its log says why
    assert not f.actionable
    assert f.details == {
        "crashes": "3",
        "exit_codes": "3, 3, 3",
        "last_tasks": "; ".join(f"{t} on worker-1: {EXIT_3}" for t in ("t3", "t2", "t1")),
        "nodes": "worker-1",
        "oom": "unlikely: no task shown ended with exit 137 (SIGKILL)",
    }
    assert "exits with 3" in f.advice and "docker service logs web" in f.advice
    assert "the medic does not act" in f.advice
    assert CRASH.plan(f, ctx([web()], LOOP)) is None


@pytest.mark.parametrize(
    ("svc", "err", "code", "cause", "says"),
    [
        pytest.param(
            web(memory_limit=8 * MIB),
            EXIT_137,
            137,
            "oom",
            "exit 137 (SIGKILL) with a memory limit of 8 MiB: most likely OOM-killed",
            id="oom-with-a-limit",
        ),
        pytest.param(
            web(memory_limit=1536 * MIB),
            EXIT_137,
            137,
            "oom",
            "memory limit of 1536 MiB: most likely OOM-killed",
            id="oom-big-limit",
        ),
        pytest.param(
            web(), EXIT_137, 137, "killed", "exit 137: killed (SIGKILL)", id="killed-no-limit"
        ),
        pytest.param(
            web(memory_limit=8 * MIB),
            UNHEALTHY,
            137,
            "unhealthy",
            "exit 137: its healthcheck failed and swarm replaced the container",
            id="unhealthy-is-not-oom",
        ),
        pytest.param(
            web(),
            'starting container failed: exec: "nope": executable file not found',
            None,
            "cannot-start",
            "the container could not start: starting container failed",
            id="cannot-start",
        ),
        pytest.param(
            web(),
            "task: non-zero exit (139)",
            None,
            "exit",
            "exit 139 (SIGSEGV)",
            id="code-from-err",
        ),
    ],
)
def test_how_the_last_task_ended_is_said(
    svc: Service, err: str, code: int | None, cause: str, says: str
) -> None:
    tasks = [ended(f"t{i}", 100 * i, code=code, err=err) for i in (1, 2, 3)]
    (f,) = detect(CRASH, ctx([svc], tasks))
    assert f.cause == cause
    assert says in f.summary
    if cause == "oom":
        assert says in f.details["oom"] and "--limit-memory" in f.advice
    if cause == "unhealthy":
        assert "healthcheck" in f.advice


def test_an_earlier_sigkill_is_said_in_the_oom_judgement() -> None:
    tasks = [ended("t1", 300, code=137), ended("t2", 200), ended("t3", 100)]
    (f,) = detect(CRASH, ctx([web(memory_limit=8 * MIB)], tasks))
    assert f.details["exit_codes"] == "3, 3, 137"
    assert f.details["oom"] == "an earlier task ended with exit 137 (SIGKILL)"


def test_complete_counts_only_with_a_non_zero_exit() -> None:
    crashed = [ended(f"t{i}", 100 * i, state="complete", code=1) for i in (1, 2, 3)]
    assert len(detect(CRASH, ctx([web()], crashed))) == 1
    finished = [ended(f"t{i}", 100 * i, state="complete", code=0) for i in (1, 2, 3)]
    assert detect(CRASH, ctx([web()], finished)) == []


@pytest.mark.parametrize(
    "tasks",
    [
        pytest.param(
            # a rolling update of 3 replicas, twice: the old tasks were stopped (and SIGKILLed
            # after their grace period) by the orchestrator
            [
                ended(f"o{i}{s}", 60 * i, state="shutdown", code=137, slot=s)
                for i in (1, 2)
                for s in (1, 2, 3)
            ]
            + [up(f"n{s}", 30, slot=s) for s in (1, 2, 3)],
            id="rolling-updates",
        ),
        pytest.param(
            [ended(f"s{i}", 10, state="shutdown", code=137, slot=i) for i in range(2, 8)]
            + [ended(f"r{i}", 10, state="remove", code=None, slot=i) for i in range(8, 10)],
            id="scale-down-and-service-rm",
        ),
        pytest.param(
            [ended(f"d{i}", 20 * i, state="orphaned", code=None) for i in (1, 2, 3, 4)]
            + [replace(up("x", 600), desired_state="shutdown")],
            id="node-down",
        ),
        pytest.param(
            [
                ended(f"j{i}", 20 * i, state="rejected", code=None, err="No such image: x")
                for i in (1, 2, 3, 4)
            ],
            id="rejections-are-repeated-rejection-s",
        ),
        pytest.param(
            # one event ends every replica once (the node's engine restarted): no replica
            # crashed twice, so no loop
            [ended(f"e{s}", 50, code=137, slot=s) for s in (1, 2, 3)]
            + [up(f"n{s}", 40, slot=s) for s in (1, 2, 3)],
            id="one-burst-across-replicas",
        ),
        pytest.param(
            [ended(f"t{i}", 601 + i) for i in (1, 2, 3, 4)] + [up("t5", 10)],
            id="crashes-older-than-the-window",
        ),
        pytest.param([ended("t1", 200), ended("t2", 100), up("t3", 50)], id="below-the-threshold"),
    ],
)
def test_healthy_churn_is_no_crash_loop(tasks: list[Task]) -> None:
    assert detect(CRASH, ctx([web(replicas=3)], tasks)) == []


def test_the_key_is_stable_while_the_loop_goes_on() -> None:
    (first,) = detect(CRASH, ctx([web()], LOOP))
    later = [*LOOP[:3], ended("t4", 1), up("t5", 0.5)]
    (second,) = detect(CRASH, ctx([web()], later))
    assert second.key == first.key
    assert second.logs_of == "t4" and "4 tasks" in second.summary


def test_a_replica_running_for_half_the_window_ends_the_incident() -> None:
    crashes = [ended("t1", 500), ended("t2", 450), ended("t3", 400)]
    still = detect(CRASH, ctx([web()], [*crashes, up("t4", 299)]))
    assert len(still) == 1  # running, but not for 5 minutes yet
    assert detect(CRASH, ctx([web()], [*crashes, up("t4", 301)])) == []


def test_a_steady_replica_does_not_hide_another_that_crashes() -> None:
    tasks = [
        up("a", 7200, slot=1),
        ended("b1", 300, slot=2),
        ended("b2", 200, slot=2),
        ended("b3", 100, slot=2),
        up("b4", 10, slot=2),
    ]
    (f,) = detect(CRASH, ctx([web(replicas=2)], tasks))
    assert f.task_ids == ("b1", "b2", "b3")


def test_a_global_service_counts_per_node() -> None:
    svc = web(mode="global", replicas=None)
    tasks = [ended(f"g{i}", 100 * i, slot=None, node_id="n2") for i in (1, 2, 3)]
    tasks += [up("steady", 7200, slot=None, node_id="n1")]
    (f,) = detect(CRASH, ctx([svc], tasks))
    assert f.node_ids == ("n2",) and f.details["nodes"] == "worker-2"


def test_crash_loop_settings() -> None:
    tasks = [ended("t1", 100), ended("t2", 50)]
    assert detect(CRASH, ctx([web()], tasks)) == []
    assert len(detect(CRASH.with_settings(threshold="2"), ctx([web()], tasks))) == 1
    # threshold 1: a single crash is an incident (no replica has to crash twice then)
    one = CRASH.with_settings(threshold="1")
    assert len(detect(one, ctx([web()], [ended("t1", 100)]))) == 1
    short = CRASH.with_settings(window="90s")
    assert detect(short, ctx([web()], [ended("t1", 100), *tasks])) == []
    assert CRASH.with_settings(window="1h").values.window == 3600.0
    for key, bad in (("threshold", "0"), ("threshold", "many"), ("window", "10s"), ("window", "0")):
        with pytest.raises(SettingsError, match=f"'crash-loop', setting '{key}'"):
            CRASH.with_settings(**{key: bad})


# --- stuck-update ----------------------------------------------------------------------------

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
