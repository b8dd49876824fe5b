"""A node that is Down, Unknown or Disconnected, with the tasks swarm still shows on it.

Symptom: a node's Status.State is not ready (down after a heartbeat failure: its engine died,
the machine is off, or the network between it and the managers is cut), while swarm still
lists tasks of that node as desired to run.

Cause: whatever stopped the heartbeat. From the managers' side a dead node and a cut-off node
look the same; a cut-off node's containers keep running (its own engine sees nothing wrong),
a dead node's do not.

What the medic does: reports it once per incident with the node's address and message and the
tasks it held (service, slot, state). Swarm moves replicated tasks elsewhere when it can (not
global ones, not those pinned by constraints or max-replicas-per-node: they wait, Pending);
the finding says which. No action by default: draining or removing a node is a human's call.

A node "unknown" is reported only once it has been unknown for UNKNOWN_GRACE (90 s) as this
instance saw it: a new leader marks every node unknown until it hears from it, for up to a
minute after every election (moby: "Node moved to unknown state due to leadership change"),
and that is swarm not knowing yet, not nodes failing. Reported at once, every election paged
for every node, and the storm guard took the whole swarm for failing.

A Down entry whose machine joined the swarm again under a new id (a ghost: its hostname is on
a Ready node that joined after it went down) is not reported here: that machine is up, and
`stale-nodes` tells that story with the command that removes the entry.

Risks: none; it never acts. A manager that is down is marked critical: with three managers,
one more loss costs the quorum.
"""

from __future__ import annotations

from collections.abc import Iterator

from swarm_medic.runbook import Context, Finding, NodeState, Severity
from swarm_medic.runbook.helpers import ghosts

NAME = "node-down"
NOT_READY = frozenset({NodeState.DOWN, NodeState.UNKNOWN, NodeState.DISCONNECTED})
UNKNOWN_GRACE = 90.0  # seconds: longer than the minute swarm may take after an election


def detect(ctx: Context) -> Iterator[Finding]:
    snap = ctx.snapshot
    held: dict[str, list[str]] = {}
    for t in snap.tasks:
        # When a node goes down swarm marks its tasks desired=shutdown at once but leaves their
        # last state (running) as it was: both kinds are "still shown on it".
        if t.node_id and (t.desired_state == "running" or t.state == "running"):
            svc = snap.service(t.service_id)
            name = svc.name if svc else t.service_id
            slot = f".{t.slot}" if t.slot is not None else ""
            held.setdefault(t.node_id, []).append(
                f"{name}{slot} ({t.state}, desired {t.desired_state})"
            )
    rejoined = ghosts(snap)
    for node in snap.nodes:
        if node.state not in NOT_READY or node.id in rejoined:
            continue
        if node.state == NodeState.UNKNOWN and (
            ctx.now - ctx.since(f"unknown:{node.id}") < UNKNOWN_GRACE
        ):
            continue
        tasks = sorted(held.get(node.id, []))
        shown = ", ".join(tasks[:10]) + (f", and {len(tasks) - 10} more" if len(tasks) > 10 else "")
        where = f"{node.hostname or node.id} ({node.addr or 'no address'}, {node.role})"
        yield Finding.for_node(
            node,
            summary=f"node {where} is {node.state}: {node.message or 'no message'}; "
            f"swarm still shows {len(tasks)} task(s) on it",
            cause=node.state,
            severity=Severity.CRITICAL if node.role == "manager" else Severity.WARNING,
            advice=(f"tasks still assigned to it: {shown}. " if tasks else "")
            + "Its containers may still run if only the network is cut. Replicated tasks move "
            "to other nodes when a node fits; global ones do not. If the node is gone for good, "
            "`docker node rm` it; a manager down costs quorum margin.",
            actionable=False,
            details={"hostname": node.hostname, "addr": node.addr, "tasks": str(len(tasks))},
        )
