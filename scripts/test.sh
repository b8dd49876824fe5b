#!/usr/bin/env bash
# Every check and every test, on a real single-node swarm: the command README.md names and
# .ci/run calls. Lint and types first (fast), then unit, pipeline, contract and lab tests,
# then the scale benchmark's figures (a measurement, printed, never a pass/fail gate).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh --dev
bash scripts/lab.sh up

echo "== ruff, mypy, import-linter"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/lint-imports --no-cache >/dev/null && echo "import contracts kept"

echo "== pytest (unit, pipeline, contract on fake and real swarm, lab runbook tests)"
rm -f build/lab-timings.jsonl
.venv/bin/pytest "$@"

echo "== measured on the lab (from build/lab-timings.jsonl)"
cat build/lab-timings.jsonl 2>/dev/null || echo "(no lab timings recorded)"

echo "== benchmark: 10,000 tasks / 1,000 services / 100 nodes on the fake engine"
.venv/bin/python -m benchmarks.scan_bench
