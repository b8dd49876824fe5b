"""swarm_medic.core.incidents: one incident per fault, its age, and when a decision on it is
news."""

from __future__ import annotations

from dataclasses import replace

import pytest

from swarm_medic.core.incidents import (
    MANUAL_ROLLBACK,
    REMIND_EVERY,
    STANCES,
    Incidents,
    Known,
    changed_by_someone,
    stance,
)
from swarm_medic.core.model import Finding, Reason, Service, UpdateStatus
from tests.builders import service

T0 = 1_000.0
FAULT = Finding(runbook="stuck-task", key="stuck-task:svc:hang", summary="stuck", cause="hang")


def test_a_fault_opens_once_and_closes_when_no_longer_seen() -> None:
    ids = iter(["a", "b"])
    incidents = Incidents(lambda: next(ids))
    assert [i.id for i in incidents.update([FAULT], T0).opened] == ["a"]
    assert not incidents.update([FAULT], T0 + 1).opened
    assert [i.id for i in incidents.update([], T0 + 2).closed] == ["a"]
    assert [i.id for i in incidents.update([FAULT], T0 + 3).opened] == ["b"]


def test_an_unchanged_skip_is_said_once_then_reminded() -> None:
    (inc,) = Incidents().update([FAULT], T0).opened
    assert inc.decided("skip", "cooldown", T0) == "new"
    assert inc.decided("skip", "cooldown", T0 + 10) is None
    assert inc.decided("skip", "cooldown", T0 + REMIND_EVERY) == "reminder"
    assert inc.decided("skip", "cooldown", T0 + REMIND_EVERY + 10) is None
    assert inc.decided("skip", "budget", T0 + REMIND_EVERY + 20) == "new"


def test_every_act_is_news() -> None:
    (inc,) = Incidents().update([FAULT], T0).opened
    assert inc.decided("act", "ok", T0, every_time=True) == "new"
    assert inc.decided("act", "ok", T0 + 1, every_time=True) == "new"


def finding(runbook: str, key: str) -> Finding:
    return Finding(runbook=runbook, key=key, summary="s", cause="c")


def test_oldest_open_age_is_the_oldest_per_runbook_and_forgets_closed_ones() -> None:
    inc = Incidents()
    inc.update([finding("stuck-task", "a")], now=100.0)
    inc.update([finding("stuck-task", "a"), finding("stuck-task", "b")], now=130.0)
    inc.update(
        [finding("stuck-task", "a"), finding("stuck-task", "b"), finding("paused-update", "c")],
        now=160.0,
    )
    assert inc.oldest_open_age(200.0) == {"stuck-task": 100.0, "paused-update": 40.0}
    inc.update([finding("stuck-task", "b")], now=210.0)  # a and c closed
    assert inc.oldest_open_age(220.0) == {"stuck-task": 90.0}
    inc.update([], now=230.0)
    assert inc.oldest_open_age(240.0) == {}


# --- the medic's stance on each open incident (label `state` of the per-service series) ------

FIXABLE = Finding(
    runbook="crash-loop",
    key="crash-loop:api",
    summary="s",
    cause="c",
    service_name="shop_api",
    actionable=True,
)


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        (None, "acting"),
        (Reason.OK, "acting"),
        (Reason.VERIFYING, "acting"),
        (Reason.COOLDOWN, "acting"),
        (Reason.CIRCUIT_OPEN, "gave_up"),
        (Reason.BUDGET_SPENT, "gave_up"),
        (Reason.DRY_RUN, "held"),
        (Reason.NOT_OPTED_IN, "held"),
        (Reason.PAUSED, "held"),
        (Reason.ALERTS_HOLD, "held"),
        (Reason.NOT_LEADER, "held"),
        (Reason.NO_ACTION, "report_only"),
        (Reason.REPORT_LABEL, "report_only"),
    ],
)
def test_the_stance_follows_the_last_decision(reason: Reason | None, expected: str) -> None:
    (inc,) = Incidents().update([FIXABLE], T0).opened
    if reason is not None:
        inc.decided(reason.verdict.value, reason.value, T0)
    assert stance(inc) == expected
    assert expected in STANCES


