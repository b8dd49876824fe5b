#!/usr/bin/env bash
# Every check and every test, on a real swarm: the command README.md names and .ci/run calls.
# Lint and types first (fast), then unit, pipeline, contract and lab tests, then the soak and
# the benchmarks' figures (measurements, printed, never a pass/fail gate). Each phase prints
# how long it took, and a summary of all of them comes last. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

T0=$SECONDS
PHASES=()
FAILED=()
# phase NAME CMD...: run CMD, print and remember how long it took. A failing test phase does
# not stop the run: the lab heals itself between phases, and a CI log that shows every failing
# phase at once saves a round trip per fault. `must` phases (set-up, lab up, image) stop it:
# nothing after them can mean anything without them.
run_phase() {
  local kind=$1 name=$2 t=$SECONDS rc=0; shift 2
  echo "== $name"
  # in the background, then waited for: `"$@" || rc=$?` would switch errexit off inside the
  # phase's functions (bash ignores -e in an || list, subshells included), and `lint` would
  # then report only its last command's status
  "$@" &
  wait $! || rc=$?
  local took=$((SECONDS - t)) verdict=ok
  [ "$rc" -eq 0 ] || { verdict="FAILED (exit $rc)"; FAILED+=("$name"); }
  PHASES+=("$(printf '%-52s %5d s  %s' "$name" "$took" "$verdict")")
  echo "== $name: ${took} s, $verdict"
  if [ "$rc" -ne 0 ] && [ "$kind" = must ]; then summary; exit "$rc"; fi
  return 0
}
phase() { run_phase phase "$@"; }
must() { run_phase must "$@"; }
summary() {
  echo "== time per phase"
  printf '%s\n' "${PHASES[@]}"
  echo "total: $((SECONDS - T0)) s"
  [ "${#FAILED[@]}" -eq 0 ] || printf 'FAILED: %s\n' "${FAILED[@]}"
}

# The release workflow cannot run here; actionlint checks its syntax, expressions, the inputs
# of the actions it uses, and its shell steps (with shellcheck, when installed).
workflows() {
  .venv/bin/actionlint .github/workflows/*.yml && echo "workflows linted"
}

lint() {
  .venv/bin/ruff check .
  .venv/bin/ruff format --check .
  .venv/bin/mypy
  .venv/bin/lint-imports --no-cache >/dev/null && echo "import contracts kept"
  workflows
}

setup() {
  bash scripts/setup.sh --dev
  bash scripts/engine.sh fetch 28
}

engine_2010() {
  .venv/bin/pytest tests/contract -m lab "$@"
  .venv/bin/pytest tests/lab -m smoke "$@"
}

monitoring_checks() {
  promtool check config deploy/prometheus.yml   # also checks the rule files it names
  promtool check rules deploy/prometheus/recording.yml deploy/prometheus/alerts.yml
  promtool test rules deploy/prometheus/tests/*.yml
  amtool check-config deploy/alertmanager.yml
  # the tests that need promtool (the dashboard's PromQL); promtool is known present by now
  .venv/bin/pytest tests/monitoring
}

# Engines (scripts/engine.sh): Docker 28.5.2 with Engine 29's API floor, where users are, for
# the full single-node lab, the 3-node lab, the deployed stack and the soak; Debian 12's 20.10
# for the contract and the demo's four faults; and a 28/20.10/28 swarm upgraded node by node.
must "set-up (.venv, Debian packages, engine 28)" setup
must "lab up: engine 28 (dockerd, swarm, test image)" env ENGINE=28 bash scripts/lab.sh up
phase "ruff, mypy, import-linter, actionlint" lint
rm -f build/lab-timings.jsonl
phase "promtool, amtool: rules, their tests, configs, dashboard" monitoring_checks
# Unit and pipeline tests need no engine (SWARM_MEDIC_LAB=0 skips none of them): they run
# beside the single-node lab phase, whose tests mostly wait on the swarm, on the other core;
# their output is shown as a phase of its own once the lab phase is over. 3 minutes saved.
mkdir -p build
rm -f build/unit.log build/unit.rc
(
  rc=0
  t=$SECONDS
  SWARM_MEDIC_LAB=0 .venv/bin/pytest tests/unit tests/pipeline "$@" >build/unit.log 2>&1 || rc=$?
  echo "(ran $((SECONDS - t)) s beside the single-node lab)" >>build/unit.log
  echo "$rc" >build/unit.rc
) &
UNIT_PID=$!
unit_beside() {
  # polled, not `wait`ed: a phase runs in a subshell, and the tests are its parent's child
  while [ ! -s build/unit.rc ] && kill -0 "$UNIT_PID" 2>/dev/null; do sleep 2; done
  cat build/unit.log
  return "$(cat build/unit.rc 2>/dev/null || echo 1)"
}
phase "pytest: contract (engine 28)" .venv/bin/pytest tests/contract "$@"
phase "pytest: single-node lab (engine 28)" .venv/bin/pytest tests/lab --durations=12 "$@"
phase "pytest: unit, pipeline (beside the single-node lab)" unit_beside
# the deployed-stack tests run the image of this very tree (scripts/image.sh: offline, base cached)
must "image: swarm-medic:dev from this tree" bash scripts/image.sh
phase "pytest: 3-node lab (engine 28)" env ENGINE=28 .venv/bin/pytest tests/multilab --durations=12 "$@"
# healthy churn on the 3-node lab: any warning finding or any action fails the run
phase "soak: 1 min of healthy churn, 3 acting medics" .venv/bin/python -m benchmarks.soak --minutes 1
phase "pytest: mixed 28/20.10/28 lab, node2 upgraded" env ENGINES="28 20.10 28" .venv/bin/pytest tests/mixedlab "$@"
phase "lab up: engine 20.10" env ENGINE=20.10 bash scripts/lab.sh up
phase "pytest: contract and the demo's faults (engine 20.10)" engine_2010 "$@"

echo "== measured on the lab (from build/lab-timings.jsonl)"
cat build/lab-timings.jsonl 2>/dev/null || echo "(no lab timings recorded)"

phase "benchmarks (python -m benchmarks)" .venv/bin/python -m benchmarks

summary
[ "${#FAILED[@]}" -eq 0 ]
