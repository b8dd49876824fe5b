#!/usr/bin/env bash
# Makes .venv with swarm-medic (editable, its dependencies from the hashed lock in requirements/)
# and, with --dev, the test, lint and release tools, and
# promtool and amtool (Debian's prometheus and prometheus-alertmanager, services not started),
# and Debian's chromium and chromium-driver for the status page's browser test, and Debian's
# faketime for the clock-skew lab test (one node's medic runs with its clock ahead).
# On a fresh Debian 12 it first installs python3 and venv support from Debian's packages.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[setup] %s\n' "$*" >&2; }

python_ok() {
  command -v python3 >/dev/null &&
    python3 -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null
}

if ! python_ok; then
  say "installing python3 and python3-venv (Debian packages)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    python3 python3-venv python3-pip ca-certificates >/dev/null
fi

extras=""
lock=requirements/runtime.txt
if [ "${1:-}" = "--dev" ]; then
  extras="[dev]"
  lock=requirements/dev.txt  # runtime, build and dev tools, at the runtime lock's versions
fi
stamp=".venv/.installed${extras}"
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  python3 -m venv .venv
fi
# Reinstall only when the declared or the locked dependencies changed. The dependencies come
# from the lock (scripts/lock.sh), every file checked against its hash; then swarm-medic itself,
# editable, with nothing more (--no-deps: the lock already holds all it needs).
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ "$lock" -nt "$stamp" ]; then
  say "installing swarm-medic${extras} into .venv from $lock"
  # pip's own chatter goes to a log; it is shown only if the install fails.
  if ! { .venv/bin/python -m pip install -q --upgrade pip &&
         .venv/bin/python -m pip install -q --require-hashes -r "$lock" &&
         .venv/bin/python -m pip install -q --no-deps -e .; } >.venv/pip.log 2>&1; then
    cat .venv/pip.log >&2
    say "pip install failed (log above, also in .venv/pip.log)"
    exit 1
  fi
  .venv/bin/python -c 'import swarm_medic, docker, apscheduler, prometheus_client, structlog, tenacity, apprise'
  touch "$stamp"
fi

# The checks of deploy/prometheus and deploy/alertmanager.yml need promtool and amtool.
if [ "${1:-}" = "--dev" ]; then
  bash scripts/monitoring.sh install
  # tests/pipeline/test_status_browser.py: a real headless browser (about 15 s to install)
  if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    say "installing chromium and chromium-driver (Debian packages)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      chromium chromium-driver >/dev/null
  fi
  # tests/multilab/test_clock_skew.py: libfaketime preloaded into one node's medic
  if ! command -v faketime >/dev/null; then
    say "installing faketime (Debian package)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends faketime >/dev/null
  fi
fi
