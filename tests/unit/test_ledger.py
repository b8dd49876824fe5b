"""swarm_medic.core.ledger: the durable history kept in a swarm config's labels."""

from __future__ import annotations

import json
import re
from types import MappingProxyType

import pytest

from swarm_medic.core.ledger import (
    MAX_ACTIONS,
    PREFIX,
    WINDOW,
    History,
    Ledger,
    LedgerEntryError,
    decode,
    encode,
)
from swarm_medic.core.model import LedgerDoc
from tests.builders import NOW


def doc(labels: dict[str, str]) -> LedgerDoc:
    return LedgerDoc(id="cfg1", version=12, labels=MappingProxyType(labels))


# --- encode / decode -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "history",
    [
        History(),
        History(actions=((NOW - 10.5, "stuck-task"), (NOW, "paused-update"))),
        History(failures_in_row=2, open_until=NOW + 3600.0, open_reason="2 fix(es) did not hold"),
        History(actions=((NOW, "stuck-task"),), open_reason='ünïcode: "quoted", commas'),
    ],
)
def test_encode_decode_roundtrip(history: History) -> None:
    assert decode(encode(history)) == history


def test_encode_is_compact_json() -> None:
    text = encode(History(actions=((1.23456, "rb"),), failures_in_row=1, open_until=2.0))
    assert text == '{"a":[[1.235,"rb"]],"f":1,"r":"","u":2.0}'


def test_decode_tolerates_missing_keys() -> None:
    assert decode("{}") == History()


@pytest.mark.parametrize(
    "text",
    ["not json", "[]", '"x"', "null", '{"a": [[1]]}', '{"a": [1, 2]}', '{"f": "many"}'],
)
def test_decode_rejects_garbage(text: str) -> None:
    with pytest.raises((ValueError, TypeError)):
        decode(text)


# --- from_doc / labels ---------------------------------------------------------------------


def test_from_doc_none_is_empty() -> None:
    ledger = Ledger.from_doc(None)
    assert dict(ledger.services) == {}
    assert ledger.unreadable == frozenset()
    assert ledger.history("svc1") == History()
    assert ledger.labels(NOW) == {}


def test_from_doc_corrupt_label_is_unreadable_and_kept_raw() -> None:
    good = History(actions=((NOW - 60, "stuck-task"),))
    ledger = Ledger.from_doc(
        doc(
            {
                PREFIX + "svc-good": encode(good),
                PREFIX + "svc-bad": "{not json",
                PREFIX + "svc-list": "[1,2]",
                "com.example.owner": "ops",
            }
        )
    )
    assert ledger.unreadable == frozenset({"svc-bad", "svc-list"})
    assert dict(ledger.services) == {"svc-good": good}
    labels = ledger.labels(NOW)
    assert labels == {
        PREFIX + "svc-good": encode(good),
        PREFIX + "svc-bad": "{not json",
        PREFIX + "svc-list": "[1,2]",
        "com.example.owner": "ops",
    }


def test_labels_prune_old_actions_and_drop_empty_histories() -> None:
    mixed = History(actions=((NOW - WINDOW - 1, "old"), (NOW - WINDOW, "edge"), (NOW - 5, "new")))
    stale = History(actions=((NOW - 2 * WINDOW, "old"),))
    open_old = History(
        actions=((NOW - 2 * WINDOW, "old"),), open_until=NOW + 10, open_reason="budget"
    )
    failing = History(failures_in_row=1)
    ledger = Ledger.from_doc(
        doc(
            {
                PREFIX + "mixed": encode(mixed),
                PREFIX + "stale": encode(stale),
                PREFIX + "open": encode(open_old),
                PREFIX + "failing": encode(failing),
                "keep.me": "1",
            }
        )
    )
    labels = ledger.labels(NOW)
    assert set(labels) == {PREFIX + "mixed", PREFIX + "open", PREFIX + "failing", "keep.me"}
    assert decode(labels[PREFIX + "mixed"]).actions == ((NOW - WINDOW, "edge"), (NOW - 5, "new"))
    assert decode(labels[PREFIX + "open"]) == History((), 0, NOW + 10, "budget")
    assert decode(labels[PREFIX + "failing"]) == failing
    assert labels["keep.me"] == "1"


