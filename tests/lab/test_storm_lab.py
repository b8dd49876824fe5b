"""The storm guard on the real swarm: every service of a group loses its image at once (a
registry gone, as the medic sees it), and the medic stands still, one storm incident and no
action, while a service broken alone is healed once the storm has passed.

The medic runs with the default share and minimum (--storm-share 0.3, --storm-min 3) and the
lab fixture's scan and verify timings; the window and hold are shortened (20 s, 6 s: the
defaults, 5m and 1m, would only make the test wait) and so is stuck-task's `starting`
threshold (10 s), for the lone hung start that breaks once the storm is on.
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
BROKEN = 4
MISSING = "medic/busybox:missing"  # never built: every task of it is rejected, No such image
GOOD = "medic/busybox:test"


def running(lab: Lab, name: str) -> bool:
    return lab.current_states(name) == ["Running"]


def test_a_storm_opens_one_incident_and_stops_every_action_a_lone_fault_is_healed_after(
    lab: Lab, medic: Medic, tmp_path: Path
) -> None:
    names = [
        lab.create(f"storm{i}", "--update-failure-action", "pause", "--update-monitor", "5s")
        for i in range(BROKEN)
    ]
    for name in names:
        wait_until(f"{name} running", partial(running, lab, name), 60)
    m = medic(storm_window="20s", storm_hold="6s", runbook_stuck_task_after="starting=10s")
    m.wait_for("engine: ", 30)  # it speaks to the engine: scanning

    t_fault = time.time()
    for name in names:  # all at once, as a registry outage would
        docker("service", "update", "-d", "--no-resolve-image", "--image", MISSING, name)

    storm = m.wait_for("storm: too much is failing at once", 120)
    assert set(names) <= set(storm["services"]), storm
    skipped = m.wait_for("decision: skip (storm)", 60)
    assert skipped["service"] in names
    # a hung start during the storm: found, and left alone like the rest
    alone = hang_service(lab, tmp_path, "alone")
    wait_until("alone Starting", lambda: lab.current_states(alone) == ["Starting"], 60)
    m.wait_for("decision: skip (storm)", 60, service=alone)
    time.sleep(15)  # scans go on: findings reported, still no action, still one storm
    assert not m.find("action:"), m.tail(80)
    assert len(m.find("storm: too much is failing at once")) == 1
    assert {f["service"] for f in m.find("finding") if f.get("service") in names} == set(names)

    # the cause goes away (the registry is back, as it were); nothing was done meanwhile
    t_back = time.time()
    for name in names:
        docker("service", "update", "-d", "--no-resolve-image", "--image", GOOD, name)
    over = m.wait_for("storm over: acting again", 20 + 6 + 60)
    assert not [a for a in m.find("action:") if a.get("service") in names], m.tail(80)
    assert over["incident"] == storm["incident"]

    # the lone hung start, found during the storm, is acted on now and healed
    action = m.wait_for("action: force_update done", 60, service=alone)
    healed = m.wait_for("verified: healed", 90, service=alone)
    assert healed["incident"] == action["incident"]
    assert lab.current_states(alone) == ["Running"]
    assert len(m.find("action:")) == 1
    record_timing(
        runbook="storm",
        fault=f"{BROKEN} services lose their image at once",
        storm_after=round(ts(storm) - t_fault, 1),
        over_after_fix=round(ts(over) - t_back, 1),
        lone_healed_after_storm=round(ts(healed) - ts(over), 1),
    )
