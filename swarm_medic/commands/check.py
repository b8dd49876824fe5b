"""`swarm-medic check`: one snapshot, every runbook, a table a person reads in ten seconds.

Nothing is changed: the daemon's own evaluation (`policy.evaluate`, the ledger read when
`policy.history_wanted` says) runs in dry-run, so the table says what the daemon on this node
would decide now. What `check` cannot know is taken from the durable record or left out:

- the fixes being verified are those the ledger holds as pending and a new leader would take
  over (`verify.take_over`, in memory: nothing is written);
- an unreadable ledger skips every action (`ledger_unreadable`) and is listed as an error;
- on a manager that is not the leader every action is `not_leader`: run it on the leader;
- the pause switch is read from the ledger (always: one request) and shown first; the alerts
  hold (`--hold-while-alerts`) is asked when an action could follow, as the daemon does;
- nodes are not asked (no probe round), so `node_unreachable` never shows, and runbooks that
  count sightings across scans see this one snapshot only;
- what each service's history says (core/learned.py) is the leader's, as written in the
  ledger; each runbook that says what it holds per service (`standing`: stuck-task's
  thresholds and where each came from) is listed after the findings.
- the storm guard sees this one scan's findings, as the daemon's first scan does (the daemon
  also counts findings of the last --storm-window), and the storm is shown first.

Exit status: 0 healthy, 1 findings, 3 could not check (cli.EXIT_* for every command).
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass, replace
from typing import Protocol, TextIO

from swarm_medic.core import learned
from swarm_medic.core.apiversion import Speaking
from swarm_medic.core.errors import EngineError
from swarm_medic.core.ledger import Ledger, Pause
from swarm_medic.core.model import Decision, Reason, Snapshot, Verdict
from swarm_medic.core.runbook import Context, context
from swarm_medic.core.settings import Settings
from swarm_medic.core.storm import Guard
from swarm_medic.pipeline import match, policy, verify
from swarm_medic.pipeline.hold import AlertsHold
from swarm_medic.pipeline.observe import take_snapshot
from swarm_medic.pipeline.registry import Registry
from swarm_medic.swarm import LedgerStore, SwarmReader


class Checked(SwarmReader, LedgerStore, Protocol):
    """What `check` reads: the swarm, and the ledger (it writes nothing)."""


@dataclass(frozen=True)
class Report:
    snapshot: Snapshot
    decisions: list[Decision]
    errors: list[str]
    pause: Pause | None = None  # the pause in force
    pause_unknown: str = ""  # why the pause could not be read ("" : it was)
    hold: str = ""  # why the alerts hold holds ("" : no hold, or not asked)
    engine: Speaking | None = None  # the engine and API version spoken
    engine_at: str = ""
    # runbook -> (subject, what it holds for it): stuck-task's thresholds per service
    standing: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()
    storm: str = ""  # what is failing, if this one scan's findings make a storm


def diagnose(engine: Checked, settings: Settings, registry: Registry, now: float) -> Report:
    snap = take_snapshot(engine, now)
    unknown = ""
    errors: list[str] = []
    try:  # read always, as the daemon does: the pause switch is in it
        doc = engine.read_ledger(settings.safety.ledger_name)
        ledger, unreadable = Ledger.from_doc(doc), False
    except EngineError as exc:  # the daemon does not act blind: neither does its check
        doc, ledger, unreadable, unknown = None, Ledger(), True, f"cannot read the ledger: {exc}"
    book = learned.Book.from_labels(doc.labels if doc else {})
    # no probe results: runbooks that need them wait
    ctx = context(snap, now, settings, learned=book.by_service)
    matched = match.run(registry, ctx)
    planned, plan_failures = match.plan_all(registry.runbooks, matched.findings, ctx)
    errors += [
        f"runbook {f.runbook} failed: {f.error}" for f in (*matched.failures, *plan_failures)
    ]
    errors += [f"runbook file {e.path} not loaded: {e.message}" for e in registry.errors]
    verifying = frozenset[str]()
    ids = policy.history_wanted(planned, snap)
    if unreadable:
        ledger = Ledger(unreadable=ids)
        if ids:
            errors.append(unknown)
    pause, hold = ledger.paused(now), ""
    if ids:
        alerts = AlertsHold.of(settings.safety)
        hold = alerts.check() if alerts is not None and pause is None else ""
        ledger, taken = verify.take_over(ledger, snap, now)
        verifying = frozenset(t.service_id for t in taken if t.outcome is verify.TakeOver.RESUMED)
    # the storm guard as the daemon's first scan sees it: this scan's findings alone
    s = settings.safety
    guard = Guard(s.storm_share, s.storm_min, s.storm_window, s.storm_hold)
    guard.observe_snapshot(matched.findings, snap, now)
    decisions = policy.evaluate(
        planned,
        snap,
        ledger=ledger,
        safety=replace(settings.safety, dry_run=True),
        now=now,
        verifying=verifying,
        hold=hold,
        storm=guard.why(),
    )
    return Report(
        snap,
        decisions,
        errors,
        pause,
        unknown,
        hold,
        engine.speaking,
        str(getattr(engine, "base_url", "") or ""),
        standing_of(registry, ctx, book),
        guard.why(),
    )


def standing_of(
    registry: Registry, ctx: Context, book: learned.Book
) -> tuple[tuple[str, tuple[tuple[str, str], ...]], ...]:
    """What each runbook that says so holds per subject now; a learned entry of the ledger
    that cannot be read is said beside its service's line."""
    names = {s.id: s.name for s in ctx.snapshot.services}
    bad = {names[sid]: why for sid, why in book.problems.items() if sid in names}
    out = []
    for rb in sorted(registry.runbooks.values(), key=lambda r: r.name):
        try:
            lines = rb.standing(ctx)
        except Exception as exc:  # noqa: BLE001 - a runbook's bug is said, the check goes on
            lines = [("-", f"cannot say: {type(exc).__name__}: {exc}")]
        if rb.name == "stuck-task":
            lines = [
                (n, f"{t}; learned times unreadable ({bad[n]})" if n in bad else t)
                for n, t in lines
            ]
        if lines:
            out.append((rb.name, tuple(lines)))
    return tuple(out)


