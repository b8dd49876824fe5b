"""What the healing was worth, on the real swarm: a hung start the medic heals and one a person
fixes by hand are recorded in the real ledger (a swarm config's labels), and `swarm-medic
report`, run as an operator runs it, reads them back with the person's fix counted as one."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests.labkit import Lab, MedicProcess, docker, hang_service, record_timing, ts
from tests.waiting import wait_until

pytestmark = pytest.mark.lab


def starting(lab: Lab, name: str) -> bool:
    return lab.current_states(name) == ["Starting"]


def report(medic: MedicProcess, *args: str) -> dict[str, Any]:
    """`swarm-medic report --json ARGS` with the running medic's settings (its ledger)."""
    done = medic.cli("report", "--json", *args)
    assert done.returncode == 0, done.stdout + done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


def test_report_counts_the_medics_heal_and_a_persons_fix(
    lab: Lab, medic: Callable[..., MedicProcess], tmp_path: Path
) -> None:
    healed_by_medic = hang_service(lab, tmp_path, "worth-medic")
    # never healthy, and not opted in: the medic only reports it; a person fixes it
    by_hand = hang_service(lab, tmp_path, "worth-person", once=False, opt_in=False)
    for name in (healed_by_medic, by_hand):
        wait_until(f"{name} Starting", partial(starting, lab, name), 30)
    m = medic(runbook_stuck_task_after="starting=5s")

    healed = m.wait_for("verified: healed", 60, service=healed_by_medic)
    reported = m.wait_for("decision: skip (not_opted_in)", 30, service=by_hand)
    # the person's fix: a spec field the medic does not read (the health check), which shows
    # as a new update started by the engine
    docker("service", "update", "-d", "--no-healthcheck", by_hand)
    changed = m.wait_for(
        "service changed by someone else while the incident is open", 30, service=by_hand
    )
    assert changed["incident"] == reported["incident"]
    resolved = m.wait_for("resolved", 60, service=by_hand)
    assert resolved["changed_by_someone"] == changed["change"]

    ledger = m.env["SWARM_MEDIC_LEDGER_NAME"]
    labels = json.loads(docker("config", "inspect", "-f", "{{json .Spec.Labels}}", ledger))
    for incident in (healed["incident"], reported["incident"]):
        assert f"swarm-medic.incident.{incident}" in labels

    doc = report(m, "--since", "1h")
    (st,) = [r for r in doc["runbooks"] if r["runbook"] == "stuck-task"]
    assert (st["found"], st["fixed"], st["healed"], st["did_not_hold"]) == (2, 1, 1, 0), (
        f"{json.dumps(doc, indent=1)}\n--- medic log tail ---\n{m.tail(150)}"
    )
    assert (st["closed_no_human"], st["closed_by_someone"]) == (1, 1)
    assert st["no_human_share"] == 0.5
    assert st["harm_rate"] == 0.0
    assert 3 <= st["time_to_heal_p50_seconds"] <= 60  # at least --verify-hold (3 s here)
    assert doc["complete"] and doc["errors"] == []
    record_timing(
        runbook="stuck-task",
        fault="report: a heal by the medic and a person's fix, read back from the ledger",
        time_to_heal=st["time_to_heal_p50_seconds"],
        closed_by_person_after=round(ts(resolved) - ts(changed), 1),
    )
