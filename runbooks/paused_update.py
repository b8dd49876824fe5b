"""A service update that swarm paused (or a rollback that paused) and left there.

Symptom: UpdateStatus.State is `paused` ("update paused due to failure or early termination of
task <id>") or `rollback_paused`. Swarm never resumes by itself: the service runs a mix of old
and new tasks, or fewer replicas than asked, until someone acts.

Cause: a task of the new spec ended within the update's monitor window. That is either the new
spec failing by itself (non-zero exit, failing healthcheck, an image that does not exist: the
task is `failed`, `rejected` or `complete`), or a task the orchestrator itself stopped (its node
was drained, went down or the task was shut down or removed by a scale-down: the task is
`shutdown`, `remove` or `orphaned`, or desired no longer running while its node is
unavailable). Swarm pauses on both; only the first says anything about the new spec.

What the medic does: it reads the task the pause names, then
- the new spec failed by itself: rolls the service back to its previous spec
  (`rollback=previous`, as `docker service rollback`) and verifies the rollback completed with
  every task running; with the setting `action` = retry it re-runs the update instead (a force
  update of the new spec), for updates that fail on transient causes;
- the task was stopped by its node or the orchestrator: resumes the operator's update (posts
  the same spec again, as `docker service update SVC` does) and verifies it completed; a good
  deploy is not undone because a node was drained during it;
- the task is no longer in the swarm's history: reports only, since it cannot tell which.
A paused *rollback* is only reported: there is no earlier spec to go to, so a person must
choose.

Risks: a rollback undoes a deploy someone made on purpose; the finding names the task and why
it ended so the deployer can see it. Resuming posts the current spec again, so swarm makes it
the service's PreviousSpec too: after a resume, `docker service rollback` no longer reaches
the spec before the update. A service with no previous spec is only reported.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from swarm_medic.runbook import (
    UPDATE_PAUSED,
    Action,
    Context,
    Finding,
    Setting,
    Severity,
    Snapshot,
    Task,
    TaskState,
    UpdateState,
    choice,
    resume_update,
    retry_update,
    rollback,
)

NAME = "paused-update"
_TASK = re.compile(r"\btask ([\w-]{1,64})\s*$")
# the ended states, split by who ended the task
OWN_FAILURE = frozenset({TaskState.FAILED, TaskState.REJECTED, TaskState.COMPLETE})
STOPPED_BY_SWARM = frozenset({TaskState.SHUTDOWN, TaskState.REMOVE, TaskState.ORPHANED})
# Finding.cause for a pause, by what ended the task it names
FAILED, STOPPED, UNKNOWN = "new-spec-failed", "stopped-by-node", "cause-unknown"

SETTINGS = (
    Setting(
        "action",
        choice("rollback", "retry"),
        "rollback",
        "what to do when the new spec failed: roll back to the previous spec, or retry the "
        "update (a force update of the new spec, for updates that fail on transient causes)",
        "rollback|retry",
    ),
)


def judge(snap: Snapshot, message: str) -> tuple[str, str, Task | None]:
    """Why the update paused -> (cause, in words, the task the pause names)."""
    m = _TASK.search(message)
    task = snap.task(m.group(1)) if m else None
    if task is None:
        what = f"task {m.group(1)}" if m else "the task"
        return UNKNOWN, f"{what} is no longer in the swarm's task history", None
    node = snap.node(task.node_id)
    where = f" on {node.hostname}" if node else ""
    if task.state in OWN_FAILURE:
        error = task.err or (
            f"exit code {task.exit_code}" if task.exit_code is not None else task.message
        )
        return FAILED, f"task {task.id[:12]}{where} {task.state} by itself: {error}", task
    node_away = node is not None and (node.state != "ready" or node.availability != "active")
    if task.state in STOPPED_BY_SWARM or (task.desired_state != "running" and node_away):
        why = (
            f"its node is {node.state}/{node.availability}"
            if node_away and node
            else "the orchestrator shut it down"
        )
        return STOPPED, f"task {task.id[:12]}{where} was stopped, not failed: {why}", task
    return UNKNOWN, f"task {task.id[:12]}{where} is {task.state}: cannot tell why", task


def detect(ctx: Context) -> Iterator[Finding]:
    for svc in ctx.snapshot.services:
        us = svc.update_status
        if us is None or us.state not in UPDATE_PAUSED:
            continue
        started = f"{us.started_at:.0f}" if us.started_at else "?"
        summary = f"update of {svc.name} is {us.state.replace('_', ' ')}: {us.message}"
        details = {"update_message": us.message}
        if us.state == UpdateState.ROLLBACK_PAUSED:
            cause, actionable = "rollback_paused", False
            advice = (
                "the rollback itself paused; fix the cause, then "
                f"`docker service update --force {svc.name}` or deploy a good spec"
            )
        else:
            cause, why, task = judge(ctx.snapshot, us.message)
            summary += f" ({why})"
            details |= {"why": why, "task": task.id if task else ""}
            actionable = cause != UNKNOWN
            if cause == STOPPED:
                advice = f"resume the update: `docker service update {svc.name}`"
            elif cause == UNKNOWN:
                advice = (
                    "look at `docker service ps` and choose: `docker service rollback "
                    f"{svc.name}` or resume with `docker service update {svc.name}`"
                )
            elif ctx.settings.action == "retry":
                advice = "retry the update (force update of the new spec)"
            elif svc.has_previous_spec:
                advice = "roll back to the previous spec"
            else:
                advice, actionable = "no previous spec to roll back to; fix the spec by hand", False
        yield Finding.for_service(
            svc,
            key=f"{svc.id}:{us.state}:{started}",
            summary=summary,
            cause=cause,
            severity=Severity.CRITICAL,
            advice=advice,
            actionable=actionable,
            details=details,
        )


def plan(finding: Finding, ctx: Context) -> Action | None:
    svc = ctx.snapshot.service(finding.service_id)
    if svc is None or not finding.actionable:
        return None
    if finding.cause == STOPPED:
        return resume_update(
            svc,
            "update paused because its node stopped a task, not because the new spec failed: "
            "resume it",
        )
    if ctx.settings.action == "retry":
        return retry_update(svc, "update paused: retry it")
    return rollback(svc, "update paused: the new spec failed; roll back to the previous spec")
