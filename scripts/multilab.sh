#!/usr/bin/env bash
# A multi-node Docker Swarm on one machine, for the overlay and node-fault tests.
#
#   scripts/multilab.sh up            N dockerd "nodes" joined into one swarm (default N=3)
#   scripts/multilab.sh down          stop them by pid, remove namespaces, bridge and rules
#   scripts/multilab.sh status
#   scripts/multilab.sh kill-node I   SIGKILL node I's dockerd (a node that dies)
#   scripts/multilab.sh start-node I  start node I's dockerd again (same engine, same data)
#   scripts/multilab.sh upgrade-node I ENGINE  stop node I's dockerd and start ENGINE on the
#                                     same data, as an `apt upgrade` of Docker does
#   scripts/multilab.sh heal          put back what a test broke: every node's dockerd up, in
#                                     the swarm, Ready and active; rebuilt if that fails
#   scripts/multilab.sh load-image IMG  the host engine's image IMG onto every node
#   scripts/multilab.sh spare-up MIB  node 9, a single-node swarm of its own on the lab's bridge,
#                                     its data root a MIB MiB filesystem of its own (a loop-
#                                     mounted ext4 file): a node whose disk a test may fill
#   scripts/multilab.sh spare-down    remove node 9, its filesystem and its namespace
#
# ENGINE=28 (default) or 20.10 is every node's engine (scripts/engine.sh: 28 runs with Engine
# 29's API floor); ENGINES="28 20.10 28" gives node I the I-th, a mixed swarm as in the middle
# of a node-by-node upgrade. A node keeps its engine until `down` (start-node, heal).
#
# Node I is a dockerd in its own network namespace medic-nI (address 10.99.0.1I on the host
# bridge medbr0), its own mount and UTS namespace (hostname nodeI) and its own /run, so its
# socket is /var/run/docker.sock inside the node and /run/medic/nI/run/docker.sock on the host.
# Node 1 always manages; MANAGERS=3 makes nodes 2 and 3 managers too (leader failover).
# HEARTBEAT (default 1s) is the dispatcher heartbeat: a dead node shows Down in seconds.
# The image medic/busybox:test comes from the single-node lab's engine (scripts/lab.sh up).
#
# Follows the verified recipe in ../shared/lab/swarm-lab.sh; traffic stays on 10.99.0.0/24.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/pids.sh
. scripts/pids.sh

N=${N:-3}
MANAGERS=${MANAGERS:-1}
HEARTBEAT=${HEARTBEAT:-1s}
BR=medbr0
SUBNET=10.99.0
DATA=/var/lib/medic
RUNDIR=/run/medic
LOGDIR=/var/log/swarm-medic-lab
IMAGE=medic/busybox:test
# cgroup parent of node I's containers: /$CGROUP-nI (a second lab, e.g. the fresh-state test's
# sandbox, sets its own so the two never share a cgroup)
CGROUP=${MULTILAB_CGROUP:-medic}
SPARE=9  # the spare node: never one of the N, never healed, removed by `down` too

