"""verify: did the fix hold? Pure: judged on each new snapshot, no extra API calls.

A fix is healed once the service has converged (every desired task running, no update in
flight or paused; after a rollback, the rollback completed), its runbook no longer sees the
fault it was for (no finding with its key, and no condition held under that key with
`ctx.since`, i.e. still within the runbook's grace), and all of it stayed so for --verify-hold.
It is not healed if that has not happened by --verify-timeout after the action.
A fix for an alert (its finding's target is an alert: `Pending.alert`) is healed only when,
besides, no alert of that name fires for the service any more (Alertmanager said it resolved).
A node entry's removal names no service: it is healed once the node is no longer listed (and
its runbook no longer sees the fault), held for --verify-hold like the rest. Nor does a prune:
it is healed once its runbook no longer sees the fault (disk-pressure: the data root below the
low watermark) on a reading the node gave after the prune started, held likewise.
"""

from __future__ import annotations

import enum
from collections.abc import Set
from dataclasses import dataclass, replace

from swarm_medic.core.alerts import Alerts
from swarm_medic.core.ledger import Ledger, Verifying
from swarm_medic.core.model import (
    NODE_LOCAL,
    ON_NODE,
    PRE_RUNNING_STATES,
    UPDATE_SETTLED,
    Action,
    ActionKind,
    Result,
    Snapshot,
    UpdateState,
)
from swarm_medic.core.reach import Reachability, running


@dataclass(frozen=True)
class Pending:
    incident_id: str
    runbook: str
    action: Action
    started: float
    deadline: float
    healthy_since: float | None = None
    alert: str = ""  # the alert that must have resolved too ("" : none)
    key: str = ""  # the finding's key: the fault must no longer be seen ("" : not known)


@dataclass(frozen=True)
class Outcome:
    pending: Pending
    result: Result
    elapsed: float
    detail: str


# after these actions, "settled" is not enough: the update they restarted must have finished
# The update states that end each kind of fix. Resuming posts the same spec and the engine
# resets UpdateStatus; if the paused update had no task left to change (the orchestrator had
# already replaced the stopped one with the new spec), no updater runs and it stays unset
# (measured on the 3-node lab, 20.10): that is a completed resume too, once the tasks run.
MUST_COMPLETE: dict[ActionKind, frozenset[str | None]] = {
    ActionKind.ROLLBACK: frozenset({UpdateState.ROLLBACK_COMPLETED}),
    ActionKind.RESUME_UPDATE: frozenset({UpdateState.COMPLETED, None}),
}


def converged(
    snapshot: Snapshot, service_id: str, must: frozenset[str | None] | None = None
) -> tuple[bool, str]:
    svc = snapshot.service(service_id)
    if svc is None:
        return False, "service was removed"
    state = svc.update_status.state if svc.update_status else None
    if must is not None and state not in must:
        done = " or ".join(sorted(str(m).replace("_", " ") for m in must if m))
        return False, f"update not {done} (update state {state})"
    if state is not None and state not in UPDATE_SETTLED:  # None: never updated
        return False, f"update state {state}"
    current = [t for t in snapshot.tasks_of(service_id) if t.desired_state == "running"]
    running = sum(1 for t in current if t.state == "running")
    waiting = sum(1 for t in current if t.state in PRE_RUNNING_STATES)
    want = svc.replicas if svc.mode == "replicated" else max(1, len(current))
    if want is not None and running < want:
        return False, f"{running}/{want} tasks running, {waiting} not yet"
    if waiting:
        return False, f"{waiting} task(s) still starting"
    return True, f"{running} task(s) running"


