"""swarm_medic.core.incidents: one incident per fault, its age, and when a decision on it is
news."""

from __future__ import annotations

from swarm_medic.core.incidents import REMIND_EVERY, Incidents
from swarm_medic.core.model import Finding

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
