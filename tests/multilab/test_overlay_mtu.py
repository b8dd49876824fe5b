"""overlay-mtu on the 3-node lab: large VXLAN packets dropped on one node's path while small
ones pass (an iptables length match in node2's own namespace, on UDP 4789, the underlay's
VXLAN port). Swarm sees nothing and neither do TCP-connect probes (a handshake is small). The
nodes' full-size echoes with don't-fragment find it: one finding for the overlay, naming the
paths that touch node2, and node2 as the node they all touch; the path between node1 and node3
stays quiet, and no task is called unreachable.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.labkit import record_timing, ts
from tests.multilab.kit import SWARM_ALONE, NodeMedics, Web, first_finding, node_id, swarm_alone

pytestmark = pytest.mark.lab

BAD = 2
# VXLAN packets of 1,200 bytes and more leave node2 no more: a full overlay packet (1,450 +
# 50) is lost, a handshake or a small echo (under 200) passes
DROP = ["OUTPUT", "-p", "udp", "--dport", "4789", "-m", "length", "--length", "1200:65535"]


def iptables(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["nsenter", f"--net=/run/netns/medic-n{BAD}", "iptables", *argv],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def large_packets_dropped() -> Iterator[float]:
    done = iptables("-I", *DROP, "-j", "DROP")
    assert done.returncode == 0, done.stderr
    try:
        yield time.time()
    finally:
        while iptables("-D", *DROP, "-j", "DROP").returncode == 0:
            pass  # every copy, so no later test inherits the fault


def test_a_path_that_loses_large_packets_is_named(
    web: Web, node_medics: NodeMedics, large_packets_dropped: float
) -> None:
    t_fault = large_packets_dropped
    before = web.running_on()
    swarm_alone(web, before[f"node{BAD}"], f"node{BAD}")
    assert web.running_on() == before  # every task Running where it was: swarm sees nothing
    medics = node_medics(runbook_overlay_mtu_rounds="2")
    brain, finding = first_finding(medics, "overlay-mtu", 60)
    bad, ids = node_id(BAD), {node_id(i) for i in (1, 2, 3)}
    summary = str(finding["summary"])
    assert web.network in summary and "1450 bytes" in summary, summary
    assert f"every lossy path touches node{BAD}" in summary, summary
    named = finding["nodes"]
    assert isinstance(named, list) and bad in named and set(named) <= ids
    assert "node1 and node3" not in summary  # the healthy path stays quiet
    details = brain.find("finding", runbook="overlay-mtu")[0]
    assert "1500" in str(details), details  # each node's underlay MTU, read on the node
    # the TCP probes see nothing: no task called unreachable, nothing acted on
    time.sleep(4)
    assert not [m for m in medics if m.find("finding", runbook="unreachable-endpoint")]
    assert not [m for m in medics if m.find("action:")]
    assert len([f for m in medics for f in m.find("finding", runbook="overlay-mtu")]) == 1
    record_timing(
        runbook="overlay-mtu",
        fault=f"VXLAN packets >= 1200 bytes dropped leaving node{BAD} (iptables length match)",
        swarm_alone=f">{SWARM_ALONE:.0f}s, every task Running",
        detect=round(ts(finding) - brain.started, 1),
        fault_to_finding=round(ts(finding) - t_fault, 1),
        action="none (report once)",
    )
