"""Thresholds learned per service, on the lab with the DEFAULT stuck-task settings (issue 22).

A service whose tasks start in a couple of seconds rolls a few times with healthy starts while
the medic watches; its next start hangs (a first healthcheck that never passes). The default
threshold of `starting` is 300 s; what the medic learned of this service (p90 x 3, at least
20 s) heals it within 60 s of the hang. The scan interval is the default (15 s) too, so the
time measured is the one an operator who kept every default would see.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.labkit import HEALTH, Lab, MedicProcess, docker, record_timing, ts
from tests.waiting import wait_until

pytestmark = pytest.mark.lab

Medic = Callable[..., MedicProcess]

ROLLS = 5  # healthy starts after the first: 6 in all, above the 5 the medic needs
HANG_AT = ROLLS + 2  # the start that hangs: the one after the last healthy roll


def hang_nth(n: int) -> tuple[str, ...]:
    """Healthy (ready at once) on every start but the n-th, which never becomes healthy."""
    return (
        "sh",
        "-c",
        "n=$(( $(cat /state/n 2>/dev/null || echo 0) + 1 )); echo $n > /state/n; "
        f"if [ $n -ne {n} ]; then touch /tmp/ready; fi; exec sleep 3600",
    )


def test_a_hung_start_is_healed_within_60s_with_the_default_settings(
    lab: Lab, medic: Medic, tmp_path: Path
) -> None:
    # defaults: no stuck-task setting; the default scan interval and jitter
    m = medic(scan_interval="15s", scan_jitter="2s")
    state = tmp_path / "state-learned"
    state.mkdir()
    name = lab.create(
        "learned",
        "--mount",
        f"type=bind,src={state},dst=/state",
        *HEALTH,
        command=hang_nth(HANG_AT),
    )
    wait_until("first task running", lambda: lab.current_states(name) == ["Running"], 60)
    for i in range(ROLLS):
        docker("service", "update", "--force", "-d", name)
        wait_until(
            f"roll {i + 1} running",
            lambda: (
                lab.current_states(name) == ["Running"] and lab.update_state(name) == "completed"
            ),
            60,
        )
        # a scan sees each new task running: its health_status event brings one within 0.5 s
        # (app._on_event), not only the 15 s timer
        time.sleep(4)
    assert m.find("finding", runbook="stuck-task", service=name) == []

    docker("service", "update", "--force", "-d", name)
    wait_until("task in Starting", lambda: lab.current_states(name) == ["Starting"], 30)
    t_fault = time.time()

    finding = m.wait_for("finding", 60, runbook="stuck-task", service=name)
    assert finding["cause"] == "hang"
    assert "learned from" in str(finding["summary"]), finding["summary"]
    action = m.wait_for("action: force_update done", 30, service=name)
    wait_until(
        "healthy again", lambda: lab.current_states(name) == ["Running"], t_fault + 60 - time.time()
    )
    healed_at = time.time()
    assert healed_at - t_fault <= 60, f"healed {healed_at - t_fault:.0f}s after the hang"
    verified = m.wait_for("verified: healed", 60, service=name)
    assert verified["incident"] == finding["incident"] == action["incident"]
    record_timing(
        runbook="stuck-task",
        fault="hang in starting, default settings, threshold learned",
        threshold=None,
        detect=round(ts(finding) - t_fault, 1),
        heal=round(healed_at - t_fault, 1),
    )
