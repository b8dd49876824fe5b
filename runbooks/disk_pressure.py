"""A node's Docker data root (or a manager's raft folder) filling up: measured by its own instance.

Symptom: tasks fail to start or pull ("no space left on device"), logs stop, and on a manager
the raft log cannot be written: its WAL is corrupted and the manager cannot rejoin
(moby#46390, swarmkit#3188, #2959, moby#29180). The usual filler: old images, exited
containers and json-file logs without a `max-size` (moby#31254, #27957, #40207).

Cause: nothing in swarm cleans a node's data root; images of every past version stay until
pruned, and a container's json-file log grows without bound unless its service sets one.

What it does: each node's instance measures the filesystem under the engine's DockerRootDir
(os.statvfs: blocks free to an unprivileged writer) and, on a manager, the `swarm/raft`
folder's when it is another filesystem; the brain keeps each node's last word. It reports a
filesystem more than `high` percent used (default 90) as a warning, and more than `critical`
percent used (default 97) or with less than `free` left (default 1 GiB) as critical. A
finding clears only once the filesystem is below `low` percent (default 85): one that hovers
around `high` is one incident, not a new one each time it crosses. The finding names the
node, the path, the space used and free, and what to do: `docker system df` to see what
holds it; prune unused images but keep every image a service's Spec or PreviousSpec names (a
rollback needs the previous one, and `docker image prune -a` removes it on a node that does
not run it now); set `max-size` on json-file logs. A reading older than 10 minutes (the
node stopped answering) is not judged.

With the setting `prune` = yes (default no: report only), a data root over `high` (or
critical) is pruned by that node's own instance, toward the low watermark: first the build
cache, then stopped containers that belong to no task still meant to run, then dangling
images no container uses, then unused images oldest first; it stops as soon as the data
root is at or below `low`. Never an image any service's Spec or PreviousSpec names (on any
node: a rollback needs the previous image wherever the task lands), never an image a
remaining container uses, never a running container or one of a task still wanted, never a
forced removal (what the engine says is in use is skipped), never a log: containers on
json-file without `max-size` and the largest log files are reported in the node's
`hand: pruned` line. A raft folder on another filesystem is never pruned: reported only.
Every gate of the safety policy applies (pause, leader, storm, dry-run on the brain and on
the node, cooldown, budget and breaker per node, approvals, --max-concurrent-actions) except
the service scope, which has no say on nodes: this setting is the opt-in. Verified healed
once the finding clears (below `low`) on a reading the node gave after the prune.

Risks: report only by default. Pruned, an image that no spec names is gone from that node
(pulled again if a service is later pointed at it), and so is a stopped container that no
task wants (its logs and writable layer with it; volumes stay), a non-swarm one included, as
`docker container prune` does. statvfs measures the filesystem the data root is on: other
directories on it fill it too, and the finding says so; a prune cannot free what they hold.
"""

from __future__ import annotations

from collections.abc import Iterator

from swarm_medic.runbook import (
    PROBES,
    Action,
    Context,
    Count,
    Finding,
    Node,
    Setting,
    Severity,
    TaskState,
    parse_bool,
    prune_node,
)

NAME = "disk-pressure"
NEEDS = (PROBES,)
GIB = 1 << 30


def _size(text: str) -> int:
    """A size in bytes: a whole number with an optional K, M, G or T (binary) suffix."""
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(t[-1:], 1)
    if scale != 1:
        t = t[:-1]
    value = int(t) * scale
    if not 0 <= value <= 1 << 50:
        raise ValueError("expected a size from 0 to 1024T (K, M, G, T: binary)")
    return value


SETTINGS = (
    Setting(
        "high",
        Count(100),
        "90",
        "a filesystem (a node's data root, a manager's raft folder) more than this percent used "
        "is reported",
        "PERCENT",
    ),
    Setting(
        "low",
        Count(100, low=0),
        "85",
        "a filesystem reported clears only below this percent used (the low watermark)",
        "PERCENT",
    ),
    Setting(
        "critical",
        Count(100),
        "97",
        "more than this percent used is critical",
        "PERCENT",
    ),
    Setting("free", _size, "1G", "less than this free is critical", "SIZE"),
    Setting(
        "prune",
        parse_bool,
        "no",
        "yes: the node's own instance prunes a data root over `high` toward `low` (build "
        "cache, stopped containers of no wanted task, dangling and unused images; never an "
        "image a Spec or PreviousSpec names, never a log); no: report only",
        "yes|no",
    ),
)
FRESH = 600.0  # a reading older than this is not judged: the node stopped answering


