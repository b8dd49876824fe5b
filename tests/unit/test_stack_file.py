"""deploy/swarm-medic.yml, read as `docker stack deploy` would with no variable set: safe by
default (dry-run, opt-in, a swarm-wide concurrency limit), and every SWARM_MEDIC_* it sets,
the commented examples included, is a setting swarm-medic knows (an unknown one stops it)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from swarm_medic.config import load
from swarm_medic.core.settings import RUNBOOK_ENV_PREFIX, SPECS, env_name

STACK = Path(__file__).resolve().parents[2] / "deploy" / "swarm-medic.yml"
DEFAULTED = re.compile(r"\$\{[A-Z_]+:-([^}]*)\}")  # ${VAR:-default}, as stack deploy fills it


def environment() -> dict[str, str]:
    doc: dict[str, Any] = yaml.safe_load(STACK.read_text(encoding="utf-8"))
    env = doc["services"]["swarm-medic"]["environment"]
    return {k: DEFAULTED.sub(r"\1", str(v)) for k, v in env.items()}


def test_the_defaults_are_safe() -> None:
    env = environment()
    settings = load({}, {k: v for k, v in env.items() if not k.endswith("_FILE")})
    assert settings.safety.dry_run is True
    assert settings.safety.scope == "opt-in"
    assert settings.safety.max_concurrent_actions == 2  # 0 would be no limit at all


def test_every_variable_set_or_suggested_is_a_known_setting() -> None:
    known = {env_name(s) for s in SPECS} | {env_name(s) + "_FILE" for s in SPECS}
    commented = re.findall(
        r"^\s*#\s*(SWARM_MEDIC_[A-Z_]+):", STACK.read_text(encoding="utf-8"), re.M
    )
    assert {"SWARM_MEDIC_NOTIFY_FILE", "SWARM_MEDIC_ALERTS_TOKEN_FILE"} <= set(commented)
    named = (set(environment()) | set(commented)) - known
    unknown = sorted(n for n in named if not n.startswith(RUNBOOK_ENV_PREFIX))  # a runbook's
    assert not unknown, f"swarm-medic would refuse to start on {unknown}"
