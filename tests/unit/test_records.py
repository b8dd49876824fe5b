"""swarm_medic.core.records: the incidents' record in the ledger, and the Ledger keeping it."""

from __future__ import annotations

import json
from dataclasses import replace
from types import MappingProxyType
from typing import Any

import pytest

from swarm_medic.core.ledger import PAUSE_LABEL, PREFIX, History, Ledger, encode_pause
from swarm_medic.core.ledger import Pause as PauseSwitch
from swarm_medic.core.ledger import encode as encode_history
from swarm_medic.core.model import LedgerDoc
from swarm_medic.core.records import (
    HORIZON,
    MAX_RECORDS,
    PRUNED_LABEL,
    RECORD_PREFIX,
    Acted,
    Change,
    Closed,
    IncidentRecord,
    Judged,
    Opened,
    RecordError,
    Records,
    Touched,
    apply,
    decode,
    encode,
    labels,
)
from tests.builders import NOW


def doc(labels: dict[str, str]) -> LedgerDoc:
    return LedgerDoc(id="cfg1", version=3, labels=MappingProxyType(labels))


def rec(rid: str = "inc-1", found: float = NOW, **fields: Any) -> IncidentRecord:
    return replace(IncidentRecord(rid, "stuck-task", found), **fields)


FULL = IncidentRecord(
    "inc-9",
    "paused-update",
    NOW,
    key="paused-update:svc1",
    service_id="svc1",
    service="web",
    closed=NOW + 30,
    acted=NOW + 1.25,
    last_acted=NOW + 40,
    actions=2,
    not_held=1,
    healed=NOW + 60,
    touched=NOW + 20,
)


@pytest.mark.parametrize("record", [rec(), FULL], ids=["bare", "full"])
def test_encode_decode_roundtrip(record: IncidentRecord) -> None:
    assert decode(record.id, encode(record)) == record


def test_encode_is_compact_and_leaves_out_what_is_not_known() -> None:
    assert encode(rec(found=1.23456)) == '{"f":1.235,"rb":"stuck-task"}'
    assert len(encode(FULL)) < 250


def test_a_record_from_another_writer_with_fields_missing_or_unknown_reads() -> None:
    """Missing fields are "not known"; fields this release does not know are left alone."""
    r = decode("inc-1", json.dumps({"rb": "crash-loop", "f": NOW, "zz": [1, 2], "q": "later"}))
    assert r == rec(runbook="crash-loop")
    assert (r.closed, r.healed, r.touched, r.actions, r.fixed) == (None, None, None, 0, False)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("not json", "not JSON"),
        ("[]", "not a JSON object"),
        ('{"f": 1}', "runbook"),
        ('{"f": 1, "rb": ""}', "names no runbook"),
        ('{"rb": "x"}', "no time found"),
        ('{"rb": "x", "f": "yesterday"}', "not a number"),
        ('{"rb": "x", "f": 1e300}', "not a plausible time"),
        ('{"rb": "x", "f": NaN}', "not a plausible time"),
        ('{"rb": "x", "f": 1, "c": -5}', "time closed"),
        ('{"rb": "x", "f": 1, "x": -1}', "action count"),
        ('{"rb": "x", "f": 1, "nh": true}', "not healed"),
        ('{"rb": 7, "f": 1}', "runbook"),
        ('{"rb": "x", "f": 1, "k": "' + "k" * 2000 + '"}', "finding key"),
        ("[" * 100_000 + "]" * 100_000, "bytes long"),
        ('{"rb": "x", "f": 1, "s": ' + "[" * 2000 + "]" * 2000 + "}", "nested too deeply"),
        ('{"rb": "x", "f": 1, "s": [[]]}', "service id"),
    ],
)
def test_a_bad_record_is_refused_with_a_reason(text: str, says: str) -> None:
    with pytest.raises(RecordError, match=says):
        decode("inc-1", text)


# --- the steps, applied as a compare-and-swap may apply them: twice --------------------------


def test_each_step_counts_once_however_often_it_is_applied() -> None:
    steps: list[Change] = [
        Opened(rec()),
        Acted("inc-1", NOW + 1),
        Touched("inc-1", NOW + 5),
        Closed("inc-1", NOW + 10),
        Judged("inc-1", healed=True, at=NOW + 20, acted=NOW + 1),
    ]
    once: IncidentRecord | None = None
    twice: IncidentRecord | None = None
    for step in steps:
        once = apply(once, step)
        twice = apply(apply(twice, step), step)
    assert (
        once
        == twice
        == rec(
            acted=NOW + 1,
            last_acted=NOW + 1,
            actions=1,
            touched=NOW + 5,
            closed=NOW + 10,
            healed=NOW + 20,
        )
    )


def test_a_second_action_and_a_fix_that_did_not_hold_are_counted() -> None:
    r = apply(rec(), Acted("inc-1", NOW + 1))
    r = apply(r, Judged("inc-1", healed=False, at=NOW + 100))
    r = apply(r, Acted("inc-1", NOW + 400))
    r = apply(r, Judged("inc-1", healed=True, at=NOW + 430, acted=NOW + 400))
    assert r is not None
    assert (r.acted, r.last_acted, r.actions, r.not_held, r.healed) == (
        NOW + 1,
        NOW + 400,
        2,
        1,
        NOW + 430,
    )


def test_an_opened_record_does_not_replace_one_the_ledger_has() -> None:
    first = rec(acted=NOW + 1, actions=1)
    assert apply(first, Opened(rec(found=NOW + 50))) is first


@pytest.mark.parametrize(
    "step",
    [Closed("gone", NOW), Touched("gone", NOW), Acted("gone", NOW), Judged("gone", True, NOW)],
)
def test_a_step_of_a_record_that_is_not_there_is_dropped(step: Change) -> None:
    assert apply(None, step) is None


