"""match: snapshot + runbooks + now -> findings. Pure.

Each runbook is given the scan's Context with its own settings (Runbook.detect / plan bind
them). A runbook whose NEEDS this scan does not meet (no probe results on this instance) is
not run: that is not a failure. A runbook that raises is isolated: the error is returned next
to the findings of the others, and whoever records it (journal) logs and counts it.

A plan must act on what its finding is about: the same service, for a node-local action one
of the finding's tasks on one of its nodes, and for an action on a node (which names no
service) the node the finding is about. This is checked here, not in the policy,
because every gate of the policy (self, opt-in, history, cooldown, budget) is looked up by the
finding's service: an action naming another service would pass them all on that service's
behalf. Such a plan is a fault of the runbook (an operator's file can hold anything), so it is
refused and reported like a plan() that raised.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from swarm_medic.core.model import NODE_LOCAL, ON_NODE, Action, Finding, TargetKind
from swarm_medic.core.runbook import Context, Runbook, RunbookFailure


@dataclass(frozen=True)
class MatchResult:
    findings: tuple[Finding, ...]
    failures: tuple[RunbookFailure, ...]


def run(runbooks: Iterable[Runbook], ctx: Context) -> MatchResult:
    findings: list[Finding] = []
    failures: list[RunbookFailure] = []
    for rb in runbooks:
        if rb.missing(ctx):
            continue
        try:
            found = list(rb.detect(ctx))
        except Exception as exc:  # noqa: BLE001 - one broken runbook must not blind the others
            failures.append(RunbookFailure(rb.name, f"{type(exc).__name__}: {exc}"))
            continue
        findings.extend(found)
    return MatchResult(tuple(findings), tuple(failures))


def off_target(finding: Finding, action: object) -> str:
    """Why this planned action may not be taken for this finding; "" if it may."""
    if action is None:
        return ""
    if not isinstance(action, Action):
        return f"returned {type(action).__name__}, not an Action or None"
    if action.service_id != finding.service_id:
        return (
            f"its action names service {action.service_id!r:.80} but its finding is about "
            f"{finding.service_id!r:.80}"
        )
    return _off_its_node(finding, action)


def _off_its_node(finding: Finding, action: Action) -> str:
    what = action.kind.value
    if action.kind in ON_NODE:
        # no service to judge it by: the node it acts on is the one its finding is about
        target = finding.target
        if target is None or target.kind is not TargetKind.NODE or target.id != action.node_id:
            return f"its {what} names node {action.node_id!r:.80}, not the node of its finding"
    if action.kind in NODE_LOCAL:
        if action.task_id not in finding.task_ids:
            return f"its {what} names task {action.task_id!r:.80}, not one of its finding's"
        if action.node_id not in finding.node_ids:
            return f"its {what} names node {action.node_id!r:.80}, not one of its finding's"
    return ""


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
            why = off_target(f, action)
            if why:
                failures.append(RunbookFailure(f.runbook, f"plan refused: {why}"))
                action = None
        planned.append((f, action))
    return planned, failures
