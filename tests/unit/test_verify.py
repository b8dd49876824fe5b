"""pipeline.verify: a fix is healed once the service converged and stayed so for the hold."""

from __future__ import annotations

from dataclasses import replace

import pytest

from swarm_medic.core.model import (
    Action,
    ActionKind,
    Result,
    Snapshot,
    Task,
)
from swarm_medic.pipeline.verify import MUST_COMPLETE, Outcome, Pending, converged, judge
from tests import builders as build
from tests.builders import NOW as T0

SID = "svc1"
HOLD = 10.0


def task(tid: str, state: str, desired: str = "running") -> Task:
    return build.task(tid, sid=SID, state=state, desired=desired)


def snap(
    tasks: list[Task],
    *,
    replicas: int | None = 2,
    mode: str = "replicated",
    update: str | None = None,
    removed: bool = False,
) -> Snapshot:
    svc = build.service(SID, name="web", version=5, mode=mode, replicas=replicas, update=update)
    return build.snapshot(services=() if removed else (svc,), tasks=tasks, taken_at=T0)


HEALTHY = snap([task("a", "running"), task("b", "running")])
ONE_DOWN = snap([task("a", "running"), task("b", "starting")])


def pending(kind: ActionKind = ActionKind.FORCE_UPDATE, timeout: float = 120.0) -> Pending:
    action = Action(kind, SID, "web", 5, "test")
    return Pending("inc-1", "stuck-task", action, started=T0, deadline=T0 + timeout)


# --- converged ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("snapshot", "after_rollback", "expected"),
    [
        pytest.param(HEALTHY, False, (True, "2 task(s) running"), id="all-running"),
        pytest.param(ONE_DOWN, False, (False, "1/2 tasks running, 1 not yet"), id="one-starting"),
        pytest.param(
            snap([task("a", "running"), task("b", "failed")]),
            False,
            (False, "1/2 tasks running, 0 not yet"),
            id="one-failed-desired-running",
        ),
        pytest.param(
            snap(
                [
                    task("a", "running"),
                    task("b", "running"),
                    task("old1", "running", desired="shutdown"),
                    task("old2", "shutdown", desired="shutdown"),
                ]
            ),
            False,
            (True, "2 task(s) running"),
            id="old-tasks-ignored",
        ),
        pytest.param(
            snap([task("a", "running"), task("b", "running"), task("c", "pending")]),
            False,
            (False, "1 task(s) still starting"),
            id="enough-running-but-one-waiting",
        ),
        pytest.param(snap([], replicas=0), False, (True, "0 task(s) running"), id="scaled-to-0"),
        pytest.param(
            snap([task("a", "running")], replicas=1, update="updating"),
            False,
            (False, "update state updating"),
            id="updating",
        ),
        pytest.param(
            snap([task("a", "running")], replicas=1, update="paused"),
            False,
            (False, "update state paused"),
            id="paused",
        ),
        pytest.param(
            snap([task("a", "running")], replicas=1, update="completed"),
            False,
            (True, "1 task(s) running"),
            id="update-completed",
        ),
        pytest.param(
            snap([task("a", "running")], replicas=1, update="rollback_completed"),
            True,
            (True, "1 task(s) running"),
            id="rollback-completed",
        ),
        pytest.param(
            snap([task("a", "running")], replicas=1, update="completed"),
            True,
            (False, "update not rollback completed (update state completed)"),
            id="rollback-needs-rollback-completed",
        ),
        pytest.param(
            snap([task("a", "running")], replicas=1),
            True,
            (False, "update not rollback completed (update state None)"),
            id="rollback-no-update-status",
        ),
        pytest.param(
            snap([task("a", "running")], replicas=1, update="rollback_started"),
            True,
            (False, "update not rollback completed (update state rollback_started)"),
            id="rollback-in-progress",
        ),
        pytest.param(HEALTHY, False, (True, "2 task(s) running"), id="replicated-count-matches"),
        pytest.param(
            snap([task("a", "running")], replicas=3),
            False,
            (False, "1/3 tasks running, 0 not yet"),
            id="replicated-too-few-tasks",
        ),
        pytest.param(
            snap([task(f"g{i}", "running") for i in range(3)], mode="global", replicas=None),
            False,
            (True, "3 task(s) running"),
            id="global-all-running",
        ),
        pytest.param(
            snap([task("g1", "running"), task("g2", "preparing")], mode="global", replicas=None),
            False,
            (False, "1/2 tasks running, 1 not yet"),
            id="global-one-preparing",
        ),
        pytest.param(
            snap([], mode="global", replicas=None),
            False,
            (False, "0/1 tasks running, 0 not yet"),
            id="global-no-tasks",
        ),
        pytest.param(snap([], removed=True), False, (False, "service was removed"), id="removed"),
    ],
)
def test_converged(snapshot: Snapshot, after_rollback: bool, expected: tuple[bool, str]) -> None:
    must = MUST_COMPLETE[ActionKind.ROLLBACK] if after_rollback else None
    assert converged(snapshot, SID, must) == expected


@pytest.mark.parametrize(
    ("state", "healed"),
    [("completed", True), (None, True), ("updating", False), ("paused", False)],
)
def test_a_resume_is_complete_when_the_update_completed_or_had_nothing_left(
    state: str | None, healed: bool
) -> None:
    # Posting the same spec resets UpdateStatus; with no task left to change no updater runs
    # and it stays unset (the 3-node lab, 20.10)
    ok, _ = converged(
        snap([task("a", "running"), task("b", "running")], update=state),
        SID,
        MUST_COMPLETE[ActionKind.RESUME_UPDATE],
    )
    assert ok is healed


