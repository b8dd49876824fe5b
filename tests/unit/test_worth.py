"""swarm_medic.core.worth: what the healing was worth, from the incidents' records (pure, time
given)."""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType
from typing import Any

import pytest

from swarm_medic.core.records import IncidentRecord, Records
from swarm_medic.core.worth import HARM_WINDOW, compute, percentile, undone_by
from tests.builders import NOW

DAY = 86400.0
WEEK = 7 * DAY


def rec(rid: str, found: float, **fields: Any) -> IncidentRecord:
    base = IncidentRecord(rid, "stuck-task", found, service_id="svc1", service="web")
    return replace(base, **fields)


def healed(rid: str, found: float, after: float, **fields: Any) -> IncidentRecord:
    """Found at `found`, acted on 1 s later, closed, verified healed `after` s after found."""
    return rec(
        rid,
        found,
        acted=found + 1,
        last_acted=found + 1,
        actions=1,
        closed=found + 2,
        healed=found + after,
        **fields,
    )


def records(*rs: IncidentRecord, pruned: float | None = None) -> Records:
    return Records(MappingProxyType({r.id: r for r in rs}), pruned_before=pruned)


# --- percentiles on small samples ------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "p50", "p95"),
    [
        ([], None, None),
        ([42.0], 42.0, 42.0),
        ([10.0, 20.0], 10.0, 20.0),
        ([30.0, 10.0, 20.0], 20.0, 30.0),
        ([1.0, 2.0, 3.0, 4.0], 2.0, 4.0),
        ([float(v) for v in range(1, 21)], 10.0, 19.0),
        ([float(v) for v in range(1, 101)], 50.0, 95.0),
    ],
)
def test_percentiles_are_nearest_rank_never_interpolated(
    values: list[float], p50: float | None, p95: float | None
) -> None:
    assert (percentile(values, 0.5), percentile(values, 0.95)) == (p50, p95)
    for got in (percentile(values, 0.5), percentile(values, 0.95)):
        assert got is None or got in values  # a time that happened


# --- the funnel ------------------------------------------------------------------------------


def test_found_fixed_healed_per_runbook_and_in_all() -> None:
    now = NOW + DAY
    w = compute(
        records(
            healed("a", NOW, 40),
            healed("b", NOW + 3600, 100, service_id="svc2"),
            rec("c", NOW + 7200, acted=NOW + 7201, actions=1, not_held=1, closed=NOW + 7300),
            rec("d", NOW + 9000, runbook="node-down", service_id="", closed=NOW + 9100),
            rec("e", now - 60, runbook="node-down", service_id=""),  # still open
        ),
        now,
        WEEK,
    )
    t = w.total
    assert (t.found, t.open, t.fixed, t.healed, t.not_held) == (5, 1, 3, 2, 1)
    assert t.heal_times == (40.0, 100.0)
    assert (t.heal_p50, t.heal_p95) == (40.0, 100.0)
    assert [f.runbook for f in w.runbooks] == ["node-down", "stuck-task"]
    nd, st = w.runbooks
    assert (nd.found, nd.open, nd.fixed, nd.healed) == (2, 1, 0, 0)
    assert nd.heal_p50 is None and nd.harm_rate is None
    assert (st.found, st.fixed, st.healed, st.did_not_hold) == (3, 3, 2, 1)
    assert w.complete and w.harms == ()


def test_only_incidents_found_in_the_window_count() -> None:
    now = NOW + WEEK
    w = compute(
        records(
            healed("before", now - WEEK - 1, 30),
            healed("first", now - WEEK, 30),
            healed("last", now, 0),
            rec("after", now + 1),  # a clock ahead: not in [now - since, now]
        ),
        now,
        WEEK,
    )
    assert w.total.found == 2
    assert w.start == now - WEEK


