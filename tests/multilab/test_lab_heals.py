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


def roles() -> dict[str, str]:
    """node entry -> "<manager status or worker> <status>", as node1 lists them."""
    out = on_node(
        1,
        "node",
        "ls",
        "--format",
        "{{.ID}} {{if .ManagerStatus}}manager{{else}}worker{{end}} {{.Status}}",
    )
    return dict(line.split(maxsplit=1) for line in out.splitlines() if line.strip())


def test_a_node_left_a_worker_with_its_old_entry_down_is_made_whole_again() -> None:
    """What the stale-nodes test does (demote, leave, join again as a worker), stopped half
    way: heal promotes the machine again and drops its ghost. A heal once exited 1 in silence
    here (a command substitution that failed under set -e while node3 was not yet a manager),
    and the two modules after it failed."""
    old = on_node(3, "info", "--format", "{{.Swarm.NodeID}}")
    on_node(1, "node", "demote", old)
    wait_until(
        "node3 a worker",
        lambda: on_node(3, "info", "--format", "{{.Swarm.ControlAvailable}}") == "false",
        30,
    )
    on_node(3, "swarm", "leave")
    wait_until("node3's old entry Down", lambda: roles().get(old) == "worker Down", 30)
    token = on_node(1, "swarm", "join-token", "-q", "worker")
    on_node(
        3,
        "swarm",
        "join",
        "--token",
        token,
        "--advertise-addr",
        "10.99.0.13",
        "--listen-addr",
        "10.99.0.13:2377",
        "10.99.0.11:2377",
    )
    multilab("heal")
    new = on_node(3, "info", "--format", "{{.Swarm.NodeID}}")
    wait_until(
        "three managers, Ready, and no ghost",
        lambda: sorted(roles().values()) == ["manager Ready"] * 3 and old not in roles(),
        60,
    )
    assert new != old
