"""stale-nodes on the 3-node lab: a worker leaves the swarm and joins again under a new node id,
leaving its old entry Down (moby#24106). A medic on the leader finds the ghost and names it;
reporting only by default, it removes the entry (`docker node rm`, never forced) once opted in
with stale-nodes.action=remove, and verifies it gone. The machine itself, under its new id,
is untouched.

The lab's nodes are all managers (the session's MANAGERS=3): the node that leaves is demoted
first, as only a worker leaves cleanly, and promoted again at the end under its new id.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from tests.labkit import MedicProcess, node_sock, on_node, record_timing, ts
from tests.multilab.kit import leader_index, node_id
from tests.waiting import wait_until

pytestmark = pytest.mark.lab

Medic = Callable[..., MedicProcess]


def listed() -> dict[str, str]:
    """node id -> its Status ("Ready", "Down", ...) as the managers list it."""
    out = on_node(leader_index(), "node", "ls", "--format", "{{.ID}} {{.Status}}")
    return dict(line.split(maxsplit=1) for line in out.splitlines() if " " in line.strip())


def swarm_state(i: int) -> str:
    return on_node(i, "info", "--format", "{{.Swarm.LocalNodeState}}", check=False)


def join_as_worker(i: int, lead: int) -> None:
    token = on_node(lead, "swarm", "join-token", "-q", "worker")
    on_node(
        i,
        "swarm",
        "join",
        "--token",
        token,
        "--advertise-addr",
        f"10.99.0.1{i}",
        "--listen-addr",
        f"10.99.0.1{i}:2377",
        f"10.99.0.1{lead}:2377",
    )


@pytest.fixture
def rejoined() -> Iterator[tuple[int, str, str, float]]:
    """A node other than the leader, demoted, left and joined again as a worker.
    -> (its number, its old id, its new id, when it left)."""
    lead = leader_index()
    victim = 3 if lead != 3 else 2
    old = node_id(victim)
    on_node(lead, "node", "demote", old)
    wait_until(
        f"node{victim} a worker",
        lambda: on_node(victim, "info", "--format", "{{.Swarm.ControlAvailable}}") == "false",
        30,
    )
    t_left = time.time()
    new = ""
    try:
        on_node(victim, "swarm", "leave")
        wait_until(f"node{victim}'s entry Down", lambda: listed().get(old) == "Down", 30)
        join_as_worker(victim, lead)
        new = node_id(victim)
        assert new and new != old, "the machine joined again under a new node id"
        wait_until(f"node{victim} Ready again", lambda: listed().get(new) == "Ready", 30)
        yield victim, old, new, t_left
    finally:
        if swarm_state(victim) != "active":
            join_as_worker(victim, lead)
            new = node_id(victim)
        on_node(leader_index(), "node", "promote", new or node_id(victim), check=False)
        if old in listed():
            on_node(leader_index(), "node", "rm", "--force", old, check=False)


def test_a_rejoined_workers_ghost_is_reported_and_removed_when_opted_in(
    rejoined: tuple[int, str, str, float], medic: Medic
) -> None:
    victim, old, new, t_left = rejoined
    host = node_sock(leader_index())

    # report only, by default: found and named, never removed
    watcher = medic(docker_host=host)
    found = watcher.wait_for("finding", 30, runbook="stale-nodes")
    assert found["nodes"] == [old]
    assert found["cause"] == "ghost"
    summary = str(found["summary"])
    assert f"entry {old} (worker, 10.99.0.1{victim})" in summary
    assert f"joined again as {new}" in summary
    assert f"`docker node rm {old}`" in str(found["diagnosis"])
    watcher.wait_for("decision: report only", 10, runbook="stale-nodes")
    time.sleep(4)  # two more scans
    assert old in listed() and not watcher.find("action:")
    # node-down leaves the ghost to stale-nodes (this medic started after the rejoin)
    assert not [f for f in watcher.find("finding", runbook="node-down") if f["nodes"] == [old]]
    watcher.stop()

    # opted in: the leader's medic removes the ghost and verifies it gone
    acting = medic(docker_host=host, runbook_stale_nodes_action="remove")
    finding = acting.wait_for("finding", 30, runbook="stale-nodes")
    action = acting.wait_for("action: remove_node done", 15, runbook="stale-nodes")
    assert action["nodes"] == [old]
    healed = acting.wait_for("verified: healed", 30, runbook="stale-nodes")
    assert healed["detail"] == f"node {old} is no longer listed"
    now = listed()
    assert old not in now
    assert now[new] == "Ready"  # the machine, under its new id, untouched
    assert len(acting.find("action: remove_node")) == 1

    record_timing(
        runbook="stale-nodes",
        fault="a worker left the swarm and joined again (new node id, old entry Down)",
        detect=round(ts(found) - t_left, 1),
        action="docker node rm of the ghost (stale-nodes.action=remove)",
        finding_to_removed=round(ts(action) - ts(finding), 1),
        removed_to_healed=round(ts(healed) - ts(action), 1),
    )
