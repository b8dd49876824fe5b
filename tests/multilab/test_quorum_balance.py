"""manager-quorum and unbalanced on the 3-node lab.

- A manager's dockerd is SIGKILLed: the medic on another manager reports it unreachable, 1 of
  3 gone, 0 more losses survivable, and that one more loss leaves the swarm with no leader;
  both incidents resolve once the node is back. It never acts.
- A node drained and made active again stays empty (swarm never rebalances): the medic
  force-updates the service labelled swarm-medic.rebalance=true and verifies it healed when
  the node runs a task again.
- The opposite: a rolling update and a scale 3 -> 6 -> 3 of such a service under the acting
  medic are never judged unbalanced, and nothing is done.

The session fixture makes nodes 2 and 3 managers already (MANAGERS=3, for the failover test);
the quorum test promotes only the nodes that are workers and demotes only those afterwards,
so every other test finds the layout it started with.
"""

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
from tests.multilab.kit import leader_index, managers, node_id
from tests.waiting import wait_until

pytestmark = pytest.mark.lab

Medic = Callable[..., MedicProcess]
SWARM_ALONE = 4.0  # seconds we watch swarm leave a returned node empty
AFTER = "5s"  # unbalanced.after in these tests


# --- manager-quorum --------------------------------------------------------------------------


@pytest.fixture
def three_managers(multilab_up: None) -> Iterator[None]:
    """nodes 1-3 all managers and reachable; those promoted here are demoted afterwards."""
    promoted = [h for h, s in managers().items() if s == ""]
    if promoted:
        on_node(1, "node", "promote", *promoted)
    wait_until(
        "3 reachable managers serving the API",
        lambda: (
            sorted(managers().values()) == ["Leader", "Reachable", "Reachable"]
            and all(on_node(i, "node", "ls", "-q", check=False) for i in (1, 2, 3))
        ),
        30,
    )
    yield
    if promoted:
        on_node(1, "node", "demote", *promoted, check=False)
        wait_until(
            "the promoted nodes workers again",
            lambda: all(managers().get(h) == "" for h in promoted),
            30,
        )


def test_a_manager_killed_is_reported_with_the_quorum_margin(
    three_managers: None, medic: Medic
) -> None:
    lead = leader_index()
    # never the leader (no election in this test) and never the medic's own node 1
    victim = next(i for i in (3, 2) if i != lead)
    vid = node_id(victim)
    m = medic(docker_host=node_sock(1), log_level="debug")  # debug: the "scan" lines
    m.wait_for("scan", 15)
    assert not m.find("finding", runbook="manager-quorum")  # 3 of 3 reachable: nothing

    t_kill = time.time()
    multilab("kill-node", str(victim))
    try:
        gone = m.wait_for("finding", 30, runbook="manager-quorum", cause="unreachable")
        assert gone["nodes"] == [vid]
        assert gone["severity"] == "critical"
        assert f"node{victim} (unreachable" in str(gone["summary"])
        assert "2 of 3 managers reachable, quorum 2: 0 more manager loss(es) survivable" in str(
            gone["summary"]
        )
        for step in ("docker node demote", "docker node rm --force", "--force-new-cluster"):
            assert step in str(gone["diagnosis"]), step
        margin = m.wait_for("finding", 10, runbook="manager-quorum", cause="no-margin")
        assert str(margin["summary"]).startswith(
            "one more manager loss and the swarm has no leader"
        )
        assert margin["severity"] == "critical"
        m.wait_for("decision: report only", 10, runbook="manager-quorum")
    finally:
        multilab("start-node", str(victim))
    wait_until(
        f"node{victim} reachable again",
        lambda: managers().get(f"node{victim}") == "Reachable",
        60,
    )
    resolved = m.wait_for("resolved", 30, incident=gone["incident"])
    m.wait_for("resolved", 10, incident=margin["incident"])
    assert not m.find("action:")
    record_timing(
        runbook="manager-quorum",
        fault="1 of 3 managers' dockerd SIGKILLed",
        detect=round(ts(gone) - t_kill, 1),
        action="none (report)",
        resolved_after_kill=round(ts(resolved) - t_kill, 1),
    )


# --- unbalanced ------------------------------------------------------------------------------


