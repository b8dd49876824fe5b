"""A service update that stays `updating` while no task of the new spec comes up.

Symptom: UpdateStatus.State is `updating` (or `rollback_started`) for longer than the update
could take, and no task of the new spec has reached running for a while. Swarm waits for each
new task to run with no time limit (moby#37493): one pending on a constraint or resources no
node has, one hung preparing, or an old task that does not stop, holds the update forever.
Nothing pauses and nothing fails, so the `paused-update` runbook never sees it.

How long an update could take, from the service's UpdateConfig (a rollback is timed with it
too): batches x (delay + monitor) + the setting `margin` (default 5m), where batches is the
replicas (of a global service: the nodes it runs on) over parallelism, rounded up, and 1 for
parallelism 0 (all at once). A task "of the new spec" is one created since the update started
(UpdateStatus.StartedAt; an update whose start the engine does not say is not judged). Stuck:
longer than that since the update started, and no new-spec task reached running within the
last delay + monitor + margin, so a slow update that still progresses is never stuck.

What the medic does: reports it, naming the tasks that block (new-spec tasks meant to run
that do not, with their state and error; old tasks told to shut down that still run) and what
would unblock them. With the setting `action` = rollback it rolls an `updating` service back
to its previous spec (as `docker service rollback`) and verifies the rollback completed with
every task running. A stuck rollback is only reported: there is no earlier spec to go to.

Risks: a rollback undoes a deploy someone made on purpose, hence report by default; an update
slower than its config says (a slow image pull) is taken for stuck once no new task came up
for delay + monitor + margin: raise `margin` for such swarms.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

from swarm_medic.runbook import (
    DAY,
    UPDATE_IN_FLIGHT,
    Action,
    Context,
    Duration,
    Finding,
    Service,
    Setting,
    Severity,
    Snapshot,
    Task,
    UpdateState,
    choice,
    rollback,
)

NAME = "stuck-update"
SETTINGS = (
    Setting(
        "margin",
        Duration(1.0, 30 * DAY),
        "5m",
        "added to the time an update could take by its config, and to the time between two "
        "new tasks coming up, before an update counts as stuck",
        "DURATION",
    ),
    Setting(
        "action",
        choice("report", "rollback"),
        "report",
        "what to do with a stuck update: report it, or roll the service back to its previous "
        "spec (a stuck rollback is only reported)",
        "report|rollback",
    ),
)


def budget(svc: Service, tasks: Sequence[Task], margin: float) -> tuple[float, float]:
    """-> (how long the whole update could take, the longest wait between two new tasks
    coming up), from the service's UpdateConfig and size."""
    uc = svc.update_config
    if svc.mode.startswith("global"):
        size = len({t.node_id for t in tasks if t.desired_state == "running" and t.node_id})
    else:
        size = svc.replicas or 0
    batches = 1 if uc.parallelism <= 0 else max(1, math.ceil(size / uc.parallelism))
    step = uc.delay + uc.monitor
    return batches * step + margin, step + margin


def _where(snap: Snapshot, t: Task) -> str:
    node = snap.node(t.node_id)
    return f" on {node.hostname}" if node else ""


def blocking(snap: Snapshot, tasks: Sequence[Task], started: float) -> list[tuple[Task, str]]:
    """The tasks the update waits for, each with what it is doing in words."""
    out: list[tuple[Task, str]] = []
    for t in sorted(tasks, key=lambda t: (t.created_at, t.id)):
        if t.created_at >= started and t.desired_state == "running" and t.state != "running":
            why = t.err or t.message
            out.append(
                (t, f"task {t.id[:12]}{_where(snap, t)} {t.state}{': ' + why if why else ''}")
            )
        elif t.created_at < started and t.desired_state != "running" and t.state == "running":
            told = f"still running, told to {t.desired_state}"
            out.append((t, f"old task {t.id[:12]}{_where(snap, t)} {told}"))
    return out


def advice_for(svc: Service, state: str, blocked: list[tuple[Task, str]], acts: bool) -> str:
    if not blocked:
        lead = "no new task is waiting and no old one is left to stop: the updater itself hangs"
    else:
        lead = blocked[0][1]
        err = blocked[0][0].err.lower()
        if "no suitable node" in err:
            lead += " (the scheduler cannot place it: fix the constraint or free the resources)"
    if state == UpdateState.ROLLBACK_STARTED:
        return (
            f"{lead} — the rollback itself is stuck: fix the cause by hand, or deploy a good spec"
        )
    if acts:
        return f"{lead} — rolling back to the previous spec (setting action=rollback)"
    return f"{lead} — fix the cause, or roll back: `docker service rollback {svc.name}`"


def detect(ctx: Context) -> Iterator[Finding]:
    margin = ctx.settings.margin
    snap = ctx.snapshot
    for svc in snap.services:
        us = svc.update_status
        if us is None or us.state not in UPDATE_IN_FLIGHT or us.started_at is None:
            continue
        started = us.started_at
        tasks = snap.tasks_of(svc.id)
        total, between = budget(svc, tasks, margin)
        came_up = max(
            (t.timestamp for t in tasks if t.created_at >= started and t.state == "running"),
            default=started,
        )
        if ctx.now - started <= total or ctx.now - came_up <= between:
            continue
        blocked = blocking(snap, tasks, started)
        acts = (
            ctx.settings.action == "rollback"
            and us.state == UpdateState.UPDATING
            and svc.has_previous_spec
        )
        doing = "update" if us.state == UpdateState.UPDATING else "rollback"
        named = "; ".join(words for _, words in blocked[:3]) or "no task named: the updater hangs"
        if len(blocked) > 3:
            named += f"; and {len(blocked) - 3} more"
        yield Finding.for_service(
            svc,
            key=f"{svc.id}:{us.state}:{started:.0f}",
            summary=(
                f"{doing} of {svc.name} stuck: in progress for {ctx.now - started:.0f}s (it "
                f"could take {total:.0f}s), no new task up for {ctx.now - came_up:.0f}s; "
                f"waiting for {named}"
            ),
            cause="no-progress",
            severity=Severity.CRITICAL,
            task_ids=tuple(t.id for t, _ in blocked),
            node_ids=tuple(sorted({t.node_id for t, _ in blocked if t.node_id})),
            advice=advice_for(svc, us.state, blocked, acts),
            actionable=acts,
            details={
                "update_state": us.state,
                "blocking": "; ".join(words for _, words in blocked),
                "could_take_seconds": f"{total:.0f}",
            },
        )


def plan(finding: Finding, ctx: Context) -> Action | None:
    svc = ctx.snapshot.service(finding.service_id)
    us = svc.update_status if svc else None
    if (
        svc is None
        or us is None
        or not finding.actionable
        or ctx.settings.action != "rollback"
        or us.state != UpdateState.UPDATING
        or not svc.has_previous_spec
    ):
        return None
    return rollback(
        svc, "update stuck: no task of the new spec comes up; roll back to the previous spec"
    )
