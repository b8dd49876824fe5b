"""The stack files render with the docker CLI (`docker stack config`), no pull, no registry:
every config file they name exists and is the repository's own, the swarm-medic stack with
only its documented variables set."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.labkit import ROOT

pytestmark = pytest.mark.lab


def render(stack_file: str, **env: str) -> dict[str, Any]:
    done = subprocess.run(
        ["docker", "stack", "config", "-c", stack_file],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    doc: dict[str, Any] = yaml.safe_load(done.stdout)
    return doc


def test_the_monitoring_stack_renders_with_the_repositorys_files() -> None:
    doc = render("deploy/monitoring.yml")
    assert set(doc["services"]) == {"prometheus", "alertmanager", "grafana"}
    for name, config in doc["configs"].items():
        path = Path(config["file"])
        assert path.is_file(), f"config {name}: {path} does not exist"
        assert ROOT / "deploy" in path.resolve().parents, f"config {name} outside deploy/"
    used = {c["source"] for s in doc["services"].values() for c in s.get("configs", [])}
    assert used == set(doc["configs"]), "a config is declared but no service mounts it"


def test_the_medic_stack_renders_with_only_its_documented_variables() -> None:
    doc = render(
        "deploy/swarm-medic.yml",
        MEDIC_IMAGE="sha256:" + "0" * 64,
        MEDIC_STACK="ops",
        MEDIC_PORT="9400",
        MEDIC_SCAN_INTERVAL="30s",
        MEDIC_PROBE_INTERVAL="20s",
        MEDIC_MAX_CONCURRENT="5",
        SWARM_MEDIC_DRY_RUN="false",
    )
    svc = doc["services"]["swarm-medic"]
    env = svc["environment"]
    assert env["SWARM_MEDIC_SELF_SERVICES"] == "ops_swarm-medic"
    assert env["SWARM_MEDIC_DRY_RUN"] == "false"
    assert env["SWARM_MEDIC_SCAN_INTERVAL"] == "30s"
    assert env["SWARM_MEDIC_PROBE_INTERVAL"] == "20s"
    assert env["SWARM_MEDIC_HTTP_PORT"] == "9400"
    assert env["SWARM_MEDIC_MAX_CONCURRENT_ACTIONS"] == "5"
    assert svc["ports"][0]["published"] in (9400, "9400")
    assert svc["deploy"]["mode"] == "global"
