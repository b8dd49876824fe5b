#!/usr/bin/env bash
# The swarm-medic lab: a real single-node Docker Swarm on this machine, for the demo and tests.
#
#   scripts/lab.sh up              install docker.io & co. if missing, start dockerd of the
#                                  chosen engine (or reuse a running one), swarm init, build the
#                                  offline test image
#   scripts/lab.sh down            remove the lab's services, leave the swarm, stop dockerd if
#                                  (and only if) this script started it, by its pid
#   scripts/lab.sh heal            what a test may have broken, put back: the engine up, the
#                                  swarm active, its node ready and active (tests call it)
#   scripts/lab.sh restart-engine  stop and start the dockerd this script started (fault tests)
#   scripts/lab.sh status
#
# ENGINE=28 (the default) runs Docker 28.5.2 from Debian unstable's packages with Engine 29's
# API floor (DOCKER_MIN_API_VERSION=1.44; scripts/engine.sh), its data in
# /var/lib/swarm-medic-lab/docker-28; ENGINE=20.10 runs Debian 12's docker.io on the default
# /var/lib/docker. One engine at a time: `up` with another ENGINE stops the one the lab started
# and starts the other (each keeps its own data, images and swarm). An engine the lab did not
# start is reused when ENGINE is unset, and refused when it is not the ENGINE asked for.
#
# Why the machine's default socket and not a private one: a second dockerd would fight the
# first over docker0 / docker_gwbridge. The lab only ever touches objects named medic-* and the
# image medic/busybox:test; `down` leaves a swarm it did not create.
#
# Env: LAB_STATE (default /run/swarm-medic-lab) holds the pid, the engine and the "we created
# the swarm" mark.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/pids.sh
. "$HERE/pids.sh"

STATE=${LAB_STATE:-/run/swarm-medic-lab}
LOGDIR=${LAB_LOGDIR:-/var/log/swarm-medic-lab}
SOCK=/var/run/docker.sock
IMAGE=medic/busybox:test
export DOCKER_HOST=unix://$SOCK
WANT=${ENGINE:-}

say() { printf '[lab %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

engine_up() { timeout 5 docker version >/dev/null 2>&1; }

wait_engine() {
  for _ in $(seq 1 300); do engine_up && return 0; sleep 0.2; done
  say "dockerd did not answer on $SOCK within 60 s; its log: $LOGDIR/dockerd.log"
  tail -n 30 "$LOGDIR/dockerd.log" >&2 || true
  return 1
}

install_packages() {
  local need=()
  # Debian 12's engine (ENGINE=20.10), and the runc both engines use (28's own needs glibc 2.38)
  [ -x /usr/sbin/dockerd ] && [ -x /usr/sbin/runc ] || need+=(docker.io)
  [ -x /bin/busybox ] && dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
  command -v iptables >/dev/null || need+=(iptables)
  command -v nsenter >/dev/null || need+=(util-linux)
  command -v ip >/dev/null || need+=(iproute2)
  # the multi-node lab's spare node: its data root a small ext4 filesystem (multilab.sh)
  command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
  if [ ${#need[@]} -gt 0 ]; then
    say "installing Debian packages: ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
}

engine_of() {  # the engine family (20.10 | 28) of a version string
  case "$1" in 20.10.*) echo 20.10 ;; 28.*) echo 28 ;; *) echo "$1" ;; esac
}

data_root() {
  case "$1" in 20.10) echo /var/lib/docker ;; *) echo "/var/lib/swarm-medic-lab/docker-$1" ;; esac
}

# The dockerd this script started, judged by its process (pids.sh), or nothing.
our_dockerd() { pid_named "$STATE/dockerd.pid" dockerd; }

start_engine() {
  mkdir -p "$STATE" "$LOGDIR"
  if engine_up; then
    local running
    running=$(engine_of "$(docker version --format '{{.Server.Version}}' 2>/dev/null)")
    if [ -z "$WANT" ] || [ "$running" = "$WANT" ]; then return 0; fi
    if ! our_dockerd >/dev/null; then
      say "a dockerd the lab did not start runs engine $running on $SOCK; stop it or run with ENGINE=$running"
      return 1
    fi
    say "switching the lab engine from $running to $WANT"
    stop_engine
  fi
  local want=${WANT:-28} bin extra
  bin=$(bash "$HERE/engine.sh" bin "$want")
  extra=$(bash "$HERE/engine.sh" env "$want")
  # A dockerd killed mid-flight (CI ends the session's processes) leaves docker.pid, the socket
  # and containerd's pid file behind; a pid file naming no live process of its own is stale.
  clear_stale /var/run/docker.pid dockerd
  clear_stale /var/run/docker/containerd/containerd.pid containerd /proc/$$/ns/net 0
  say "starting dockerd $want ($("$bin/dockerd" --version | cut -d, -f1)); log: $LOGDIR/dockerd.log"
  # shellcheck disable=SC2086 # extra is zero or more VAR=VALUE words
  PATH="$bin:$PATH" nohup env $extra "$bin/dockerd" --data-root "$(data_root "$want")" \
    --pidfile /var/run/docker.pid >>"$LOGDIR/dockerd.log" 2>&1 &
  echo $! >"$STATE/dockerd.pid"
  echo "$want" >"$STATE/engine"
  wait_engine
}