def test_expired_circuit_without_actions_is_dropped() -> None:
    expired = History(open_until=NOW - 1, open_reason="old news")
    ledger = Ledger.from_doc(doc({PREFIX + "svc": encode(expired)}))
    assert ledger.labels(NOW) == {}


def test_history_queries() -> None:
    h = History(actions=((NOW - 4000, "a"), (NOW - 100, "a"), (NOW - 50, "b")), open_until=NOW + 1)
    assert h.actions_since(NOW - WINDOW) == 2
    assert h.last_action("a") == NOW - 100
    assert h.last_action("b") == NOW - 50
    assert h.last_action("c") is None
    assert h.circuit_open(NOW) is True
    assert h.circuit_open(NOW + 1) is False


# --- record_action / record_outcome --------------------------------------------------------


def test_record_action_opens_circuit_when_budget_is_spent() -> None:
    ledger = Ledger()
    opened_flags = []
    for i in range(3):
        ledger, opened = ledger.record_action("svc1", "stuck-task", NOW + i, budget=3, reset=600)
        opened_flags.append(opened)
    assert opened_flags == [False, False, True]
    h = ledger.history("svc1")
    assert h.actions_since(NOW - WINDOW) == 3
    assert h.open_until == NOW + 2 + 600
    assert h.open_reason == "action budget spent: 3 in the last hour"
    assert h.circuit_open(NOW + 100)

    # While open, more actions do not report "opened" again and keep the original deadline.
    ledger, opened = ledger.record_action("svc1", "stuck-task", NOW + 10, budget=3, reset=600)
    assert opened is False
    assert ledger.history("svc1").open_until == NOW + 602
    # Other services are untouched.
    assert ledger.history("svc2") == History()


def test_record_action_only_counts_the_last_hour() -> None:
    ledger = Ledger()
    ledger, _ = ledger.record_action("svc1", "rb", NOW - WINDOW - 1, budget=2, reset=600)
    ledger, opened = ledger.record_action("svc1", "rb", NOW, budget=2, reset=600)
    assert opened is False
    assert not ledger.history("svc1").circuit_open(NOW)


def test_record_action_is_immutable() -> None:
    before = Ledger()
    after, _ = before.record_action("svc1", "rb", NOW, budget=5, reset=600)
    assert before.history("svc1") == History()
    assert after.history("svc1").actions == ((NOW, "rb"),)


def test_record_outcome_healed_resets_failures() -> None:
    ledger = Ledger()
    ledger, opened = ledger.record_outcome("svc1", False, NOW, failures=3, reset=600)
    assert (opened, ledger.history("svc1").failures_in_row) == (False, 1)
    ledger, opened = ledger.record_outcome("svc1", True, NOW + 1, failures=3, reset=600)
    assert (opened, ledger.history("svc1").failures_in_row) == (False, 0)
    assert not ledger.history("svc1").circuit_open(NOW + 1)


@pytest.mark.parametrize("failures", [1, 2, 3])
def test_record_outcome_not_healed_n_times_opens(failures: int) -> None:
    ledger = Ledger()
    results = []
    for i in range(failures + 1):
        ledger, opened = ledger.record_outcome("svc1", False, NOW + i, failures, reset=900)
        results.append(opened)
    # opens exactly on the N-th failure, not again while open
    assert results == [False] * (failures - 1) + [True, False]
    h = ledger.history("svc1")
    assert h.failures_in_row == failures + 1
    assert h.open_until == NOW + failures - 1 + 900
    assert h.open_reason == f"{failures} fix(es) in a row did not hold"


def test_written_labels_read_back() -> None:
    ledger, _ = Ledger().record_action("svc1", "paused-update", NOW, budget=1, reset=600)
    labels = ledger.labels(NOW)
    assert json.loads(labels[PREFIX + "svc1"])["r"] == "action budget spent: 1 in the last hour"
    again = Ledger.from_doc(doc(labels))
    assert again.history("svc1") == ledger.history("svc1")


