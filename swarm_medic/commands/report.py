"""`swarm-medic report [--since 7d] [--json]`: what the healing was worth, from the ledger.

It reads the incidents' record the leader keeps in the ledger (core/records.py) through the
engine, one request, and never the daemon's memory: the same figures whichever manager it runs
on and whichever instance leads, and after a restart. The figures are core/worth.py's, computed
with the time of the run; the README says how each is computed.

What it cannot count is said, not left out silently: records that cannot be read (exit 3, as
`check` does for a check left incomplete), incidents the cap dropped inside the window, heals
too young to know whether they hold, and a ledger with no record at all (the medic in dry-run,
or of a release before records).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TextIO

from swarm_medic.core.ledger import Ledger
from swarm_medic.core.parsers import say_duration
from swarm_medic.core.records import MAX_RECORDS
from swarm_medic.core.worth import HARM_WINDOW, Figures, Worth, compute
from swarm_medic.swarm import LedgerStore

DEFAULT_SINCE = "7d"


def read(store: LedgerStore, ledger_name: str, now: float, since: float) -> tuple[Worth, bool]:
    """-> (the figures, whether the ledger exists). Raises EngineError."""
    doc = store.read_ledger(ledger_name)
    return compute(Ledger.from_doc(doc).records(), now, since), doc is not None


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _took(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _share(part: int, whole: int) -> str:
    return "-" if not whole else f"{part}/{whole} {100 * part / whole:.0f}%"


HEAD = (
    "RUNBOOK",
    "FOUND",
    "OPEN",
    "FIXED",
    "HEALED",
    "DID NOT HOLD",
    "TIME TO HEAL p50/p95",
    "NO HUMAN",
    "HARM",
)


def _row(f: Figures) -> tuple[str, ...]:
    times = "-" if f.heal_p50 is None else f"{_took(f.heal_p50)} / {_took(f.heal_p95)}"
    return (
        f.runbook or "all",
        str(f.found),
        str(f.open),
        str(f.fixed),
        str(f.healed),
        str(f.did_not_hold),
        times,
        _share(f.no_human, f.found),
        _share(f.undone, f.healed),
    )


def render_table(w: Worth, out: TextIO, ledger_name: str, *, exists: bool = True) -> None:
    out.write(
        f"incidents found in the last {say_duration(w.since)} ({_iso(w.start)} to "
        f"{_iso(w.now)}), from the ledger {ledger_name}\n"
    )
    if not exists:
        out.write(
            "no incident recorded: the ledger does not exist yet (the leader writes it in "
            "acting mode; in dry-run the medic writes nothing)\n"
        )
    elif not w.total.found:
        out.write("no incident found in that time\n")
    else:
        rows = [HEAD, *(_row(f) for f in w.runbooks), _row(w.total)]
        widths = [max(len(r[i]) for r in rows) for i in range(len(HEAD))]
        for r in rows:
            numbers = zip(r[1:], widths[1:], strict=True)
            cells = [r[0].ljust(widths[0]), *(c.rjust(n) for c, n in numbers)]
            out.write("  ".join(cells).rstrip() + "\n")
    if w.harms:
        out.write(
            f"\nheals undone (another incident of the service within "
            f"{say_duration(HARM_WINDOW)} of the heal):\n"
        )
        for h in w.harms:
            after = h.by.found - (h.healed.healed or h.by.found)
            when = f"{_took(abs(after))} {'after' if after >= 0 else 'before'} the heal"
            out.write(
                f"  {h.healed.runbook} on {h.healed.service or h.healed.service_id} (incident "
                f"{h.healed.id}, healed {_iso(h.healed.healed or 0.0)}): {h.by.runbook} "
                f"incident {h.by.id}, {when}\n"
            )
    if w.total.watching:
        out.write(
            f"\n{w.total.watching} heal(s) in the last {say_duration(HARM_WINDOW)}: whether they "
            "hold is not known yet\n"
        )
    if w.complete_from > w.start:
        out.write(
            f"\nincomplete: the ledger keeps the newest {MAX_RECORDS} incidents; those found "
            f"before {_iso(w.complete_from)} may be missing\n"
        )
    for p in w.problems:
        out.write(f"error: {p} (not counted)\n")


def document(w: Worth, ledger_name: str, *, exists: bool = True) -> dict[str, object]:
    return {
        "ok": True,
        "ledger": ledger_name,
        "ledger_exists": exists,
        "since_seconds": w.since,
        "from": _iso(w.start),
        "to": _iso(w.now),
        "complete": w.complete,
        "complete_from": _iso(w.complete_from),
        "total": w.total.fields(),
        "runbooks": [f.fields() for f in w.runbooks],
        "heals_undone": [
            {
                "incident": h.healed.id,
                "runbook": h.healed.runbook,
                "service": h.healed.service,
                "service_id": h.healed.service_id,
                "healed": None if h.healed.healed is None else _iso(h.healed.healed),
                "by_incident": h.by.id,
                "by_runbook": h.by.runbook,
                "by_found": _iso(h.by.found),
            }
            for h in w.harms
        ],
        "errors": list(w.problems),
    }


def render_json(w: Worth, out: TextIO, ledger_name: str, *, exists: bool = True) -> None:
    json.dump(document(w, ledger_name, exists=exists), out, indent=2)
    out.write("\n")
