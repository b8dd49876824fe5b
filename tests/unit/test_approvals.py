"""Approvals in the ledger (`swarm-medic approve`): parsed strictly, expire, consumed once."""

from __future__ import annotations

import json
from types import MappingProxyType

import pytest

from swarm_medic.commands.approve import NoSuchIncident, approve, pending, render
from swarm_medic.core.ledger import (
    APPROVAL_PREFIX,
    PREFIX,
    Approval,
    Ledger,
    LedgerEntryError,
    decode_approval,
    encode_approval,
)
from swarm_medic.core.model import LedgerDoc
from swarm_medic.core.records import RECORD_PREFIX, IncidentRecord, Proposed
from swarm_medic.core.records import encode as encode_record
from swarm_medic.swarm.fake import FakeEngine

NOW = 1_700_000_000.0
A = Approval("inc1", "ops@host", NOW, NOW + 3600)


def doc(labels: dict[str, str]) -> LedgerDoc:
    return LedgerDoc("cfg", 1, MappingProxyType(labels))


def test_an_approval_round_trips() -> None:
    assert decode_approval("inc1", encode_approval(A)) == A
    assert json.loads(encode_approval(A)) == {"by": "ops@host", "at": NOW, "until": NOW + 3600}


@pytest.mark.parametrize(
    "text",
    [
        "{oops",
        "[]",
        '{"by":"x","at":1}',  # no until
        '{"by":"x","at":1,"until":"soon"}',
        '{"by":"x","at":1,"until":1e400}',
        '{"by":"x","at":1,"until":2,"extra":1}',
        '{"by":7,"at":1,"until":2}',
    ],
)
def test_a_bad_approval_is_refused(text: str) -> None:
    with pytest.raises(LedgerEntryError):
        decode_approval("inc1", text)


def test_a_bad_approval_approves_nothing_is_said_and_kept() -> None:
    labels = {
        APPROVAL_PREFIX + "inc1": "{oops",
        APPROVAL_PREFIX + "inc2": encode_approval(Approval("inc2", "", NOW, NOW + 60)),
    }
    ledger = Ledger.from_doc(doc(labels))
    assert ledger.approval("inc1", NOW) is None
    assert "not JSON" in ledger.approval_problems["inc1"]
    assert ledger.approval("inc2", NOW) is not None
    out = ledger.labels(NOW)
    assert out[APPROVAL_PREFIX + "inc1"] == "{oops"  # kept as it is
    assert APPROVAL_PREFIX + "inc2" in out


def test_an_approval_expires() -> None:
    ledger = Ledger().with_approval(A)
    assert ledger.approval("inc1", NOW + 3599) == A
    assert ledger.approval("inc1", NOW + 3600) is None


def test_consumed_it_is_not_written_back() -> None:
    ledger = Ledger.from_doc(doc({APPROVAL_PREFIX + "inc1": encode_approval(A)}))
    used = ledger.without_approvals(["inc1"])
    assert used.approval("inc1", NOW) is None
    assert APPROVAL_PREFIX + "inc1" not in used.labels(NOW)
    # a write that does not touch approvals keeps them
    assert APPROVAL_PREFIX + "inc1" in ledger.labels(NOW)


def test_a_service_entry_written_beside_keeps_the_approvals() -> None:
    ledger = Ledger.from_doc(doc({APPROVAL_PREFIX + "inc1": encode_approval(A)}))
    claimed, _ = ledger.record_action("svc1", "stuck-task", NOW, 3, 600)
    out = claimed.labels(NOW)
    assert set(out) == {APPROVAL_PREFIX + "inc1", PREFIX + "svc1"}


def _with_open_incident(engine: FakeEngine, proposed: str = "force_update on web: nudge") -> None:
    record = IncidentRecord("inc1", "stuck-task", NOW - 60, key="k", service_id="s1", service="web")
    label = encode_record(record)
    engine.write_ledger("swarm-medic-ledger", None, {RECORD_PREFIX + "inc1": label})
    ledger = Ledger.from_doc(engine.read_ledger("swarm-medic-ledger"))
    ledger = ledger.with_records([Proposed("inc1", proposed)])
    engine.write_ledger("swarm-medic-ledger", ledger.doc, ledger.labels(NOW))


def test_approve_writes_it_with_compare_and_swap() -> None:
    engine = FakeEngine()
    _with_open_incident(engine)
    done = approve(engine, "swarm-medic-ledger", A, NOW)
    assert done.record.proposed == "force_update on web: nudge"
    assert done.replaced is None
    ledger = Ledger.from_doc(engine.read_ledger("swarm-medic-ledger"))
    assert ledger.approval("inc1", NOW) == A
    again = approve(engine, "swarm-medic-ledger", Approval("inc1", "b@h", NOW + 1, NOW + 9), NOW)
    assert again.replaced == A


def test_approve_refuses_an_incident_not_open() -> None:
    engine = FakeEngine()
    with pytest.raises(NoSuchIncident):
        approve(engine, "swarm-medic-ledger", A, NOW)


def test_the_list_shows_proposals_and_approvals() -> None:
    engine = FakeEngine()
    _with_open_incident(engine)
    before = pending(Ledger.from_doc(engine.read_ledger("swarm-medic-ledger")), NOW)
    assert [r.id for r in before.proposed] == ["inc1"]
    approve(engine, "swarm-medic-ledger", A, NOW)
    after = pending(Ledger.from_doc(engine.read_ledger("swarm-medic-ledger")), NOW)
    assert after.proposed == () and [a.incident for a, _ in after.approvals] == ["inc1"]
    text = "\n".join(render(after))
    assert "inc1" in text and "approved by ops@host" in text
    late = pending(Ledger.from_doc(engine.read_ledger("swarm-medic-ledger")), NOW + 7200)
    assert [a.incident for a in late.expired] == ["inc1"]
