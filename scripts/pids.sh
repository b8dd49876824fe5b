# shellcheck shell=bash
# Pid files judged by the process they name, sourced by lab.sh and multilab.sh.
#
# A pid file outlives its process (SIGKILL, a machine stopped mid-run), and on a busy machine
# its number is soon another process's. Measured on the lab: a dockerd restarted after a
# SIGKILL found containerd's pid file, took the number (reused by then) for a live containerd,
# waited for its socket and gave up. So a pid file counts only if the process it names is
# alive, not a zombie, runs the program it should, and lives in the network namespace it
# should (every lab node's containerd has the same command line: only the namespace tells
# them apart). Anything else is stale: removed before a start, never signalled.

# pid_named FILE PROGRAM [NETNS]: the pid FILE names, if that process is PROGRAM, alive, and
# (given NETNS, a netns file such as /run/netns/medic-n1) in that network namespace.
pid_named() {
  local file=$1 prog=$2 netns=${3:-/proc/$$/ns/net} p exe
  [ -f "$file" ] || return 1
  p=$(tr -dc '0-9' <"$file" 2>/dev/null | head -c 10)
  [ -n "$p" ] && [ -e "/proc/$p" ] || return 1
  grep -q '^State:[[:space:]]*Z' "/proc/$p/status" 2>/dev/null && return 1
  exe=$(tr '\0' '\n' <"/proc/$p/cmdline" 2>/dev/null | head -n1)
  [ "${exe##*/}" = "$prog" ] || return 1
  [ -e "$netns" ] && [ "$(stat -L -c %i "/proc/$p/ns/net" 2>/dev/null)" = "$(stat -L -c %i "$netns")" ] ||
    return 1
  echo "$p"
}

# clear_stale FILE PROGRAM [NETNS] [WAIT]: remove FILE unless it names a live PROGRAM there.
# A SIGKILLed process can linger as a zombie until reaped: WAIT seconds (default 10) for the
# process it names to go before the file is left alone as live.
clear_stale() {
  local file=$1 prog=$2 netns=${3:-/proc/$$/ns/net} wait=${4:-10} n=0
  while [ -f "$file" ]; do
    if ! pid_named "$file" "$prog" "$netns" >/dev/null; then
      rm -f "$file"
      return 0
    fi
    # a live one: the daemon's own check will say so
    [ $n -ge $((wait * 5)) ] && return 0
    n=$((n + 1))
    sleep 0.2
  done
}
