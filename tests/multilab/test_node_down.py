"""node-down on the 3-node lab: a worker's dockerd is killed under a running medic."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.labkit import (
    MedicProcess,
    image_id,
    multilab,
    node_sock,
    on_node,
    record_timing,
    ts,
)
from tests.waiting import wait_until

pytestmark = pytest.mark.lab


@pytest.fixture
def spread_service(multilab_up: None) -> Iterator[str]:
    name = f"medic-spread-{uuid.uuid4().hex[:6]}"
    on_node(
        1,
        "service",
        "create",
        "-d",
        "--name",
        name,
        "--replicas",
        "3",
        "--replicas-max-per-node",
        "1",
        "--stop-grace-period",
        "1s",
        "--label",
        "medic.lab=1",
        "--no-resolve-image",
        image_id(),
        "sleep",
        "3600",
    )
    yield name
    on_node(1, "service", "rm", name, check=False)


def running_nodes(name: str) -> list[str]:
    out = on_node(
        1,
        "service",
        "ps",
        name,
        "--filter",
        "desired-state=running",
        "--format",
        "{{.Node}} {{.CurrentState}}",
    )
    return sorted(line.split()[0] for line in out.splitlines() if " Running" in line)


def test_node_down_is_reported_once_and_resolves(
    spread_service: str, medic: Callable[..., MedicProcess]
) -> None:
    name = spread_service
    wait_until("one task per node", lambda: running_nodes(name) == ["node1", "node2", "node3"], 30)
    node3 = on_node(3, "info", "--format", "{{.Swarm.NodeID}}")
    m = medic(docker_host=node_sock(1), runbook_stuck_task_after="pending=4s")
    m.wait_for("scan", 15) if m.find("scan") else m.wait_for("event stream connected", 15)

    t_kill = time.time()
    multilab("kill-node", "3")
    try:
        finding = m.wait_for("finding", 30, runbook="node-down")
        assert finding["nodes"] == [node3]
        assert "node3" in finding["summary"] and "1 task(s)" in finding["summary"]
        assert f"{name}." in finding["diagnosis"]
        # Swarm alone: the task cannot move (max one per node on the two nodes left).
        pending = m.wait_for("finding", 30, runbook="stuck-task", service=name)
        assert pending["cause"] == "max-replicas"
        m.wait_for("decision: report only", 5, runbook="node-down")
        time.sleep(4)
        assert len(m.find("finding", runbook="node-down")) == 1
        assert not m.find("action:")
    finally:
        multilab("start-node", "3")
    resolved = m.wait_for("resolved", 60, runbook="node-down")
    assert resolved["incident"] == finding["incident"]
    wait_until("task back on node3", lambda: "node3" in running_nodes(name), 60)
    record_timing(
        runbook="node-down",
        fault="worker dockerd SIGKILLed (heartbeat 1 s)",
        detect=round(ts(finding) - t_kill, 1),
        action="none (report once)",
        resolved_after_restart=round(ts(resolved) - t_kill, 1),
    )
