#!/usr/bin/env bash
# Prometheus and Alertmanager on this machine, for checking deploy/prometheus/ and
# deploy/alertmanager.yml (promtool, amtool) and for the lab's monitoring tests.
#
#   scripts/monitoring.sh install   install Debian's prometheus (promtool) and
#                                   prometheus-alertmanager (amtool) if missing, WITHOUT starting
#                                   their services (policy-rc.d), and check none was left running;
#                                   fetch Debian unstable's Prometheus 3.5.3 (scripts/engine.sh)
#   scripts/monitoring.sh up [--listen ADDR] [--am-listen ADDR] [--config FILE]
#                            [--am-config FILE] [--storage DIR]
#                                   start one Prometheus and one Alertmanager, pid-tracked, bound
#                                   to ADDR only (default 127.0.0.1:9090 and 127.0.0.1:9093;
#                                   Alertmanager's cluster port is switched off)
#   scripts/monitoring.sh down      stop them, by their pids; idempotent
#   scripts/monitoring.sh status
#
# --config: default is deploy/prometheus.yml with its rules (deploy/prometheus/*.yml) copied
# into the state dir and the Alertmanager target `alertmanager:9093` (the stack's service name)
# replaced by --am-listen. --am-config: default deploy/alertmanager.yml (its webhook placeholder
# is a loopback address, so a firing alert goes nowhere else). --storage: default
# /var/lib/swarm-medic-lab/monitoring (TSDB and Alertmanager state; `down` keeps it, remove it
# by hand for a fresh start).
#
# PROMETHEUS=3 (default) runs Debian unstable's Prometheus 3.5.3, PROMETHEUS=2.42 Debian 12's:
# 2.42's dockerswarm_sd speaks Engine API 1.41 only, which an engine with Engine 29's floor (the
# lab's 28) refuses, so it discovers nothing there; 3.5.3 does (measured on the lab).
#
# Env: MONITORING_STATE (default /run/swarm-medic-monitoring) holds the pids and the generated
# config; MONITORING_LOGDIR (default /var/log/swarm-medic-lab) the logs.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/pids.sh
. scripts/pids.sh

STATE=${MONITORING_STATE:-/run/swarm-medic-monitoring}
LOGDIR=${MONITORING_LOGDIR:-/var/log/swarm-medic-lab}
POLICY=/usr/sbin/policy-rc.d
# What Debian's packages would start, and the pidfiles their init scripts use (start-stop-daemon
# --pidfile): the only handle on a daemon the package started that is not a guess by name.
PKG_SERVICES=(prometheus prometheus-alertmanager)

