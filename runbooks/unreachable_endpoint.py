"""A task swarm calls Running that peers cannot reach over its overlay network.

Symptom: a task running past --probe-grace fails its TCP probe (port from the label
`swarm-medic.probe.port`, else the service's first target port) for --probe-failures rounds in
a row, from one or more nodes, while other tasks of the same service answer from the same
vantage point. No event fires and `tasks.<svc>` still lists its IP (docker/swarm#2161,
moby stale-FDB reports).

Cause, read from the matrix (from node x to task):
  some-nodes   unreachable from some nodes only: a stale overlay peer / forwarding entry on
               those nodes
  task-node    unreachable from every other node but fine from its own: the task's node's
               side of the overlay (its vxlan / peer entries)
  container    unreachable even from its own node: the container's own network (interface
               down, a firewall rule inside it)

What the medic does: replaces that one task — the instance on the task's node removes the
task's container (after checking its swarm labels), swarm schedules a new task — and verifies
the service converges and the new task answers from every node. Node-level repairs (drain a
node, restart an engine) are never automatic: they are written in the finding as advice.

Risks: the service runs one task short for a few seconds; a replacement that lands on the same
broken path fails again, the verifier says so and the circuit breaker stops further tries.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from swarm_medic.runbook import (
    PROBES,
    Action,
    Cell,
    Context,
    Finding,
    Reachability,
    Severity,
    Task,
    replace_task,
)
from swarm_medic.runbook.helpers import running

NAME = "unreachable-endpoint"
NEEDS = (PROBES,)
ADVICE = {
    "some-nodes": "stale overlay peer/forwarding entries on {bad}; if it recurs, drain and "
    "restart the engine of {bad} (not automatic)",
    "task-node": "the overlay on the task's node {home} does not answer peers; if replacing "
    "the task does not hold, drain {home} and restart its engine (not automatic)",
    "container": "the container's own network is broken (interface down or a firewall rule "
    "inside it); replacing the task gives it a fresh one",
}


def _others_answer(reach: Reachability, node: str, tasks: list[Task], t: Task) -> bool:
    """A vantage from which nothing else of this service answers proves nothing about t."""
    return any(
        (c := reach.tcp.get((node, o.id))) is not None and c.ok for o in tasks if o.id != t.id
    )


def _home_not_heard_yet(reach: Reachability, home: str, cells: Mapping[str, Cell]) -> bool:
    """The task's own node answers but holds no opinion on anything yet (its first rounds: a
    node given a standing duty probes once it holds the lists): its vantage is what tells a
    broken container from a broken path, one round away, so the finding waits one round for
    it. A home node that does not answer, or that has opinions but not yet on this task, does
    not hold the finding back."""
    return (
        home not in cells
        and reach.answered.get(home) == reach.rounds
        and not reach.tcp.per_node.get(home)
    )


def detect(ctx: Context) -> Iterator[Finding]:
    reach, snap = ctx.probes.reach, ctx.snapshot
    if not reach.rounds:
        return
    k = ctx.probes.failures
    suspects = reach.failing_tasks()
    for svc, port in ctx.probes.services:
        tasks = [t for t in snap.tasks_of(svc.id) if running(t)]
        for t in tasks:
            if t.id not in suspects:
                continue  # most tasks: at 100 nodes, weighing their 100 vantages costs 150 ms
            cells = reach.from_nodes(t.id)
            if not any(c.fails >= k for c in cells.values()):
                continue

            # Raised by K failed rounds in a row from a sound vantage: one from which other
            # tasks of the service answer (a vantage that reaches nothing proves nothing).
            sound = {n for n in cells if _others_answer(reach, n, tasks, t)}
            if not any(cells[n].fails >= k for n in sound):
                continue
            # at most one round more: a home node that answers but never gives an opinion
            # (its probes cannot run) must not hold the finding back for good
            held_back = max(cells[n].fails for n in sound) <= k
            if held_back and _home_not_heard_yet(reach, t.node_id, cells):
                continue
            # Where the fault is: every sound vantage failing now, even for fewer rounds,
            # and the task's own node, which probes it from the overlay's bridge (no
            # container involved) and may have no other local task to vouch for it.
            failing = {
                n for n, c in cells.items() if c.fails >= 1 and (n in sound or n == t.node_id)
            }
            bad = failing
            good = {n for n, c in cells.items() if c.ok}
            if t.node_id in bad:
                cause = "container"
            elif t.node_id in good and not (good - {t.node_id}):
                cause = "task-node"
            else:
                cause = "some-nodes"
            names = {n.id: n.hostname or n.id for n in snap.nodes}
            bad_names = ", ".join(sorted(names.get(n, n) for n in bad))
            errors = sorted({cells[n].error for n in bad})
            ip = next((a[2] for a in t.addresses), "?")
            yield Finding.for_task(
                t,
                svc,
                summary=f"task {svc.name}.{t.slot} ({ip}:{port}) on "
                f"{names.get(t.node_id, t.node_id)} is Running but unreachable from "
                f"{bad_names} ({', '.join(errors)}) for {k}+ rounds",
                cause=cause,
                severity=Severity.CRITICAL,
                node_ids=tuple(sorted({t.node_id, *bad})),
                advice=ADVICE[cause].format(bad=bad_names, home=names.get(t.node_id, t.node_id)),
                actionable=True,
                details={"from": ",".join(sorted(bad))},
            )


def plan(finding: Finding, ctx: Context) -> Action | None:
    svc = ctx.snapshot.service(finding.service_id)
    if svc is None or finding.target is None:
        return None
    return replace_task(svc, finding.target, f"replace task {finding.target.task}: {finding.cause}")
