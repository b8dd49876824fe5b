"""A swarm in the middle of a node-by-node upgrade of Docker: node2 runs Debian 12's 20.10,
nodes 1 and 3 run 28 with Engine 29's API floor, one medic inside each node, each speaking its
own engine's version. An overlay fault on the 20.10 node is found by the brain on a 28 and
healed by the 20.10 node's own hand; then node2 is upgraded to 28 under its running medic
(dockerd stopped and started at the new version on the same data, as `apt upgrade` does), and
the same medic, not restarted, speaks 1.51 and heals a fault there again.
"""

from __future__ import annotations

import os
import time

import pytest

from tests.labkit import MedicProcess, multilab, on_node, record_timing, ts
from tests.multilab.kit import NodeMedics, Web, container_pid, heal_and_check, in_container_netns
from tests.waiting import wait_until

pytestmark = pytest.mark.lab


def engines() -> list[str]:
    return [on_node(i, "version", "--format", "{{.Server.Version}}") for i in (1, 2, 3)]


def drop_port(web: Web, node: int) -> tuple[str, float]:
    task = web.running_on()[f"node{node}"]
    in_container_netns(
        container_pid(node, task), "iptables", "-I", "INPUT", "-p", "tcp", "--dport", "80",
        "-j", "DROP",
    )  # fmt: skip
    return task, time.time()


def healed_after(web: Web, medics: list[MedicProcess], task: str, t_fault: float) -> None:
    """The fault on `task` found, the task retired by node2's own hand and verified healed,
    by one action, all logged after the fault (the medics keep one log across both faults)."""

    def done() -> bool:
        return any(
            ts(ln) > t_fault for m in medics for ln in m.find("verified: healed", service=web.name)
        )

    wait_until(f"{task[:12]} healed", done, 90)
    acted = [ln for m in medics for ln in m.find("action:") if task in (ln.get("tasks") or [])]
    assert len(acted) == 1, acted
    assert task not in web.running_on().values()
    hands = [ln for ln in medics[1].find("hand: task container stopped") if ts(ln) > t_fault]
    assert hands, "node2's own medic did not retire the container\n" + medics[1].tail()


def spoken(m: MedicProcess) -> tuple[str, str]:
    line = m.wait_for("engine: ", 30)
    return str(line["engine_version"]), str(line["api_version"])


@pytest.fixture(autouse=True)
def mixed() -> None:
    if os.environ.get("ENGINES", "").split() != ["28", "20.10", "28"]:
        pytest.skip('the mixed lab runs with ENGINES="28 20.10 28" (scripts/test.sh)')
    assert [v.split(".")[0] for v in engines()] == ["28", "20", "28"], engines()


def test_an_overlay_fault_on_the_old_engine_is_healed_across_engines_then_after_its_upgrade(
    web: Web, node_medics: NodeMedics
) -> None:
    medics = node_medics(cooldown="1s")  # two fixes of one service within minutes
    said = [spoken(m) for m in medics]
    assert [api for _, api in said] == ["1.51", "1.41", "1.51"], said
    assert said[1][0].startswith("20.10.")

    task, t_fault = drop_port(web, 2)
    heal_and_check(
        web, medics, task, cause="container", fault="DROP in a task on the 20.10 node of a "
        "20.10/28 swarm", t_fault=t_fault,
    )  # fmt: skip
    assert [ln for ln in medics[1].find("hand: task container stopped") if ts(ln) > t_fault]

    # the upgrade, node by node: node2's dockerd replaced by 28 under its running medic
    t_up = time.time()
    multilab("upgrade-node", "2", "28")
    assert engines()[1].startswith("28.")
    changed = medics[1].wait_for("engine changed", 60)
    assert "API 1.41 -> Docker 28." in str(changed["event"]) and changed["api_version"] == "1.51"
    assert medics[1].proc.poll() is None  # the same process: no restart of its own
    wait_until(
        "node2 Ready again",
        lambda: (
            "Ready" in on_node(1, "node", "ls", "--filter", "name=node2", "--format", "{{.Status}}")
        ),
        60,
    )
    # Swarm moved node2's task away while its dockerd was down and does not move it back (the
    # `unbalanced` runbook's case): spread it again by hand, as an operator would.
    on_node(1, "service", "update", "-d", "--force", "--no-resolve-image", web.name)
    wait_until(
        "the web service back on every node",
        lambda: sorted(web.running_on()) == ["node1", "node2", "node3"],
        90,
    )
    record_timing(
        runbook="engine-negotiation",
        fault="dockerd on node2 upgraded 20.10 -> 28 (floor 1.44) under a running medic",
        swarm_alone="the node's tasks restarted by swarm",
        detect=round(ts(changed) - t_up, 1),
        engines="28 20.10->28 28",
    )

    task, t_fault = drop_port(web, 2)
    healed_after(web, medics, task, t_fault)
