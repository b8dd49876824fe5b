"""match: snapshot + runbooks + now -> findings. Pure.

A runbook that raises is isolated: the error is returned next to the findings of the others,
and whoever records it (journal) logs and counts it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from swarm_medic.model import Action, Finding
from swarm_medic.runbook import Context, Runbook


@dataclass(frozen=True)
class RunbookFailure:
    runbook: str
    error: str


@dataclass(frozen=True)
class MatchResult:
    findings: tuple[Finding, ...]
    failures: tuple[RunbookFailure, ...]


def run(runbooks: Iterable[Runbook], ctx: Context) -> MatchResult:
    findings: list[Finding] = []
    failures: list[RunbookFailure] = []
    for rb in runbooks:
        try:
            found = list(rb.detect(ctx))
        except Exception as exc:  # noqa: BLE001 - one broken runbook must not blind the others
            failures.append(RunbookFailure(rb.name, f"{type(exc).__name__}: {exc}"))
            continue
        findings.extend(found)
    return MatchResult(tuple(findings), tuple(failures))


def plan_all(
    runbooks: dict[str, Runbook],
    findings: Iterable[Finding],
    ctx: Context,
) -> tuple[list[tuple[Finding, Action | None]], list[RunbookFailure]]:
    """Asks each finding's runbook what it would do; a plan() that raises plans nothing."""
    planned: list[tuple[Finding, Action | None]] = []
    failures: list[RunbookFailure] = []
    for f in findings:
        action = None
        rb = runbooks.get(f.runbook)
        if rb is not None and f.actionable:
            try:
                action = rb.plan(f, ctx)
            except Exception as exc:  # noqa: BLE001
                failures.append(RunbookFailure(f.runbook, f"plan: {type(exc).__name__}: {exc}"))
        planned.append((f, action))
    return planned, failures
