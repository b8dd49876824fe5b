"""The lab heals itself: a node SIGKILLed, its pid files left naming numbers that other
processes now hold, comes back with `multilab.sh heal` (what the fixture before each module
runs), and nothing that merely holds such a number is signalled. The README's test command
once failed here: node3 did not come back after the quorum test killed it, and every later
test of the phase failed with it."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.labkit import multilab, on_node
from tests.waiting import wait_until

pytestmark = pytest.mark.lab
RUN = Path("/run/medic/n3/run")


def test_a_killed_node_comes_back_over_pid_files_whose_numbers_were_reused() -> None:
    multilab("kill-node", "3")
    # numbers reused: a process of the host, and node1's own containerd (same program, same
    # command line, another node)
    stranger = subprocess.Popen(["sleep", "120"])
    node1_containerd = Path("/run/medic/n1/run/docker/containerd/containerd.pid").read_text()
    try:
        (RUN / "docker.pid").write_text(str(stranger.pid))
        (RUN / "docker" / "containerd").mkdir(parents=True, exist_ok=True)
        (RUN / "docker" / "containerd" / "containerd.pid").write_text(node1_containerd)
        t0 = time.monotonic()
        multilab("heal")
        took = time.monotonic() - t0
        wait_until(
            "node3 Ready",
            lambda: (
                "Ready"
                in on_node(1, "node", "ls", "--filter", "name=node3", "--format", "{{.Status}}")
            ),
            60,
        )
        assert on_node(3, "info", "--format", "{{.Swarm.LocalNodeState}}") == "active"
        assert stranger.poll() is None  # never signalled
        assert Path(f"/proc/{node1_containerd.strip()}").exists()  # node1's containerd lives
        print(f"node3 back in {took:.1f} s")
    finally:
        stranger.kill()
        stranger.wait()
