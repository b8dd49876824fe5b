"""A node whose clock is off from the brain's: measured every probe round on the signed channel.

Symptom: a node's clock differs from the brain's (the instance on the leader, whose engine
signs the swarm's certificates) by more than `warn` (default 1 s). Nothing shows at first;
then swarm's TLS between that node and the others fails with "x509: certificate has expired
or is not yet valid" (moby#25112, #24078), tasks' timestamps and logs disagree, and the medic's
own channel refuses requests more than 30 s off.

How it is measured: each node's instance says in its probe answer its wall clock and how long
it held the request; the brain times the exchange and takes the offset as
node - (sent + received + held) / 2, within half of the round trip left once the node's own
time is taken out (`reach.Clock`), and keeps each node's last reading (readings older than
10 minutes are not judged: the node stopped answering). The brain's own node shares its clock.
A node more than 30 s off refuses the brain's requests altogether; its refusal says by how
much the request's timestamp was off, which is kept as its reading (its own word, unsigned).
Besides, the engine's SystemTime in /info (the brain's own engine, read every scan) is set
against the brain's clock: the medic's process on another clock than its engine (a remote
DOCKER_HOST, a faked time) measures every node against the wrong one. The time the /info
request takes is not taken out (milliseconds on a local socket), so the disagreement must
hold for a minute before it is reported: a slow answer lasts one scan.

Severity: a warning beyond `warn` (only the part beyond the error bound counts); critical
from `critical` (default 1h) behind the brain, or ahead of it on a manager. Why 1 hour: swarm
backdates every certificate it issues by one hour (swarmkit's CertBackdate), so a node up to an
hour behind still takes a certificate issued this instant as valid; beyond that, each
certificate renewed (every node renews its own in time, and joining nodes get new ones) is
"not yet valid" to it, and TLS with its peers starts failing. A manager ahead by as much signs
certificates, once it leads, that the others take for not yet valid; a worker ahead fails only
when the offset nears a certificate's remaining lifetime (weeks at swarm's default 90 days).
When every other node (two at least) is off in the same direction, the brain's own clock is the
one that is off: one finding names it, not one per node.

What the medic does: reports it once per incident, naming the node, its offset and the error
bound, and says to fix its time synchronisation (chrony, systemd-timesyncd, `timedatectl`).
No action: the medic never sets a clock.

Risks: none; it never acts. A reading is only as good as its error bound: a node whose offset
is within the bound of `warn` is not reported.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator

from swarm_medic.runbook import (
    DAY,
    HOUR,
    PROBES,
    Context,
    Duration,
    Finding,
    Node,
    Setting,
    Severity,
)

NAME = "clock-skew"
NEEDS = (PROBES,)
SETTINGS = (
    Setting(
        "warn",
        Duration(0.01, HOUR),
        "1s",
        "a clock off the brain's by more than this (beyond the measurement's error) is reported",
        "DURATION",
    ),
    Setting(
        "critical",
        Duration(1.0, 30 * DAY),
        "1h",
        "a clock this far behind the brain's (or ahead, on a manager) is critical: swarm "
        "backdates its certificates by one hour, so beyond that a node takes new ones for not "
        "yet valid",
        "DURATION",
    ),
)
FRESH = 600.0  # a reading older than this is not judged: the node stopped answering
CHANNEL_SKEW = 30.0  # what the channel accepts (nodes.channel.RequestAuth)
ENGINE_HELD = 60.0  # how long the engine's clock must disagree before it is reported


def _seconds(s: float) -> str:
    s = abs(s)
    if s >= HOUR:
        return f"{s / HOUR:.1f} h"
    return f"{s / 60:.1f} min" if s >= 120 else f"{s:.1f} s" if s >= 10 else f"{s:.2f} s"


def _way(offset: float) -> str:
    return "ahead of" if offset > 0 else "behind"


def _who(node: Node | None, node_id: str) -> str:
    if node is None:
        return node_id
    return f"{node.hostname or node.id} ({node.addr or 'no address'}, {node.role})"


def _severity(offset: float, error: float, node: Node | None, critical: float) -> Severity:
    behind = -offset - error  # how far behind it is at least
    ahead = offset - error
    if behind >= critical or (ahead >= critical and node is not None and node.role == "manager"):
        return Severity.CRITICAL
    return Severity.WARNING


ADVICE = (
    "Fix its time synchronisation (chrony or systemd-timesyncd: `timedatectl timesync-status`, "
    "`chronyc tracking`). Swarm backdates its certificates by one hour: a node more than an "
    "hour behind the leader takes new certificates for not yet valid and its TLS fails; the "
    f"medic's own channel refuses requests more than {CHANNEL_SKEW:.0f} s off."
)


def detect(ctx: Context) -> Iterator[Finding]:
    snap, warn = ctx.snapshot, ctx.settings.warn
    fresh = {
        nid: c
        for nid, c in ctx.probes.reach.clocks.items()
        if ctx.now - c.at <= FRESH and nid != snap.info.node_id
    }
    off = {nid: c for nid, c in fresh.items() if abs(c.offset) - c.error > warn}
    brain = snap.node(snap.info.node_id)
    if (
        len(fresh) >= 2
        and len(off) == len(fresh)
        and len({c.offset > 0 for c in off.values()}) == 1
    ):
        yield _brain_off(ctx, brain, [c.offset for c in off.values()])
    else:
        for nid, c in sorted(off.items()):
            yield _node_off(ctx, nid, c.offset, c.error, c.refused)
    if snap.info.system_time and brain is not None:
        engine = snap.info.system_time - ctx.now
        # the engine stamps its answer after the scan's start: a slow /info looks like an
        # engine ahead, for one scan; a clock that is off stays off
        key = f"engine:{brain.id}"
        if abs(engine) > warn and ctx.now - ctx.since(key) >= ENGINE_HELD:
            yield Finding.for_node(
                brain,
                key=key,
                summary=f"the medic's clock on {_who(brain, brain.id)} is {_seconds(engine)} "
                f"{'behind' if engine > 0 else 'ahead of'} its own engine's (SystemTime)",
                cause="engine-clock",
                severity=Severity.WARNING,
                advice="The medic process runs on another clock than the engine it speaks to "
                "(DOCKER_HOST on another machine, or a faked or namespaced time), and measures "
                "every node against that clock: run it on the engine's own host.",
                details={"engine_offset_seconds": f"{engine:+.3f}"},
            )


def _node_off(ctx: Context, nid: str, offset: float, error: float, refused: bool) -> Finding:
    node = ctx.snapshot.node(nid)
    severity = _severity(offset, error, node, ctx.settings.critical)
    if refused:
        summary = (
            f"{_who(node, nid)} refuses the medic's signed requests as {_seconds(offset)} off: "
            f"its clock is about {_seconds(offset)} {_way(offset)} the brain's "
            f"(±{_seconds(error)}, its own word); clock skew is the likely cause of the refusals"
        )
    else:
        summary = (
            f"{_who(node, nid)} is {_seconds(offset)} {_way(offset)} the brain's clock "
            f"(±{_seconds(error)})"
        )
    details = {
        "offset_seconds": f"{offset:+.3f}",
        "error_seconds": f"{error:.3f}",
        "measured_by": "its refusal of a signed request" if refused else "its signed answer",
    }
    cause = "refused" if refused else "clock-skew"
    if node is None:  # measured, then gone from this snapshot: named by its id
        return Finding.about(
            nid, summary, cause, severity=severity, advice=ADVICE, details=details, node_ids=(nid,)
        )
    return Finding.for_node(node, summary, cause, severity=severity, advice=ADVICE, details=details)


def _brain_off(ctx: Context, brain: Node | None, offsets: list[float]) -> Finding:
    # every other node agrees against us: the brain's clock is the odd one, by about -median
    mine = -statistics.median(offsets)
    me = ctx.snapshot.info.node_id
    summary = (
        f"the brain's own clock on {_who(brain, me)} is about {_seconds(mine)} {_way(mine)} "
        f"every other node's ({len(offsets)} measured, each {_seconds(min(map(abs, offsets)))} "
        f"to {_seconds(max(map(abs, offsets)))} off)"
    )
    # the brain leads, and its engine signs the certificates: ahead, it signs ones the others
    # take for not yet valid; behind, it still takes every one it signed for valid
    severity = Severity.CRITICAL if mine >= ctx.settings.critical else Severity.WARNING
    details = {"offset_seconds": f"{mine:+.3f}", "nodes_measured": str(len(offsets))}
    cause = "brain-clock-skew"
    if brain is None:
        return Finding.about(me, summary, cause, severity=severity, advice=ADVICE, details=details)
    return Finding.for_node(
        brain, summary, cause, severity=severity, advice=ADVICE, details=details
    )
