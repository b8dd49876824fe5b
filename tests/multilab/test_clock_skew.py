"""clock-skew on the 3-node lab: one node's medic runs under libfaketime (Debian's `faketime`),
its clock 5 s ahead of the others'. The brain (the leader's medic) measures every node's clock
on the signed channel each probe round, names that node, and says nothing of the others.

The faked clock is the medic process's, not its engine's (libfaketime is preloaded into the
process only): what the channel measures is the clock of the instance that answers, which on
a real node is the host's. 5 s is inside the channel's 30 s tolerance, so the node is still
probed, and above the 1 s warning.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable

import pytest

from tests.labkit import MedicProcess, record_timing, ts
from tests.multilab.kit import first_finding, leader_index, node_id

pytestmark = pytest.mark.lab

NodeMedics = Callable[..., list[MedicProcess]]
AHEAD = 5.0
# libfaketime also fakes the monotonic clock unless told not to: Python's waits and the
# medic's nonce window run on it, and a constant offset there buys nothing but risk
FAKETIME = ("env", "FAKETIME_DONT_FAKE_MONOTONIC=1", "faketime", "-f", f"+{AHEAD:.0f}s")


def test_a_node_whose_medic_runs_ahead_is_found_and_named(node_medics: NodeMedics) -> None:
    if shutil.which("faketime") is None:
        pytest.fail("faketime is not installed: scripts/setup.sh --dev installs it")
    lead = leader_index()
    off = 3 if lead != 3 else 2  # never the brain: its own clock is the yardstick
    off_id = node_id(off)
    medics = node_medics(wrap={off: FAKETIME})
    started = time.time()

    brain, finding = first_finding(medics, "clock-skew", 60)
    assert brain.log_path.name == f"node{lead}-medic.log"
    assert finding["nodes"] == [off_id]
    assert finding["cause"] == "clock-skew"
    summary = str(finding["summary"])
    assert summary.startswith(f"node{off} ") and "ahead of the brain's clock" in summary
    said = float(str(summary.split(" is ", 1)[1].split(" s ", 1)[0]))
    assert abs(said - AHEAD) < 1.0, summary

    time.sleep(6)  # three more probe rounds
    named = [f["nodes"] for m in medics for f in m.find("finding", runbook="clock-skew")]
    assert named == [[off_id]]  # the others stay quiet, and it was said once
    assert not [m for m in medics if m.find("refused brain-to-node request")]

    record_timing(
        runbook="clock-skew",
        fault=f"one node's medic under libfaketime, clock +{AHEAD:.0f}s",
        detect=round(ts(finding) - started, 1),
        measured=summary.split(" is ", 1)[1].split(" (", 1)[0],
        action="none (report once)",
    )
