"""`swarm-medic approve INCIDENT`: let one proposed action through, written into the ledger.

An approval is one label of the ledger (`ledger.APPROVAL_PREFIX` + incident id), written as
every other ledger write is: read, change, compare-and-swap on the version read, retried when
another instance moved the ledger in between. The leader reads it at its next scan: the action
proposed for that incident then goes through every other gate as any action does, and the
write that claims it consumes the approval (applied once). Past its expiry it applies nothing.

The incident must be one the leader recorded as open (`swarm-medic approve --list` shows them
with what each proposes); the approval says what it lets through.
"""

from __future__ import annotations

from dataclasses import dataclass

from swarm_medic.core.errors import Conflict, SwarmMedicError
from swarm_medic.core.ledger import Approval, Ledger
from swarm_medic.core.model import LedgerDoc
from swarm_medic.core.records import IncidentRecord
from swarm_medic.swarm import Change, LedgerStore


class NoSuchIncident(SwarmMedicError):
    """The incident is not open in the ledger's record: nothing to approve."""


@dataclass(frozen=True)
class Approved:
    approval: Approval
    record: IncidentRecord  # the incident approved, as recorded
    replaced: Approval | None = None  # an approval of the same incident written before


def approve(store: LedgerStore, ledger_name: str, approval: Approval, now: float) -> Approved:
    """Writes the approval. Raises NoSuchIncident when the incident is not open in the ledger,
    EngineError (Conflict when the ledger kept changing under every attempt)."""

    def write(doc: LedgerDoc | None) -> Change[Approved]:
        ledger = Ledger.from_doc(doc)
        record = ledger.records().by_id.get(approval.incident)
        if record is None or record.closed is not None:
            raise NoSuchIncident(
                f"no open incident {approval.incident} in the ledger "
                "(see `swarm-medic approve --list`)"
            )
        before = ledger.approval(approval.incident, now)
        return Change(
            ledger.with_approval(approval).labels(now), Approved(approval, record, before)
        )

    try:
        return store.cas_update(ledger_name, write)
    except Conflict:
        raise Conflict(f"the ledger {ledger_name} kept changing; try again") from None


@dataclass(frozen=True)
class Pending:
    """What `approve --list` shows: open incidents with an action proposed, and approvals."""

    proposed: tuple[IncidentRecord, ...]  # open, an action proposed, not approved now
    approvals: tuple[tuple[Approval, IncidentRecord | None], ...]  # in force, with the incident
    expired: tuple[Approval, ...]
    unreadable: tuple[tuple[str, str], ...]  # (incident id, why)


def _at(a: Approval) -> float:
    return a.at


def pending(ledger: Ledger, now: float) -> Pending:
    by_id = ledger.records().by_id
    proposed = sorted(
        (r for r in by_id.values() if r.closed is None and r.proposed), key=lambda r: r.found
    )
    live = [a for a in ledger.approvals.values() if a.active(now)]
    return Pending(
        tuple(r for r in proposed if ledger.approval(r.id, now) is None),
        tuple((a, by_id.get(a.incident)) for a in sorted(live, key=_at)),
        tuple(sorted((a for a in ledger.approvals.values() if not a.active(now)), key=_at)),
        tuple(sorted(ledger.approval_problems.items())),
    )


def render(p: Pending) -> list[str]:
    lines = [f"proposed, waiting for an approval ({len(p.proposed)}):"]
    lines += [
        f"  {r.id}  {r.runbook}  {r.service or '-'}: {r.proposed}  (swarm-medic approve {r.id})"
        for r in p.proposed
    ]
    lines.append(f"approved, not applied yet ({len(p.approvals)}):")
    for a, r in p.approvals:
        what = (
            f"{r.runbook} {r.service or '-'}: {r.proposed or 'no action proposed yet'}"
            if r
            else "incident not in the ledger"
        )
        lines.append(f"  {a.incident}  {what}; {a.describe()}")
    if p.expired:
        lines.append(f"expired, will apply nothing ({len(p.expired)}):")
        lines += [f"  {a.incident}  {a.describe()}" for a in p.expired]
    if p.unreadable:
        lines.append(f"unreadable, approve nothing ({len(p.unreadable)}):")
        lines += [f"  {iid}  {why}" for iid, why in p.unreadable]
    return lines