# --- labels: written back whole, bounded ---------------------------------------------------------


def test_the_ledger_reads_records_only_when_asked_and_writes_them_back_untouched() -> None:
    history = encode_history(History(actions=((NOW, "stuck-task"),)))
    raw = {
        PREFIX + "svc1": history,
        RECORD_PREFIX + "inc-1": encode(rec(service_id="svc1")),
        RECORD_PREFIX + "inc-bad": "{broken",
        "someone.else": "kept",
    }
    ledger = Ledger.from_doc(doc(raw))
    assert "_records_read" not in vars(ledger)  # a scan's read does not decode them
    records = ledger.records()
    assert list(records.by_id) == ["inc-1"]
    assert "not JSON" in records.problems["inc-bad"]
    assert ledger.labels(NOW) == raw  # the unreadable one kept as it was


def test_records_changed_are_written_with_any_other_write_of_the_ledger() -> None:
    ledger = Ledger.from_doc(doc({RECORD_PREFIX + "inc-1": encode(rec())}))
    ledger = ledger.with_records([Closed("inc-1", NOW + 9), Opened(rec("inc-2", NOW + 5))])
    ledger, _ = ledger.record_action("svc1", "stuck-task", NOW + 9, budget=3, reset=60)
    ledger = ledger.with_pause(PauseSwitch(reason="db", at=NOW + 9))
    out = Ledger.from_doc(doc(ledger.labels(NOW + 10)))
    assert out.records().by_id == {
        "inc-1": rec(closed=NOW + 9),
        "inc-2": rec("inc-2", NOW + 5),
    }
    assert out.history("svc1").actions == ((NOW + 9, "stuck-task"),)
    assert out.pause is not None and out.pause.reason == "db"


def test_a_ledger_of_the_previous_release_loads_and_has_no_records() -> None:
    """Written before records existed: service entries and the pause only."""
    raw = {
        PREFIX + "svc1": '{"a":[[1700000000.0,"stuck-task"]],"f":0,"r":"","u":0.0}',
        PAUSE_LABEL: encode_pause(PauseSwitch(reason="x", at=NOW)),
    }
    ledger = Ledger.from_doc(doc(raw))
    assert ledger.records() == Records()
    assert ledger.history("svc1").actions == ((NOW, "stuck-task"),)
    assert ledger.labels(NOW) == raw


def test_the_previous_releases_writer_keeps_the_records_it_does_not_know() -> None:
    """An older instance (a rolling upgrade) rewrites the ledger keeping every label but the
    pause and its own service entries: this is its filter (Ledger.labels before records)."""

    def previous_release_keeps(key: str) -> bool:
        return key != PAUSE_LABEL and not key.startswith(PREFIX)

    ledger = Ledger().with_records([Opened(rec())])
    written = ledger.labels(NOW)
    written[PRUNED_LABEL] = "1700000000.0"
    assert all(previous_release_keeps(k) for k in written)


def test_records_closed_before_the_horizon_are_dropped_open_ones_are_kept() -> None:
    now = NOW + HORIZON + 100
    before = {
        RECORD_PREFIX + "old": encode(rec("old", closed=NOW + 50)),
        RECORD_PREFIX + "recent": encode(rec("recent", closed=now - 10)),
        RECORD_PREFIX + "still-open": encode(rec("still-open")),
    }
    assert labels(before, {}, now) == before  # a write of no record does not decode them
    out = labels(before, {"new": rec("new", now)}, now)
    assert set(out) == {
        RECORD_PREFIX + "recent",
        RECORD_PREFIX + "still-open",
        RECORD_PREFIX + "new",
    }
    assert PRUNED_LABEL not in out  # the horizon is said by the report itself


def test_the_cap_drops_unreadable_then_the_oldest_closed_and_says_how_far_back() -> None:
    now = NOW + 10_000
    before = {
        RECORD_PREFIX + f"r{i:04}": encode(rec(f"r{i:04}", NOW + i, closed=NOW + i + 1))
        for i in range(MAX_RECORDS)
    }
    before[RECORD_PREFIX + "bad"] = "{"
    before[RECORD_PREFIX + "open-and-old"] = encode(rec("open-and-old", NOW - 500))
    new = {"new": rec("new", now), "newer": rec("newer", now + 1)}
    out = labels(before, new, now)
    assert len([k for k in out if k.startswith(RECORD_PREFIX)]) == MAX_RECORDS
    assert RECORD_PREFIX + "bad" not in out
    assert RECORD_PREFIX + "open-and-old" in out  # open: dropped only when nothing closed is left
    assert {RECORD_PREFIX + "new", RECORD_PREFIX + "newer"} <= set(out)
    # 504 records, 500 kept: the unreadable one, then r0000, r0001 and r0002
    assert RECORD_PREFIX + "r0002" not in out and RECORD_PREFIX + "r0003" in out
    assert json.loads(out[PRUNED_LABEL]) == NOW + 2
    assert Records.from_labels(out).pruned_before == NOW + 2


def test_a_corrupt_pruned_mark_is_said_and_not_believed() -> None:
    records = Records.from_labels({PRUNED_LABEL: "soon"})
    assert records.pruned_before is None
    assert "not a number" in records.pruned_problem


def test_the_record_labels_of_a_full_ledger_stay_small() -> None:
    """What every manager reads on every scan: the cap, at a realistic record size."""
    big = {f"{i:012x}": replace(FULL, id=f"{i:012x}") for i in range(MAX_RECORDS)}
    out = labels({}, big, NOW + 100)
    size = sum(len(k) + len(v) for k, v in out.items())
    assert size < 140 * 1024, size
