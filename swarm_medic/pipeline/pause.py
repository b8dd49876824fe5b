"""`swarm-medic pause` and `resume`: the swarm-wide switch, written into the ledger.

The switch is one label of the ledger (`ledger.PAUSE_LABEL`), written as every other ledger
write is: read, change, compare-and-swap on the version read, retried when another instance
moved the ledger in between. Every instance reads it at each scan, and the executor reads it
again when it claims an action: once `pause` has returned, no new action is claimed anywhere
(a claim read before the pause fails its compare-and-swap). An action already claimed is
already under way and is verified as usual.
"""

from __future__ import annotations

from dataclasses import dataclass

from swarm_medic.core.errors import Conflict
from swarm_medic.core.ledger import Ledger, Pause
from swarm_medic.core.model import LedgerDoc
from swarm_medic.swarm import Change, LedgerStore


@dataclass(frozen=True)
class Switched:
    before: Pause | None  # the pause in force before the write (None: none)
    after: Pause | None  # the pause in force after it


def set_pause(store: LedgerStore, ledger_name: str, pause: Pause | None, now: float) -> Switched:
    """Writes the switch (None: resume). Raises EngineError (Conflict when the ledger kept
    changing under every attempt)."""

    def switch(doc: LedgerDoc | None) -> Change[Switched]:
        ledger = Ledger.from_doc(doc)
        if pause is None and ledger.pause is None:
            return Change(None, Switched(None, None))  # nothing to resume: no write
        changed = ledger.with_pause(pause)
        return Change(changed.labels(now), Switched(ledger.paused(now), changed.paused(now)))

    try:
        return store.cas_update(ledger_name, switch)
    except Conflict:
        raise Conflict(f"the ledger {ledger_name} kept changing; try again") from None
