"""Fixtures shared by every suite: the real lab swarm (session) and medic processes."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.labkit import LAB, MULTILAB, Lab, MedicProcess, docker, in_node, on_node


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
    left = Lab.clear_leftovers()
    if left:
        print(f"lab: removed services an earlier test left behind: {', '.join(left)}")
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
    """A fresh 3-node swarm of 3 managers (scripts/multilab.sh), removed at session end."""
    for verb in ("down", "up"):  # an interrupted run leaves namespaces behind: down first
        done = subprocess.run(
            ["bash", str(MULTILAB), verb],
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
            env={**os.environ, "MANAGERS": "3"},  # failover needs 3 managers
        )
        if done.returncode != 0:
            pytest.fail(f"scripts/multilab.sh {verb} failed:\n{done.stdout}\n{done.stderr}")
    yield
    subprocess.run(["bash", str(MULTILAB), "down"], capture_output=True, check=False, timeout=300)


@pytest.fixture
def node_medics(tmp_path: Path, multilab_up: None) -> Iterator[Callable[..., list[MedicProcess]]]:
    """One `swarm-medic run` per multi-node lab node, inside that node, sharing a secret."""
    started: list[MedicProcess] = []
    ledger = f"medic-test-ledger-{uuid.uuid4().hex[:8]}"
    secret = tmp_path / "channel-secret"
    secret.write_text(uuid.uuid4().hex + uuid.uuid4().hex)

    def start(
        nodes: tuple[int, ...] = (1, 2, 3),
        wrap: Mapping[int, tuple[str, ...]] | None = None,
        **settings: str,
    ) -> list[MedicProcess]:
        """`wrap`: node -> argv the node's medic runs under (e.g. faketime), inside the node."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("SWARM_MEDIC_") and k != "DOCKER_HOST"
        }
        env.update(
            {
                "SWARM_MEDIC_SCAN_INTERVAL": "2s",
                "SWARM_MEDIC_SCAN_JITTER": "0",
                "SWARM_MEDIC_PROBE_INTERVAL": "2s",
                "SWARM_MEDIC_PROBE_FAILURES": "2",
                "SWARM_MEDIC_PROBE_GRACE": "2s",
                "SWARM_MEDIC_VERIFY_HOLD": "3s",
                "SWARM_MEDIC_VERIFY_TIMEOUT": "60s",
                "SWARM_MEDIC_LOG_FORMAT": "json",
                "SWARM_MEDIC_LEDGER_NAME": ledger,
                "SWARM_MEDIC_SECRET_FILE": str(secret),
            }
        )
        env.update({f"SWARM_MEDIC_{k.upper()}": v for k, v in settings.items()})
        procs = [
            MedicProcess(
                tmp_path / f"node{i}-medic.log", env, (), in_node(i) + (wrap or {}).get(i, ())
            )
            for i in nodes
        ]
        started.extend(procs)
        return procs

    yield start
    for p in started:
        p.stop()
    ids = on_node(1, "config", "ls", "-q", "--filter", "name=medic-test-ledger-", check=False)
    if ids:
        on_node(1, "config", "rm", *ids.split(), check=False)


# Property tests: a fixed, derandomised profile of at least 1,000 examples each (CI and local
# runs alike), so a failure reproduces and "no example crashed" means the same every run.
settings.register_profile(
    "ci",
    max_examples=1000,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
