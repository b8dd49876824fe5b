"""The world of the stuck-task, paused-update, repeated-rejection and node-down tests: a
service web (version 42, image shop/web:9.9) whose tasks run, wait or fail on worker-1 (a
worker in zone us, 2 CPUs), seen at NOW. A task is made by its state and its age."""

from __future__ import annotations

from swarm_medic.core.model import Node, Service, Task, UpdateStatus
from swarm_medic.core.runbook import Context, TaskClock, context
from swarm_medic.core.settings import Settings
from tests import builders as build
from tests.builders import NOW

ERR_IMAGE = "No such image: shop/web:9.9"


def node(
    nid: str = "n1",
    hostname: str = "worker-1",
    labels: dict[str, str] | None = None,
    cpus: int = 2,
) -> Node:
    return build.node(nid, hostname=hostname, labels=labels or {"zone": "us"}, cpus=cpus)


def service(
    sid: str = "svc1",
    *,
    name: str = "web",
    labels: dict[str, str] | None = None,
    constraints: tuple[str, ...] = (),
    cpus: float = 0,
    max_per_node: int = 0,
    update: UpdateStatus | None = None,
    previous: bool = False,
) -> Service:
    return build.service(
        sid,
        name=name,
        version=42,
        labels=labels,
        image="shop/web:9.9",
        constraints=constraints,
        cpus=cpus,
        max_per_node=max_per_node,
        update=update,
        previous=previous,
    )


def task(
    tid: str,
    state: str,
    *,
    age: float = 1000.0,
    err: str = "",
    message: str = "",
    sid: str = "svc1",
    node_id: str = "",
    desired: str = "running",
) -> Task:
    """Positional state and an age, as stuck-task reads a task; no node until one is given."""
    return build.task(
        tid,
        sid=sid,
        node_id=node_id,
        state=state,
        desired=desired,
        message=message,
        err=err,
        timestamp=NOW - age,
    )


def ctx(
    services: list[Service],
    tasks: list[Task],
    nodes: list[Node] | None = None,
    clock: TaskClock | None = None,
) -> Context:
    snap = build.snapshot(
        nodes=nodes if nodes is not None else [node()], services=services, tasks=tasks
    )
    return context(snap, NOW, Settings(), clock or TaskClock())
