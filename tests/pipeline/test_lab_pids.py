"""scripts/pids.sh: a pid file counts only if the process it names is alive, not a zombie,
runs the program it should and lives in the network namespace it should. Measured on the lab:
a dockerd restarted after a SIGKILL took a reused number in containerd's stale pid file for a
live containerd and never came back."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.labkit import ROOT

PIDS = ROOT / "scripts" / "pids.sh"


def bash(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", f". {PIDS}; {script}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    p = subprocess.Popen(["sleep", "60"])
    yield p
    p.kill()
    p.wait()


def test_a_live_process_of_the_named_program_counts(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    f = tmp_path / "x.pid"
    f.write_text(f"{sleeper.pid}\n")
    done = bash(f"pid_named {f} sleep")
    assert (done.returncode, done.stdout.strip()) == (0, str(sleeper.pid))


def test_a_number_reused_by_another_program_does_not(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    f = tmp_path / "containerd.pid"
    f.write_text(str(sleeper.pid))  # what the lab saw: containerd's number, now someone else's
    assert bash(f"pid_named {f} containerd").returncode == 1
    assert bash(f"clear_stale {f} containerd /proc/$$/ns/net 0").returncode == 0
    assert not f.exists()
    assert sleeper.poll() is None  # judged, never signalled


def test_a_zombie_or_a_gone_process_does_not(tmp_path: Path) -> None:
    zombie = subprocess.Popen(["true"])
    time.sleep(0.3)  # exited, not yet reaped: a zombie, as a SIGKILLed dockerd lingers
    f = tmp_path / "docker.pid"
    f.write_text(str(zombie.pid))
    assert bash(f"pid_named {f} true").returncode == 1
    zombie.wait()
    assert bash(f"pid_named {f} true").returncode == 1  # gone altogether
    f.write_text("not a number\n")
    assert bash(f"pid_named {f} true").returncode == 1


def test_the_same_program_in_another_network_namespace_does_not(tmp_path: Path) -> None:
    # every lab node's containerd has the same command line: only the namespace tells them apart
    other = subprocess.Popen(["unshare", "--net", "--", "sleep", "60"])
    try:
        time.sleep(0.3)
        f = tmp_path / "containerd.pid"
        f.write_text(str(other.pid))
        assert bash(f"pid_named {f} sleep").returncode == 1
        assert bash(f"pid_named {f} sleep /proc/{other.pid}/ns/net").returncode == 0
    finally:
        other.kill()
        other.wait()


def test_clear_stale_keeps_the_file_of_a_live_process(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    f = tmp_path / "x.pid"
    f.write_text(str(sleeper.pid))
    assert bash(f"clear_stale {f} sleep /proc/$$/ns/net 0").returncode == 0
    assert f.exists()
