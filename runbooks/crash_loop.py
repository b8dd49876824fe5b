"""Tasks that keep ending by themselves: a crash loop (exits, OOM kills, failing healthchecks).

Symptom: a service's tasks end on their own again and again, `failed` ("task: non-zero exit
(N)", "... unhealthy container", "starting container failed: ...") or `complete` with a
non-zero exit code, and swarm starts another each time by the service's restart policy,
forever (swarmkit#2946, #2650). Settings `threshold` and `window` (default: 3 within 10
minutes); besides, one replica (a slot; a node, for a global service) must have ended at least
twice, so that one event ending every replica once (its node's engine restarting) is no loop.
Tasks the orchestrator ended (shutdown, remove, orphaned: a rolling update, a scale-down, a
drained or dead node) never count, nor rejected ones (the `repeated-rejection` runbook's).
A replica that has been running again for window/2 has its earlier crashes forgotten; the
incident ends when fewer than `threshold` crashes are left in the window.

Cause, as the last task's status tells it (it has no OOM flag): exit 137 (SIGKILL) with a
memory limit: most likely OOM-killed by its cgroup (`docker inspect` of the container on its
node says OOMKilled); exit 137 with no limit: something killed it; "unhealthy container": its
healthcheck failed and swarm replaced it; "starting container failed": the command or
entrypoint cannot start; any other code: the process exited with it.

What the medic does: reports it once per incident, with the exit codes, errors and nodes of
the last tasks, and the last lines of the last crashed task's log (read once, when the
incident opens, while the engine still has them). No action: the restart policy is swarm's,
and restarting is what swarm already does.

Risks: none; it never acts. Swarm keeps 5 tasks per replica by default (`docker swarm update
--task-history-limit`): a threshold above that is never reached by a one-replica service.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from swarm_medic.runbook import (
    DAY,
    MINUTE,
    Context,
    Count,
    Duration,
    Finding,
    Service,
    Setting,
    Severity,
    Snapshot,
    Task,
)

NAME = "crash-loop"
SETTINGS = (
    Setting(
        "threshold",
        Count(1000),
        "3",
        "tasks of one service ended by themselves within the window that make an incident",
        "N",
    ),
    Setting(
        "window",
        Duration(MINUTE, 30 * DAY),
        "10m",
        "how far back crashes count; a replica running again for half of it has its earlier "
        "crashes forgotten",
        "DURATION",
    ),
)
SHOWN = 5  # the last tasks whose exits the finding lists
MIB = 1 << 20
SIGNALS = {134: "SIGABRT", 137: "SIGKILL", 139: "SIGSEGV", 143: "SIGTERM"}
_EXIT = re.compile(r"non-zero exit \((\d{1,3})\)")
# Finding.cause, by how the last task ended
OOM, KILLED, UNHEALTHY, NO_START, EXIT = "oom", "killed", "unhealthy", "cannot-start", "exit"


def crashed(t: Task) -> bool:
    """Ended by itself: failed, or complete with a non-zero exit code."""
    return t.state == "failed" or (t.state == "complete" and t.exit_code not in (None, 0))


def _replica(t: Task) -> str:
    return f"slot {t.slot}" if t.slot is not None else f"node {t.node_id}"


def exit_code(t: Task) -> int | None:
    if t.exit_code is not None:
        return t.exit_code
    m = _EXIT.search(t.err)
    return int(m.group(1)) if m else None


def why_ended(t: Task, svc: Service) -> tuple[str, str]:
    """How a crashed task ended -> (cause, in words)."""
    code = exit_code(t)
    low = f"{t.err} {t.message}".lower()
    said = f"exit {code}" if code is not None else "no exit code"
    if "unhealthy" in low:
        return UNHEALTHY, f"{said}: its healthcheck failed and swarm replaced the container"
    if "starting container failed" in low:
        return NO_START, f"the container could not start: {t.err or t.message}"
    if code == 137 and svc.memory_limit:
        limit = f"{svc.memory_limit / MIB:.4g} MiB"
        return OOM, f"exit 137 (SIGKILL) with a memory limit of {limit}: most likely OOM-killed"
    if code == 137:
        return KILLED, "exit 137: killed (SIGKILL), with no memory limit set"
    if code in SIGNALS:
        return EXIT, f"exit {code} ({SIGNALS[code]})"
    return EXIT, said if code is not None else (t.err or t.message or "failed")


def oom_judgement(cause: str, words: str, codes: list[int | None]) -> str:
    """Whether memory killed the tasks, as far as exit codes tell (a task has no OOM flag)."""
    if cause in (OOM, KILLED):
        return words
    if 137 in codes:
        return "an earlier task ended with exit 137 (SIGKILL)"
    return "unlikely: no task shown ended with exit 137 (SIGKILL)"


def advice_for(cause: str, svc: Service, code: int | None) -> str:
    what = {
        OOM: "it outgrows its memory limit: raise it (`docker service update --limit-memory "
        f"SIZE {svc.name}`) or find out why it grows; `docker inspect` of a container on its "
        "node shows OOMKilled",
        KILLED: "something killed it (no cgroup limit: the host's OOM killer or a person): "
        "look at the node's kernel log",
        UNHEALTHY: "its healthcheck keeps failing: check the check's command and timeout, the "
        "start period (--health-start-period) and what the service waits for",
        NO_START: "the container cannot start: check the image's entrypoint and the service's "
        "command, mounts and user",
        EXIT: f"the process exits with {code}: its log says why"
        if code is not None
        else "the task fails: its error and log say why",
    }[cause]
    return (
        f"{what} (`docker service logs {svc.name}`). Swarm restarts it by its restart policy; "
        "the medic does not act."
    )


def _hostname(snap: Snapshot, node_id: str) -> str:
    node = snap.node(node_id)
    return node.hostname if node else node_id or "-"


def _say(seconds: float) -> str:
    for unit, size in (("d", DAY), ("h", 3600.0), ("m", MINUTE)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def detect(ctx: Context) -> Iterator[Finding]:
    window, threshold = ctx.settings.window, ctx.settings.threshold
    snap = ctx.snapshot
    for svc in snap.services:
        history = snap.tasks_of(svc.id)
        # A replica running steadily again ends its part of the incident: its crashes from
        # before that run no longer count.
        steady_since: dict[str, float] = {}
        for t in history:
            if t.state == "running" and ctx.now - t.timestamp >= window / 2:
                key = _replica(t)
                steady_since[key] = max(steady_since.get(key, 0.0), t.timestamp)
        crashes = sorted(
            (
                t
                for t in history
                if crashed(t)
                and ctx.now - t.timestamp <= window
                and t.timestamp >= steady_since.get(_replica(t), 0.0)
            ),
            key=lambda t: (t.timestamp, t.id),
            reverse=True,
        )
        per_replica: dict[str, int] = {}
        for t in crashes:
            per_replica[_replica(t)] = per_replica.get(_replica(t), 0) + 1
        if len(crashes) < threshold or max(per_replica.values()) < min(2, threshold):
            continue
        last = crashes[0]
        cause, words = why_ended(last, svc)
        shown = crashes[:SHOWN]
        codes = [exit_code(t) for t in shown]
        yield Finding.for_service(
            svc,
            summary=(
                f"{svc.name}: {len(crashes)} tasks ended by themselves within "
                f"{_say(window)}; the last: {words}"
            ),
            cause=cause,
            severity=Severity.CRITICAL,
            task_ids=tuple(sorted(t.id for t in crashes)),
            node_ids=tuple(sorted({t.node_id for t in crashes if t.node_id})),
            advice=advice_for(cause, svc, exit_code(last)),
            actionable=False,
            details={
                "crashes": str(len(crashes)),
                "exit_codes": ", ".join("-" if c is None else str(c) for c in codes),
                "last_tasks": "; ".join(
                    f"{t.id[:12]} on {_hostname(snap, t.node_id)}: {t.err or t.message or t.state}"
                    for t in shown
                ),
                "nodes": ", ".join(sorted({_hostname(snap, t.node_id) for t in crashes})),
                "oom": oom_judgement(cause, words, codes),
            },
            logs_of=last.id,
        )
