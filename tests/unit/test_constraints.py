"""swarm_medic.core.constraints: placement constraints and capacity, as swarmkit evaluates them."""

from __future__ import annotations

import pytest

from swarm_medic.core.constraints import (
    fitting_nodes,
    free_resources,
    placement_misses,
    violation,
)
from swarm_medic.core.model import Node, Service, Snapshot, Task
from tests import builders as build
from tests.builders import GIB, node, service


def snapshot(
    nodes: list[Node], services: list[Service], tasks: list[Task] | None = None
) -> Snapshot:
    return build.snapshot(nodes=nodes, services=services, tasks=tasks or (), taken_at=1000.0)


# --- violation() ---------------------------------------------------------------------------

EU = node(
    "n1",
    hostname="Worker-EU-1",
    role="manager",
    labels={"zone": "eu", "disk": "ssd"},
    engine_labels={"storage": "fast"},
)


@pytest.mark.parametrize(
    ("constraint", "why"),
    [
        # node labels
        ("node.labels.zone==eu", None),
        ("node.labels.zone == eu", None),
        ("node.labels.zone==us", "node.labels.zone is 'eu', needs 'us'"),
        ("node.labels.zone!=us", None),
        ("node.labels.zone!=eu", "node.labels.zone is 'eu', must not be"),
        ("node.labels.gpu==true", "node.labels.gpu is not set"),
        ("node.labels.gpu!=true", None),  # an absent label is never equal
        ("node.labels.Zone==eu", "node.labels.Zone is not set"),  # label keys are case-sensitive
        # role
        ("node.role==manager", None),
        ("node.role==worker", "node.role is 'manager', needs 'worker'"),
        ("node.role!=manager", "node.role is 'manager', must not be"),
        ("node.role==MANAGER", None),
        # hostname / id / platform: case-insensitive values and keys
        ("node.hostname==worker-eu-1", None),
        ("node.hostname==WORKER-EU-1", None),
        ("node.hostname!=worker-eu-1", "node.hostname is 'Worker-EU-1', must not be"),
        ("node.hostname==other", "node.hostname is 'Worker-EU-1', needs 'other'"),
        ("Node.Hostname==worker-eu-1", None),
        ("node.id==n1", None),
        ("node.id!=n1", "node.id is 'n1', must not be"),
        ("node.platform.os==linux", None),
        ("node.platform.os==windows", "node.platform.os is 'linux', needs 'windows'"),
        ("node.platform.arch==X86_64", None),
        # engine labels
        ("engine.labels.storage==fast", None),
        ("engine.labels.storage==slow", "engine.labels.storage is 'fast', needs 'slow'"),
        ("engine.labels.missing==x", "engine.labels.missing is not set"),
        ("engine.labels.storage!=fast", "engine.labels.storage is 'fast', must not be"),
        # unreadable
        ("zone=eu", "cannot read constraint 'zone=eu'"),
        ("node.labels.zone", "cannot read constraint 'node.labels.zone'"),
        ("node.labels.zone<>eu", "cannot read constraint 'node.labels.zone<>eu'"),
        ("", "cannot read constraint ''"),
    ],
)
def test_check(constraint: str, why: str | None) -> None:
    assert violation(constraint, EU) == why


def test_label_values_compare_case_insensitively_like_swarmkit() -> None:
    assert violation("node.labels.zone==EU", EU) is None


def test_node_ip_constraint() -> None:
    assert violation("node.ip==10.0.0.1", EU) is None


# --- placement_misses / fitting_nodes ------------------------------------------------------


def _misses(snap: Snapshot, svc: Service) -> dict[str, str]:
    return {m.node.id: m.why for m in placement_misses(snap, svc)}


def test_down_and_drained_nodes_miss() -> None:
    nodes = [
        node("n1"),
        node("n2", state="down"),
        node("n3", availability="drain"),
        node("n4", availability="pause"),
        node("n5", state="unknown", availability="drain"),  # state is reported first
    ]
    svc = service()
    snap = snapshot(nodes, [svc])
    assert _misses(snap, svc) == {
        "n2": "node is down",
        "n3": "node availability is drain",
        "n4": "node availability is pause",
        "n5": "node is unknown",
    }
    assert [n.id for n in fitting_nodes(snap, svc)] == ["n1"]


