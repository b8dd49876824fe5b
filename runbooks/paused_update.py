"""A service update that swarm paused (or a rollback that paused) and left there.

Symptom: UpdateStatus.State is `paused` ("update paused due to failure or early termination of
task ...") or `rollback_paused`. Swarm never resumes by itself: the service runs a mix of old
and new tasks, or fewer replicas than asked, until someone acts.

Cause: the new tasks failed within the update's monitor window (bad image, bad command, failing
healthcheck) with --update-failure-action pause (the default).

What the medic does: rolls the service back to its previous spec (`rollback=previous`, the same
as `docker service rollback`), and verifies the rollback completed with every task running.
With --paused-update-action retry it re-runs the update instead (a force update of the new
spec), for updates that fail on transient causes. A paused *rollback* is only reported: there is
no earlier spec to go to, so a person must choose.

Risks: a rollback undoes a deploy someone made on purpose; the finding and the action name the
update's message so the deployer can see why. A service with no previous spec is only reported.
"""

from __future__ import annotations

from collections.abc import Iterator

from swarm_medic.model import Action, ActionKind, Finding, Severity
from swarm_medic.runbook import Context

NAME = "paused-update"


def detect(ctx: Context) -> Iterator[Finding]:
    for svc in ctx.snapshot.services:
        us = svc.update_status
        if us is None or us.state not in ("paused", "rollback_paused"):
            continue
        rollback = us.state == "rollback_paused"
        started = f"{us.started_at:.0f}" if us.started_at else "?"
        if rollback:
            advice = (
                "the rollback itself paused; fix the cause, then "
                f"`docker service update --force {svc.name}` or deploy a good spec"
            )
            actionable = False
        elif ctx.settings.paused_update_action == "retry":
            advice, actionable = "retry the update (force update of the new spec)", True
        elif svc.has_previous_spec:
            advice, actionable = "roll back to the previous spec", True
        else:
            advice, actionable = "no previous spec to roll back to; fix the spec by hand", False
        yield Finding(
            runbook=NAME,
            key=f"{NAME}:{svc.id}:{us.state}:{started}",
            summary=f"update of {svc.name} is {us.state.replace('_', ' ')}: {us.message}",
            cause=us.state,
            severity=Severity.CRITICAL,
            service_id=svc.id,
            service_name=svc.name,
            advice=advice,
            actionable=actionable,
            details={"update_message": us.message},
        )


def plan(finding: Finding, ctx: Context) -> Action | None:
    svc = ctx.snapshot.service(finding.service_id)
    if svc is None or not finding.actionable:
        return None
    if ctx.settings.paused_update_action == "retry":
        return Action(
            ActionKind.RETRY_UPDATE, svc.id, svc.name, svc.version, "update paused: retry it"
        )
    return Action(
        ActionKind.ROLLBACK,
        svc.id,
        svc.name,
        svc.version,
        "update paused: roll back to the previous spec",
    )