stop_engine() {
  local pid
  pid=$(our_dockerd || true)
  if [ -z "$pid" ]; then
    say "no dockerd started by the lab is running; leaving the engine alone"
    rm -f "$STATE/dockerd.pid"
    return 0
  fi
  say "stopping dockerd pid $pid"
  kill -TERM "$pid"
  for _ in $(seq 1 150); do [ -e "/proc/$pid" ] || break; sleep 0.2; done
  [ -e "/proc/$pid" ] && kill -KILL "$pid"
  # gone, not merely signalled: the next dockerd must find the socket and pid file free
  for _ in $(seq 1 50); do pid_named "$STATE/dockerd.pid" dockerd >/dev/null || break; sleep 0.2; done
  rm -f "$STATE/dockerd.pid"
}

swarm_up() {
  local st
  st=$(docker info --format '{{.Swarm.LocalNodeState}}')
  if [ "$st" != active ]; then
    say "docker swarm init"
    # 1 s heartbeat: node-down faults show in seconds, not tens of seconds.
    docker swarm init --advertise-addr 127.0.0.1 --dispatcher-heartbeat 1s >/dev/null
    touch "$STATE/swarm-created"
  fi
  for _ in $(seq 1 100); do
    docker node ls --format '{{.Status}}' 2>/dev/null | grep -q Ready && return 0
    sleep 0.2
  done
  say "swarm did not report a Ready node"; return 1
}

build_image() {
  if docker image inspect "$IMAGE" >/dev/null 2>&1; then return 0; fi
  say "building $IMAGE from busybox-static (no registry needed)"
  local root
  root=$(mktemp -d)
  mkdir -p "$root"/{bin,etc,tmp,www,root,proc,sys,dev,var/run}
  cp /bin/busybox "$root/bin/busybox"
  chroot "$root" /bin/busybox --install -s /bin
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  echo ok >"$root/www/index.html"
  chmod 1777 "$root/tmp"
  tar -C "$root" -c . | docker import -c 'ENV PATH=/bin' -c 'CMD ["sh"]' - "$IMAGE" >/dev/null
  rm -rf "$root"
}

remove_lab_services() {
  engine_up || return 0
  local ids
  ids=$(docker service ls -q --filter label=medic.lab=1 2>/dev/null || true)
  [ -n "$ids" ] && docker service rm $ids >/dev/null 2>&1 || true
}

cmd_up() {
  local t0=$SECONDS
  install_packages
  start_engine
  swarm_up
  build_image
  say "lab ready in $((SECONDS - t0)) s: single-node swarm on $SOCK (engine $(docker version --format "{{.Server.Version}}, API {{.Server.APIVersion}} (min {{.Server.MinAPIVersion}})")), image $IMAGE"
}

cmd_down() {
  remove_lab_services
  if [ -e "$STATE/swarm-created" ] && engine_up; then
    docker swarm leave --force >/dev/null 2>&1 || true
    rm -f "$STATE/swarm-created"
  fi
  stop_engine
  say "lab down"
}

cmd_restart_engine() {
  if ! our_dockerd >/dev/null; then
    say "restart-engine needs a dockerd started by '$0 up'"; return 1
  fi
  WANT=$(cat "$STATE/engine" 2>/dev/null || echo "${WANT:-28}")
  stop_engine
  start_engine
  for _ in $(seq 1 150); do
    [ "$(docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null)" = active ] \
      && docker node ls >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  say "swarm did not come back after the engine restart"; return 1
}

# heal: what a test may have broken, put back (a killed engine, a drained node), quickly when
# nothing is broken. Services are left alone: each test removes its own.
cmd_heal() {
  [ -z "$WANT" ] && WANT=$(cat "$STATE/engine" 2>/dev/null || true)
  start_engine
  swarm_up
  local id
  id=$(docker info --format '{{.Swarm.NodeID}}')
  if [ "$(docker node inspect "$id" --format '{{.Spec.Availability}}')" != active ]; then
    say "node was left $(docker node inspect "$id" --format '{{.Spec.Availability}}'): made active"
    docker node update --availability active "$id" >/dev/null
  fi
  build_image
}

cmd_status() {
  if engine_up; then
    docker info --format 'engine {{.ServerVersion}} swarm={{.Swarm.LocalNodeState}} node={{.Swarm.NodeID}}'
    docker service ls --filter label=medic.lab=1 2>/dev/null || true
  else
    echo "engine: not running"
  fi
  local p; p=$(our_dockerd || true)
  [ -n "$p" ] && echo "dockerd started by the lab: pid $p, engine $(cat "$STATE/engine" 2>/dev/null)" || true
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  heal) cmd_heal ;;
  restart-engine) cmd_restart_engine ;;
  status) cmd_status ;;
  *) echo "usage: [ENGINE=28|20.10] $0 up|down|heal|restart-engine|status" >&2; exit 2 ;;
esac
