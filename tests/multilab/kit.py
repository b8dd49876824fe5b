"""Helpers for the overlay tests on the 3-node lab: the web service under test, faults
injected inside a task's network namespace, and reading what the medics did."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

from tests.labkit import MedicProcess, on_node, record_timing, ts
from tests.waiting import wait_until

NodeMedics = Callable[..., list[MedicProcess]]
SWARM_ALONE = 8.0  # seconds we watch swarm do nothing about the fault
K = 2  # SWARM_MEDIC_PROBE_FAILURES in the node_medics fixture


def managers() -> dict[str, str]:
    """hostname -> ManagerStatus ("Leader", "Reachable", "Unreachable"; "" for a worker)."""
    out = on_node(1, "node", "ls", "--format", "{{.Hostname}}|{{.ManagerStatus}}")
    return dict(line.split("|", 1) for line in out.splitlines() if "|" in line)


def leader_index() -> int:
    """The node number of the leader: the acting medic talks to its engine."""
    return next(int(h[-1]) for h, s in managers().items() if s == "Leader")


def node_id(i: int) -> str:
    return on_node(i, "info", "--format", "{{.Swarm.NodeID}}")


@dataclass
class Web:
    name: str
    vip: str
    network: str

    def tasks(self, service: str | None = None) -> list[dict[str, str]]:
        out = on_node(
            1,
            "service",
            "ps",
            service or self.name,
            "--no-trunc",
            "--filter",
            "desired-state=running",
            "--format",
            "{{json .}}",
            check=False,
        )
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def running_on(self) -> dict[str, str]:
        """node hostname -> task id, for running tasks."""
        return {t["Node"]: t["ID"] for t in self.tasks() if t["CurrentState"].startswith("Running")}


def container_pid(node: int, task_id: str) -> str:
    cid = on_node(node, "ps", "-q", "--filter", f"label=com.docker.swarm.task.id={task_id}")
    return on_node(node, "inspect", "-f", "{{.State.Pid}}", cid)


def in_container_netns(pid: str, *argv: str) -> None:
    subprocess.run(["nsenter", "-t", pid, "-n", *argv], check=True, capture_output=True)


def overlay_ips(node: int, network: str) -> list[str]:
    """IPs on `network` of every container of node `node`."""
    ips = []
    for cid in on_node(node, "ps", "-q").split():
        raw = on_node(node, "inspect", "-f", "{{json .NetworkSettings.Networks}}", cid)
        ips += [n["IPAddress"] for name, n in json.loads(raw).items() if name == network]
    return ips


def first_finding(
    medics: list[MedicProcess], runbook: str, timeout: float, **match: str
) -> tuple[MedicProcess, dict[str, object]]:
    def found() -> tuple[MedicProcess, dict[str, object]] | None:
        for m in medics:
            hits = m.find("finding", runbook=runbook, **match)
            if hits:
                return m, hits[0]
        return None

    try:
        hit: tuple[MedicProcess, dict[str, object]] = wait_until(
            f"{runbook} finding", found, timeout
        )
    except AssertionError as exc:
        tails = "\n".join(f"--- {m.log_path.name}\n{m.tail(15)}" for m in medics)
        raise AssertionError(f"{exc}\n{tails}") from None
    return hit


def actions(medics: list[MedicProcess], task: str) -> list[dict[str, object]]:
    return [ln for m in medics for ln in m.find("action:") if task in (ln.get("tasks") or [])]


def swarm_alone(web: Web, task: str, node: str) -> None:
    """Swarm does nothing about it: the same task stays Running on the same node."""
    time.sleep(SWARM_ALONE)
    assert web.running_on().get(node) == task, "swarm replaced the task by itself"


def heal_and_check(
    web: Web,
    medics: list[MedicProcess],
    task: str,
    *,
    cause: str,
    fault: str,
    t_fault: float,
) -> None:
    brain, finding = first_finding(medics, "unreachable-endpoint", K * 6 + 20, service=web.name)
    assert finding["tasks"] == [task]
    assert finding["cause"] == cause, finding["summary"]
    action = brain.wait_for("action: replace_task done", 15, service=web.name)
    healed = brain.wait_for("verified: healed", 60, service=web.name)
    assert "answer from every node" in str(healed["detail"])
    assert len(actions(medics, task)) == 1  # one instance acted, once
    assert task not in web.running_on().values()  # the broken task is gone
    record_timing(
        runbook="unreachable-endpoint",
        fault=fault,
        cause=cause,
        swarm_alone=f">{SWARM_ALONE:.0f}s broken",
        detect=round(ts(finding) - brain.started, 1),
        heal=round(ts(healed) - ts(action), 1),
        fault_to_healed=round(ts(healed) - t_fault, 1),
    )
