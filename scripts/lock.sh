#!/usr/bin/env bash
# Regenerates the locked requirements in requirements/ from pyproject.toml, with uv:
#
#   runtime.txt  the project's dependencies: what the image and `scripts/setup.sh` install
#   build.txt    the build system's requirements (setuptools): what builds the wheel in the image
#   dev.txt      runtime + build + the dev extra (tests, lint, release tools), at the same
#                versions as runtime.txt and build.txt (compiled with them as constraints)
#
# Every pin carries the sha256 of every file PyPI has for it (`pip install --require-hashes`),
# and the lock is universal: one resolution, with markers, for every platform and Python >= 3.11,
# so the same files serve linux/amd64 and linux/arm64, the lab's Python 3.11 and python:3.12-slim.
# Versions already in a lock are kept (only what pyproject.toml now asks for moves);
# `--upgrade` re-resolves everything to the newest allowed.
# tests/unit/test_lock.py fails when a lock no longer satisfies pyproject.toml.
#
#   scripts/lock.sh              after editing dependencies in pyproject.toml
#   scripts/lock.sh --upgrade    take every dependency's newest allowed version
set -euo pipefail
cd "$(dirname "$0")/.."

UV=${UV:-.venv/bin/uv}
[ -x "$UV" ] || { echo "no $UV: run scripts/setup.sh --dev first (uv is a dev dependency)" >&2; exit 1; }
args=(--universal --python-version 3.11 --generate-hashes --quiet
  --custom-compile-command "scripts/lock.sh")
case "${1:-}" in
  --upgrade) args+=(--upgrade) ;;
  "") ;;
  *) echo "usage: $0 [--upgrade]" >&2; exit 2 ;;
esac

build_requires() {
  python3 -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"]))'
}

mkdir -p requirements
"$UV" pip compile pyproject.toml "${args[@]}" -o requirements/runtime.txt
build_requires | "$UV" pip compile - "${args[@]}" -o requirements/build.txt
build_requires | "$UV" pip compile pyproject.toml - --extra dev \
  -c requirements/runtime.txt -c requirements/build.txt "${args[@]}" -o requirements/dev.txt
for f in runtime build dev; do
  printf '%-24s %3d packages\n' "requirements/$f.txt" "$(grep -c '^[a-z0-9].*==' "requirements/$f.txt")"
done
