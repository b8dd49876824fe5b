#!/usr/bin/env bash
# Builds the swarm-medic image on a machine with no container registry (the lab machine):
#
#   1. a Python base image, if missing: a Debian bookworm rootfs made by mmdebstrap from the
#      machine's own apt sources (no registry), `docker import`ed as $BASE (Python 3.11);
#   2. the wheels the locks name (requirements/runtime.txt, and requirements/build.txt: the
#      setuptools that builds the project), downloaded by pip on the host for the base's Python /
#      glibc / CPU, each checked against its hash in the lock, into a temporary .wheels.build
#      directory inside the build context (removed on exit, so it can never be committed; a
#      fixed name so that an unchanged tree rebuilds from the build cache);
#   3. `docker build --network none`: pip in the build installs from those wheels only, again
#      against the lock's hashes. VERSION comes from pyproject.toml, SOURCE_DATE_EPOCH and the
#      CREATED label from the last commit's time, so the same tree gives the same image ID.
#
# Why wheels from the host and not pip inside the build: the build's network goes through
# docker0's NAT, where TLS is intercepted here; the host's pip already trusts the machine's CA
# bundle. Copying that bundle into the build context would work too, but risks committing it.
#
# With network and a registry none of this is needed: `docker build -t swarm-medic:dev .`
#
#   scripts/image.sh              build $IMAGE (default swarm-medic:dev)
#   scripts/image.sh base         only make sure the base image exists
#
# Env: IMAGE (swarm-medic:dev), BASE (medic/pybase:bookworm), SUITE (bookworm).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
IMAGE=${IMAGE:-swarm-medic:dev}
BASE=${BASE:-medic/pybase:bookworm}
SUITE=${SUITE:-bookworm}
DEFAULT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

say() { printf '[image %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

TMP=
cleanup() { [ -n "$TMP" ] && rm -rf "$TMP"; return 0; }
trap cleanup EXIT

build_base() {
  if docker image inspect "$BASE" >/dev/null 2>&1; then
    say "base image $BASE exists"
    return 0
  fi
  if ! command -v mmdebstrap >/dev/null; then
    say "installing mmdebstrap"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null
  fi
  local t0=$SECONDS work
  work=$(mktemp -d)
  say "building $BASE with mmdebstrap ($SUITE, the machine's apt sources)"
  # No mirror argument: mmdebstrap uses the host's apt sources (the only mirror reachable here).
  if ! mmdebstrap --quiet --variant=apt --include=python3,python3-venv,ca-certificates \
      "$SUITE" "$work/rootfs.tar"; then
    rm -rf "$work"
    say "mmdebstrap failed"; return 1
  fi
  # An imported image has no config: give it the usual PATH and a default command.
  docker import -c "ENV PATH=$DEFAULT_PATH" -c 'CMD ["python3"]' \
    "$work/rootfs.tar" "$BASE" >/dev/null
  rm -rf "$work"
  say "base image $BASE ready in $((SECONDS - t0)) s"
}

# "3.11 2.36 x86_64": the base's Python, glibc and machine, to download matching wheels.
probe_base() {
  docker run --rm --network none --entrypoint python3 "$BASE" -c 'import platform, sys
print("%d.%d" % sys.version_info[:2], platform.libc_ver()[1], platform.machine())'
}

# The package's version, from pyproject.toml (the one place it is said).
pyproject_version() {
  python3 - "$ROOT/pyproject.toml" <<'EOF'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    print(tomllib.load(f)["project"]["version"])
EOF
}

download_wheels() {
  local dest=$1 info pyver glibc machine
  info=$(probe_base) || { say "cannot run python3 in $BASE"; return 1; }
  read -r pyver glibc machine <<<"$info"
  say "base has Python $pyver, glibc $glibc, $machine: downloading wheels for it"
  # pip does not widen manylinux_2_X to older glibc levels by itself: list them all.
  local platforms=() minor
  for minor in $(seq "${glibc#2.}" -1 5); do
    platforms+=(--platform "manylinux_2_${minor}_${machine}")
  done
  platforms+=(--platform "manylinux2014_${machine}" --platform "manylinux2010_${machine}"
    --platform "manylinux1_${machine}")
  python3 -m pip download --quiet --dest "$dest" --only-binary=:all: --require-hashes \
    --python-version "$pyver" --implementation cp "${platforms[@]}" \
    -r "$ROOT/requirements/runtime.txt" -r "$ROOT/requirements/build.txt"
}

build_image() {
  local t0=$SECONDS wheels version revision epoch created
  TMP=$ROOT/.wheels.build
  rm -rf "$TMP"; mkdir -p "$TMP"
  download_wheels "$TMP"
  say "$(find "$TMP" -name '*.whl' | wc -l) wheels downloaded in $((SECONDS - t0)) s"
  wheels=$(basename "$TMP")
  version=$(pyproject_version)
  revision=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || true)
  # The commit's time, not now: an unchanged tree then rebuilds to the very same image.
  epoch=$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || true)
  created=
  local dated=()
  if [ -n "$epoch" ]; then
    created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)
    dated=(--build-arg SOURCE_DATE_EPOCH="$epoch")
  fi
  local t1=$SECONDS
  say "docker build --network none -t $IMAGE (base $BASE, version $version)"
  docker build --network none \
    --build-arg BASE_IMAGE="$BASE" \
    --build-arg WHEELS="$wheels" \
    --build-arg VERSION="$version" \
    --build-arg REVISION="$revision" \
    --build-arg CREATED="$created" \
    ${dated[@]+"${dated[@]}"} \
    -t "$IMAGE" "$ROOT"
  rm -rf "$TMP"; TMP=
  local size
  size=$(docker image inspect -f '{{.Size}}' "$IMAGE")
  say "built $IMAGE in $((SECONDS - t1)) s (docker build), $((SECONDS - t0)) s with the wheels;" \
    "size $((size / 1000000)) MB"
}

command -v docker >/dev/null || { say "no docker CLI"; exit 1; }
docker version >/dev/null 2>&1 || { say "the docker engine does not answer"; exit 1; }

START=$SECONDS
case "${1:-build}" in
  base) build_base ;;
  build) build_base; build_image ;;
  *) echo "usage: $0 [build|base]" >&2; exit 2 ;;
esac
say "done in $((SECONDS - START)) s"
