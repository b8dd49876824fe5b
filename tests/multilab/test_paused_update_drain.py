"""An update that paused because a node was drained under it is resumed, not rolled back.

Found on this lab under churn: a worker drained while a rolling update ran made swarm stop a
task of the new spec inside the update's monitor window; swarm paused the update ("failure or
early termination of task ...") and the medic rolled the operator's good change back. The
new spec never failed: its node stopped it. Here: a 3-replica service, parallelism 1, a 15 s
monitor, failure action pause; the node running the first task of the new spec is drained.
Swarm alone leaves the update paused; the medic resumes it and verifies it completed, on the
new spec.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest

from tests.labkit import image_id, on_node, record_timing, ts
from tests.multilab.kit import SWARM_ALONE, NodeMedics, first_finding
from tests.waiting import wait_until

pytestmark = pytest.mark.lab


def update_state(name: str) -> str:
    return on_node(
        1, "service", "inspect", "-f", "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}", name
    )


def replicas(name: str) -> str:
    """ "3/3", or "3/3 (max 2 per node)" with a per-node limit."""
    return on_node(1, "service", "ls", "--filter", f"name={name}", "--format", "{{.Replicas}}")


def new_spec_running(name: str) -> tuple[str, str] | None:
    """(task id, node hostname) of a running task of the new spec (env V=2), if any."""
    out = on_node(1, "service", "ps", name, "--no-trunc", "--format", "{{json .}}")
    for line in out.splitlines():
        t = json.loads(line)
        if t["DesiredState"] != "Running" or not t["CurrentState"].startswith("Running"):
            continue
        env = on_node(1, "inspect", "-f", "{{json .Spec.ContainerSpec.Env}}", t["ID"])
        if "V=2" in env:
            return str(t["ID"]), str(t["Node"])
    return None


def test_an_update_paused_by_a_drain_is_resumed(node_medics: NodeMedics) -> None:
    name = f"medic-drain-{uuid.uuid4().hex[:6]}"
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
        "2",
        "--no-resolve-image",
        "--stop-grace-period",
        "1s",
        "--update-parallelism",
        "1",
        "--update-delay",
        "0s",
        "--update-monitor",
        "15s",
        "--update-failure-action",
        "pause",
        "--label",
        "medic.lab=1",
        "--label",
        "swarm-medic.enable=true",
        image_id(),
        "sleep",
        "3600",
    )
    drained = ""
    try:
        wait_until("3 tasks running", lambda: replicas(name).startswith("3/3"), 60)
        on_node(1, "service", "update", "-d", "--no-resolve-image", "--env-add", "V=2", name)
        task, drained = wait_until(
            "a task of the new spec running", lambda: new_spec_running(name), 30, 0.2
        )
        on_node(1, "node", "update", "--availability", "drain", drained)
        wait_until("the update paused", lambda: update_state(name) == "paused", 30)
        t_fault = time.time()
        time.sleep(SWARM_ALONE)
        assert update_state(name) == "paused", "swarm resumed by itself?"

        medics = node_medics()
        _, finding = first_finding(medics, "paused-update", 30)
        assert finding["cause"] == "stopped-by-node", finding
        # every manager finds it; the one on the leader acts (any of the three may lead)
        brain, action = wait_until(
            "action: resume_update done",
            lambda: next(
                (
                    (m, hits[0])
                    for m in medics
                    if (hits := m.find("action: resume_update done", service=name))
                ),
                None,
            ),
            15,
        )
        assert sum(len(m.find("action:", service=name)) for m in medics) == 1
        healed = brain.wait_for("verified: healed", 120, service=name)
        assert not brain.find("action: rollback")
        env = on_node(
            1, "service", "inspect", "-f", "{{json .Spec.TaskTemplate.ContainerSpec.Env}}", name
        )
        assert "V=2" in env  # the operator's change stands
        # Engines differ here: 20.10 ran the updater on and said "completed"; 28 found no task
        # left to change after the resume and left UpdateStatus unset. Both are a finished
        # update with every replica running, which is what the verifier judged.
        shown = update_state(name)
        assert shown in ("completed", ""), shown
        wait_until("3 tasks running", lambda: replicas(name).startswith("3/3"), 30)
        record_timing(
            runbook="paused-update",
            fault="update paused: a node drained under it (new spec healthy)",
            swarm_alone=f"paused >{time.time() - t_fault:.0f}s",
            detect=round(ts(finding) - brain.started, 1),
            heal=round(ts(healed) - ts(action), 1),
            action="resume_update",
            engine_said=f"UpdateStatus after the resume: {shown or 'unset'}",
            task=task[:12],
        )
    finally:
        if drained:
            on_node(1, "node", "update", "--availability", "active", drained, check=False)
        on_node(1, "service", "rm", name, check=False)