def _bytes(n: float) -> str:
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n / 1024:.0f} KiB"


def _who(node: Node) -> str:
    return f"{node.hostname or node.id} ({node.addr or 'no address'}, {node.role})"


ADVICE = (
    "See what holds the space: `docker system df -v` on the node. Remove stopped containers "
    "(`docker container prune`) and unused images, but keep every image a service's Spec or "
    "PreviousSpec names: `docker service rollback` needs the previous one, and `docker image "
    "prune -a` removes it from a node that does not run it now (list them with `docker "
    "service inspect --format '{{.Spec.TaskTemplate.ContainerSpec.Image}} "
    "{{.PreviousSpec.TaskTemplate.ContainerSpec.Image}}'`). Containers on the json-file log "
    "driver with no `max-size` grow their logs without bound: set `--log-opt max-size` on "
    "the service (or in daemon.json). Other directories on the same filesystem count too."
)
RAFT_ADVICE = (
    " On a manager, a full raft folder corrupts the raft log (WAL) and the manager may not "
    "rejoin: free space before anything else. The medic never prunes it (another "
    "filesystem than the data root's)."
)
PRUNE_OFF = f" Set {NAME}.prune=yes to let the medic prune a node's data root itself."
PRUNING = (
    " The medic prunes this data root toward the low watermark (build cache, stopped "
    "containers, dangling and unused images; never an image a spec or previous spec names)."
)
# a task in these desired states is not wanted any more: its stopped container may go
UNWANTED = frozenset({TaskState.SHUTDOWN, TaskState.REMOVE})


def detect(ctx: Context) -> Iterator[Finding]:
    s = ctx.settings
    low = min(s.low, s.high)
    for nid, said in sorted(ctx.probes.reach.health.items()):
        node = ctx.snapshot.node(nid)
        if node is None or ctx.now - said.at > FRESH:
            continue
        for disk in said.disks:
            if disk.total <= 0:
                continue
            used = 100.0 * (disk.total - disk.free) / disk.total
            key = f"{nid}:{disk.what}"
            critical = used > s.critical or disk.free < s.free
            if not (critical or used > s.high or (used >= low and ctx.held(key))):
                continue
            ctx.since(key)  # held: it clears only below the low watermark
            raft = disk.what == "raft"
            where = "raft folder" if raft else "Docker data root"
            prunes = s.prune and not raft and (critical or used > s.high)
            more = RAFT_ADVICE if raft else (PRUNING if prunes else "" if s.prune else PRUNE_OFF)
            yield Finding.for_node(
                node,
                f"the {where} {disk.path} on {_who(node)} is {used:.1f}% used, "
                f"{_bytes(disk.free)} free of {_bytes(disk.total)}",
                "raft-disk" if raft else "disk-pressure",
                key=key,
                severity=Severity.CRITICAL if critical else Severity.WARNING,
                advice=ADVICE + more,
                actionable=prunes,
                details={
                    "path": disk.path,
                    "used_percent": f"{used:.1f}",
                    "free_bytes": str(disk.free),
                    "total_bytes": str(disk.total),
                    "high_percent": str(s.high),
                    "low_percent": str(low),
                },
            )


def plan(finding: Finding, ctx: Context) -> Action | None:
    """A prune of the node's data root toward the low watermark, keeping every image any
    service's Spec or PreviousSpec names and every container of the node's tasks still wanted."""
    target = finding.target
    if not ctx.settings.prune or target is None or finding.cause != "disk-pressure":
        return None
    node = ctx.snapshot.node(target.id)
    if node is None:
        return None
    services = ctx.snapshot.services
    keep = {s.image for s in services} | {s.previous_image for s in services}
    wanted = [
        t.id for t in ctx.snapshot.tasks if t.node_id == node.id and t.desired_state not in UNWANTED
    ]
    low = min(ctx.settings.low, ctx.settings.high)
    target = low
    total = int(finding.details.get("total_bytes", "0") or 0)
    if total > 0:
        # critical for want of `free` bytes while under the low watermark (a small disk): the
        # prune aims at the percent that leaves `free` free too, or frees all it may
        target = min(low, max(0, int(100 * (total - ctx.settings.free) / total)))
    used = finding.details.get("used_percent", "?")
    why = f"the data root of {_who(node)} is {used}% used: prune toward {target}%"
    if target < low:
        why += f" (leaving {_bytes(ctx.settings.free)} free)"
    return prune_node(node, keep, wanted, target, why)