def test_a_runbook_that_only_reports_is_report_only_whatever_was_decided() -> None:
    (inc,) = Incidents().update([FAULT], T0).opened  # actionable=False
    inc.decided("skip", "cooldown", T0)
    assert stance(inc) == "report_only"


def test_open_since_is_the_oldest_incident_per_runbook_service_and_stance() -> None:
    incidents = Incidents()
    incidents.update([FIXABLE], T0)
    second = Finding(
        runbook="crash-loop", key="crash-loop:api:2", summary="s", cause="c",
        service_name="shop_api", actionable=True,
    )  # fmt: skip
    incidents.update([FIXABLE, second, FAULT], T0 + 60)
    assert incidents.open_since() == {
        ("crash-loop", "shop_api", "acting"): T0,
        ("stuck-task", "", "report_only"): T0 + 60,
    }
    incidents.update([], T0 + 120)
    assert incidents.open_since() == {}


# --- an earlier leader's incidents, taken over ---------------------------------------------------


def test_an_earlier_leaders_open_incident_keeps_its_id_and_age() -> None:
    other = Finding(runbook="crash-loop", key="crash-loop:svc", summary="crashes", cause="exit")
    incidents = Incidents(lambda: "mine")
    (seen,) = incidents.update([other], T0 + 50).opened  # seen here before this one led
    incidents.adopt(
        {
            FAULT.key: Known("theirs", T0, acted=True),
            other.key: Known("their-other", T0 + 10),
        }
    )
    assert (seen.id, seen.opened_at) == ("their-other", T0 + 10)
    (inc,) = incidents.update([FAULT, other], T0 + 60).opened
    assert (inc.id, inc.opened_at, inc.acted, inc.recorded) == ("theirs", T0, True, True)
    # taken over at the first update only: the same fault later is a new incident
    incidents.update([other], T0 + 70)
    (again,) = incidents.update([FAULT, other], T0 + 80).opened
    assert again.id == "mine"


# --- someone else's hand on a service ------------------------------------------------------------


def moved(before: Service, **changes: object) -> Service:
    return replace(before, version=before.version + 1, **changes)  # type: ignore[arg-type]


SVC = service("svc1", version=10, image="app:1", update=UpdateStatus("completed", started_at=T0))


@pytest.mark.parametrize(
    ("after", "says"),
    [
        (None, "the service was removed"),
        (moved(SVC, image="app:2"), "its spec changed: image"),
        (moved(SVC, replicas=3, labels={"a": "b"}), "its spec changed: labels, replicas"),
        (moved(SVC, force_update=1), "its spec changed: force update"),
        (moved(SVC, update_status=None), "an update was requested"),
        (
            moved(SVC, update_status=UpdateStatus("updating", started_at=T0 + 100)),
            "a new update was started",  # an --env-add: the spec as the model reads it is equal
        ),
        (
            moved(
                SVC,
                image="app:1-previous",
                update_status=UpdateStatus(
                    "rollback_started", MANUAL_ROLLBACK, started_at=T0 + 100
                ),
            ),
            "its spec changed: image",  # `docker service rollback`
        ),
    ],
)
def test_a_change_through_the_api_is_seen(after: Service | None, says: str) -> None:
    assert changed_by_someone(SVC, after).startswith(says)


@pytest.mark.parametrize(
    "after",
    [
        SVC,
        replace(SVC, image="app:2"),  # same version: the same object, read again
        # swarm's updater writing an update's progress moves the version only
        moved(SVC),
        moved(SVC, update_status=UpdateStatus("paused", "task failed", started_at=T0)),
        # swarm's own rollback of a failed update swaps the spec back
        moved(
            SVC,
            image="app:0",
            update_status=UpdateStatus(
                "rollback_started",
                "update rolled back due to failure or early termination of task t9",
                started_at=T0 + 100,
            ),
        ),
    ],
    ids=["same", "same-version", "updater", "paused", "swarms-rollback"],
)
def test_swarms_own_writes_are_no_ones_hand(after: Service) -> None:
    assert changed_by_someone(SVC, after) == ""
