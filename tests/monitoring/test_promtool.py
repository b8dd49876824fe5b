"""The monitoring tier: tests that run Prometheus's own tool, promtool. scripts/test.sh runs them
in its "promtool, amtool" phase, after promtool itself checked the rules (scripts/monitoring.sh
install provides it; setup.sh --dev runs that). Skipped where promtool is missing, so a bare
`pytest` still passes on such a machine; the unit tier needs no binary at all."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.dashboard import queries

pytestmark = pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool missing: scripts/monitoring.sh install (scripts/setup.sh --dev does)",
)


def test_every_dashboard_expression_parses(tmp_path: Path) -> None:
    """promtool 2.42 has no PromQL parse command (`promtool query` needs a server): each
    expression becomes a recording rule and `promtool check rules` parses it. Whether each
    returns data is for the lab, against a real Prometheus (tests.dashboard.queries)."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: scripts/monitoring.sh install (scripts/setup.sh --dev does)"
    rules = [
        {"record": f"dashboard:check_{i}_{j}", "expr": e}
        for i, exprs in enumerate(queries().values())
        for j, e in enumerate(exprs)
    ]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    cmd = [promtool, "check", "rules", str(path)]
    out = subprocess.run(cmd, check=False, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(rules)} rules found" in out.stdout
