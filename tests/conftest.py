"""Fixtures shared by every suite: the real lab swarm (session) and medic processes."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.labkit import LAB, MULTILAB, Lab, MedicProcess, docker


@pytest.fixture(scope="session")
def lab_up() -> None:
    if os.environ.get("SWARM_MEDIC_LAB") == "0":
        pytest.skip("SWARM_MEDIC_LAB=0: real-swarm tests switched off")
    done = subprocess.run(
        ["bash", str(LAB), "up"], capture_output=True, text=True, check=False, timeout=600
    )
    if done.returncode != 0:
        pytest.fail(f"scripts/lab.sh up failed:\n{done.stdout}\n{done.stderr}")


@pytest.fixture
def lab(lab_up: None) -> Iterator[Lab]:
    lab = Lab()
    yield lab
    lab.remove_all()


@pytest.fixture
def medic(tmp_path: Path, lab_up: None) -> Iterator[Callable[..., MedicProcess]]:
    started: list[MedicProcess] = []

    def start(*args: str, **settings: str) -> MedicProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_MEDIC_")}
        env.update(
            {
                "SWARM_MEDIC_SCAN_INTERVAL": "2s",
                "SWARM_MEDIC_SCAN_JITTER": "0",
                "SWARM_MEDIC_VERIFY_HOLD": "3s",
                "SWARM_MEDIC_VERIFY_TIMEOUT": "60s",
                "SWARM_MEDIC_HTTP_PORT": "0",
                "SWARM_MEDIC_LOG_FORMAT": "json",
                "SWARM_MEDIC_LEDGER_NAME": f"medic-test-ledger-{uuid.uuid4().hex[:8]}",
            }
        )
        if "docker_host" in settings:  # the one setting whose variable is not SWARM_MEDIC_*
            env["DOCKER_HOST"] = settings.pop("docker_host")
        env.update({f"SWARM_MEDIC_{k.upper()}": v for k, v in settings.items()})
        proc = MedicProcess(tmp_path / f"medic-{len(started)}.log", env, args)
        started.append(proc)
        return proc

    yield start
    for p in started:
        p.stop()
    ids = docker("config", "ls", "-q", "--filter", "name=medic-test-ledger-", check=False)
    if ids:
        docker("config", "rm", *ids.split(), check=False)


@pytest.fixture(scope="session")
def multilab_up(lab_up: None) -> Iterator[None]:
    """A fresh 3-node swarm (scripts/multilab.sh), removed when the session ends."""
    for verb in ("down", "up"):  # an interrupted run leaves namespaces behind: down first
        done = subprocess.run(
            ["bash", str(MULTILAB), verb], capture_output=True, text=True, check=False, timeout=300
        )
        if done.returncode != 0:
            pytest.fail(f"scripts/multilab.sh {verb} failed:\n{done.stdout}\n{done.stderr}")
    yield
    subprocess.run(["bash", str(MULTILAB), "down"], capture_output=True, check=False, timeout=300)