def running_on(name: str) -> list[str]:
    """Sorted hostnames of the running tasks meant to run (one entry per task)."""
    out = on_node(
        1,
        "service",
        "ps",
        name,
        "--filter",
        "desired-state=running",
        "--format",
        "{{.Node}} {{.CurrentState}}",
        check=False,
    )
    return sorted(line.split()[0] for line in out.splitlines() if " Running" in line)


SPREAD = ["node1", "node2", "node3"]


@pytest.fixture
def rebalanced(multilab_up: None) -> Iterator[str]:
    """A 3-replica service labelled for the medic and for rebalancing, one task per node."""
    name = f"medic-bal-{uuid.uuid4().hex[:6]}"
    on_node(
        1,
        "service",
        "create",
        "-d",
        "--name",
        name,
        "--replicas",
        "3",
        "--stop-grace-period",
        "1s",
        # one task at a time, watched 1 s: a force update of 3 tasks takes ~10 s
        "--update-parallelism",
        "1",
        "--update-monitor",
        "1s",
        "--update-delay",
        "2s",
        "--label",
        "medic.lab=1",
        "--label",
        "swarm-medic.enable=true",
        "--label",
        "swarm-medic.rebalance=true",
        "--no-resolve-image",
        image_id(),
        "sleep",
        "3600",
    )
    try:
        wait_until("one task per node", lambda: running_on(name) == SPREAD, 30)
        yield name
    finally:
        on_node(1, "node", "update", "--availability", "active", "node3", check=False)
        on_node(1, "service", "rm", name, check=False)


def test_a_node_back_from_a_drain_gets_tasks_again_by_a_force_update(
    rebalanced: str, medic: Medic
) -> None:
    name = rebalanced
    on_node(1, "node", "update", "--availability", "drain", "node3")

    def moved() -> bool:
        on = running_on(name)
        return len(on) == 3 and "node3" not in on

    wait_until("node3's task moved", moved, 30)
    on_node(1, "node", "update", "--availability", "active", "node3")
    t_back = time.time()
    time.sleep(SWARM_ALONE)  # swarm alone: node3 stays empty
    assert "node3" not in running_on(name), "swarm rebalanced by itself?"
    piled = running_on(name)

    m = medic(docker_host=node_sock(leader_index()), runbook_unbalanced_after=AFTER)
    finding = m.wait_for("finding", 20, runbook="unbalanced", service=name)
    assert "node3 could run its tasks and runs none while" in str(finding["summary"])
    assert "runs 2" in str(finding["summary"])
    action = m.wait_for("action: force_update done", 10, service=name)
    assert action["incident"] == finding["incident"]
    healed = m.wait_for("verified: healed", 60, service=name)
    assert running_on(name) == SPREAD
    assert len(m.find("action:", service=name)) == 1
    record_timing(
        runbook="unbalanced",
        fault=f"node3 drained and made active again ({' '.join(piled)})",
        swarm_alone=f"node3 empty >{SWARM_ALONE:.0f}s",
        detect=round(ts(finding) - m.started, 1),
        heal=round(ts(healed) - ts(action), 1),
        back_to_healed=round(ts(healed) - t_back, 1),
    )


def test_a_rolling_update_and_a_scale_up_and_down_are_not_unbalanced(
    rebalanced: str, medic: Medic
) -> None:
    name = rebalanced
    m = medic(docker_host=node_sock(leader_index()), runbook_unbalanced_after=AFTER)
    m.wait_for("event stream connected", 15)

    on_node(1, "service", "update", "-d", "--no-resolve-image", "--env-add", "V=2", name)

    def update_done() -> bool:
        state = on_node(
            1,
            "service",
            "inspect",
            "-f",
            "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}",
            name,
        )
        return state == "completed" and len(running_on(name)) == 3

    wait_until("the rolling update completed", update_done, 40)
    on_node(1, "service", "scale", "-d", f"{name}=6")
    wait_until("6 running", lambda: len(running_on(name)) == 6, 30)
    on_node(1, "service", "scale", "-d", f"{name}=3")
    wait_until("3 running", lambda: len(running_on(name)) == 3, 30)
    time.sleep(7)  # past `after` and a scan more: a layout judged now would be reported
    assert running_on(name) == SPREAD  # swarm keeps it spread through healthy churn
    assert not m.find("finding", runbook="unbalanced")
    assert not m.find("action:")
