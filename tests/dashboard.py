"""The Grafana dashboard's PromQL, ready to run against a real Prometheus (lab tests).

deploy/grafana/dashboard.py generates the dashboard; it is not a package, so it is loaded from
its path. `queries()` gives panel title -> expressions with $__rate_interval, $__interval,
$__range, $job and $instance replaced by real values (see SUBSTITUTE there).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

GENERATOR = Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "dashboard.py"


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("swarm_medic_dashboard", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def queries(values: dict[str, str] | None = None) -> dict[str, list[str]]:
    out: dict[str, list[str]] = generator().queries(values)
    return out