# --- check: hold, flap, deadline -----------------------------------------------------------


def test_healed_only_after_hold_of_continuous_convergence() -> None:
    p = pending()
    first = judge(p, HEALTHY, T0 + 1, HOLD)
    assert isinstance(first, Pending)
    assert first.healthy_since == T0 + 1
    mid = judge(first, HEALTHY, T0 + 10.9, HOLD)
    assert isinstance(mid, Pending)
    assert mid.healthy_since == T0 + 1
    done = judge(mid, HEALTHY, T0 + 11, HOLD)
    assert isinstance(done, Outcome)
    assert done.result is Result.HEALED
    assert done.elapsed == 11.0
    assert done.detail == "2 task(s) running"


def test_a_flap_resets_healthy_since() -> None:
    p = judge(pending(), HEALTHY, T0 + 1, HOLD)
    assert isinstance(p, Pending)
    p = judge(p, ONE_DOWN, T0 + 6, HOLD)  # flap
    assert isinstance(p, Pending)
    assert p.healthy_since is None
    p = judge(p, HEALTHY, T0 + 8, HOLD)
    assert isinstance(p, Pending)
    assert p.healthy_since == T0 + 8
    still = judge(p, HEALTHY, T0 + 12, HOLD)  # 11 s after the first sighting, 4 s after the flap
    assert isinstance(still, Pending)
    healed = judge(still, HEALTHY, T0 + 18, HOLD)
    assert isinstance(healed, Outcome)
    assert healed.result is Result.HEALED


def test_zero_hold_heals_at_first_convergence() -> None:
    v = judge(pending(), HEALTHY, T0 + 3, 0.0)
    assert isinstance(v, Outcome)
    assert (v.result, v.elapsed) == (Result.HEALED, 3.0)


def test_not_healed_at_the_deadline() -> None:
    p = pending(timeout=60)
    before = judge(p, ONE_DOWN, T0 + 59, HOLD)
    assert isinstance(before, Pending)
    v = judge(before, ONE_DOWN, T0 + 60, HOLD)
    assert isinstance(v, Outcome)
    assert v.result is Result.NOT_HEALED
    assert v.elapsed == 60.0
    assert v.detail == "1/2 tasks running, 1 not yet"


def test_converged_but_hold_not_met_at_deadline_is_not_healed() -> None:
    p = judge(pending(timeout=60), HEALTHY, T0 + 55, HOLD)
    assert isinstance(p, Pending)
    v = judge(p, HEALTHY, T0 + 60, HOLD)
    assert isinstance(v, Outcome)
    assert v.result is Result.NOT_HEALED


def test_rollback_needs_rollback_completed() -> None:
    p = pending(ActionKind.ROLLBACK, timeout=60)
    plain = snap([task("a", "running"), task("b", "running")], update="completed")
    rolled = snap([task("a", "running"), task("b", "running")], update="rollback_completed")
    p1 = judge(p, plain, T0 + 1, 0.0)
    assert isinstance(p1, Pending)  # converged for a force update, not for a rollback
    v = judge(p1, rolled, T0 + 2, 0.0)
    assert isinstance(v, Outcome)
    assert v.result is Result.HEALED
    # the same "completed" snapshot heals a force update
    forced = judge(pending(ActionKind.FORCE_UPDATE), plain, T0 + 1, 0.0)
    assert isinstance(forced, Outcome)
    assert forced.result is Result.HEALED


def test_removed_service_is_not_healed() -> None:
    gone = snap([], removed=True)
    p = judge(pending(timeout=30), gone, T0 + 5, 0.0)
    assert isinstance(p, Pending)
    v = judge(p, gone, T0 + 30, 0.0)
    assert isinstance(v, Outcome)
    assert v.result is Result.NOT_HEALED
    assert v.detail == "service was removed"


# --- the fault must be gone too, not only the service converged ----------------------------


def test_converged_while_the_runbook_still_sees_the_fault_is_not_healed() -> None:
    p = replace(pending(timeout=60), runbook="unbalanced", key="unbalanced:svc1")
    still = {"unbalanced:svc1", "other:key"}
    held = judge(p, HEALTHY, T0 + 1, HOLD, seen=still)
    assert isinstance(held, Pending)
    assert held.healthy_since is None
    v = judge(held, HEALTHY, T0 + 60, HOLD, seen=still)
    assert isinstance(v, Outcome)
    assert v.result is Result.NOT_HEALED
    assert v.detail == "2 task(s) running, but unbalanced still sees the fault"


def test_healed_once_the_runbook_no_longer_sees_the_fault_for_the_hold() -> None:
    p = replace(pending(timeout=60), key="unbalanced:svc1")
    p1 = judge(p, HEALTHY, T0 + 1, HOLD, seen={"unbalanced:svc1"})
    assert isinstance(p1, Pending)
    p2 = judge(p1, HEALTHY, T0 + 5, HOLD, seen={"other:key"})
    assert isinstance(p2, Pending)
    assert p2.healthy_since == T0 + 5  # the hold counts from when the fault went away
    v = judge(p2, HEALTHY, T0 + 15, HOLD, seen=frozenset())
    assert isinstance(v, Outcome)
    assert v.result is Result.HEALED


def test_a_fix_without_a_key_is_judged_on_convergence_alone() -> None:
    # a fix taken over from the ledger carries no key
    v = judge(pending(), HEALTHY, T0 + 3, 0.0, seen={""})
    assert isinstance(v, Outcome)
    assert v.result is Result.HEALED
