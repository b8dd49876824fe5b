"""The built-in runbooks as a set: every file of runbooks/ loads, each with its settings."""

from __future__ import annotations

from swarm_medic.core.runbook import Runbook
from swarm_medic.pipeline import registry
from tests.unit.runbooks.kit import REGISTRY

CRASH: Runbook = REGISTRY.runbooks["crash-loop"]
STUCK: Runbook = REGISTRY.runbooks["stuck-update"]


def test_registry_loads_the_three_builtin_runbooks() -> None:
    files = registry.builtin_dir().glob("*.py")
    assert sorted(REGISTRY.runbooks) == sorted(
        f.stem.replace("_", "-") for f in files if not f.name.startswith("_")
    )
    assert {"stuck-task", "paused-update", "repeated-rejection"} <= set(REGISTRY.runbooks)
    assert not REGISTRY.errors
    assert REGISTRY.errors == []


def test_both_runbooks_load_with_their_settings() -> None:
    assert not REGISTRY.errors
    assert [s.name for s in CRASH.settings] == ["threshold", "window"]
    assert [s.name for s in STUCK.settings] == ["margin", "action"]
    assert CRASH.plan_fn is None  # report only, always
