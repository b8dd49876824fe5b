"""disk-pressure on the 3-node lab: every node's instance measures the filesystem under its
engine's DockerRootDir (inside its node) and says it in its probe answer. With the default
watermarks the lab's nodes stay quiet (unless the lab machine's disk is itself nearly full:
then the test says so and skips that half); with `disk-pressure.high=1` (and low=0) every
node's real data root is over it, and each node is named with its path.

A small filesystem for a node's data root would need its dockerd restarted on it, so the
fault is the threshold, not the disk.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.labkit import MedicProcess, in_node, on_node, record_timing, ts
from tests.multilab.kit import first_finding, node_id
from tests.waiting import wait_until

pytestmark = pytest.mark.lab

NodeMedics = Callable[..., list[MedicProcess]]
QUIET = 12.0  # six probe rounds at the fixture's 2 s


def used_percent(i: int, root: str) -> int:
    out = subprocess.run(
        [*in_node(i), "df", "-P", root], capture_output=True, text=True, check=True
    ).stdout
    return int(out.splitlines()[-1].split()[4].rstrip("%"))


def findings(medics: list[MedicProcess]) -> list[dict[str, Any]]:
    return [f for m in medics for f in m.find("finding", runbook="disk-pressure")]


def test_default_watermarks_are_quiet_and_a_low_one_names_every_node(
    node_medics: NodeMedics,
) -> None:
    roots = {i: on_node(i, "info", "--format", "{{.DockerRootDir}}") for i in (1, 2, 3)}
    ids = {node_id(i): i for i in (1, 2, 3)}

    if max(used_percent(i, r) for i, r in roots.items()) < 85:
        quiet = node_medics()
        time.sleep(QUIET)
        assert findings(quiet) == [], "\n".join(m.tail(15) for m in quiet)
        for m in quiet:
            m.stop()
    else:  # pragma: no cover - the lab machine's own disk
        print("the lab machine's disk is over 85% used: the quiet half is skipped")

    started = time.time()
    loud = node_medics(runbook_disk_pressure_high="1", runbook_disk_pressure_low="0")
    _, finding = first_finding(loud, "disk-pressure", 60)
    assert finding["cause"] in {"disk-pressure", "raft-disk"}

    def every_node() -> bool | None:
        named = {str(n) for f in findings(loud) for n in f.get("nodes") or ()}
        return named == set(ids) or None

    wait_until("every node named", every_node, 30)
    for f in findings(loud):
        if f["cause"] == "disk-pressure":
            (nid,) = f["nodes"]
            assert f"the Docker data root {roots[ids[str(nid)]]} on " in str(f["summary"])
    record_timing(
        runbook="disk-pressure",
        fault="disk-pressure.high=1 on the real data roots",
        detect=round(ts(finding) - started, 1),
        action="none (report once)",
    )