def test_circuit_can_open_again_after_it_reset() -> None:
    ledger = Ledger()
    for i in range(2):
        ledger, _ = ledger.record_action("svc1", "rb", NOW + i, budget=2, reset=60)
    assert ledger.history("svc1").open_until == NOW + 61
    ledger, opened = ledger.record_action("svc1", "rb", NOW + 100, budget=2, reset=60)
    assert opened is True  # the budget is still spent and the old circuit has closed
    assert ledger.history("svc1").open_until == NOW + 160


# --- hostile or broken entries: refused, never raised, never half-believed ------------------


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("[" * 100_000, "bytes long"),  # over the size bound: not even parsed
        ("[" * 5_000, "nested too deeply"),  # under it, but deeper than the parser's recursion
        ('{"a": [[NaN, "stuck-task"]]}', "plausible time"),
        ('{"a": [[Infinity, "stuck-task"]]}', "plausible time"),
        ('{"a": [[-Infinity, "stuck-task"]]}', "plausible time"),
        ('{"a": [[1e400, "stuck-task"]]}', "plausible time"),
        ('{"a": [[' + "9" * 400 + ', "stuck-task"]]}', "plausible time"),
        ('{"a": [[-5, "stuck-task"]]}', "plausible time"),
        ('{"a": [[4102444800, "stuck-task"]]}', "plausible time"),
        ('{"a": [[true, "stuck-task"]]}', "not a number"),
        ('{"a": [["1700000000", "stuck-task"]]}', "not a number"),
        ('{"a": [[1700000000, 7]]}', "runbook"),
        ('{"a": [[1700000000, "x", "extra"]]}', "pair"),
        ('{"a": {"t": 1}}', "not a list"),
        ('{"u": NaN}', "plausible time"),
        ('{"u": Infinity}', "plausible time"),
        ('{"f": 1.5}', "whole number"),
        ('{"f": true}', "whole number"),
        ('{"f": -1}', "out of range"),
        ('{"r": ' + json.dumps("x" * 2000) + "}", "at most 1024"),
        ('{"a": [' + ",".join(['[1700000000,"rb"]'] * 300) + "]}", "300 actions"),
        ("1" * 5000, "not JSON"),
    ],
)
def test_decode_refuses_a_hostile_entry_with_its_own_error(text: str, why: str) -> None:
    with pytest.raises(LedgerEntryError, match=re.escape(why)):
        decode(text)


def test_a_deeply_nested_label_does_not_stop_the_ledger() -> None:
    good = History(actions=((NOW - 60, "stuck-task"),))
    ledger = Ledger.from_doc(
        doc({PREFIX + "svc-deep": "[" * 100_000, PREFIX + "svc-ok": encode(good)})
    )
    assert ledger.unreadable == frozenset({"svc-deep"})
    assert ledger.history("svc-ok") == good
    assert "bytes long" in ledger.problems["svc-deep"]


@pytest.mark.parametrize("when", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_action_times_do_not_switch_cooldown_and_budget_off(when: str) -> None:
    ledger = Ledger.from_doc(doc({PREFIX + "svc1": '{"a":[[' + when + ',"stuck-task"]]}'}))
    assert ledger.unreadable == frozenset({"svc1"})  # the policy's ledger_unreadable skip
    assert "action 0's time is not a plausible time" in ledger.problems["svc1"]
    assert "svc1" not in ledger.services


def test_labels_keep_at_most_max_actions() -> None:
    ledger = Ledger()
    for i in range(MAX_ACTIONS + 10):
        ledger, _ = ledger.record_action("svc1", "rb", NOW + i, budget=10**6, reset=60)
    kept = decode(ledger.labels(NOW + MAX_ACTIONS + 10)[PREFIX + "svc1"]).actions
    assert len(kept) == MAX_ACTIONS
    assert kept[-1] == (NOW + MAX_ACTIONS + 9, "rb")  # the newest are the ones kept