say() { printf '[monitoring %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# --- install ---------------------------------------------------------------------------------

pkg_pidfile() {  # the pidfile the package's init script writes, read from the script itself
  local script=/etc/init.d/$1
  [ -r "$script" ] || return 0
  sed -n 's/^PIDFILE=\(.*\)$/\1/p' "$script" | head -n 1 | sed "s/\$NAME/$1/g; s/\${NAME}/$1/g; s/\"//g"
}

pkg_running() {  # pkg_running SERVICE: 0 if the pidfile of SERVICE names a live process
  local pf pid
  pf=$(pkg_pidfile "$1")
  [ -n "$pf" ] && [ -r "$pf" ] || return 1
  pid=$(cat "$pf" 2>/dev/null || true)
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

cmd_install() {
  install_debian
  local prom; prom=$(bash scripts/engine.sh bin prometheus-3)/prometheus
  say "Prometheus for the lab: $prom ($("$prom" --version 2>&1 | head -n 1))"
}

install_debian() {
  local need=()
  command -v promtool >/dev/null || need+=(prometheus)
  command -v amtool >/dev/null || need+=(prometheus-alertmanager)
  if [ ${#need[@]} -eq 0 ]; then
    say "promtool and amtool present: $(promtool --version 2>&1 | head -n 1)"
    return 0
  fi
  local was_running=() s
  for s in "${PKG_SERVICES[@]}"; do pkg_running "$s" && was_running+=("$s"); done
  # policy-rc.d exit 101 = "action forbidden": invoke-rc.d (what the postinst calls when there
  # is no systemd) then starts nothing. Only ours is removed: a Docker-built machine often
  # ships one already, and it is not ours to delete.
  local made_policy=0
  if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\n# swarm-medic scripts/monitoring.sh install: start no service\nexit 101\n' >"$POLICY"
    chmod 755 "$POLICY"
    made_policy=1
  fi
  say "installing Debian packages (services not started): ${need[*]}"
  local rc=0
  {
    apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  } || rc=$?
  [ "$made_policy" = 1 ] && rm -f "$POLICY"
  [ "$rc" = 0 ] || { say "apt-get failed (exit $rc)"; return "$rc"; }
  # Whatever got through anyway (a policy-rc.d we did not write that allows starts): stop it
  # with the package's own init script, which stops by its pidfile, never by name.
  for s in "${PKG_SERVICES[@]}"; do
    if pkg_running "$s" && [[ " ${was_running[*]} " != *" $s "* ]]; then
      say "the package started $s (pid $(cat "$(pkg_pidfile "$s")")); stopping it"
      "/etc/init.d/$s" stop >/dev/null || true
      if pkg_running "$s"; then say "$s still running after its init script's stop"; return 1; fi
    fi
  done
  say "installed: $(promtool --version 2>&1 | head -n 1); $(amtool --version 2>&1 | head -n 1)"
}

# --- up / down / status ----------------------------------------------------------------------

# a pid file counts only if it names a live process of that program here (pids.sh): a number
# reused since by another process is not ours to report, nor to signal
alive() { pid_named "$1" "$2" >/dev/null; }

wait_http() {  # wait_http ADDR PATH NAME LOG: until http://ADDR/PATH answers 200 (30 s)
  for _ in $(seq 1 150); do
    python3 - "$1" "$2" <<'EOF' 2>/dev/null && return 0
import sys, urllib.request
urllib.request.urlopen(f"http://{sys.argv[1]}{sys.argv[2]}", timeout=1)
EOF
    sleep 0.2
  done
  say "$3 did not answer on http://$1$2 within 30 s; its log: $4"
  tail -n 20 "$4" >&2 || true
  return 1
}

start_daemon() {  # start_daemon NAME READY_PATH ADDR ARGV...
  local name=$1 ready=$2 addr=$3; shift 3
  local pf=$STATE/$name.pid log=$LOGDIR/$name.log
  if alive "$pf" "$(basename "$1")"; then say "$name already running (pid $(cat "$pf"))"; return 0; fi
  basename "$1" >"$STATE/$name.program"
  say "starting $name on $addr (log: $log)"
  nohup "$@" >>"$log" 2>&1 &
  echo $! >"$pf"
  wait_http "$addr" "$ready" "$name" "$log"
}

stop_daemon() {  # stop_daemon NAME: TERM, wait 10 s, then KILL; by the pid we recorded only
  local pf=$STATE/$1.pid pid
  pid=$(pid_named "$pf" "$(cat "$STATE/$1.program" 2>/dev/null || echo "$1")" || true)
  if [ -z "$pid" ]; then rm -f "$pf"; return 0; fi
  say "stopping $1 pid $pid"
  kill -TERM "$pid"
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  rm -f "$pf"
}

cmd_up() {
  local listen=127.0.0.1:9090 am_listen=127.0.0.1:9093 config="" am_config=deploy/alertmanager.yml
  local storage=/var/lib/swarm-medic-lab/monitoring
  while [ $# -gt 0 ]; do
    case "$1" in
      --listen) listen=$2; shift 2 ;;
      --am-listen) am_listen=$2; shift 2 ;;
      --config) config=$2; shift 2 ;;
      --am-config) am_config=$2; shift 2 ;;
      --storage) storage=$2; shift 2 ;;
      *) echo "up: unknown argument $1" >&2; exit 2 ;;
    esac
  done
  if ! command -v prometheus >/dev/null || ! command -v prometheus-alertmanager >/dev/null; then
    install_debian
  fi
  mkdir -p "$STATE" "$LOGDIR" "$storage/prometheus" "$storage/alertmanager"
  if [ -z "$config" ]; then
    # The repo's config with its rules beside it (rule_files are relative to the config file),
    # alerts sent to the Alertmanager started here.
    rm -rf "$STATE/prometheus"
    cp -r deploy/prometheus "$STATE/prometheus"
    sed "s/alertmanager:9093/$am_listen/" deploy/prometheus.yml >"$STATE/prometheus.yml"
    config=$STATE/prometheus.yml
  fi
  start_daemon alertmanager /-/ready "$am_listen" prometheus-alertmanager \
    --config.file="$am_config" --storage.path="$storage/alertmanager" \
    --web.listen-address="$am_listen" --cluster.listen-address=""
  local prom=prometheus
  if [ "${PROMETHEUS:-3}" != 2.42 ]; then prom=$(bash scripts/engine.sh bin prometheus-3)/prometheus; fi
  start_daemon prometheus /-/ready "$listen" "$prom" \
    --config.file="$config" --storage.tsdb.path="$storage/prometheus" \
    --web.listen-address="$listen" --web.enable-lifecycle
  echo "$listen" >"$STATE/prometheus.addr"
  echo "$am_listen" >"$STATE/alertmanager.addr"
  say "up: Prometheus http://$listen  Alertmanager http://$am_listen"
}

cmd_down() {
  stop_daemon prometheus
  stop_daemon alertmanager
  rm -f "$STATE/prometheus.addr" "$STATE/alertmanager.addr"
  say "down"
}

cmd_status() {
  local n rc=0
  for n in prometheus alertmanager; do
    if alive "$STATE/$n.pid" "$(cat "$STATE/$n.program" 2>/dev/null || echo "$n")"; then
      echo "$n: running, pid $(cat "$STATE/$n.pid"), http://$(cat "$STATE/$n.addr" 2>/dev/null)"
    else
      echo "$n: not running"; rc=1
    fi
  done
  command -v promtool >/dev/null && echo "promtool: $(promtool --version 2>&1 | head -n 1)" \
    || echo "promtool: not installed (scripts/monitoring.sh install)"
  return "$rc"
}

case "${1:-}" in
  install) cmd_install ;;
  up) shift; cmd_up "$@" ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *) echo "usage: $0 install|up [--listen A] [--am-listen A] [--config F] [--am-config F] [--storage D]|down|status" >&2; exit 2 ;;
esac
