"""`swarm-medic check`: one snapshot, every runbook, a table a person reads in ten seconds.

Nothing is changed: the safety policy runs in dry-run so the table says what the daemon would
do. Exit status: 0 healthy, 1 findings, 2 could not check.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass, replace
from typing import TextIO

from swarm_medic.core.ledger import Ledger
from swarm_medic.core.model import Decision, Snapshot, Verdict
from swarm_medic.core.runbook import Context, TaskClock
from swarm_medic.core.settings import Settings
from swarm_medic.pipeline import match, policy
from swarm_medic.pipeline.observe import take_snapshot
from swarm_medic.pipeline.registry import Registry
from swarm_medic.swarm import Engine


@dataclass(frozen=True)
class Report:
    snapshot: Snapshot
    decisions: list[Decision]
    errors: list[str]


def diagnose(engine: Engine, settings: Settings, registry: Registry, now: float) -> Report:
    snap = take_snapshot(engine, now)
    ctx = Context(snap, now, settings, TaskClock())
    matched = match.run(registry, ctx)
    planned, plan_failures = match.plan_all(registry.runbooks, matched.findings, ctx)
    ledger = Ledger()
    if snap.is_leader and any(a for _, a in planned):
        ledger = Ledger.from_doc(engine.read_ledger(settings.ledger_name))
    dry = replace(settings, dry_run=True)
    decisions = policy.decide(
        planned,
        services={s.id: s for s in snap.services},
        ledger=ledger,
        settings=dry,
        now=now,
        leader=True,
    )
    errors = [f"runbook {f.runbook} failed: {f.error}" for f in (*matched.failures, *plan_failures)]
    errors += [f"runbook file {e.path} not loaded: {e.message}" for e in registry.errors]
    return Report(snap, decisions, errors)


def _would(d: Decision) -> str:
    if d.verdict is Verdict.WOULD_ACT and d.action:
        return d.action.kind.value
    if d.reason == "no_action":
        return "report only"
    return f"{d.action.kind.value if d.action else '-'} (skip: {d.reason})"


def render_table(report: Report, out: TextIO) -> None:
    s = report.snapshot
    out.write(
        f"swarm: {len(s.nodes)} node(s), {len(s.services)} service(s), {len(s.tasks)} task(s)\n"
    )
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
    for e in report.errors:
        out.write(f"error: {e}\n")


def render_json(report: Report, out: TextIO) -> None:
    doc = {
        "healthy": not report.decisions,
        "nodes": len(report.snapshot.nodes),
        "services": len(report.snapshot.services),
        "tasks": len(report.snapshot.tasks),
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
                "skip_reason": None if d.verdict is Verdict.WOULD_ACT else d.reason,
            }
            for d in report.decisions
        ],
        "errors": report.errors,
    }
    json.dump(doc, out, indent=2)
    out.write("\n")
