"""Node entries that stay Down: a rejoined machine's ghost, or a worker gone for too long.

Symptom: `docker node ls` keeps Down entries that never go away (moby#24106, #30059,
docker/for-linux#1506). Two kinds:
- a ghost: a Down entry whose hostname a Ready node carries, that node having joined after the
  entry went down (or at the same address): the same machine left (`docker swarm leave`, a
  reinstall, a wiped /var/lib/docker) and joined again under a new node id, and swarm keeps the
  old entry for ever;
- a worker Down for longer than the setting `after` (default 24h), counted from the entry's
  UpdatedAt (the engine's only word on when it went down; a leader change marks every node
  unknown and then down again, which restarts the count: later, never earlier).

Cause: swarm never removes a node entry by itself; only `docker node rm` does. A ghost costs a
line in every listing and a task slot of every global service (shown as not running), and a
manager's ghost still counts as a raft member. A worker away long enough that its certificate
expired (the swarm's NodeCertExpiry, 90 days by default) cannot rejoin by itself: it has to
leave and join again, and then leaves a ghost of its own.

What the medic does: reports each once per incident. A ghost: its id, address and since when
it is Down, the node that carries its hostname now, and the command that removes it
(`docker node rm ID`; a manager's ghost must be demoted first, `docker node demote ID`, which
needs the quorum). A long-Down worker (not a ghost): since when, and the choice (bring it back
before its certificate expires, or remove it). The Down entries this runbook calls ghosts are
left out of `node-down`, which would tell the same story as a node that died.
With the setting `action` = remove, the brain removes a worker's ghost itself: `docker node rm`
without force, decided on the entry's version (a node whose entry moved on is left alone; the
engine refuses one that is up), under every gate of the safety policy (pause, leader, dry-run,
cooldown, budget and breaker per node, --max-concurrent-actions) except the service scope,
which has no say on nodes: this setting is the opt-in. Verified once the entry is no longer
listed. Never a manager's ghost, never a worker that is only Down for long (it may come back).

Risks: removing an entry is final: a machine that still thought itself a member has to leave
and join again. Hence report by default, ghosts only, and a ghost only when its twin joined
after it went down or from its own address: two machines cloned with one hostname, one of
them rebooting, are not mistaken for a ghost (the other joined before, from elsewhere).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from swarm_medic.runbook import (
    DAY,
    MINUTE,
    Action,
    Context,
    Duration,
    Finding,
    Node,
    NodeState,
    Setting,
    Severity,
    choice,
    remove_node,
)
from swarm_medic.runbook.helpers import Ghost, ghosts

NAME = "stale-nodes"
SETTINGS = (
    Setting(
        "after",
        Duration(MINUTE, 365 * DAY),
        "24h",
        "how long a worker may be Down (since its entry last changed) before it counts as stale",
        "DURATION",
    ),
    Setting(
        "action",
        choice("report", "remove"),
        "report",
        "what to do with a worker's ghost (a Down entry of a machine that joined again): report "
        "it, or remove it (`docker node rm`, never forced; never a manager's)",
        "report|remove",
    ),
)


def _utc(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _for(seconds: float) -> str:
    if seconds >= DAY:
        return f"{seconds / DAY:.1f}d"
    return f"{seconds / 3600:.1f}h" if seconds >= 3600 else f"{seconds / 60:.0f}m"


def _down_since(node: Node, ctx: Context) -> float:
    # an entry whose UpdatedAt the engine does not say: from the medic's own first sighting
    return node.updated_at or ctx.since(f"down:{node.id}")


def detect(ctx: Context) -> Iterator[Finding]:
    found = ghosts(ctx.snapshot)
    for ghost in found.values():
        yield _ghost(ghost, ctx)
    for node in ctx.snapshot.nodes:
        if node.state != NodeState.DOWN or node.role != "worker" or node.id in found:
            continue
        since = _down_since(node, ctx)
        if ctx.now - since < ctx.settings.after:
            continue
        where = f"{node.hostname or node.id} ({node.addr or 'no address'})"
        yield Finding.for_node(
            node,
            key=f"down:{node.id}",
            summary=f"worker {where} has been Down for {_for(ctx.now - since)}, since "
            f"{_utc(since)}: {node.message or 'no message'}",
            cause="long-down",
            severity=Severity.INFO,
            advice=f"If it should come back, bring it back before its certificate expires (the "
            "swarm's node certificate lifetime, 90 days by default: `docker info` shows it); "
            "after that it cannot rejoin by itself and must leave and join again. If it is "
            f"gone for good, remove its entry: `docker node rm {node.id}`.",
            details={
                "hostname": node.hostname,
                "addr": node.addr,
                "down_since": _utc(since),
                "role": node.role,
            },
        )


def _ghost(ghost: Ghost, ctx: Context) -> Finding:
    entry, twin = ghost.entry, ghost.twin
    since = _down_since(entry, ctx)
    worker = entry.role == "worker"
    removing = worker and ctx.settings.action == "remove"
    if worker:
        how = f"`docker node rm {entry.id}`"
    else:
        # a manager's entry is a raft member: demoting it needs the quorum, and a human
        how = f"`docker node demote {entry.id}`, then `docker node rm {entry.id}`"
    return Finding.for_node(
        entry,
        key=f"ghost:{entry.id}",
        summary=f"{entry.hostname}: entry {entry.id} ({entry.role}, {entry.addr or 'no address'}) "
        f"is Down since {_utc(since)}, and {entry.hostname} joined again as {twin.id} "
        f"({twin.addr or 'no address'}, Ready) on {_utc(twin.created_at)}: the old entry is "
        "a ghost",
        cause="ghost",
        severity=Severity.WARNING,
        advice=f"Remove the ghost: {how}. The machine itself runs as {twin.id}, which this does "
        "not touch."
        + ("" if worker else " A manager's ghost still counts in the raft quorum.")
        + (
            ""
            if removing or not worker
            else f" Set {NAME}.action=remove to let the medic remove workers' ghosts."
        ),
        actionable=removing,
        details={
            "hostname": entry.hostname,
            "ghost": entry.id,
            "addr": entry.addr,
            "down_since": _utc(since),
            "role": entry.role,
            "now_runs_as": twin.id,
            "joined_again": _utc(twin.created_at),
        },
    )


def plan(finding: Finding, ctx: Context) -> Action | None:
    if ctx.settings.action != "remove" or finding.target is None:
        return None
    ghost = ghosts(ctx.snapshot).get(finding.target.id)
    if ghost is None or ghost.entry.role != "worker":
        return None
    return remove_node(
        ghost.entry,
        f"the Down entry of {ghost.entry.hostname}, which runs again as {ghost.twin.id}",
    )