def test_constraints_first_failing_one_is_reported() -> None:
    nodes = [
        node("n1", labels={"zone": "eu"}, role="manager"),
        node("n2", labels={"zone": "eu"}),
        node("n3", labels={"zone": "us"}),
        node("n4"),
    ]
    svc = service(constraints=("node.labels.zone==eu", "node.role==worker"))
    snap = snapshot(nodes, [svc])
    assert _misses(snap, svc) == {
        "n1": "node.role is 'manager', needs 'worker'",
        "n3": "node.labels.zone is 'us', needs 'eu'",
        "n4": "node.labels.zone is not set",
    }
    assert [n.id for n in fitting_nodes(snap, svc)] == ["n2"]


def test_no_node_fits() -> None:
    svc = service(constraints=("node.labels.gpu==true",))
    snap = snapshot([node("n1"), node("n2")], [svc])
    assert fitting_nodes(snap, svc) == []
    assert len(placement_misses(snap, svc)) == 2


def test_free_resources_subtract_running_tasks_reservations() -> None:
    big = service("big", cpus=1.5, mem_gib=1)
    small = service("small", cpus=0.25, mem_gib=0.5)
    n1 = node("n1", cpus=2, mem_gib=4)
    tasks = [
        build.task("t1", sid="big", node_id="n1"),
        build.task("t2", sid="small", node_id="n1"),
        build.task("t3", sid="small", node_id="n1"),
        build.task(
            "t4", sid="small", node_id="n1", state="shutdown", desired="shutdown"
        ),  # not counted
        build.task("t5", sid="small", node_id="n2"),  # other node
        build.task("t6", sid="gone", node_id="n1"),  # service no longer exists: nothing to subtract
    ]
    snap = snapshot([n1, node("n2")], [big, small], tasks)
    assert free_resources(snap, n1) == (0, 2 * GIB)


@pytest.mark.parametrize(
    ("want_cpus", "want_mem_gib", "why"),
    [
        (0.5, 0, None),
        (1.0, 0, "0.50 CPUs free, needs 1.00"),
        (0, 2, None),
        (0, 3, "2048 MiB memory free, needs 3072 MiB"),
        (1.0, 3, "0.50 CPUs free, needs 1.00"),  # CPU is reported first
    ],
)
def test_reservations(want_cpus: float, want_mem_gib: float, why: str | None) -> None:
    used = service("used", cpus=1.5, mem_gib=2)
    svc = service("new", cpus=want_cpus, mem_gib=want_mem_gib)
    snap = snapshot(
        [node("n1", cpus=2, mem_gib=4)], [used, svc], [build.task("t1", sid="used", node_id="n1")]
    )
    assert _misses(snap, svc) == ({} if why is None else {"n1": why})


def test_reservation_fits_on_the_emptier_node() -> None:
    used = service("used", cpus=1.5)
    svc = service("new", cpus=1)
    nodes = [node("n1", cpus=2), node("n2", cpus=2)]
    snap = snapshot(nodes, [used, svc], [build.task("t1", sid="used", node_id="n1")])
    assert [n.id for n in fitting_nodes(snap, svc)] == ["n2"]


def test_max_replicas_per_node() -> None:
    svc = service("web", max_per_node=2)
    tasks = [
        build.task("t1", sid="web", node_id="n1"),
        build.task("t2", sid="web", node_id="n1"),
        build.task("t3", sid="web", node_id="n2"),
        build.task("t4", sid="web", node_id="n2", state="shutdown", desired="shutdown"),
        build.task("t5", sid="web", node_id="n3", state="failed", desired="shutdown"),
        build.task("t6", sid="web", node_id="n3", state="failed", desired="shutdown"),
    ]
    snap = snapshot([node("n1"), node("n2"), node("n3")], [svc], tasks)
    assert _misses(snap, svc) == {"n1": "already runs 2 (max 2 per node)"}
    assert [n.id for n in fitting_nodes(snap, svc)] == ["n2", "n3"]


def test_max_replicas_counts_tasks_not_yet_running() -> None:
    svc = service("web", max_per_node=1)
    snap = snapshot(
        [node("n1")], [svc], [build.task("t1", sid="web", node_id="n1", state="starting")]
    )
    assert _misses(snap, svc) == {"n1": "already runs 1 (max 1 per node)"}


def test_unconstrained_service_fits_every_ready_active_node() -> None:
    svc = service()
    nodes = [node("n1"), node("n2"), node("n3", state="down")]
    snap = snapshot(nodes, [svc])
    assert [n.id for n in fitting_nodes(snap, svc)] == ["n1", "n2"]


def test_unknown_constraint_key_never_matches() -> None:
    # swarmkit refuses a service with an unknown key; we must not call such a node a fit
    n = Node(id="n1", hostname="h", role="worker", availability="active", state="ready")
    assert (
        violation("node.colour!=red", n)
        == "unknown constraint key 'node.colour' (swarm rejects it too)"
    )
