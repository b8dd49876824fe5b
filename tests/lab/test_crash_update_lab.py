"""crash-loop and stuck-update against their faults on the lab swarm.

A crash loop (a command that exits 3, and one that outgrows an 8 MiB memory limit) is reported
once, with the exit code, the OOM judgement and the marker its log printed, while swarm goes on
restarting it. An update held by a new task no node can take is reported (naming that task),
then rolled back by a medic told to; a healthy rolling update under that medic is left alone.
Budget: about a minute for the file (the services are made in parallel within each test).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest

from tests.labkit import Lab, MedicProcess, docker, record_timing, ts
from tests.waiting import wait_until

pytestmark = pytest.mark.lab

Medic = Callable[..., MedicProcess]
# Doubles a string until the memory limit kills the shell; bounded (a 32 MiB string at most,
# a few copies alive) so that an engine that did not apply the limit cannot eat the host: the
# shell then says so and exits 4.
OUTGROW_8M = (
    "sh",
    "-c",
    "x=a; i=0; while [ $i -lt 25 ]; do x=$x$x; i=$((i+1)); done; "
    "echo 'memory limit not enforced'; exit 4",
)


def task_ids(lab: Lab, name: str) -> set[str]:
    return {t["ID"] for t in lab.tasks(name)}


def test_crash_loops_are_reported_once_with_exit_log_and_oom(lab: Lab, medic: Medic) -> None:
    marker = f"medic-marker-{uuid.uuid4().hex[:8]}"
    t_made = time.time()
    crash = lab.create(
        "crash", "--restart-delay", "1s", command=("sh", "-c", f"echo {marker}; exit 3")
    )
    oom = lab.create("oom", "--restart-delay", "1s", "--limit-memory", "8m", command=OUTGROW_8M)
    m = medic()

    finding = m.wait_for("finding", 60, runbook="crash-loop", service=crash)
    assert finding["severity"] == "critical"
    assert "the last: exit 3" in finding["summary"], finding["summary"]
    assert marker in finding.get("logs", ""), finding.get("logs_error")
    report = m.wait_for("decision: report only", 10, runbook="crash-loop", service=crash)
    assert report["incident"] == finding["incident"]

    # Swarm alone keeps restarting it (the restart policy is swarm's; the medic never acts).
    seen = task_ids(lab, crash)
    t_found = time.time()
    wait_until("a fresh task after the finding", lambda: task_ids(lab, crash) - seen, 30)
    swarm_alone = time.time() - t_found

    oomed = m.wait_for("finding", 60, runbook="crash-loop", service=oom)
    assert oomed["cause"] == "oom", oomed["summary"]
    assert (
        "exit 137 (SIGKILL) with a memory limit of 8 MiB: most likely OOM-killed"
        in oomed["summary"]
    )
    assert "--limit-memory" in oomed["diagnosis"]

    # more scans, more crashes: still one incident each, and nothing done
    assert len(m.find("finding", runbook="crash-loop", service=crash)) == 1
    assert len(m.find("finding", runbook="crash-loop", service=oom)) == 1
    assert not m.find("action:")
    record_timing(
        runbook="crash-loop",
        fault="command exits 3, restart delay 1s",
        detect=round(ts(finding) - t_made, 1),
        swarm_alone=round(swarm_alone, 1),
        action="none (report once, with the log)",
    )
    record_timing(
        runbook="crash-loop",
        fault="8 MiB memory limit outgrown (OOM kill, exit 137)",
        detect=round(ts(oomed) - t_made, 1),
        action="none (report once)",
    )


def test_a_stuck_update_is_reported_then_rolled_back_and_a_slow_one_left_alone(
    lab: Lab, medic: Medic
) -> None:
    stuck = lab.create("stuckupd", "--update-order", "start-first", "--update-monitor", "1s")
    slow = lab.create("slowupd", "--replicas", "3", "--update-delay", "3s")
    wait_until(
        "both services running",
        lambda: (
            lab.current_states(stuck) == ["Running"] and lab.current_states(slow) == ["Running"] * 3
        ),
        40,
    )
    docker(
        "service",
        "update",
        "-d",
        "--no-resolve-image",
        "--constraint-add",
        "node.labels.nope==1",
        stuck,
    )
    t_fault = time.time()
    wait_until("the new task pending", lambda: "Pending" in lab.current_states(stuck), 20)

    # Reported (the default), naming the task that blocks: swarm alone waits for it forever.
    m = medic(runbook_stuck_update_margin="5s")
    finding = m.wait_for("finding", 30, runbook="stuck-update", service=stuck)
    pending = [
        t["ID"]
        for t in lab.tasks(stuck)
        if t["DesiredState"] == "Running" and t["CurrentState"].startswith("Pending")
    ]
    assert finding["tasks"] == pending
    assert "pending: no suitable node" in finding["summary"]
    assert f"docker service rollback {stuck}" in finding["diagnosis"]
    m.wait_for("decision: report only", 10, runbook="stuck-update", service=stuck)
    assert lab.update_state(stuck) == "updating"
    assert sorted(lab.current_states(stuck)) == ["Pending", "Running"]  # the old one serves
    m.stop()
    assert not m.find("action:")
    swarm_alone = time.time() - t_fault

    # Told to roll back, a second medic does, while a healthy rolling update (3 replicas,
    # 3 s apart) runs under it untouched.
    docker("service", "update", "-d", "--no-resolve-image", "--env-add", "MEDIC_STEP=2", slow)
    acting = medic(runbook_stuck_update_margin="5s", runbook_stuck_update_action="rollback")
    action = acting.wait_for("action: rollback done", 30, service=stuck)
    healed = acting.wait_for("verified: healed", 60, service=stuck)
    assert healed["incident"] == action["incident"]
    assert lab.update_state(stuck) == "rollback_completed"
    assert lab.current_states(stuck) == ["Running"]
    placement = lab.inspect(stuck)["Spec"]["TaskTemplate"].get("Placement") or {}
    assert "node.labels.nope==1" not in (placement.get("Constraints") or [])

    wait_until("the slow update completed", lambda: lab.update_state(slow) == "completed", 60)
    assert lab.current_states(slow) == ["Running"] * 3
    assert not acting.find("finding", runbook="stuck-update", service=slow)
    assert not acting.find("action:", service=slow)
    record_timing(
        runbook="stuck-update",
        fault="start-first update to a constraint no node meets (margin 5s)",
        detect=round(ts(finding) - t_fault, 1),
        swarm_alone=round(swarm_alone, 1),
        heal=round(ts(healed) - ts(action), 1),
    )
