"""Leader failover during an incident: exactly one instance acts, the new leader's.

Named test_zz_* so it runs last among the 3-node tests: it kills node1's engine (the leader)
and brings it back as a manager that no longer leads.
"""

from __future__ import annotations

import time

import pytest

from tests.labkit import multilab, on_node, record_timing, ts
from tests.multilab.kit import (
    NodeMedics,
    Web,
    actions,
    container_pid,
    first_finding,
    in_container_netns,
)
from tests.waiting import wait_until

pytestmark = pytest.mark.lab


def leader() -> str:
    for i in (1, 2, 3):
        out = on_node(i, "node", "ls", "--format", "{{.Hostname}} {{.ManagerStatus}}", check=False)
        for line in out.splitlines():
            if line.endswith(" Leader"):
                return line.split()[0]
    return ""


def test_leader_killed_during_an_incident(web: Web, node_medics: NodeMedics) -> None:
    assert leader() == "node1"
    medics = node_medics(probe_failures="4", log_level="debug")
    old_brain = medics[0]
    old_brain.wait_for("probe round", 20)
    task = web.running_on()["node3"]
    in_container_netns(container_pid(3, task), "ip", "link", "set", "eth0", "down")

    # the old leader has seen the fault fail at least one round, but not yet K=4 rounds
    def seen_failing() -> bool:
        return any(int(str(ln.get("failing", 0))) > 0 for ln in old_brain.find("probe round"))

    wait_until("the old leader sees the fault", seen_failing, 15, every=0.2)
    t_kill = time.time()
    multilab("kill-node", "1")
    try:
        wait_until("a new leader", lambda: leader() in ("node2", "node3"), 60, every=1)
        new = leader()
        t_elected = time.time()
        brain, finding = first_finding(medics, "unreachable-endpoint", 60, service=web.name)
        assert brain is medics[int(new[-1]) - 1], "the finding came from a non-leader"
        # a new leader says "unknown" of every node for up to a minute: the new brain must
        # still ask both live nodes within its first two rounds, not its own node alone
        rounds = brain.find("probe round")
        assert max(int(str(r.get("answered", 0))) for r in rounds[:2]) == 2, rounds[:3]
        assert finding["cause"] == "container"
        healed = brain.wait_for("verified: healed", 90, service=web.name)
        acted = actions(medics, task)
        assert len(acted) == 1, acted  # exactly one instance acted, once
        assert not old_brain.find("action:")
        record_timing(
            runbook="unreachable-endpoint",
            fault="leader engine killed mid-incident",
            new_leader=new,
            election=round(t_elected - t_kill, 1),
            detect_after_kill=round(ts(finding) - t_kill, 1),
            healed_after_kill=round(ts(healed) - t_kill, 1),
            actions=len(acted),
        )
    finally:
        multilab("start-node", "1")
        wait_until(
            "node1 back as a manager",
            lambda: on_node(1, "node", "ls", check=False) != "",
            60,
            every=1,
        )
