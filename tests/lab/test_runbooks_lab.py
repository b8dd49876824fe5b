"""Every runbook against its fault, injected for real on the lab swarm.

Each test shows swarm alone does not recover (or that it does), then that the medic finds the
fault within threshold + one scan, acts (opted in) or only reports (dry-run, not opted in,
report-only runbooks), and that the service is healthy afterwards. Measured times are written
with record_timing() for the closing summary of scripts/test.sh.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest

from tests.labkit import Lab, MedicProcess, docker, hang_service, record_timing, ts
from tests.waiting import wait_until

pytestmark = pytest.mark.lab

Medic = Callable[..., MedicProcess]


@pytest.mark.smoke
def test_stuck_task_hang_is_healed(lab: Lab, medic: Medic, tmp_path: Path) -> None:
    threshold = 10.0
    name = hang_service(lab, tmp_path, "hang")
    wait_until("task in Starting", lambda: lab.current_states(name) == ["Starting"], 30)
    t_fault = time.time()
    version = lab.version(name)
    m = medic(runbook_stuck_task_after=f"starting={threshold:.0f}s")

    # Swarm alone, for the whole threshold window: the task never leaves Starting.
    def found() -> bool:
        assert lab.current_states(name) in (["Starting"], []), "swarm recovered by itself?"
        return bool(m.find("finding", runbook="stuck-task", service=name))

    wait_until("stuck-task finding", found, threshold + 15, every=1.0)
    finding = m.find("finding", runbook="stuck-task", service=name)[0]
    assert finding["cause"] == "hang"
    assert len(finding["tasks"]) == 1
    # found within threshold + one scan (2 s) + start-up slack, measured from the fault
    assert ts(finding) - t_fault <= threshold + 2 + 4

    action = m.wait_for("action: force_update done", 15, service=name)
    assert action["service_version"] == version  # swarm had not touched the service
    healed = m.wait_for("verified: healed", 60, service=name)
    assert healed["incident"] == finding["incident"] == action["incident"]
    assert lab.current_states(name) == ["Running"]
    record_timing(
        runbook="stuck-task",
        fault="hang in starting (healthcheck start period)",
        threshold=threshold,
        detect=round(ts(finding) - t_fault, 1),
        heal=round(ts(healed) - ts(action), 1),
    )


def test_dry_run_and_not_opted_in_only_report(lab: Lab, medic: Medic, tmp_path: Path) -> None:
    opted = hang_service(lab, tmp_path, "dry-in")
    other = hang_service(lab, tmp_path, "dry-out", opt_in=False)
    for n in (opted, other):
        wait_until(f"{n} Starting", partial(lambda s: lab.current_states(s) == ["Starting"], n), 30)
    versions = {n: lab.version(n) for n in (opted, other)}
    m = medic(runbook_stuck_task_after="starting=3s", dry_run="true")

    would = m.wait_for("decision: would force_update", 20, service=opted)
    assert "dry-run" in would["event"]
    skip = m.wait_for("decision: skip (not_opted_in)", 20, service=other)
    assert skip["would"] == "force_update"
    time.sleep(6)  # three more scans: still nothing done
    assert not m.find("action:")
    assert {n: lab.version(n) for n in (opted, other)} == versions
    assert lab.current_states(opted) == lab.current_states(other) == ["Starting"]


@pytest.mark.smoke
def test_pending_constraint_is_diagnosed_and_swarm_recovers_alone(lab: Lab, medic: Medic) -> None:
    label = f"medic-zone-{int(time.time())}"
    name = lab.create("pend", "--constraint", f"node.labels.{label}==a")
    wait_until("task Pending", lambda: lab.current_states(name) == ["Pending"], 20)
    m = medic(runbook_stuck_task_after="pending=3s")
    finding = m.wait_for("finding", 20, runbook="stuck-task", service=name)
    assert finding["cause"] == "constraints"
    hostname = docker("info", "--format", "{{.Name}}")
    assert f"node.labels.{label} is not set" in finding["diagnosis"]
    assert hostname in finding["diagnosis"]
    report = m.wait_for("decision: report only", 10, service=name)
    assert report["incident"] == finding["incident"]

    # Swarm does recover on its own once a node satisfies the constraint: no action needed.
    node = docker("info", "--format", "{{.Swarm.NodeID}}")
    t_fix = time.time()
    docker("node", "update", "--label-add", f"{label}=a", node)
    try:
        wait_until("task Running", lambda: lab.current_states(name) == ["Running"], 20)
        resolved = m.wait_for("resolved", 15, service=name)
        assert resolved["incident"] == finding["incident"]
        assert not m.find("action:")
        record_timing(
            runbook="stuck-task",
            fault="pending: constraint not satisfied",
            detect=round(ts(finding) - m.started, 1),
            swarm_alone_after_label=round(time.time() - t_fix, 1),
            action="none",
        )
    finally:
        docker("node", "update", "--label-rm", label, node)


@pytest.mark.smoke
def test_paused_update_is_rolled_back(lab: Lab, medic: Medic) -> None:
    name = lab.create(
        "upd", "--replicas", "2", "--update-failure-action", "pause", "--update-monitor", "5s"
    )
    wait_until("2 running", lambda: lab.current_states(name) == ["Running", "Running"], 30)
    docker("service", "update", "-d", "--no-resolve-image", "--args", "sh -c 'exit 3'", name)
    wait_until("update paused", lambda: lab.update_state(name) == "paused", 40)
    t_fault = time.time()
    time.sleep(8)  # swarm alone: the update stays paused
    assert lab.update_state(name) == "paused"
    said = str((lab.inspect(name).get("UpdateStatus") or {}).get("Message") or "")

    m = medic()
    finding = m.wait_for("finding", 15, runbook="paused-update", service=name)
    action = m.wait_for("action: rollback done", 10, service=name)
    healed = m.wait_for("verified: healed", 60, service=name)
    assert healed["incident"] == finding["incident"]
    assert lab.update_state(name) == "rollback_completed"
    assert lab.current_states(name) == ["Running", "Running"]
    spec = lab.inspect(name)["Spec"]["TaskTemplate"]["ContainerSpec"]
    assert spec.get("Args") == ["sleep", "3600"]  # the previous, good spec
    record_timing(
        runbook="paused-update",
        fault="update whose task exits 3, failure action pause",
        engine_said=said[:60],  # the UpdateStatus message, which engines word differently
        swarm_alone_window=round(ts(finding) - t_fault, 1),
        detect=round(ts(finding) - m.started, 1),
        heal=round(ts(healed) - ts(action), 1),
    )


@pytest.mark.smoke
def test_repeated_rejection_reported_once_broken_runbook_isolated(
    lab: Lab, medic: Medic, tmp_path: Path
) -> None:
    extra = tmp_path / "runbooks"
    extra.mkdir()
    (extra / "broken.py").write_text(
        '"""A runbook with a typo."""\nNAME = "broken"\ndef detect(:\n'
    )
    (extra / "incomplete.py").write_text('"""No functions."""\nNAME = "incomplete"\n')
    name = lab.create("noimg", image=f"medic/nope:{int(time.time())}")
    m = medic(runbooks_dir=str(extra), runbook_repeated_rejection_threshold="3")

    errors = {
        ln["path"]: ln["error"]
        for ln in [
            m.wait_for("runbook file not loaded", 10, path=str(extra / "broken.py")),
            m.wait_for("runbook file not loaded", 10, path=str(extra / "incomplete.py")),
        ]
    }
    assert "syntax error at line 3" in errors[str(extra / "broken.py")]
    assert "defines no detect" in errors[str(extra / "incomplete.py")]  # plan is optional

    finding = m.wait_for("finding", 40, runbook="repeated-rejection", service=name)
    assert "No such image" in finding["summary"]
    rejected_then = sum(1 for t in lab.tasks(name) if t["CurrentState"].startswith("Rejected"))
    time.sleep(8)  # more scans, more rejected tasks: still one incident, no action
    assert len(m.find("finding", runbook="repeated-rejection", service=name)) == 1
    assert not m.find("action:")
    assert lab.tasks(name), "swarm keeps making new tasks"
    assert rejected_then >= 3

    docker("service", "update", "-d", "--no-resolve-image", "--image", "medic/busybox:test", name)
    resolved = m.wait_for("resolved", 60, runbook="repeated-rejection", service=name)
    assert resolved["incident"] == finding["incident"]
    record_timing(
        runbook="repeated-rejection",
        fault="image that does not exist",
        detect=round(ts(finding) - m.started, 1),
        action="none (report once)",
    )


def test_circuit_breaker_stops_after_budget(lab: Lab, medic: Medic, tmp_path: Path) -> None:
    name = hang_service(lab, tmp_path, "breaker", once=False)
    wait_until("task Starting", lambda: lab.current_states(name) == ["Starting"], 30)
    m = medic(
        runbook_stuck_task_after="starting=3s",
        budget_per_hour="2",
        breaker_failures="5",
        cooldown="1s",  # 0 would switch the safeguard off: refused at start
        verify_timeout="6s",
    )
    opened = m.wait_for("circuit breaker OPENED", 60, service=name)
    assert "budget spent" in opened["why"]
    m.wait_for("decision: circuit breaker OPEN", 30, service=name)
    time.sleep(8)  # several more scans of a still-stuck service
    assert len(m.find("action: force_update done", service=name)) == 2
    assert m.find("verified: NOT healed", service=name)
    assert lab.current_states(name) == ["Starting"]