def answers_everywhere(
    p: Pending, snapshot: Snapshot, reach: Reachability | None
) -> tuple[bool, str]:
    """After a task was replaced: the old one is gone and every running task of the service
    answered from every node that probed it, in a round after the action."""
    if any(
        t.id == p.action.task_id and t.state == "running"
        for t in snapshot.tasks_of(p.action.service_id)
    ):
        return False, "the replaced task still runs"
    if reach is None or reach.round_at <= p.started:
        return False, "waiting for a probe round after the action"
    # tasks swarm still shows "running" on a dead node are desired shutdown: not ours to judge
    tasks = [t.id for t in snapshot.tasks_of(p.action.service_id) if running(t)]
    cells = [(t, n, c) for t in tasks for n, c in reach.from_nodes(t).items()]
    failing = [(t, n) for t, n, c in cells if not c.ok]
    unprobed = [t for t in tasks if not reach.from_nodes(t)]
    if not cells or unprobed:
        return False, "the new task has not been probed yet"
    if failing:
        return False, f"{len(failing)} probe(s) still failing"
    return True, f"{len(tasks)} task(s) answer from every node ({len(cells)} probes)"


def orphan_gone(p: Pending, reach: Reachability | None) -> tuple[bool, str]:
    if reach is None or reach.round_at <= p.started:
        return False, "waiting for a round after the action"
    if p.action.node_id not in reach.containers:
        return False, "its node did not answer the last round"
    left = [c for c in reach.containers[p.action.node_id] if c.task == p.action.task_id]
    return (not left, "the orphan container is gone" if not left else "still there")


def node_gone(p: Pending, snapshot: Snapshot) -> tuple[bool, str]:
    node = snapshot.node(p.action.node_id)
    if node is None:
        return True, f"node {p.action.node_id} is no longer listed"
    return False, f"node {p.action.node_id} is still listed ({node.state})"


def node_read_since(p: Pending, reach: Reachability | None) -> tuple[bool, str]:
    """After a prune: the node gave its disk reading after the action (the fault's key is what
    says whether it is healed; without a reading since, its absence says nothing)."""
    if not p.key:
        return False, "the fault it was for is not known: cannot tell it cleared"
    said = reach.health.get(p.action.node_id) if reach is not None else None
    if said is None or said.at <= p.started:
        return False, f"waiting for node {p.action.node_id}'s disk reading after the prune"
    return True, f"node {p.action.node_id} read its disks after the prune"


def resolved(p: Pending, alerts: Alerts | None) -> tuple[bool, str]:
    """The alert the fix was for no longer fires for its service."""
    if alerts is None:
        return False, f"alert {p.alert}: no alerts are taken in here"
    firing = alerts.firing_for(p.alert, p.action.service_name, p.action.service_id)
    if firing:
        return False, f"alert {p.alert} still firing ({len(firing)})"
    return True, f"alert {p.alert} resolved"


def judge(
    p: Pending,
    snapshot: Snapshot,
    now: float,
    hold: float,
    reach: Reachability | None = None,
    *,
    alerts: Alerts | None = None,
    seen: Set[str] = frozenset(),
) -> Pending | Outcome:
    """`seen`: the keys this scan's runbooks reported or held (Sightings.held)."""
    if p.action.kind is ActionKind.REMOVE_NODE:
        ok, detail = node_gone(p, snapshot)
    elif p.action.kind is ActionKind.PRUNE_NODE:
        ok, detail = node_read_since(p, reach)
    else:
        ok, detail = converged(snapshot, p.action.service_id, MUST_COMPLETE.get(p.action.kind))
    if ok and p.alert:
        ok, also = resolved(p, alerts)
        detail = f"{detail}, {also}" if ok else also
    if ok and p.action.kind is ActionKind.REPLACE_TASK:
        ok, detail = answers_everywhere(p, snapshot, reach)
    if p.action.kind is ActionKind.REMOVE_ORPHAN:
        ok, detail = orphan_gone(p, reach)
    if ok and p.key and p.key in seen:
        # converged is not always healed: a service can converge with the fault still there
        # (its tasks piled on some nodes), and only the runbook that found it can tell
        ok, detail = False, f"{detail}, but {p.runbook} still sees the fault"
    if ok:
        since = p.healthy_since if p.healthy_since is not None else now
        if now - since >= hold:
            return Outcome(p, Result.HEALED, now - p.started, detail)
        p = replace(p, healthy_since=since)
    else:
        p = replace(p, healthy_since=None)
    if now >= p.deadline:
        return Outcome(p, Result.NOT_HEALED, now - p.started, detail)
    return p