def test_closed_with_no_human_action_over_all_found() -> None:
    now = NOW + DAY
    w = compute(
        records(
            healed("medic", NOW, 30),
            rec("itself", NOW + 10, closed=NOW + 70),  # swarm healed it, nobody touched it
            rec("person", NOW + 20, touched=NOW + 50, closed=NOW + 60),
            rec(  # the medic's fix did not hold; a person fixed it
                "person-after-medic",
                NOW + 30,
                acted=NOW + 31,
                actions=1,
                not_held=1,
                touched=NOW + 400,
                closed=NOW + 420,
            ),
            rec("open", NOW + 40),
        ),
        now,
        WEEK,
    )
    t = w.total
    assert (t.found, t.no_human, t.human, t.open) == (5, 2, 2, 1)
    assert t.no_human_share == pytest.approx(2 / 5)


def test_a_new_incident_of_the_service_soon_after_a_heal_undoes_it() -> None:
    now = NOW + DAY
    h = healed("h", NOW, 60)  # acted NOW+1, healed NOW+60
    w = compute(
        records(
            h,
            rec("again", NOW + 60 + HARM_WINDOW, runbook="crash-loop"),  # the last second
            healed("fine", NOW + 5000, 30, service_id="svc2"),
            rec("other-service", NOW + 5040, service_id="svc3"),
            healed("fine-later", NOW + 9000, 30, service_id="svc4"),
            rec("too-late", NOW + 9030 + HARM_WINDOW + 1, service_id="svc4"),
        ),
        now,
        WEEK,
    )
    (harm,) = w.harms
    assert (harm.healed.id, harm.by.id) == ("h", "again")
    t = w.total
    assert (t.healed, t.undone, t.did_not_hold) == (3, 1, 1)
    assert t.harm_rate == pytest.approx(1 / 3)
    st = next(f for f in w.runbooks if f.runbook == "stuck-task")
    assert st.undone == 1  # charged to the runbook whose heal was undone
    assert next(f for f in w.runbooks if f.runbook == "crash-loop").undone == 0


def test_an_incident_the_fix_caused_while_it_was_verified_undoes_it_one_before_does_not() -> None:
    h = healed("h", NOW, 90)  # acted NOW+1
    during = rec("during", NOW + 30, runbook="crash-loop")
    before = rec("before", NOW, runbook="crash-loop")
    assert undone_by(h, [during]) is during
    assert undone_by(h, [before]) is None
    assert undone_by(h, [h]) is None  # not itself
    assert undone_by(rec("not-healed", NOW), [during]) is None


def test_a_heal_younger_than_the_harm_window_is_watched() -> None:
    now = NOW + 100
    w = compute(records(healed("h", NOW, 60)), now, WEEK)
    assert (w.total.healed, w.total.undone, w.total.watching) == (1, 0, 1)
    w = compute(records(healed("h", NOW, 60)), NOW + 60 + HARM_WINDOW, WEEK)
    assert w.total.watching == 0


def test_records_the_cap_dropped_inside_the_window_make_it_incomplete() -> None:
    now = NOW + WEEK
    w = compute(records(healed("h", now - 60, 30), pruned=now - DAY), now, WEEK)
    assert not w.complete
    assert w.complete_from == now - DAY
    w = compute(records(healed("h", now - 60, 30), pruned=now - 2 * WEEK), now, WEEK)
    assert w.complete and w.complete_from == w.start


def test_unreadable_records_are_said_and_not_counted() -> None:
    rs = Records(
        MappingProxyType({"h": healed("h", NOW, 30)}),
        MappingProxyType({"bad": "the label is not JSON"}),
        pruned_problem="the pruned mark is not a number",
    )
    w = compute(rs, NOW + DAY, WEEK)
    assert w.total.found == 1
    assert w.problems == (
        "incident record bad: the label is not JSON",
        "the mark of pruned records: the pruned mark is not a number",
    )
    assert not w.complete


def test_no_records_is_all_zero_and_no_figure_divides_by_zero() -> None:
    w = compute(Records(), NOW, WEEK)
    t = w.total
    assert (t.found, t.healed) == (0, 0)
    assert (t.no_human_share, t.harm_rate, t.heal_p50, t.heal_p95) == (None,) * 4
    assert w.runbooks == ()
    assert t.fields()["no_human_share"] is None
