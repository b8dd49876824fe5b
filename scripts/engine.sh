#!/usr/bin/env bash
# The Docker engines the lab can run, as a choice: ENGINE=20.10 or ENGINE=28.
#
#   scripts/engine.sh bin ENGINE     print the folder whose dockerd/containerd the lab runs for
#                                    ENGINE (fetched and unpacked first if need be)
#   scripts/engine.sh env ENGINE     print the extra environment of that dockerd (one VAR=VALUE
#                                    a line): for 28, Engine 29's API floor
#   scripts/engine.sh fetch ENGINE   fetch and unpack only
#   scripts/engine.sh version ENGINE the engine version it runs
#   scripts/engine.sh bin prometheus-3   Debian unstable's Prometheus 3.5.3 (see fetch_prometheus_3)
#
# 20.10 is Debian 12's docker.io (installed by lab.sh; out of support, but what bookworm has).
# 28 is Debian unstable's docker.io 28.5.2 and containerd 2.1.9, whose Go binaries run on
# Debian 12: downloaded with `apt-get download` through a sources list of our own (the
# machine's apt sources are never changed), kept in a cache, unpacked into a lab folder. Its
# runc (1.3.6) needs glibc 2.38, so the lab keeps Debian 12's runc (1.1.5, docker.io's
# dependency), found by PATH after this folder. Nothing is installed into the system.
#
# DOCKER_MIN_API_VERSION=1.44 makes a 28 refuse old clients exactly as Engine 29 does ("client
# version 1.41 is too old"): the lab runs 28 with it, so a medic that pins an old API fails here
# as it would on a 29.
set -euo pipefail

CACHE=${ENGINE_CACHE:-/var/cache/swarm-medic/engines}
ROOT=${ENGINE_ROOT:-$CACHE}  # unpacked beside the debs: a package, not lab state
# Pinned: the versions the lab was measured with. Sid moves on; if these are gone from the
# mirror and not in the cache, the newest sid has is taken, and said.
DOCKER_28=28.5.2+dfsg4-5
CONTAINERD_28=2.1.9+ds1-5
MIN_API_28=1.44
PROMETHEUS_3=3.5.3+ds1-6

say() { printf '[engine %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# The Debian mirror apt already uses (deb822 or one-line sources), so no host is named here.
mirror() {
  local m=""
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    m=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  fi
  if [ -z "$m" ]; then
    m=$(grep -hE '^deb[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
      grep -v security | awk '{for (i=2;i<=NF;i++) if ($i ~ /^https?:/) {print $i; exit}}' | head -n1)
  fi
  [ -n "$m" ] || { say "no Debian mirror found in the machine's apt sources"; return 1; }
  echo "$m"
}

apt_sid() {  # apt_sid APT-GET-OR-CACHE ARGS...: apt with our own sources list and lists folder
  local tool=$1; shift
  "$tool" -q -o Dir::Etc::SourceList="$CACHE/sid.list" -o Dir::Etc::SourceParts=/dev/null \
    -o Dir::State::Lists="$CACHE/lists" -o Dir::Cache="$CACHE/apt-cache" \
    -o APT::Sandbox::User=root "$@"
}

# unpack_sid NAME BINS PKG=VERSION...: the packages downloaded (once, into the cache) and the
# named executables copied into $ROOT/NAME/bin; a cached or unpacked copy is reused.
unpack_sid() {
  local name=$1 bins=$2; shift 2
  local dest=$ROOT/$name b
  for b in $bins; do [ -x "$dest/bin/$b" ] || break; done
  [ -x "$dest/bin/$b" ] && return 0
  mkdir -p "$CACHE/lists/partial" "$CACHE/apt-cache/archives/partial" "$CACHE/debs"
  local want=() p
  for p in "$@"; do
    ls "$CACHE/debs/${p%%=*}_${p#*=}_"*.deb >/dev/null 2>&1 || want+=("$p")
  done
  if [ ${#want[@]} -gt 0 ]; then
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $(mirror) sid main" \
      >"$CACHE/sid.list"
    say "fetching ${want[*]} from Debian unstable (kept in $CACHE/debs)"
    apt_sid apt-get update >/dev/null
    local got=()
    for p in "${want[@]}"; do
      if apt_sid apt-cache show "$p" >/dev/null 2>&1; then
        got+=("$p")
      else
        say "${p} is no longer in unstable: taking its newest version instead"
        got+=("${p%%=*}")
      fi
    done
    (cd "$CACHE/debs" && apt_sid apt-get download "${got[@]}" >/dev/null)
  fi
  local tmp; tmp=$(mktemp -d)
  for p in "$@"; do
    for deb in "$CACHE/debs/${p%%=*}_"*.deb; do dpkg-deb -x "$deb" "$tmp"; done
  done
  rm -rf "$dest"; mkdir -p "$dest/bin"
  for b in $bins; do
    local f
    f=$(find "$tmp/usr" -type f -name "$b" -perm -u+x | head -n1)
    [ -n "$f" ] && cp "$f" "$dest/bin/$b"
  done
  rm -rf "$tmp"
}

fetch_28() {
  # dockerd finds containerd, its shim and docker-proxy by PATH; runc stays Debian 12's.
  unpack_sid 28 "dockerd docker-proxy containerd containerd-shim-runc-v2 ctr" \
    "docker.io=$DOCKER_28" "containerd=$CONTAINERD_28"
  [ -x "$ROOT/28/bin/dockerd" ] && [ -x "$ROOT/28/bin/containerd" ] || {
    say "the unstable packages did not hold dockerd and containerd"; return 1; }
}

# Prometheus 3.5 for the lab's monitoring on an engine with Engine 29's floor: Debian 12's
# Prometheus 2.42 discovers a swarm at API 1.41 only (its dockerswarm_sd is pinned), which such
# an engine refuses ("client version 1.41 is too old"); measured on the lab, 3.5.3 is not.
fetch_prometheus_3() {
  unpack_sid prometheus-3 prometheus "prometheus=$PROMETHEUS_3"
  [ -x "$ROOT/prometheus-3/bin/prometheus" ] || { say "no prometheus in the package"; return 1; }
}

bin_of() {
  case "$1" in
    20.10) [ -x /usr/sbin/dockerd ] || { say "engine 20.10 is Debian's docker.io: not installed"; return 1; }
           echo /usr/sbin ;;
    28) fetch_28; echo "$ROOT/28/bin" ;;
    prometheus-3) fetch_prometheus_3; echo "$ROOT/prometheus-3/bin" ;;
    *) say "unknown engine '$1' (choose 20.10 or 28)"; return 2 ;;
  esac
}

case "${1:-}" in
  bin) bin_of "${2:?engine}" ;;
  fetch) case "${2:?engine}" in 28) fetch_28 ;; prometheus-3) fetch_prometheus_3 ;; esac ;;
  env) case "${2:?engine}" in 28) echo "DOCKER_MIN_API_VERSION=$MIN_API_28" ;; 20.10) ;;
         *) say "unknown engine '$2'"; exit 2 ;; esac ;;
  version) "$(bin_of "${2:?engine}")/dockerd" --version ;;
  *) echo "usage: $0 bin|env|fetch|version 20.10|28" >&2; exit 2 ;;
esac
