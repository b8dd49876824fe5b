"""Ask first, on the real swarm: a hung start on a service labelled swarm-medic.approve=true is
proposed and left alone, scan after scan, until `swarm-medic approve INCIDENT` (run as an
operator runs it, with the medic's settings) lets the fix through, once; an approval that
expired before the medic could use it applies nothing."""

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


def starting(lab: Lab, name: str) -> bool:
    return lab.current_states(name) == ["Starting"]


def approve(medic: MedicProcess, *args: str) -> str:
    """`swarm-medic approve ARGS` with the running medic's settings (its ledger)."""
    return command(medic, "approve", *args)


def command(medic: MedicProcess, *args: str) -> str:
    """`swarm-medic ARGS` as an operator runs it, with the running medic's settings."""
    done = medic.cli(*args)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.timeout(600)
def test_a_proposal_waits_for_its_approval_then_acts_once_an_expired_one_applies_nothing(
    lab: Lab, medic: Medic, tmp_path: Path
) -> None:
    asks = hang_service(lab, tmp_path, "asks")
    late = hang_service(lab, tmp_path, "late")
    for name in (asks, late):
        docker("service", "update", "-d", "--label-add", "swarm-medic.approve=true", name)
    for name in (asks, late):
        wait_until(f"{name} Starting", partial(starting, lab, name), 60)
    m = medic(runbook_stuck_task_after="starting=5s")

    proposed = m.wait_for("decision: propose force_update", 40, service=asks)
    incident = proposed["incident"]
    assert proposed["approve"] == f"swarm-medic approve {incident}"
    time.sleep(10)  # five more scans: proposed, not acted on
    assert not m.find("action:"), m.tail(80)
    assert lab.current_states(asks) == ["Starting"]
    listed = approve(m, "--list")
    assert f"swarm-medic approve {incident}" in listed

    said = approve(m, incident, "--ttl", "10m", "--by", "lab-test")
    assert "approved by lab-test" in said and "force_update" in said
    action = m.wait_for("action: force_update done", 30, service=asks)
    assert action["incident"] == incident
    m.wait_for("approval applied: consumed", 10, incident=incident)
    healed = m.wait_for("verified: healed", 60, service=asks)
    assert lab.current_states(asks) == ["Running"]
    time.sleep(6)
    assert len(m.find("action:", service=asks)) == 1  # applied once

    other = m.wait_for("decision: propose force_update", 30, service=late)["incident"]
    # a scan comes every 2 s: paused, no scan can apply the approval within its second
    command(m, "pause", "--reason", "approve lab test: let the approval expire")
    m.wait_for("paused since", 10)
    approve(m, other, "--ttl", "1s")
    m.wait_for("approval expired: nothing applied", 30, incident=other)
    command(m, "resume")
    m.wait_for("resumed: acting again", 10)
    time.sleep(10)  # five scans after the resume: the expired approval applied nothing
    assert not m.find("action:", service=late), m.tail(80)
    assert lab.current_states(late) == ["Starting"]
    assert m.find("decision: propose force_update", service=late)
    record_timing(
        runbook="stuck-task",
        fault="approve: a proposal acted on once after `swarm-medic approve`",
        proposed_after=round(ts(proposed) - m.started, 1),
        acted_after_approval=round(ts(action) - ts(proposed), 1),
        healed=round(ts(healed) - ts(action), 1),
    )
