"""The single-node lab made whole before each module."""

from __future__ import annotations

import subprocess

import pytest

from tests.labkit import LAB


@pytest.fixture(scope="module", autouse=True)
def lab_whole(request: pytest.FixtureRequest) -> None:
    """The lab's engine up, its swarm active and its node Ready and active before each module
    (`lab.sh heal`), so a module that stopped the engine or drained the node and failed
    before putting it back never fails the modules after it."""
    request.getfixturevalue("lab_up")  # every module here runs on the lab (skips when off)
    done = subprocess.run(
        ["bash", str(LAB), "heal"], capture_output=True, text=True, check=False, timeout=300
    )
    if done.returncode != 0:
        pytest.fail(f"scripts/lab.sh heal failed:\n{done.stdout}\n{done.stderr}")
