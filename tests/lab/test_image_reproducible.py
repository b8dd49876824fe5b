"""The same tree gives the same image: scripts/image.sh run twice in a row, under two tags,
builds one image ID, labelled with pyproject's version and the last commit and its time.

What makes it so: the wheels are the lock's (same files, hash-checked), SOURCE_DATE_EPOCH and
the CREATED label are the last commit's time (never "now"), the base is the local
medic/pybase image, and the build cache keys on file contents, not on the wheels' fresh mtimes.
Runs on the single-node lab's engine, as scripts/test.sh's image phase does.
"""

from __future__ import annotations

import json
import os
import subprocess
import tomllib
from datetime import UTC, datetime

import pytest

from tests.labkit import ROOT, docker

pytestmark = pytest.mark.lab

TAGS = ("swarm-medic:repro-a", "swarm-medic:repro-b")
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]


def build(tag: str) -> str:
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "image.sh")],
        env={**os.environ, "IMAGE": tag},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, f"scripts/image.sh failed:\n{done.stdout}\n{done.stderr}"
    return docker("image", "inspect", "-f", "{{.Id}}", tag)


def git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_two_builds_of_one_tree_are_one_image() -> None:
    try:
        first = build(TAGS[0])
        second = build(TAGS[1])
        assert first == second, f"{TAGS[0]} is {first}, {TAGS[1]} is {second}"
        labels = json.loads(docker("image", "inspect", "-f", "{{json .Config.Labels}}", TAGS[1]))
        epoch = int(git("log", "-1", "--format=%ct"))
        assert labels["org.opencontainers.image.version"] == VERSION
        assert labels["org.opencontainers.image.revision"] == git("rev-parse", "HEAD")
        assert labels["org.opencontainers.image.created"] == datetime.fromtimestamp(
            epoch, UTC
        ).strftime("%Y-%m-%dT%H:%M:%SZ")
    finally:
        docker("image", "rm", *TAGS, check=False)
