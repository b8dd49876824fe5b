"""node-down: a node that is not ready, with the tasks swarm still shows on it; never acts."""

from __future__ import annotations

from dataclasses import replace

import pytest

from runbooks.node_down import UNKNOWN_GRACE
from swarm_medic.core.model import Node, Severity
from swarm_medic.core.runbook import Runbook
from tests import builders as build
from tests.unit.runbooks.kit import REGISTRY, detect
from tests.unit.runbooks.one_worker import ctx, node, service, task

NODE_DOWN: Runbook = REGISTRY.runbooks["node-down"]


def down_node(nid: str, role: str = "worker", state: str = "down") -> Node:
    return build.node(
        nid, role=role, state=state, message="heartbeat failure", addr=f"10.99.0.{len(nid)}"
    )


@pytest.mark.parametrize(
    ("state", "role", "severity"),
    [
        ("down", "worker", Severity.WARNING),
        ("disconnected", "worker", Severity.WARNING),
        ("down", "manager", Severity.CRITICAL),
    ],
)
def test_node_down_lists_the_tasks_swarm_still_shows(
    state: str, role: str, severity: Severity
) -> None:
    tasks = [
        task("t1", "running", node_id="n2"),
        task("t2", "running", node_id="n2", sid="svc2"),
        task("t3", "running", node_id="n1"),
        task("t4", "shutdown", node_id="n2", desired="shutdown"),
        task("t5", "running", node_id="n2", desired="shutdown"),  # given up, still shown
    ]
    c = ctx(
        [service(), service("svc2", name="db")], tasks, nodes=[node(), down_node("n2", role, state)]
    )
    (f,) = detect(NODE_DOWN, c)
    assert f.key == "node-down:n2"
    assert f.node_ids == ("n2",)
    assert f.severity is severity
    assert f.cause == state
    assert "3 task(s)" in f.summary  # t5: swarm gave up on it but still shows it running
    assert "heartbeat failure" in f.summary
    assert "db.1 (running, desired running)" in f.advice
    assert "web.1 (running, desired running)" in f.advice
    assert not f.actionable
    assert NODE_DOWN.plan(f, c) is None


def test_an_unknown_node_is_reported_only_once_unknown_past_the_grace() -> None:
    """After an election the new leader says "unknown" of every node for up to a minute: not
    a finding (and not a storm) until a node stays unknown past the grace."""
    nodes = [node(), down_node("n2", "worker", "unknown")]
    first = ctx([service()], [task("t1", "running", node_id="n2")], nodes=nodes)
    assert detect(NODE_DOWN, first) == []
    within = replace(first, now=first.now + UNKNOWN_GRACE - 1)
    assert detect(NODE_DOWN, within) == []
    past = replace(first, now=first.now + UNKNOWN_GRACE)
    (f,) = detect(NODE_DOWN, past)
    assert (f.cause, f.severity) == ("unknown", Severity.WARNING)


def test_ready_nodes_make_no_node_down_finding() -> None:
    assert detect(NODE_DOWN, ctx([service()], [task("t1", "running", node_id="n1")])) == []
