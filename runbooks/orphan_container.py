"""A task container that keeps running on a node after swarm forgot its task.

Symptom: a node runs a container labelled as a swarm task (com.docker.swarm.task.id) whose
task no longer exists in the swarm, or is assigned to another node, or has been desired shut
down for longer than --orphan-grace. Swarm will not stop it and `docker service ps` does not
show it (moby#24244, moby#35107); it may still hold ports, volumes and memory, or answer on
the overlay with stale data.

Cause: the node missed the shutdown (its engine was killed or cut off while its tasks moved,
the service was removed meanwhile), or an agent bug.

What the medic does: asks the instance on that node to remove the container (the hand checks
the container's swarm labels first). Orphans of services that still exist follow the
service's opt-in label; orphans of removed services are removed only with --scope all.
Verified when the node no longer lists the container.

Risks: removing a container loses what it held outside volumes; an orphan is by definition
no longer part of any service, so nothing should depend on it.
"""

from __future__ import annotations

from collections.abc import Iterator

from swarm_medic.model import Action, ActionKind, Finding, Severity
from swarm_medic.runbook import Context

NAME = "orphan-container"
GONE_STATES = frozenset({"shutdown", "remove", "complete", "failed", "rejected", "orphaned"})


def detect(ctx: Context) -> Iterator[Finding]:
    reach, snap = ctx.reach, ctx.snapshot
    if reach is None:
        return
    names = {n.id: n.hostname or n.id for n in snap.nodes}
    for node, containers in sorted(reach.containers.items()):
        for c in containers:
            if c.state != "running" or not c.task:
                continue
            task = snap.task(c.task)
            if task is None:
                why = "its task no longer exists in the swarm"
            elif task.node_id and task.node_id != node:
                why = f"its task is assigned to {names.get(task.node_id, task.node_id)}"
            elif (
                task.desired_state in GONE_STATES
                and ctx.now - task.timestamp > ctx.settings.orphan_grace
            ):
                why = (
                    f"its task has been desired {task.desired_state} for "
                    f"{ctx.now - task.timestamp:.0f}s"
                )
            else:
                continue
            cid = c.id
            svc = snap.service(c.service)
            svc_name = svc.name if svc else f"{c.service} (removed)"
            yield Finding(
                runbook=NAME,
                key=f"{NAME}:{cid}",
                summary=f"container {cid[:12]} of {svc_name} keeps running on "
                f"{names.get(node, node)}: {why}",
                cause="task-gone" if task is None else "task-elsewhere-or-shut-down",
                severity=Severity.WARNING,
                service_id=c.service,
                service_name=svc.name if svc else "",
                task_ids=(c.task,),
                node_ids=(node,),
                advice=f"remove it on {names.get(node, node)}: docker rm -f {cid[:12]}",
                actionable=True,
                details={"node": node, "container": cid},
            )


def plan(finding: Finding, ctx: Context) -> Action | None:
    svc = ctx.snapshot.service(finding.service_id)
    return Action(
        ActionKind.REMOVE_ORPHAN,
        finding.service_id,
        svc.name if svc else finding.service_id,
        svc.version if svc else 0,
        f"remove orphan container {finding.details.get('container', '')[:12]}",
        task_id=finding.task_ids[0],
        node_id=finding.details.get("node", ""),
    )
