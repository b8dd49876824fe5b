#!/usr/bin/env bash
# The swarm-medic lab: a real single-node Docker Swarm on this machine, for the demo and tests.
#
#   scripts/lab.sh up              install docker.io & co. if missing, start dockerd (or reuse a
#                                  running one), swarm init, build the offline test image
#   scripts/lab.sh down            remove the lab's services, leave the swarm, stop dockerd if
#                                  (and only if) this script started it, by its pid
#   scripts/lab.sh restart-engine  stop and start the dockerd this script started (fault tests)
#   scripts/lab.sh status
#
# Why the machine's default engine and not a private one: a second dockerd would fight the first
# over docker0 / docker_gwbridge. The lab only ever touches objects named medic-* and the image
# medic/busybox:test; `down` leaves a swarm it did not create.
#
# Env: LAB_STATE (default /run/swarm-medic-lab) holds the pid and the "we created the swarm" mark.
set -euo pipefail

STATE=${LAB_STATE:-/run/swarm-medic-lab}
LOGDIR=${LAB_LOGDIR:-/var/log/swarm-medic-lab}
SOCK=/var/run/docker.sock
IMAGE=medic/busybox:test
export DOCKER_HOST=unix://$SOCK

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
  command -v dockerd >/dev/null || need+=(docker.io)
  [ -x /bin/busybox ] && dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
  command -v iptables >/dev/null || need+=(iptables)
  command -v nsenter >/dev/null || need+=(util-linux)
  command -v ip >/dev/null || need+=(iproute2)
  if [ ${#need[@]} -gt 0 ]; then
    say "installing Debian packages: ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
}

start_engine() {
  mkdir -p "$STATE" "$LOGDIR"
  if engine_up; then return 0; fi
  say "starting dockerd (log: $LOGDIR/dockerd.log)"
  # A dockerd killed mid-flight (CI ends the session's processes) leaves docker.pid and the
  # socket behind; dockerd itself recovers from both, so no clean-up is needed here.
  nohup dockerd --pidfile /var/run/docker.pid >>"$LOGDIR/dockerd.log" 2>&1 &
  echo $! >"$STATE/dockerd.pid"
  wait_engine
}

stop_engine() {
  local pid
  pid=$(cat "$STATE/dockerd.pid" 2>/dev/null || true)
  if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
    say "no dockerd started by the lab is running; leaving the engine alone"
    rm -f "$STATE/dockerd.pid"
    return 0
  fi
  say "stopping dockerd pid $pid"
  kill -TERM "$pid"
  for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
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
  say "lab ready in $((SECONDS - t0)) s: single-node swarm on $SOCK, image $IMAGE"
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
  local pid
  pid=$(cat "$STATE/dockerd.pid" 2>/dev/null || true)
  if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
    say "restart-engine needs a dockerd started by '$0 up'"; return 1
  fi
  stop_engine
  start_engine
  for _ in $(seq 1 150); do
    [ "$(docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null)" = active ] \
      && docker node ls >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  say "swarm did not come back after the engine restart"; return 1
}

cmd_status() {
  if engine_up; then
    docker info --format 'engine {{.ServerVersion}} swarm={{.Swarm.LocalNodeState}} node={{.Swarm.NodeID}}'
    docker service ls --filter label=medic.lab=1 2>/dev/null || true
  else
    echo "engine: not running"
  fi
  [ -f "$STATE/dockerd.pid" ] && echo "dockerd started by the lab: pid $(cat "$STATE/dockerd.pid")" || true
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  restart-engine) cmd_restart_engine ;;
  status) cmd_status ;;
  *) echo "usage: $0 up|down|restart-engine|status" >&2; exit 2 ;;
esac
