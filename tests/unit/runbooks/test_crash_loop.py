"""crash-loop: tasks that end by themselves again and again, told apart from the healthy churn
that looks like them (updates, scale-downs, a node down); the key stays while the loop goes on.
Report only."""

from __future__ import annotations

from dataclasses import replace

import pytest

from swarm_medic.core.errors import SettingsError
from swarm_medic.core.model import Service, Severity, Target, Task
from swarm_medic.core.runbook import Runbook
from tests import builders as b
from tests.builders import NOW
from tests.unit.runbooks.kit import REGISTRY, detect
from tests.unit.runbooks.two_workers import ctx

MIB = 1 << 20
CRASH: Runbook = REGISTRY.runbooks["crash-loop"]
EXIT_3 = "task: non-zero exit (3)"
EXIT_137 = "task: non-zero exit (137)"
UNHEALTHY = "task: non-zero exit (137): dockerexec: unhealthy container"


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
