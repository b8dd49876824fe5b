"""dockerd restarted under a running medic: it reconnects, resumes and keeps working.

Named test_zz_* so it runs after the other lab tests: it restarts the lab's engine.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.labkit import LAB, Lab, MedicProcess, docker, record_timing, ts

pytestmark = pytest.mark.lab
PID_FILE = Path("/run/swarm-medic-lab/dockerd.pid")  # written by scripts/lab.sh up


def test_engine_restart_reconnects_and_resumes(
    lab: Lab, medic: Callable[..., MedicProcess]
) -> None:
    if not PID_FILE.is_file():
        pytest.skip("the engine was not started by scripts/lab.sh; not restarting it")

    m = medic(log_level="debug")
    m.wait_for("event stream connected", 15, reconnect=False)
    m.wait_for("scan", 15)
    t_restart = time.time()
    done = subprocess.run(
        ["bash", str(LAB), "restart-engine"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lost = m.wait_for("event stream lost", 30)
    back = m.wait_for("event stream connected", 60, reconnect=True)
    assert back["resumed_from"] is not None  # resumed with `since`, not from "now"
    assert m.proc.poll() is None, "the medic died with the engine"

    # Still working after the restart: a new fault is found.
    name = lab.create("after-restart", image=f"medic/nope:{int(time.time())}")
    finding = m.wait_for("finding", 60, runbook="repeated-rejection", service=name)
    scans_after = [ln for ln in m.find("scan") if ts(ln) > ts(back)]
    assert scans_after
    assert docker("info", "--format", "{{.Swarm.LocalNodeState}}") == "active"
    record_timing(
        fault="dockerd restarted under the medic",
        stream_lost_after=round(ts(lost) - t_restart, 1),
        reconnected_after=round(ts(back) - t_restart, 1),
        detect_after_restart=round(ts(finding) - ts(back), 1),
    )
