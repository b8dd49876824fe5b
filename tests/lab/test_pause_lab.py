"""The pause switch on the real swarm: `swarm-medic pause` written into the ledger (a swarm
config's labels) is obeyed by a running medic within one scan, a real fault is then only
reported, and `swarm-medic resume` lets the medic heal it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.labkit import Lab, MedicProcess, docker, hang_service

pytestmark = pytest.mark.lab


def cli(medic: MedicProcess, *args: str) -> str:
    """`swarm-medic ARGS` as an operator types it, with the running medic's settings."""
    done = medic.cli(*args)
    assert done.returncode == 0, done.stderr
    return str(done.stdout) + str(done.stderr)


def test_pause_is_obeyed_within_a_scan_and_resume_heals(
    lab: Lab, medic: Callable[..., MedicProcess], tmp_path: Path
) -> None:
    m = medic(runbook_stuck_task_after="starting=5s")
    m.wait_for("event stream connected", 20)
    cli(m, "pause", "--reason", "lab maintenance", "--for", "10m")
    ledger = m.env["SWARM_MEDIC_LEDGER_NAME"]
    labels = json.loads(docker("config", "inspect", "-f", "{{json .Spec.Labels}}", ledger))
    assert "lab maintenance" in labels["swarm-medic.pause"]
    m.wait_for("paused since", 10)  # said within a scan (2 s here)

    name = hang_service(lab, tmp_path, "paused")
    skip = m.wait_for("decision: skip (paused)", 40, service=name)
    assert lab.current_states(name) == ["Starting"]  # only reported
    assert not m.find("action:", service=name)

    cli(m, "resume")
    action = m.wait_for("action: force_update done", 20, service=name)
    assert action["incident"] == skip["incident"]
    m.wait_for("verified: healed", 60, service=name)
