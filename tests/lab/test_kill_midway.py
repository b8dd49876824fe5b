"""swarm-medic SIGKILLed mid-fix on the real swarm, then started again: no fix done twice.

A failpoint (MEDIC_FAILPOINT, swarm_medic/core/failpoints.py) stops the first instance dead right
after it claimed a rollback in the ledger, or right after it rolled back; the test SIGKILLs it
there and starts a second instance on the same ledger. Killed after the claim: the second
releases the claim (the service is still at the version it was decided on) and rolls back
itself, once. Killed after acting: the second verifies the first one's rollback under the
first one's incident id, and does nothing itself.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Callable

import pytest

from tests.labkit import Lab, MedicProcess, docker, record_timing, ts
from tests.waiting import wait_until

pytestmark = pytest.mark.lab
Medic = Callable[..., MedicProcess]


def paused_service(lab: Lab) -> str:
    name = lab.create(
        "mid", "--replicas", "2", "--update-failure-action", "pause", "--update-monitor", "5s"
    )
    wait_until("2 running", lambda: lab.current_states(name) == ["Running", "Running"], 30)
    docker("service", "update", "-d", "--no-resolve-image", "--args", "sh -c 'exit 3'", name)
    wait_until("update paused", lambda: lab.update_state(name) == "paused", 40)
    return name


def killed_at(
    point: str, medic: Medic, ledger: str, monkeypatch: pytest.MonkeyPatch
) -> MedicProcess:
    monkeypatch.setenv("MEDIC_FAILPOINT", point)
    first = medic(ledger_name=ledger)
    monkeypatch.delenv("MEDIC_FAILPOINT")
    first.wait_for("failpoint reached", 30, failpoint=point)
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(timeout=10)
    return first


@pytest.mark.parametrize("point", ["after-claim", "after-act"])
def test_a_medic_killed_mid_fix_never_fixes_twice(
    lab: Lab, medic: Medic, monkeypatch: pytest.MonkeyPatch, point: str
) -> None:
    name = paused_service(lab)
    version = lab.version(name)
    ledger = f"medic-test-ledger-{uuid.uuid4().hex[:8]}"
    first = killed_at(point, medic, ledger, monkeypatch)
    (claimed,) = first.find("failpoint reached")
    rolled_back = point == "after-act"
    time.sleep(2)
    assert (lab.version(name) > version) is rolled_back  # the kill left it half done (or not)

    second = medic(ledger_name=ledger)
    if point == "after-claim":
        second.wait_for("pending fix released", 20, service=name)
        second.wait_for("action: rollback done", 20, service=name)
        healed = second.wait_for("verified: healed", 60, service=name)
        assert len(second.find("action:")) == 1
    else:
        resumed = second.wait_for("verifying a fix claimed by an earlier instance", 20)
        healed = second.wait_for("verified: healed", 60, service=name)
        assert healed["incident"] == resumed["incident"]
        assert second.find("action:") == []  # the first instance's rollback is not repeated
    assert lab.update_state(name) == "rollback_completed"
    assert not first.find("action: rollback done") or point == "after-act"
    record_timing(
        fault=f"swarm-medic SIGKILLed {point.replace('-', ' ')} (paused update)",
        actions_in_total=len(second.find("action:")) + (1 if rolled_back else 0),
        healed_after_restart=round(ts(healed) - second.started, 1),
        first_claimed_at=round(ts(claimed) - first.started, 1),
    )
