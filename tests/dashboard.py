"""The Grafana dashboard's PromQL, ready to run against a real Prometheus (lab tests).

deploy/grafana/dashboard.py generates the dashboard; it is not a package, so it is loaded from
its path. `queries()` gives panel title -> expressions with $__rate_interval, $__interval,
$__range, $job, $instance and $cluster replaced by real values (see SUBSTITUTE there);
`may_be_empty()` those whose series exist only once something happened (lazily created).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
GENERATOR = DEPLOY / "grafana" / "dashboard.py"
RULES = DEPLOY / "prometheus" / "rules.py"


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def generator() -> ModuleType:
    return _load("swarm_medic_dashboard", GENERATOR)


def rules_generator() -> ModuleType:
    """deploy/prometheus/rules.py, which writes alerts.yml and recording.yml."""
    return _load("swarm_medic_rules", RULES)


def queries(values: dict[str, str] | None = None) -> dict[str, list[str]]:
    out: dict[str, list[str]] = generator().queries(values)
    return out


def may_be_empty(values: dict[str, str] | None = None) -> set[str]:
    """The expressions of queries() whose series appear only once something has happened."""
    out: set[str] = generator().may_be_empty(values)
    return out
