"""A task container that keeps running on a node after swarm forgot its task.

Symptom: a node runs a container that swarm created for a task (named and labelled by swarm:
com.docker.swarm.task.id) whose task no longer exists in the swarm, or is assigned to another
node, or is no longer desired running, and it is still running well after swarm should have
stopped it. Swarm will not stop it and `docker service ps` does not show it (moby#24244,
moby#35107); it may still hold ports, volumes and memory, or answer on the overlay with stale
data.

Cause: the node missed the shutdown (its engine was killed or cut off while its tasks moved,
the service was removed meanwhile), or an agent bug.

Not an orphan: the old task of a rolling update, a scale-down or a `docker service rm` while
swarm stops it. So the grace period counts from when the medic first saw the container in that
state (not from the task's own timestamp, which says when it started running) and is
the setting `grace` plus the longest stop grace that applies: the service's stop_grace_period
(remembered for an hour after the service is removed), the container's own stop timeout, or
5 minutes for a service removed before the medic ever saw it. A
container swarm did not make (its name is not the one swarm gives a task container, or its
image carries task labels: a copy made with `docker commit`) is never taken for a task.

What the medic does: asks the instance on that node to retire the container the way swarm
would: its own stop signal, its own grace period, then removal (the node's hand checks first
that swarm made it). Orphans of services that still exist follow the service's opt-in label;
orphans of removed services are acted on only with --scope all. Verified when the node no
longer lists the container.

Risks: removing a container loses what it held outside volumes; an orphan is by definition
no longer part of any service, so nothing should depend on it.
"""

from __future__ import annotations

from collections.abc import Iterator

from swarm_medic.runbook import (
    DAY,
    ENDED_STATES,
    PROBES,
    Action,
    Container,
    Context,
    Duration,
    Finding,
    Setting,
    Severity,
    Target,
    remove_orphan,
)

NAME = "orphan-container"
NEEDS = (PROBES,)  # the containers each node lists come with the probe rounds
SETTINGS = (
    Setting(
        "grace",
        Duration(0.1, 30 * DAY),
        "60s",
        "how long a task container may outlive its task (desired shutdown), on top of its "
        "stop grace period, before it counts as an orphan",
        "DURATION",
    ),
)
# A service removed before the medic ever saw it: its stop grace period is unknown (swarm does
# not copy it into the container), so assume a long one rather than cut a shutdown short.
UNKNOWN_STOP_GRACE = 300.0


def stop_grace(ctx: Context, container: Container) -> float:
    """The longest of: the service's stop_grace_period (live, or remembered from the last hour
    after a removal), the container's own stop timeout; UNKNOWN_STOP_GRACE if neither is known."""
    known = [
        s.stop_grace_period
        for s in (ctx.snapshot.service(container.service), ctx.services_seen.get(container.service))
        if s is not None
    ]
    if container.stop_timeout is not None:
        known.append(container.stop_timeout)
    return max(known) if known else UNKNOWN_STOP_GRACE


def detect(ctx: Context) -> Iterator[Finding]:
    reach, snap = ctx.probes.reach, ctx.snapshot
    names = {n.id: n.hostname or n.id for n in snap.nodes}
    for node, containers in sorted(reach.containers.items()):
        for c in containers:
            # only a container swarm made (the node checked its name and its image's labels)
            if c.state != "running" or not c.task or c.swarm_made is not True:
                continue
            task = snap.task(c.task)
            if task is None:
                why = "its task no longer exists in the swarm"
            elif task.node_id and task.node_id != node:
                why = f"its task is assigned to {names.get(task.node_id, task.node_id)}"
            elif task.desired_state in ENDED_STATES:
                why = f"its task is desired {task.desired_state}"
            else:
                continue
            cid = c.id
            svc = snap.service(c.service)
            # swarm may still be stopping it: give it the longest stop grace we can know of
            grace = ctx.settings.grace + stop_grace(ctx, c)
            seen_for = ctx.now - ctx.since(f"{node}:{cid}")
            if seen_for < grace:
                continue
            svc_name = svc.name if svc else f"{c.service} (removed)"
            yield Finding.about(
                cid,
                summary=f"container {cid[:12]} of {svc_name} keeps running on "
                f"{names.get(node, node)}: {why}, seen like this for {seen_for:.0f}s "
                f"(grace {grace:.0f}s)",
                cause="task-gone" if task is None else "task-elsewhere-or-shut-down",
                severity=Severity.WARNING,
                service_id=c.service,
                service_name=svc.name if svc else "",
                task_ids=(c.task,),
                node_ids=(node,),
                advice=f"stop and remove it on {names.get(node, node)}: "
                f"docker stop {cid[:12]} && docker rm {cid[:12]}",
                actionable=True,
                target=Target.for_container(cid, node, c.task),
            )


def plan(finding: Finding, ctx: Context) -> Action | None:
    if finding.target is None:
        return None
    return remove_orphan(
        finding.service_id,
        ctx.snapshot.service(finding.service_id),
        finding.target,
        f"remove orphan container {finding.target.id[:12]}",
    )