class TakeOver(enum.StrEnum):
    """What a new leader does with a fix an earlier instance claimed and left unjudged (the
    value is the journal's line)."""

    REMOVED = "pending fix dropped: the service was removed"
    RELEASED = (
        "pending fix released: it never reached the engine (the service is still at the "
        "version it was decided on); the incident is judged again"
    )
    NODE_KEPT = (
        "pending node removal released: the node is still listed, so it never happened; the "
        "incident is judged again"
    )
    LATE = (
        "pending fix dropped: its verification deadline passed while no instance watched; "
        "the incident is judged again"
    )
    RESUMED = "verifying a fix claimed by an earlier instance (resumed from the ledger)"


@dataclass(frozen=True)
class TakenOver:
    service_id: str
    service_name: str  # "" when the service is gone
    fix: Verifying
    outcome: TakeOver
    key: str = ""  # the fault it was for, as its incident's record says ("" : not known)

    def pending(self) -> Pending:
        """The fix to verify (RESUMED), under the incident id that claimed it."""
        p = self.fix
        kind = ActionKind(p.kind)
        action = Action(
            kind,
            "" if kind in ON_NODE else self.service_id,  # its subject: the node
            self.service_name,
            p.version,
            "resumed from the ledger",
            p.task,
            p.node,
        )
        return Pending(p.incident, p.runbook, action, p.at, p.deadline, key=self.key)


def take_over(
    ledger: Ledger, snap: Snapshot, now: float, known: Set[str] = frozenset()
) -> tuple[Ledger, list[TakenOver]]:
    """The fixes left pending in the ledger (but those in `known`), judged on `snap`, and the
    ledger as it should be written back. The daemon does this on becoming the leader; `check`
    does it in memory, to know which services the daemon is verifying.

    A service update carries the version it was decided on, so a service still at that version
    never received it: the claim is released and the incident judged afresh. A node-local
    action leaves no such trace, so it is verified like any other. A node entry's removal
    (kept under the node's id) happened if the node is gone, and did not if it is still listed:
    verified, or released. A prune (under the node's id too) leaves no trace: verified, on the
    fault its incident's record names."""
    changed = ledger
    taken: list[TakenOver] = []
    for sid, h in sorted(ledger.services.items()):
        p = h.pending
        if p is None or sid in known:
            continue
        changed, outcome, name = _taken(changed, sid, p, snap, now)
        # a prune is healed when the fault it was for clears: its record names it
        record = ledger.records().by_id.get(p.incident) if p.kind == "prune_node" else None
        taken.append(TakenOver(sid, name, p, outcome, record.key if record else ""))
    return changed, taken


def _taken(
    ledger: Ledger, sid: str, p: Verifying, snap: Snapshot, now: float
) -> tuple[Ledger, TakeOver, str]:
    """One pending fix judged: (the ledger after, what becomes of it, its service's name)."""
    kind = ActionKind(p.kind)
    if kind is ActionKind.REMOVE_NODE and snap.node(p.node) is not None:
        return ledger.release(sid), TakeOver.NODE_KEPT, ""
    svc = None if kind in ON_NODE else snap.service(sid)
    name = svc.name if svc is not None else ""
    if kind not in ON_NODE and svc is None:
        return ledger.forget_pending(sid), TakeOver.REMOVED, name
    # a prune, like a node-local action, leaves no trace of whether it reached the node
    if svc is not None and kind not in NODE_LOCAL and svc.version == p.version:
        return ledger.release(sid), TakeOver.RELEASED, name
    if now >= p.deadline:
        return ledger.forget_pending(sid), TakeOver.LATE, name
    return ledger, TakeOver.RESUMED, name
