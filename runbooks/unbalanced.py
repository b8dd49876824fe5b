"""A node that could run a service's tasks runs none while another node carries several.

Symptom: a replicated service (2 replicas or more) has converged (no update in flight, every
task meant to run is running, as many as its replicas) and some node it could run on (ready,
active, fitting its placement constraints, resources and max-replicas-per-node) runs none of
its tasks while another node runs two or more, for longer than the setting `after` (counted
from the medic's first sighting). Typically after a node came back from a drain, a restart or
a network cut: its tasks moved away and never came back.

Cause: swarm places tasks only when it creates them; it never moves a running task to spread
the load (moby#24103, swarmkit#1296), so a node that returns stays empty until something
replaces tasks.

What the medic does: reports it. A service labelled `swarm-medic.rebalance=true` is force
updated (under every gate of the policy: opt-in, cooldown, budget, ...): every task is
replaced, one batch at a time by the service's update config, and the scheduler puts each new
one on the node running the fewest of the service's tasks. Verified healed when the update
completed and the tasks are spread (the condition is gone); still piled up by the deadline is
not healed, which counts towards the service's circuit breaker. Without the label the finding
says how to do it by hand (`docker service update --force SVC`).

Not judged: services in the middle of a rolling update, a rollback, a scale-up or a restart
(any task meant to run that is not running, or a task still stopping on a ready node), global
services, and nodes that could not take a task anyway.

Risks: a force update restarts every replica of the service; with the default update config
(one at a time, stop-first) the service runs one replica fewer while each is replaced.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from swarm_medic.runbook import (
    DAY,
    LIVE_STATES,
    UPDATE_SETTLED,
    Action,
    Context,
    Duration,
    Finding,
    NodeState,
    Service,
    Setting,
    Severity,
    Snapshot,
    force_update,
)
from swarm_medic.runbook.helpers import fitting_nodes

NAME = "unbalanced"
LABEL = "swarm-medic.rebalance"

SETTINGS = (
    Setting(
        "after",
        Duration(1.0, 30 * DAY),
        "5m",
        "how long a node may run none of a service's tasks while another runs several "
        "before it counts",
        "DURATION",
    ),
)


def converged(snap: Snapshot, svc: Service) -> bool:
    """Settled: no update in flight, exactly `replicas` tasks meant to run and all running,
    and none still stopping on a node that reports (a dead node's stale tasks do not count:
    they wait for the node, which is then not ready)."""
    us = svc.update_status
    if us is not None and us.state not in UPDATE_SETTLED:
        return False
    meant = 0
    for t in snap.tasks_of(svc.id):
        if t.desired_state == "running":
            if t.state != "running":
                return False
            meant += 1
        elif t.state in LIVE_STATES:
            node = snap.node(t.node_id)
            if node is not None and node.state == NodeState.READY:
                return False  # a scale-down or an update still stopping it
    return meant == svc.replicas


def rebalance_allowed(svc: Service) -> bool:
    return svc.labels.get(LABEL, "").strip().lower() == "true"


def _hostname(snap: Snapshot, node_id: str) -> str:
    node = snap.node(node_id)
    return node.hostname if node is not None and node.hostname else node_id


def detect(ctx: Context) -> Iterator[Finding]:
    snap = ctx.snapshot
    for svc in snap.services:
        if svc.mode != "replicated" or (svc.replicas or 0) < 2 or not converged(snap, svc):
            continue
        running = [t for t in snap.tasks_of(svc.id) if t.desired_state == "running"]
        per_node = Counter(t.node_id for t in running)
        piled = sorted((n, c) for n, c in per_node.items() if c >= 2)
        if not piled:
            continue
        # nodes that could take one more task now (the max-replicas limit included): an
        # empty one among them means a spread layout exists
        empty = [n for n in fitting_nodes(snap, svc) if per_node[n.id] == 0]
        if not empty:
            continue
        held = ctx.now - ctx.since(svc.id)
        if held < ctx.settings.after:
            continue
        heavy = ", ".join(f"{_hostname(snap, n)} runs {c}" for n, c in piled)
        idle = ", ".join(n.hostname or n.id for n in sorted(empty, key=lambda n: n.hostname))
        allowed = rebalance_allowed(svc)
        yield Finding.for_service(
            svc,
            summary=(
                f"{svc.name}: {idle} could run its tasks and runs none while {heavy} "
                f"({len(running)} replicas), for {held:.0f}s"
            ),
            cause="unbalanced",
            severity=Severity.WARNING,
            task_ids=tuple(sorted(t.id for t in running if per_node[t.node_id] >= 2)),
            node_ids=tuple(sorted({n for n, _ in piled} | {n.id for n in empty})),
            advice=(
                "force update it to spread the tasks (every replica is replaced, one batch at "
                "a time by its update config)"
                if allowed
                else f"swarm never moves running tasks: `docker service update --force "
                f"{svc.name}` spreads them (it restarts every replica); label the service "
                f"{LABEL}=true to let the medic do it"
            ),
            actionable=allowed,
            details={"piled": heavy, "empty": idle, "held_seconds": f"{held:.0f}"},
        )


def plan(finding: Finding, ctx: Context) -> Action | None:
    svc = ctx.snapshot.service(finding.service_id)
    if svc is None or not finding.actionable or not rebalance_allowed(svc):
        return None
    return force_update(
        svc,
        f"tasks piled on some nodes while others that fit run none: a force update lets "
        f"the scheduler spread them ({LABEL}=true)",
    )