say() { printf '[multilab %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
# node I's engine: the one it was started with, else the I-th of ENGINES, else ENGINE
engine_for() {
  local i=$1 e
  e=$(cat "$RUNDIR/n$i.engine" 2>/dev/null || true)
  [ -n "$e" ] || { [ -n "${ENGINES:-}" ] && e=$(echo "$ENGINES" | awk -v i="$i" '{print $i}'); }
  echo "${e:-${ENGINE:-28}}"
}
# node I's dockerd, judged by its process (pids.sh): alive, a dockerd, in node I's netns
dockerd_pid() { pid_named "$RUNDIR/n$1/run/docker.pid" dockerd "/run/netns/medic-n$1" ||
  pid_named "$RUNDIR/n$1.pid" dockerd "/run/netns/medic-n$1"; }
sock() { echo "unix://$RUNDIR/n$1/run/docker.sock"; }
D() { local i=$1; shift; docker -H "$(sock "$i")" "$@"; }
# A fresh machine has no /run/netns until the first `ip netns add`: no folder, no nodes.
nodes() {
  [ -d /run/netns ] || return 0
  local f
  for f in /run/netns/medic-n*; do
    if [ -e "$f" ] && [ "${f##*/medic-n}" != $SPARE ]; then echo "${f##*/medic-n}"; fi
  done | sort -n
}

wait_sock() {
  for _ in $(seq 1 150); do timeout 5 docker -H "$1" version >/dev/null 2>&1 && return 0; sleep 0.2; done
  say "daemon at $1 did not come up (log: $LOGDIR)"; return 1
}

net_up() {
  ip link show $BR >/dev/null 2>&1 || {
    ip link add $BR type bridge
    ip addr add $SUBNET.1/24 dev $BR
    ip link set $BR up
  }
  for i in $(seq 1 "$N"); do net_node "$i"; done
  # Bridged frames cross the root FORWARD chain (br_netfilter), whose policy dockerd sets to
  # DROP: without this rule the nodes cannot talk to each other. Traffic stays on the bridge;
  # no NAT to the outside is set up (the lab never needs it: images are loaded, not pulled).
  iptables -C FORWARD -i $BR -o $BR -j ACCEPT 2>/dev/null || iptables -I FORWARD 1 -i $BR -o $BR -j ACCEPT
}

net_node() {
  local i=$1 ns=medic-n$1
  [ -e /run/netns/$ns ] && return 0
  ip netns add $ns
  ip link add mveth$i type veth peer name eth0 netns $ns
  ip link set mveth$i master $BR up
  ip -n $ns link set lo up
  ip -n $ns addr add $SUBNET.1$i/24 dev eth0
  ip -n $ns link set eth0 up
  ip -n $ns route add default via $SUBNET.1
}

write_node_init() {
  mkdir -p $RUNDIR
  cat >$RUNDIR/node-init.sh <<'EOF'
#!/bin/bash
# nsenter --net=/run/netns/medic-nI -- unshare --mount --uts --propagation slave -- node-init.sh I
# dockerd must not start under `ip netns exec` (it remounts /sys and the cgroup tree vanishes):
# keep the host's cgroup mounts across a fresh sysfs of the node's network namespace.
set -euo pipefail
i=$1 cg_parent=$2 bin=$3 min_api=${4:-}
hostname node$i
cg=/run/medic/.cg$i; mkdir -p $cg
mount --rbind /sys/fs/cgroup $cg
mount -t sysfs sysfs /sys
mount --rbind $cg /sys/fs/cgroup
umount -l $cg
mount --bind /run/medic/n$i/run /run
# like a systemd host: a shared /run lets a container bind /var/run/docker/netns with rslave
mount --make-rshared /run
# the engine's own metrics (job dockerd of deploy/prometheus.yml), on the lab address only;
# the chosen engine's binaries first (dockerd finds containerd and docker-proxy by PATH), and
# for 28 Engine 29's API floor
export PATH=$bin:$PATH
[ -n "$min_api" ] && export DOCKER_MIN_API_VERSION=$min_api
exec "$bin/dockerd" --data-root /var/lib/medic/n$i --cgroup-parent /$cg_parent-n$i \
     --metrics-addr 10.99.0.1$i:9323 \
     -H unix:///var/run/docker.sock --pidfile /var/run/docker.pid
EOF
  chmod +x $RUNDIR/node-init.sh
}

start_node() {
  local i=$1 e bin min_api
  if timeout 5 docker -H "$(sock "$i")" version >/dev/null 2>&1; then return 0; fi
  mkdir -p $RUNDIR/n$i/run $DATA/n$i $LOGDIR
  e=$(engine_for "$i")
  bin=$(bash scripts/engine.sh bin "$e")
  min_api=$(bash scripts/engine.sh env "$e" | sed -n 's/^DOCKER_MIN_API_VERSION=//p')
  # Pid files left by a killed dockerd and its containerd: a zombie, a gone process or a
  # number since reused by any other process makes them stale (pids.sh).
  clear_stale "$RUNDIR/n$i/run/docker.pid" dockerd "/run/netns/medic-n$i"
  clear_stale "$RUNDIR/n$i/run/docker/containerd/containerd.pid" containerd "/run/netns/medic-n$i" 0
  nohup nsenter --net=/run/netns/medic-n$i -- unshare --mount --uts --propagation slave -- \
    $RUNDIR/node-init.sh "$i" "$CGROUP" "$bin" "$min_api" >>$LOGDIR/n$i.log 2>&1 &
  echo $! >$RUNDIR/n$i.pid   # nsenter and unshare exec: this is dockerd's pid
  echo "$e" >$RUNDIR/n$i.engine
  wait_sock "$(sock "$i")" || { tail -n 20 $LOGDIR/n$i.log >&2; return 1; }
}

stop_node() {  # TERM node I's dockerd and wait until it is gone (KILL after 30 s)
  local p; p=$(dockerd_pid "$1" || true)
  [ -n "$p" ] || return 0
  kill_wait 30 "$p"
  for _ in $(seq 1 50); do
    { [ ! -e "/proc/$p" ] || grep -q '^State:[[:space:]]*Z' "/proc/$p/status" 2>/dev/null; } && break
    sleep 0.2
  done
}

swarm_up() {
  if [ "$(D 1 info --format '{{.Swarm.LocalNodeState}}')" != active ]; then
    D 1 swarm init --advertise-addr $SUBNET.11 --listen-addr $SUBNET.11:2377 \
      --dispatcher-heartbeat "$HEARTBEAT" >/dev/null
  fi
  local wtok mtok
  wtok=$(D 1 swarm join-token -q worker)
  mtok=$(D 1 swarm join-token -q manager)
  for i in $(seq 2 "$N"); do
    [ "$(D "$i" info --format '{{.Swarm.LocalNodeState}}')" = active ] && continue
    local tok=$wtok
    [ "$MANAGERS" -ge "$i" ] && tok=$mtok
    D "$i" swarm join --token "$tok" --advertise-addr $SUBNET.1$i \
      --listen-addr $SUBNET.1$i:2377 $SUBNET.11:2377 >/dev/null
  done
  for _ in $(seq 1 100); do
    [ "$(D 1 node ls --format '{{.Status}}' | grep -c Ready)" -eq "$N" ] && return 0
    sleep 0.2
  done
  D 1 node ls; return 1
}

load_images() {
  docker image inspect $IMAGE >/dev/null
  docker save $IMAGE -o $DATA/images.tar
  for i in $(seq 1 "$N"); do
    D "$i" image inspect $IMAGE >/dev/null 2>&1 || D "$i" load -q -i $DATA/images.tar >/dev/null
  done
  rm -f $DATA/images.tar
}

# load_image IMAGE: the host engine's IMAGE onto every node, saved once, loaded in parallel
# (the swarm-medic image for the deployed-stack tests; no registry here).
load_image() {
  local image=$1 tar pids=() i
  docker image inspect "$image" >/dev/null
  mkdir -p $DATA
  tar=$(mktemp -p $DATA image.XXXXXX.tar)
  docker save "$image" -o "$tar"
  for i in $(seq 1 "$N"); do
    D "$i" load -q -i "$tar" >/dev/null & pids+=($!)
  done
  local rc=0 p; for p in "${pids[@]}"; do wait "$p" || rc=1; done
  rm -f "$tar"
  [ $rc = 0 ] || { say "loading $image failed on a node"; return 1; }
  say "$image loaded on $N node(s)"
}

kill_wait() {  # kill_wait SECONDS PID...: TERM, wait, then KILL what is left
  local t=$1; shift; [ $# -eq 0 ] && return 0
  kill -TERM "$@" 2>/dev/null || true
  for _ in $(seq 1 $((t * 5))); do
    local alive=0; for p in "$@"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && return 0; sleep 0.2
  done
  kill -KILL "$@" 2>/dev/null || true
}

cmd_up() {
  local t0=$SECONDS
  # the host's engine is only the images' source here: whichever runs is fine
  env -u ENGINE -u ENGINES bash scripts/lab.sh up
  net_up
  write_node_init
  for i in $(seq 1 "$N"); do start_node "$i"; done
  swarm_up
  echo "$MANAGERS" >$RUNDIR/managers  # a rebuild by `heal` makes the same swarm
  mkdir -p $DATA
  load_images
  local engines="" i
  for i in $(seq 1 "$N"); do engines="$engines $(D "$i" version --format '{{.Server.Version}}')"; done
  say "$N-node swarm ready in $((SECONDS - t0)) s ($MANAGERS manager(s); engines:$engines); node I: $(sock I)"
}

# node_gone I: what is left of node I once its dockerd is stopped. Containerd and shims a
# SIGKILLed dockerd left in the node's netns, then container processes still in the node's
# cgroup: all started by this lab, found by namespace. A data root on a filesystem of its own
# (the spare's) is unmounted first.
node_gone() {
  local i=$1
  # shellcheck disable=SC2046  # pids, one word each
  kill_wait 5 $(ip netns pids medic-n$i 2>/dev/null)
  # shellcheck disable=SC2046
  kill_wait 5 $(cat /sys/fs/cgroup/pids/$CGROUP-n$i/*/cgroup.procs /sys/fs/cgroup/pids/$CGROUP-n$i/cgroup.procs 2>/dev/null || true)
  ip netns del medic-n$i 2>/dev/null || true
  ip link del mveth$i 2>/dev/null || true
  for c in /sys/fs/cgroup/*/$CGROUP-n$i; do
    [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
  if mountpoint -q "$DATA/n$i" 2>/dev/null; then umount -l "$DATA/n$i"; fi
  rm -rf "$DATA/n$i" "$DATA/n$i.img" "$RUNDIR/n$i" "$RUNDIR/n$i.pid" "$RUNDIR/n$i.engine"
}

cmd_spare_up() {
  local mib=${1:-512} i=$SPARE t0=$SECONDS
  cmd_spare_down 2>/dev/null  # an interrupted earlier one
  ip link show $BR >/dev/null 2>&1 || { say "no multi-node lab: run up first"; return 1; }
  net_node $i
  mkdir -p $DATA/n$i
  truncate -s "${mib}M" $DATA/n$i.img
  mkfs.ext4 -q -F -m 0 $DATA/n$i.img
  mount -o loop $DATA/n$i.img $DATA/n$i
  write_node_init
  start_node $i
  D $i swarm init --advertise-addr $SUBNET.1$i --listen-addr $SUBNET.1$i:2377 \
    --dispatcher-heartbeat "$HEARTBEAT" >/dev/null
  docker save $IMAGE | D $i load -q >/dev/null
  say "spare node$i ready in $((SECONDS - t0)) s: a swarm of its own, its data root a $mib MiB filesystem"
}

cmd_spare_down() {
  local i=$SPARE p
  [ -e /run/netns/medic-n$i ] || [ -e $DATA/n$i.img ] || return 0
  p=$(dockerd_pid $i || true)
  if [ -n "$p" ]; then
    timeout 20 docker -H "$(sock $i)" ps -aq 2>/dev/null |
      xargs -r timeout 20 docker -H "$(sock $i)" rm -f >/dev/null 2>&1 || true
    kill_wait 30 "$p"
  fi
  node_gone $i
  say "spare node$i removed"
}

cmd_down() {
  cmd_spare_down
  local ns; ns=$(nodes)
  [ -z "$ns" ] && [ ! -e $RUNDIR ] && { say "no multi-node lab"; return 0; }
  if timeout 5 docker -H "$(sock 1)" info >/dev/null 2>&1; then
    D 1 service ls -q 2>/dev/null | xargs -r docker -H "$(sock 1)" service rm >/dev/null 2>&1 || true
  fi
  for i in $ns; do
    ( timeout 20 docker -H "$(sock "$i")" ps -aq 2>/dev/null |
        xargs -r timeout 20 docker -H "$(sock "$i")" rm -f >/dev/null 2>&1 || true ) &
  done
  wait
  local pids=()
  for i in $ns; do
    local p; p=$(dockerd_pid "$i" || true)
    [ -n "$p" ] && pids+=("$p")
  done
  kill_wait 30 "${pids[@]}"
  for i in $ns; do node_gone "$i"; done
  rm -f $RUNDIR/node-init.sh $RUNDIR/managers
  rmdir $RUNDIR/.cg* $RUNDIR $DATA 2>/dev/null || true
  ip link del $BR 2>/dev/null || true
  iptables -D FORWARD -i $BR -o $BR -j ACCEPT 2>/dev/null || true
  say "multi-node lab removed"
}

cmd_status() {
  local ns; ns=$(nodes)
  [ -z "$ns" ] && { echo "no multi-node lab"; return 0; }
  for i in $ns; do
    echo "node$i: $(D "$i" info --format '{{.Name}} engine={{.ServerVersion}} swarm={{.Swarm.LocalNodeState}} manager={{.Swarm.ControlAvailable}} containers={{.ContainersRunning}}' 2>&1)"
  done
  D 1 node ls 2>/dev/null || true
}

cmd_kill_node() {
  local p; p=$(dockerd_pid "$1" || true)
  [ -n "$p" ] || { say "node$1 runs no dockerd: nothing to kill"; return 1; }
  kill -KILL "$p"
  say "node$1 dockerd (pid $p) killed"
}

cmd_upgrade_node() {
  local i=$1 to=$2 from; from=$(engine_for "$i")
  stop_node "$i"
  echo "$to" >$RUNDIR/n$i.engine
  start_node "$i"
  say "node$i: engine $from -> $to ($(D "$i" version --format '{{.Server.Version}}'))"
}

# heal: before each test module. Cheap when nothing is broken (one `node ls`); a dead dockerd
# is started again, a drained node made active, a node out of the swarm or not Ready waited
# for; if the swarm does not come back whole within 60 s, the lab is rebuilt from nothing.
# A test that demoted a node, or made one leave and join again, may leave the swarm with fewer
# managers than it was built with, and the machine's old entry Down: the next test (failover
# needs 3 managers) would inherit it. Put the managers back and drop Down worker entries: every
# machine of the lab is Ready by now, so a Down entry is a ghost.
heal_roles() {
  local m=$1 want have id
  want=$(cat $RUNDIR/managers 2>/dev/null || echo "$MANAGERS")
  have=$(D "$m" node ls --format '{{.ManagerStatus}}' | grep -c . || true)
  if [ "$have" -lt "$want" ]; then
    for id in $(D "$m" node ls --filter role=worker --format '{{.ID}} {{.Status}}' |
      awk '$2 == "Ready" {print $1}' | head -n $((want - have))); do
      say "node $id was left a worker: promoted (the lab has $want managers)"
      D "$m" node promote "$id" >/dev/null
    done
  fi
  for id in $(D "$m" node ls --filter role=worker --format '{{.ID}} {{.Status}}' |
    awk '$2 == "Down" {print $1}'); do
    say "node entry $id was left Down (a ghost): removed"
    D "$m" node rm --force "$id" >/dev/null || true
  done
}

cmd_heal() {
  local ns; ns=$(nodes)
  if [ -z "$ns" ]; then say "no multi-node lab to heal: building it"; cmd_up; return; fi
  local broken=0 i
  for i in $ns; do
    if ! timeout 5 docker -H "$(sock "$i")" version >/dev/null 2>&1; then
      say "node$i's dockerd is down: starting it"
      start_node "$i" || broken=1
    fi
  done
  if [ $broken = 0 ]; then
    for _ in $(seq 1 300); do
      local ready=0 managers m
      # an `if`, not `[ ] && echo`: a last node that is not (yet) a manager must not fail the
      # substitution, which set -e turns into a silent exit of the whole heal
      managers=$(for i in $ns; do
        if [ "$(D "$i" info --format '{{.Swarm.ControlAvailable}}' 2>/dev/null)" = true ]; then
          echo "$i"
        fi
      done)
      for m in $managers; do
        ready=$(D "$m" node ls --format '{{.Status}} {{.Availability}}' 2>/dev/null | grep -c '^Ready' || true)
        [ "$ready" -ge "$N" ] && break
      done
      if [ "$ready" -ge "$N" ]; then
        D "$m" node ls --format '{{.ID}} {{.Availability}}' | awk '$2 != "Active" {print $1}' |
          while read -r id; do
            say "node $id was left drained or paused: made active"
            D "$m" node update --availability active "$id" >/dev/null
          done
        heal_roles "$m"
        return 0
      fi
      sleep 0.2
    done
    say "the swarm did not come back whole within 60 s"
  fi
  say "rebuilding the multi-node lab from nothing"
  local keep_engines="" keep_managers
  for i in $ns; do keep_engines="$keep_engines $(engine_for "$i")"; done
  keep_managers=$(cat $RUNDIR/managers 2>/dev/null || echo "$MANAGERS")
  cmd_down
  ENGINES="${keep_engines# }" MANAGERS=$keep_managers cmd_up
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  kill-node) cmd_kill_node "$2" ;;
  start-node) write_node_init; start_node "$2" ;;
  upgrade-node) write_node_init; cmd_upgrade_node "$2" "$3" ;;
  heal) write_node_init; cmd_heal ;;
  load-image) load_image "$2" ;;
  spare-up) cmd_spare_up "${2:-512}" ;;
  spare-down) cmd_spare_down ;;
  *) echo "usage: [ENGINE=28|20.10] [ENGINES='28 20.10 28'] $0 up|down|status|kill-node I|start-node I|upgrade-node I ENGINE|heal|load-image IMAGE" >&2; exit 2 ;;
esac
