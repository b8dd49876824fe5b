"""The world of the stuck-task, paused-update, repeated-rejection and node-down tests: a
service web (version 42, image shop/web:9.9) whose tasks run, wait or fail on worker-1 (a
worker in zone us, 2 CPUs), seen at NOW. A task is made by its state and its age."""

from __future__ import annotations

from types import MappingProxyType

from swarm_medic.core.model import Node, Resources, Service, Snapshot, SwarmInfo, Task, UpdateStatus
from swarm_medic.core.runbook import Context, TaskClock, context
from swarm_medic.core.settings import Settings
from tests.builders import NOW

CPU = 1_000_000_000
GIB = 1 << 30

ERR_IMAGE = "No such image: shop/web:9.9"


def node(
    nid: str = "n1",
    hostname: str = "worker-1",
    labels: dict[str, str] | None = None,
    cpus: int = 2,
) -> Node:
    return Node(
        id=nid,
        hostname=hostname,
        role="worker",
        availability="active",
        state="ready",
        labels=MappingProxyType(labels or {"zone": "us"}),
        resources=Resources(cpus * CPU, 4 * GIB),
    )


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
    return Service(
        id=sid,
        name=name,
        version=42,
        labels=MappingProxyType(labels or {}),
        replicas=1,
        image="shop/web:9.9",
        constraints=constraints,
        max_replicas_per_node=max_per_node,
        reservations=Resources(int(cpus * CPU), 0),
        update_status=update,
        has_previous_spec=previous,
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
    return Task(
        id=tid,
        service_id=sid,
        slot=1,
        node_id=node_id,
        state=state,
        desired_state=desired,
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
    snap = Snapshot(
        taken_at=NOW,
        info=SwarmInfo("n1", "10.0.0.1", "active", True),
        nodes=tuple(nodes if nodes is not None else [node()]),
        services=tuple(services),
        tasks=tuple(tasks),
    )
    return context(snap, NOW, Settings(), clock or TaskClock())