def _would(d: Decision) -> str:
    if d.verdict is Verdict.WOULD_ACT and d.action:
        return d.action.kind.value
    if d.reason is Reason.NO_ACTION:
        return "report only"
    if d.verdict is Verdict.PROPOSE and d.action:
        return f"{d.action.kind.value} (proposed: waits for `swarm-medic approve`)"
    return f"{d.action.kind.value if d.action else '-'} (skip: {d.reason.value})"


def _held_back(d: Decision) -> str | None:
    """The gate that held an action back, in words: the daemon's journal says the same."""
    held = d.verdict in (Verdict.SKIP, Verdict.PROPOSE)
    return d.why if held and d.reason is not Reason.NO_ACTION else None


def render_table(report: Report, out: TextIO) -> None:
    s = report.snapshot
    spoken = report.engine
    engine = "" if spoken is None else f", engine Docker {spoken.engine} (API {spoken.api})"
    out.write(
        f"swarm: {len(s.nodes)} node(s), {len(s.services)} service(s), {len(s.tasks)} "
        f"task(s){engine}\n"
    )
    if report.pause is not None:
        out.write(f"PAUSED: {report.pause.describe()} (`swarm-medic resume` ends it)\n")
    elif report.pause_unknown:
        out.write(f"paused: unknown ({report.pause_unknown})\n")
    if report.hold:
        out.write(f"holding: {report.hold}\n")
    if report.storm:
        out.write(f"STORM: no action anywhere until it passes; {report.storm}\n")
    if not report.decisions:
        out.write("healthy: no findings\n")
    else:
        rows = [("RUNBOOK", "SERVICE", "SEVERITY", "WOULD DO", "FINDING")]
        rows += [
            (
                d.finding.runbook,
                d.finding.service_name or "-",
                d.finding.severity.value,
                _would(d),
                d.finding.summary,
            )
            for d in report.decisions
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        for r in rows:
            out.write(
                "  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True))
                + "  "
                + r[4]
                + "\n"
            )
        out.write("\n")
        for d in report.decisions:
            wrapped = textwrap.fill(
                d.finding.advice, width=96, initial_indent="    ", subsequent_indent="    "
            )
            out.write(f"  {d.finding.runbook} / {d.finding.service_name or '-'}:\n{wrapped}\n")
            if (why := _held_back(d)) is not None:
                held = textwrap.fill(
                    f"not acted on: {why}",
                    width=96,
                    initial_indent="    ",
                    subsequent_indent="      ",
                )
                out.write(f"{held}\n")
    for name, lines in report.standing:
        out.write(f"\n{name}, per service:\n")
        width = max(len(n) for n, _ in lines)
        for subject, text in lines:
            out.write(f"  {subject.ljust(width)}  {text}\n")
    for e in report.errors:
        out.write(f"error: {e}\n")


def render_json(report: Report, out: TextIO) -> None:
    doc = {
        "healthy": not report.decisions,
        "engine": None
        if report.engine is None
        else {**report.engine.fields(), "address": report.engine_at},
        "nodes": len(report.snapshot.nodes),
        "services": len(report.snapshot.services),
        "tasks": len(report.snapshot.tasks),
        "paused": None if report.pause_unknown else report.pause is not None,
        "pause": None
        if report.pause is None
        else {**report.pause.fields(), "describe": report.pause.describe()},
        "alerts_hold": report.hold or None,
        "storm": report.storm or None,
        "findings": [
            {
                "runbook": d.finding.runbook,
                "key": d.finding.key,
                "service": d.finding.service_name,
                "service_id": d.finding.service_id,
                "severity": d.finding.severity.value,
                "cause": d.finding.cause,
                "summary": d.finding.summary,
                "diagnosis": d.finding.advice,
                "tasks": list(d.finding.task_ids),
                "nodes": list(d.finding.node_ids),
                "would_do": d.action.kind.value
                if d.verdict is Verdict.WOULD_ACT and d.action
                else None,
                "skip_reason": None if d.verdict is Verdict.WOULD_ACT else d.reason.value,
                "skip_why": _held_back(d),
            }
            for d in report.decisions
        ],
        "standing": {name: dict(lines) for name, lines in report.standing},
        "errors": report.errors,
    }
    json.dump(doc, out, indent=2)
    out.write("\n")
