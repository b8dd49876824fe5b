#!/usr/bin/env bash
# Cuts a release of swarm-medic from a clean tree:
#
#   scripts/release.sh [--dry-run] VERSION        e.g. scripts/release.sh 0.2.0
#
#   1. refuses a VERSION that is not X.Y.Z (optionally aN, bN or rcN), or not newer than
#      pyproject.toml's; a tree with changes or untracked files; an existing tag vVERSION; an
#      empty [Unreleased] section in CHANGELOG.md;
#   2. CHANGELOG.md: what [Unreleased] held goes under `## [VERSION] - DATE`; [Unreleased] stays,
#      empty, above it;
#   3. pyproject.toml: version = "VERSION", the one place it is said (`--version`, /healthz,
#      swarm_medic_info and the image's label all read it; tests/pipeline/test_version.py);
#   4. commits both ("Release VERSION");
#   5. builds the wheel and the sdist into dist/ (python -m build, the locked setuptools) and
#      checks them (twine check --strict);
#   6. builds the image swarm-medic:VERSION with scripts/image.sh (labels: VERSION, the release
#      commit, its time);
#   7. tags the release commit vVERSION (annotated). Pushing is yours: the tag is what
#      .github/workflows/release.yml builds for amd64 and arm64, signs and publishes.
#
# --dry-run runs the refusals of step 1, prints the CHANGELOG and pyproject changes as a diff
# and every command of steps 4-7, and changes nothing. A failing step stops the script before
# the tag; `git reset --hard HEAD~1` then undoes step 4.
#
# Env: PYTHON (.venv/bin/python: needs build, twine and packaging, i.e. scripts/setup.sh --dev),
#      DATE (the release date, default today in UTC).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-.venv/bin/python}
DATE=${DATE:-$(date -u +%F)}
say() { printf '[release] %s\n' "$*" >&2; }
refuse() { say "refused: $*"; exit 1; }

DRY=0
if [ "${1:-}" = "--dry-run" ]; then DRY=1; shift; fi
[ $# -eq 1 ] || { echo "usage: $0 [--dry-run] VERSION" >&2; exit 2; }
V=$1
[ -x "$PY" ] || command -v "$PY" >/dev/null || refuse "no $PY: run scripts/setup.sh --dev first"

# --- 1. refusals ----------------------------------------------------------------------------
[[ $V =~ ^[0-9]+\.[0-9]+\.[0-9]+((a|b|rc)[0-9]+)?$ ]] ||
  refuse "VERSION must look like 1.2.3 or 1.2.3rc1, not '$V'"
[ -z "$(git status --porcelain)" ] ||
  refuse "the tree has changes or untracked files (git status): release from a clean commit"
! git rev-parse -q --verify "refs/tags/v$V" >/dev/null || refuse "tag v$V exists already"
CURRENT=$("$PY" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
"$PY" -c 'import sys; from packaging.version import Version as V; sys.exit(V(sys.argv[1]) <= V(sys.argv[2]))' \
  "$V" "$CURRENT" || refuse "$V is not newer than pyproject.toml's $CURRENT"

# --- 2, 3. the new CHANGELOG.md and pyproject.toml, written beside the real ones -------------
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PY" - "$V" "$DATE" "$work" <<'EOF' || exit 1
import re, sys
version, date, work = sys.argv[1:]
text = open("CHANGELOG.md", encoding="utf-8").read()
head = re.search(r"^## \[Unreleased\][^\n]*\n", text, re.M)
if head is None:
    sys.exit("[release] refused: CHANGELOG.md has no '## [Unreleased]' section")
nxt = re.search(r"^## \[", text[head.end():], re.M)
end = head.end() + (nxt.start() if nxt else len(text[head.end():]))
body = text[head.end():end].strip("\n")
if not body.strip():
    sys.exit("[release] refused: [Unreleased] in CHANGELOG.md is empty: nothing to release")
out = text[: head.end()] + f"\n## [{version}] - {date}\n\n{body}\n\n" + text[end:]
open(f"{work}/CHANGELOG.md", "w", encoding="utf-8").write(out)
pyproject = open("pyproject.toml", encoding="utf-8").read()
bumped, n = re.subn(r'^version = "[^"]*"$', f'version = "{version}"', pyproject, flags=re.M)
if n != 1:
    sys.exit(f"[release] pyproject.toml: expected one version line, found {n}")
open(f"{work}/pyproject.toml", "w", encoding="utf-8").write(bumped)
EOF

run() {  # run CMD...: CMD, or in a dry run only what it would be
  if [ $DRY = 1 ]; then printf '  would run: %s\n' "$*"; else "$@"; fi
}

if [ $DRY = 1 ]; then
  say "dry run: swarm-medic $CURRENT -> $V, dated $DATE; nothing is changed"
  for f in CHANGELOG.md pyproject.toml; do
    diff -u --label "a/$f" --label "b/$f" "$f" "$work/$f" || true
  done
else
  say "swarm-medic $CURRENT -> $V, dated $DATE"
  cp "$work/CHANGELOG.md" CHANGELOG.md
  cp "$work/pyproject.toml" pyproject.toml
fi

# --- 4-7 ------------------------------------------------------------------------------------
run git commit --quiet -m "Release $V" -- CHANGELOG.md pyproject.toml
run rm -f "dist/swarm_medic-$V.tar.gz" "dist/swarm_medic-$V-py3-none-any.whl"
run "$PY" -m build --no-isolation --outdir dist .
run "$PY" -m twine check --strict "dist/swarm_medic-$V.tar.gz" "dist/swarm_medic-$V-py3-none-any.whl"
run env IMAGE="swarm-medic:$V" bash scripts/image.sh
run git tag -a "v$V" -m "swarm-medic $V"
if [ $DRY = 1 ]; then
  say "dry run done: run it again without --dry-run to release"
else
  say "released $V: dist/swarm_medic-$V*, image swarm-medic:$V, tag v$V (not pushed)."
  say "publish: git push origin HEAD v$V (the release workflow builds, signs and uploads)"
fi
