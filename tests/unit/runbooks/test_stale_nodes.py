"""stale-nodes: the Down entry a rejoined machine leaves behind (a ghost), and workers Down for
longer than `after`; a worker's ghost removed only when the operator opted in."""

from __future__ import annotations

import pytest

from swarm_medic.core.model import ActionKind, Node, Severity
from swarm_medic.core.runbook import Context, Runbook, context
from swarm_medic.core.settings import Settings
from swarm_medic.pipeline import match
from tests import builders as build
from tests.builders import NOW
from tests.unit.runbooks.kit import REGISTRY, detect

STALE: Runbook = REGISTRY.runbooks["stale-nodes"]
NODE_DOWN: Runbook = REGISTRY.runbooks["node-down"]
HOUR, DAY = 3600.0, 86400.0
LEFT = NOW - 2 * HOUR  # when node3's old entry went down
REJOINED = NOW - HOUR  # when node3 joined again under a new id


def manager() -> Node:
    return build.node("m1", hostname="node1", role="manager", leader=True, created_at=NOW - DAY)


def entry(
    nid: str = "old3",
    *,
    role: str = "worker",
    state: str = "down",
    addr: str = "10.99.0.13",
    updated: float = LEFT,
    created: float = NOW - DAY,
    hostname: str = "node3",
) -> Node:
    return build.node(
        nid,
        hostname=hostname,
        role=role,
        state=state,
        message="heartbeat failure" if state == "down" else "",
        addr=addr,
        version=17,
        created_at=created,
        updated_at=updated,
    )


def twin(
    nid: str = "new3", *, addr: str = "10.99.0.13", created: float = REJOINED, role: str = "worker"
) -> Node:
    return build.node(
        nid, hostname="node3", role=role, addr=addr, created_at=created, updated_at=created
    )


def ctx(*nodes: Node, rb: Runbook = STALE) -> Context:
    snap = build.snapshot(nodes=(manager(), *nodes), me="m1")
    return rb.bind(context(snap, NOW, Settings()))


def test_a_rejoined_machines_old_entry_is_a_ghost() -> None:
    c = ctx(entry(), twin())
    (f,) = detect(STALE, c)
    assert f.key == "stale-nodes:ghost:old3"
    assert (f.cause, f.severity, f.node_ids) == ("ghost", Severity.WARNING, ("old3",))
    assert f.target is not None and f.target.id == "old3"
    assert "entry old3 (worker, 10.99.0.13)" in f.summary
    assert "Down since 2023-11-14T20:13:20Z" in f.summary  # LEFT
    assert "joined again as new3" in f.summary
    assert "`docker node rm old3`" in f.advice
    assert "stale-nodes.action=remove" in f.advice
    assert f.details["now_runs_as"] == "new3"
    assert not f.actionable  # report only by default
    assert STALE.plan(f, c) is None
    # node-down leaves it to this runbook: the machine is up, under its new id
    assert detect(NODE_DOWN, ctx(entry(), twin(), rb=NODE_DOWN)) == []


def test_an_entry_moved_by_a_leader_change_is_still_told_by_its_address() -> None:
    # a new leader marked every node unknown, then down again: UpdatedAt is after the rejoin
    (f,) = detect(STALE, ctx(entry(updated=NOW - 60), twin()))
    assert f.cause == "ghost"


@pytest.mark.parametrize(
    "nodes",
    [
        pytest.param((), id="healthy-swarm"),
        pytest.param(
            # two machines cloned with one hostname: one reboots (Down a moment) while the
            # other, which joined long before and from another address, is Ready
            (entry(updated=NOW - 30), twin(addr="10.99.0.23", created=NOW - DAY)),
            id="cloned-hostname-rebooting",
        ),
        pytest.param((entry(updated=NOW - 30, created=NOW - 300), twin()), id="not-down-for-long"),
        pytest.param((entry(state="unknown"), twin()), id="unknown-is-not-down"),
        pytest.param((entry(), twin(created=0.0)), id="twin-joining-unknown"),
        pytest.param((entry(hostname=""), twin()), id="no-hostname"),
    ],
)
def test_no_ghost_and_nothing_stale(nodes: tuple[Node, ...]) -> None:
    assert detect(STALE, ctx(*nodes)) == []


def test_a_down_node_that_is_not_a_ghost_is_still_node_downs() -> None:
    rebooting = entry(updated=NOW - 30)
    c = ctx(rebooting, twin(addr="10.99.0.23", created=NOW - DAY), rb=NODE_DOWN)
    (f,) = detect(NODE_DOWN, c)
    assert f.node_ids == ("old3",)


def test_a_worker_down_for_longer_than_after_is_stale() -> None:
    gone = entry(updated=NOW - 2 * DAY)
    (f,) = detect(STALE, ctx(gone))
    assert f.key == "stale-nodes:down:old3"
    assert (f.cause, f.severity) == ("long-down", Severity.INFO)
    assert "Down for 2.0d" in f.summary and "heartbeat failure" in f.summary
    assert "`docker node rm old3`" in f.advice and "certificate" in f.advice
    assert not f.actionable  # a worker that may come back is never removed by the medic
    assert detect(STALE, ctx(entry(updated=NOW - 2 * HOUR))) == []  # under 24h
    shorter = STALE.with_settings(after="1h")
    assert [f.key for f in detect(shorter, ctx(entry(updated=NOW - 2 * HOUR), rb=shorter))] == [
        "stale-nodes:down:old3"
    ]
    # a manager down for long is manager-quorum's and node-down's to report
    assert detect(STALE, ctx(entry(role="manager", updated=NOW - 2 * DAY))) == []


def test_a_worker_ghost_is_removed_only_when_opted_in() -> None:
    remove = STALE.with_settings(action="remove")
    c = ctx(entry(), twin(), rb=remove)
    (f,) = detect(remove, c)
    assert f.actionable
    action = remove.plan(f, c)
    assert action is not None
    assert (action.kind, action.node_id, action.service_version) == (
        ActionKind.REMOVE_NODE,
        "old3",
        17,
    )
    assert (action.service_id, action.subject) == ("", "old3")
    assert match.off_target(f, action) == ""


def test_a_managers_ghost_is_reported_never_removed() -> None:
    remove = STALE.with_settings(action="remove")
    c = ctx(entry(role="manager"), twin(role="manager"), rb=remove)
    (f,) = detect(remove, c)
    assert f.cause == "ghost" and not f.actionable
    assert "`docker node demote old3`, then `docker node rm old3`" in f.advice
    assert "raft quorum" in f.advice
    assert remove.plan(f, c) is None


def test_a_removal_aimed_at_another_node_is_refused() -> None:
    remove = STALE.with_settings(action="remove")
    c = ctx(entry(), twin(), rb=remove)
    (f,) = detect(remove, c)
    action = remove.plan(f, c)
    assert action is not None
    stolen = type(action)(action.kind, "", "", 17, "x", node_id="new3")
    assert "not the node of its finding" in match.off_target(f, stolen)
