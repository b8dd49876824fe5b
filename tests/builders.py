"""Model builders shared by the tests: one way to make a node, service, task or snapshot.

Every field has a keyword default that makes a healthy, ordinary object (a ready active
worker, a one-replica service, a running task meant to run); a test names only what it is
about. Sizes are in CPUs and GiB, converted here to the engine's NanoCPUs and bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from swarm_medic.core.model import Node, Resources, Service, Snapshot, SwarmInfo, Task, UpdateStatus

CPU = 1_000_000_000  # NanoCPUs of one CPU
GIB = 1 << 30
NOW = 1_700_000_000.0


def node(
    nid: str = "n1",
    *,
    hostname: str = "",
    role: str = "worker",
    availability: str = "active",
    state: str = "ready",
    message: str = "",
    addr: str = "10.0.0.1",
    labels: Mapping[str, str] | None = None,
    engine_labels: Mapping[str, str] | None = None,
    cpus: float = 2,
    mem_gib: float = 4,
    leader: bool = False,
    platform_os: str = "linux",
    platform_arch: str = "x86_64",
    version: int = 1,
    created_at: float = 0.0,
    updated_at: float = 0.0,
) -> Node:
    return Node(
        id=nid,
        hostname=hostname or f"host-{nid}",
        role=role,
        availability=availability,
        state=state,
        message=message,
        addr=addr,
        labels=MappingProxyType(dict(labels or {})),
        engine_labels=MappingProxyType(dict(engine_labels or {})),
        platform_os=platform_os,
        platform_arch=platform_arch,
        resources=Resources(int(cpus * CPU), int(mem_gib * GIB)),
        leader=leader,
        version=version,
        created_at=created_at,
        updated_at=updated_at,
    )


def service(
    sid: str = "svc1",
    *,
    name: str = "",
    version: int = 1,
    labels: Mapping[str, str] | None = None,
    mode: str = "replicated",
    replicas: int | None = 1,
    image: str = "",
    constraints: tuple[str, ...] = (),
    cpus: float = 0,
    mem_gib: float = 0,
    max_per_node: int = 0,
    update: UpdateStatus | str | None = None,
    previous: bool = False,
    endpoint_mode: str = "vip",
    ports: tuple[int, ...] = (),
    vips: tuple[tuple[str, str], ...] = (),
) -> Service:
    """`update` may be just the update state ("paused") or a whole UpdateStatus."""
    return Service(
        id=sid,
        name=name or f"name-{sid}",
        version=version,
        labels=MappingProxyType(dict(labels or {})),
        mode=mode,
        replicas=replicas,
        image=image,
        constraints=constraints,
        max_replicas_per_node=max_per_node,
        reservations=Resources(int(cpus * CPU), int(mem_gib * GIB)),
        update_status=UpdateStatus(update) if isinstance(update, str) else update,
        has_previous_spec=previous,
        endpoint_mode=endpoint_mode,
        target_ports=ports,
        vips=vips,
    )


def task(
    tid: str = "t1",
    *,
    sid: str = "svc1",
    node_id: str = "n1",
    state: str = "running",
    desired: str = "running",
    slot: int | None = 1,
    message: str = "",
    err: str = "",
    timestamp: float = 0.0,
    container_id: str = "",
    addresses: tuple[tuple[str, str, str], ...] = (),
    image: str = "",
) -> Task:
    return Task(
        id=tid,
        service_id=sid,
        slot=slot,
        node_id=node_id,
        state=state,
        desired_state=desired,
        message=message,
        err=err,
        timestamp=timestamp,
        container_id=container_id,
        addresses=addresses,
        image=image,
    )


def snapshot(
    *,
    nodes: Iterable[Node] = (),
    services: Iterable[Service] = (),
    tasks: Iterable[Task] = (),
    taken_at: float = NOW,
    me: str = "n1",
    addr: str = "10.0.0.1",
    manager: bool = True,
) -> Snapshot:
    """What node `me` (a manager, by default) saw at `taken_at`."""
    return Snapshot(
        taken_at=taken_at,
        info=SwarmInfo(me, addr, "active", manager),
        nodes=tuple(nodes),
        services=tuple(services),
        tasks=tuple(tasks),
    )
