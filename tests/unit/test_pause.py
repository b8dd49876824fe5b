"""The pause switch in the ledger: encoded, decoded strictly, a corrupt one read as paused,
kept by every other write, over at its end."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from swarm_medic.core.ledger import (
    PAUSE_LABEL,
    PREFIX,
    History,
    Ledger,
    LedgerEntryError,
    Pause,
    decode_pause,
    encode,
    encode_pause,
)
from swarm_medic.core.model import LedgerDoc
from tests.builders import NOW

P = Pause("maintenance window", NOW - 60, "ops@laptop", NOW + 3600)


def doc(labels: dict[str, str]) -> LedgerDoc:
    return LedgerDoc("cfg", 3, MappingProxyType(labels))


def test_a_pause_round_trips() -> None:
    assert decode_pause(encode_pause(P)) == P
    forever = Pause("incident 42", NOW, "ops@laptop")
    assert decode_pause(encode_pause(forever)) == forever
    assert '"until":null' in encode_pause(forever)


@pytest.mark.parametrize(
    "text",
    [
        "{oops",
        "[]",
        '{"reason": "x"}',  # no time
        '{"reason": 1, "at": 1}',
        f'{{"reason": "x", "at": {NOW}, "until": "tomorrow"}}',
        f'{{"reason": "x", "at": {NOW}, "until": NaN}}',
        f'{{"reason": "x", "at": {NOW}, "off": true}}',  # an unknown key: not what we wrote
        '{"reason": "' + "x" * 2000 + f'", "at": {NOW}}}',
    ],
)
def test_a_bad_pause_label_is_refused_and_reads_as_paused(text: str) -> None:
    with pytest.raises(LedgerEntryError):
        decode_pause(text)
    ledger = Ledger.from_doc(doc({PAUSE_LABEL: text}))
    pause = ledger.paused(NOW + 10 * 365 * 86400)  # no end: until someone resumes
    assert pause is not None
    assert pause.problem
    assert "unreadable" in pause.describe()


def test_the_pause_is_in_force_until_its_end() -> None:
    ledger = Ledger.from_doc(doc({PAUSE_LABEL: encode_pause(P)}))
    assert ledger.paused(NOW) == P
    assert ledger.paused(NOW + 3599) == P
    assert ledger.paused(NOW + 3600) is None  # expired
    assert Ledger.from_doc(doc({})).paused(NOW) is None
    assert Ledger().paused(NOW) is None


def test_every_write_keeps_the_pause_and_drops_it_once_over() -> None:
    sid_label = PREFIX + "svc1"
    before = {PAUSE_LABEL: encode_pause(P), sid_label: encode(History(actions=((NOW, "rb"),)))}
    ledger = Ledger.from_doc(doc(before))
    claimed, _ = ledger.record_action("svc2", "rb", NOW, 3, 3600)
    assert claimed.labels(NOW)[PAUSE_LABEL] == encode_pause(P)
    assert PAUSE_LABEL not in claimed.labels(NOW + 3600)


def test_a_corrupt_pause_is_kept_as_it_is_until_resume_or_a_new_pause() -> None:
    ledger = Ledger.from_doc(doc({PAUSE_LABEL: "{oops"}))
    assert ledger.labels(NOW)[PAUSE_LABEL] == "{oops"
    assert PAUSE_LABEL not in ledger.with_pause(None).labels(NOW)
    assert ledger.with_pause(P).labels(NOW)[PAUSE_LABEL] == encode_pause(P)


def test_pause_describes_itself() -> None:
    assert P.describe() == (
        "paused since 2023-11-14T22:12:20Z until 2023-11-14T23:13:20Z, by ops@laptop, "
        "reason: maintenance window"
    )
    assert "until resume" in Pause("x", NOW).describe()


def test_in_progress_counts_pending_fixes_before_their_deadline() -> None:
    from swarm_medic.core.ledger import Verifying

    def fix(deadline: float) -> History:
        return History(pending=Verifying("i", "rb", "force_update", 1, NOW - 5, deadline))

    ledger = Ledger(
        services=MappingProxyType({"a": fix(NOW + 60), "b": fix(NOW - 1), "c": History()})
    )
    assert ledger.in_progress(NOW) == frozenset({"a"})
