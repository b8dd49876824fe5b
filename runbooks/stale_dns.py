"""The embedded DNS answers `tasks.<svc>` with IPs that are not the service's running tasks.

Symptom: on some node, `tasks.<svc>` (asked of 127.0.0.11 from a container on the service's
overlay) lists an IP no running task has, or misses a running task's IP, for longer than
the setting `grace` (discovery lags Running by a few seconds, so short gaps are normal).
moby#33790, moby#26772.

Cause: the node's copy of the service discovery records (gossiped between nodes) is stale:
a lost gossip message, a task removed while its node was partitioned.

Judged only on nodes that run a task meant to run on that overlay: a node whose last task
there is shutting down (drained, scaled away, a stop grace of 20 s) is leaving the overlay's
gossip, and its records may lag while nothing there uses them (seen in the soak: a drained
node's answer, from a container still in its stop grace, 30 s behind). A node whose only
containers on an attachable overlay are not swarm tasks is not judged either.

The grace is 45 s: a node drained and made active again (healthy churn) has been measured, in
the soak, answering records 33 s old before its gossip caught up; a stale record that matters
lasts minutes or for good (moby#33790), so 45 s still reports it within the minute.

What the medic does: reports which node answers what, against what swarm says. No action: no
safe, verified repair exists from outside (a force update of the service usually refreshes
the records; the finding says so).

Risks: none; it never acts.
"""

from __future__ import annotations

from collections.abc import Iterator

from swarm_medic.runbook import DAY, PROBES, Context, Duration, Finding, Setting, Severity
from swarm_medic.runbook.helpers import running_ips

NAME = "stale-dns"
NEEDS = (PROBES,)
SETTINGS = (
    Setting(
        "grace",
        Duration(0.1, DAY),
        "45s",
        "how long DNS may disagree with swarm before it counts",
        "DURATION",
    ),
)


def detect(ctx: Context) -> Iterator[Finding]:
    reach, snap = ctx.probes.reach, ctx.snapshot
    names = {n.id: n.hostname or n.id for n in snap.nodes}
    members = {
        (t.node_id, net)
        for t in snap.tasks
        if t.desired_state == "running" and t.state == "running"
        for net, _, _ in t.addresses
    }
    per_service: dict[tuple[str, str], list[str]] = {}
    for (node, sid, net), (ips, since) in sorted(reach.dns.items()):
        if since is None or ctx.now - since < ctx.settings.grace or (node, net) not in members:
            continue
        want = set(running_ips(snap, sid, net))
        extra, missing = sorted(set(ips) - want), sorted(want - set(ips))
        parts = ([f"extra {', '.join(extra)}"] if extra else []) + (
            [f"missing {', '.join(missing)}"] if missing else []
        )
        if parts:
            per_service.setdefault((sid, net), []).append(
                f"{names.get(node, node)}: {'; '.join(parts)}"
            )
    for (sid, net), lines in per_service.items():
        svc = snap.service(sid)
        name = svc.name if svc else sid
        yield Finding.for_service(
            svc or sid,
            key=f"{sid}:{net}",
            summary=f"tasks.{name} disagrees with swarm's running tasks on "
            f"{len(lines)} node(s) for over {ctx.settings.grace:.0f}s",
            cause="stale-records",
            severity=Severity.WARNING,
            advice="; ".join(lines) + ". A force update of the service usually refreshes "
            "the records (not automatic).",
            actionable=False,
        )
