"""ip-exhaustion on the lab swarm: a /29 overlay (5 usable addresses) and 8 dnsrr replicas.

Measured on this lab: 5 tasks run and 3 sit in `new` (message "created") with no error at all,
for good. The medic (ip-exhaustion.after=5s) reports the network as full with its numbers and
never acts.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.labkit import Lab, MedicProcess, docker, record_timing, ts
from tests.waiting import wait_until

pytestmark = pytest.mark.lab

SWARM_ALONE = 5.0  # seconds we watch swarm leave the tasks in new


@pytest.fixture
def small_overlay(lab: Lab) -> Iterator[tuple[str, str]]:
    """(network name, subnet): a /29 overlay of its own; removed after the test's services."""
    tag = uuid.uuid4()
    subnet = f"10.77.{tag.int % 254 + 1}.0/29"  # a random /29: no clash with a leftover
    net = f"medic-ipx-{tag.hex[:6]}"
    docker("network", "create", "-d", "overlay", "--subnet", subnet, "--label", "medic.lab=1", net)
    yield net, subnet
    lab.remove_all()  # the service first: a network in use cannot be removed
    for _ in range(50):  # removing a service is asynchronous
        if docker("network", "rm", net, check=False):
            return
        time.sleep(0.3)
    docker("network", "rm", net)


def test_a_full_slash_29_is_reported_with_its_numbers(
    lab: Lab, small_overlay: tuple[str, str], medic: Callable[..., MedicProcess]
) -> None:
    net, subnet = small_overlay
    t_fault = time.time()
    name = lab.create(
        "ipx", "--replicas", "8", "--endpoint-mode", "dnsrr", "--network", net, opt_in=False
    )

    def states() -> list[str]:
        return sorted(lab.current_states(name))

    expected = ["New"] * 3 + ["Running"] * 5
    wait_until("5 running, 3 left in New", lambda: states() == expected, 30)
    # swarm alone: nothing moves and nothing says why
    time.sleep(SWARM_ALONE)
    assert states() == expected
    new = [t for t in lab.tasks(name) if t["CurrentState"].startswith("New")]
    assert [t["Error"] for t in new] == ["", "", ""]

    m = medic(runbook_ip_exhaustion_after="5s")
    finding = m.wait_for("finding", 20, runbook="ip-exhaustion")
    assert finding["cause"] == "exhausted"
    assert finding["severity"] == "critical"
    summary = str(finding["summary"])
    assert f"overlay {net} ({subnet}) has no free address" in summary
    # 5 task addresses + this node's load-balancer endpoint, of 5 usable
    assert "6 of 5 usable addresses in use (5 by tasks, 0 VIPs, 1 load-balancer" in summary
    assert f"3 task(s) of {name} stuck in new" in summary
    assert len(finding["tasks"]) == 3
    assert f"--network-rm {net} {name}" in str(finding["diagnosis"])
    assert "--subnet A.B.C.0/24" in str(finding["diagnosis"])
    m.wait_for("decision: report only", 10, runbook="ip-exhaustion")
    assert not m.find("action:")
    assert states() == expected
    record_timing(
        runbook="ip-exhaustion",
        fault="/29 overlay, 8 dnsrr replicas: 3 tasks in new, no error",
        swarm_alone=f">{SWARM_ALONE:.0f}s stuck",
        detect_after_start=round(ts(finding) - m.started, 1),
        fault_to_finding=round(ts(finding) - t_fault, 1),
    )
