#!/usr/bin/env bash
# The main job: a local swarm with a broken demo stack, healed by swarm-medic in front of you.
#
#   bash scripts/demo.sh          set everything up, break things, run the medic (Ctrl-C stops)
#   bash scripts/demo.sh down     remove the demo stack and tear the lab down
set -euo pipefail
cd "$(dirname "$0")/.."
STACK=medic-demo
STATE_DIR=/var/lib/swarm-medic-lab/demo-state

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

remove_stack() {
  docker stack rm "$STACK" >/dev/null 2>&1 || true
  for _ in $(seq 1 100); do
    [ -z "$(docker service ls -q --filter "label=com.docker.stack.namespace=$STACK" 2>/dev/null)" ] && break
    sleep 0.2
  done
  # Removing services is asynchronous; their networks go a moment later.
  for _ in $(seq 1 100); do
    [ -z "$(docker network ls -q --filter "label=com.docker.stack.namespace=$STACK" 2>/dev/null)" ] && break
    sleep 0.2
  done
}

if [ "${1:-}" = "down" ]; then
  remove_stack
  docker config ls -q --filter name=swarm-medic-demo-ledger | xargs -r docker config rm >/dev/null
  exec bash scripts/lab.sh down
fi

say "1/4 installing what is missing (Debian packages, .venv)"
bash scripts/setup.sh
bash scripts/lab.sh up

say "2/4 deploying the broken demo stack '$STACK'"
remove_stack
docker config ls -q --filter name=swarm-medic-demo-ledger | xargs -r docker config rm >/dev/null
rm -rf "$STATE_DIR" && mkdir -p "$STATE_DIR"
docker stack deploy --resolve-image never -c deploy/demo/broken-stack.yml "$STACK" >/dev/null
for _ in $(seq 1 150); do
  running=$(docker service ps "${STACK}_api" --filter desired-state=running --format '{{.CurrentState}}' | grep -c '^Running' || true)
  [ "$running" = 2 ] && break
  sleep 0.2
done

say "3/4 a bad deploy of ${STACK}_api (its new tasks exit at once): swarm will pause the update"
docker service update -d --no-resolve-image --args "sh -c 'exit 3'" "${STACK}_api" >/dev/null
docker service ls --filter "label=com.docker.stack.namespace=$STACK"

cat <<TXT

   web     hangs in Starting forever          -> the medic force-updates it, verifies it runs
   api     its update pauses in a few seconds  -> the medic rolls it back, verifies the rollback
   batch   Pending: no node has gpu=true      -> the medic explains why and does not touch it
   report  image tag typo, rejected again and again -> reported once, no action

   metrics: http://127.0.0.1:9324/metrics   health: http://127.0.0.1:9324/healthz
   one-shot diagnosis in another terminal: .venv/bin/swarm-medic check
   Ctrl-C stops the medic; 'bash scripts/demo.sh down' removes the demo and the lab.
TXT

say "4/4 swarm-medic run (thresholds shortened for the demo: Starting 15 s, Pending 10 s; storm guard off)"
export SWARM_MEDIC_SCAN_INTERVAL=${SWARM_MEDIC_SCAN_INTERVAL:-5s}
export SWARM_MEDIC_RUNBOOK_STUCK_TASK_AFTER=${SWARM_MEDIC_RUNBOOK_STUCK_TASK_AFTER:-starting=15s,pending=10s}
export SWARM_MEDIC_VERIFY_HOLD=${SWARM_MEDIC_VERIFY_HOLD:-5s}
export SWARM_MEDIC_LEDGER_NAME=${SWARM_MEDIC_LEDGER_NAME:-swarm-medic-demo-ledger}
export SWARM_MEDIC_LOG_FORMAT=${SWARM_MEDIC_LOG_FORMAT:-console}
# every service of the demo's stack is broken at once: a storm by the guard's measure (4 of 4
# failing), which would stand still. Off here (share 1), so each fault shows its own story.
export SWARM_MEDIC_STORM_SHARE=${SWARM_MEDIC_STORM_SHARE:-1}
exec .venv/bin/swarm-medic run
