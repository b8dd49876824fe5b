"""The world of the overlay runbooks' tests (unreachable-endpoint, stale-dns, dead-vip): three
workers, one running task of service web on each (t1 on n1, t2 on n2, t3 on n3), and a
Reachability filled directly: the from-node x to-task matrix, DNS answers and VIP cells."""

from __future__ import annotations

from collections.abc import Mapping

from swarm_medic.core.model import Node, Service, Snapshot, Task
from swarm_medic.core.reach import Cell, Reachability
from swarm_medic.core.runbook import Context, TaskClock, context
from swarm_medic.core.settings import Settings
from tests import builders as build
from tests.builders import NOW

NET = "net0123456789abcdef"
VIP = "10.0.1.100"
ENABLE = {"swarm-medic.enable": "true"}
SETTINGS = Settings()  # probe_failures 3, scope opt-in
K = SETTINGS.probe_failures

NODES = ("n1", "n2", "n3")
# one task of the service on each node: t1 on n1, t2 on n2, t3 on n3
TASK_NODE = {"t1": "n1", "t2": "n2", "t3": "n3"}
TASK_IP = {"t1": "10.0.1.2", "t2": "10.0.1.3", "t3": "10.0.1.4"}


def node(nid: str) -> Node:
    return build.node(nid, hostname=f"worker-{nid[-1]}", addr=f"192.168.0.{nid[-1]}")


def service(labels: Mapping[str, str] = ENABLE) -> Service:
    return build.service(
        "s1", name="web", version=7, labels=labels, replicas=None, ports=(80,), vips=((NET, VIP),)
    )


def task(tid: str, state: str = "running") -> Task:
    return build.task(
        tid,
        sid="s1",
        slot=int(tid[-1]),
        node_id=TASK_NODE[tid],
        state=state,
        timestamp=NOW - 1000,
        addresses=((NET, "app", TASK_IP[tid]),),
    )


def snapshot(svc: Service | None = None, tasks: list[Task] | None = None) -> Snapshot:
    return build.snapshot(
        nodes=[node(n) for n in NODES],
        services=[svc or service()],
        tasks=tasks if tasks is not None else [task(t) for t in TASK_NODE],
        addr="192.168.0.1",
    )


def matrix(fails: Mapping[tuple[str, str], int] | None = None) -> Reachability:
    """Every node probes every task; OK unless (from node, task) has a failure count."""
    r = Reachability(round_at=NOW, rounds=5)
    for n in NODES:
        for t in TASK_NODE:
            f = (fails or {}).get((n, t), 0)
            r.tcp[(n, t)] = Cell(f == 0, "timeout" if f else "", f, NOW)
    return r


def ctx(reach: Reachability | None, snap: Snapshot | None = None) -> Context:
    return context(snap or snapshot(), NOW, SETTINGS, TaskClock(), reach=reach)
