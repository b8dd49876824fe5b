"""A swarm certificate that will expire before it is renewed: a node's own, a Down node's, the CA's.

Symptom: nothing, until the day it expires. A node whose certificate expired cannot speak TLS
to the managers: it stays Down, its engine may not even start (moby#24132), and a node that
was off while its certificate ran out does not rejoin by itself (moby#42660: on managers, the
swarm had to be initialised again). An expired CA takes every node with it.

Cause: swarm renews each node's certificate itself, at a random point between 50% and 80% of
its lifetime (the swarm's NodeCertExpiry, `docker swarm update --cert-expiry`, 90 days by
default), so a healthy node's certificate always has at least 20% of it left. One with less
was not renewed in time: the node cannot reach a manager, its clock is off (see clock-skew),
or the swarm's CA is being rotated and stuck. A node that is Down renews nothing: its
certificate runs out while it is off. The CA (20 years by default) is renewed only by
`docker swarm ca --rotate`.

What it does: each node's instance reads its own certificate's notAfter
(`<DockerRootDir>/swarm/certificates/swarm-node.crt`) and says it in its probe answer; the
brain reads the swarm's NodeCertExpiry and its CA's certificate (TLSInfo.TrustRoot) from its
own engine. It reports, once per incident:
- a node (Ready, its reading fresh) whose certificate has less than `warn` left (default 7
  days), or less than `share` percent (default 20) of NodeCertExpiry when that is shorter:
  "not renewed in time";
- a Down node whose last reported certificate has less than `down_warn` left (default 7
  days): bring it back before then, or after it `docker swarm leave` on it, `docker node rm`
  its entry and join again with a token;
- the CA within `ca_warn` (default 30 days): `docker swarm ca --rotate`.
Critical when already expired or within `critical` (default 1 day; for a node's certificate,
never more than half its threshold, so a swarm of one-hour certificates is not always
critical). A node that has not said its certificate (an older instance, the file not bound
into the container) is not judged; its instance says why once.

Risks: none; it never acts. A certificate renewed since a Down node last answered is not
seen: the finding says "as last reported".
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from swarm_medic.runbook import (
    DAY,
    HOUR,
    PROBES,
    Context,
    Count,
    Duration,
    Finding,
    Node,
    NodeState,
    Setting,
    Severity,
)
from swarm_medic.runbook.helpers import cert_not_after

NAME = "swarm-certificates"
NEEDS = (PROBES,)
SETTINGS = (
    Setting(
        "warn",
        Duration(60.0, 3650 * DAY),
        "7d",
        "a node's certificate with less than this left (or less than `share` of the swarm's "
        "NodeCertExpiry, if shorter) was not renewed in time",
        "DURATION",
    ),
    Setting(
        "share",
        Count(100),
        "20",
        "percent of the swarm's NodeCertExpiry: swarm renews with 20-50% left, so less than "
        "20% left means it was not renewed in time",
        "PERCENT",
    ),
    Setting(
        "down_warn",
        Duration(60.0, 3650 * DAY),
        "7d",
        "a Down node whose certificate (as last reported) expires within this is reported: "
        "it will not rejoin by itself after that",
        "DURATION",
    ),
    Setting(
        "ca_warn",
        Duration(60.0, 3650 * DAY),
        "30d",
        "the swarm's CA certificate expiring within this is reported",
        "DURATION",
    ),
    Setting(
        "critical",
        Duration(60.0, 365 * DAY),
        "1d",
        "a certificate expired or expiring within this is critical",
        "DURATION",
    ),
)
FRESH = 600.0  # a Ready node's reading older than this is not judged


def left_text(s: float) -> str:
    if s <= 0:
        return f"expired {left_text(-s)} ago" if s < 0 else "expires now"
    if s >= 2 * DAY:
        return f"{s / DAY:.1f} days"
    return f"{s / HOUR:.1f} h" if s >= HOUR else f"{s / 60:.0f} min"


def _left(s: float) -> str:
    return left_text(s) if s <= 0 else f"{left_text(s)} left"


def _who(node: Node) -> str:
    return f"{node.hostname or node.id} ({node.addr or 'no address'}, {node.role})"


def threshold(ctx: Context) -> float:
    """How much a node's certificate must have left, at least."""
    lifetime = ctx.snapshot.info.node_cert_expiry
    warn: float = ctx.settings.warn
    if lifetime > 0:
        return min(warn, lifetime * float(ctx.settings.share) / 100)
    return warn


def detect(ctx: Context) -> Iterator[Finding]:
    snap, now = ctx.snapshot, ctx.now
    health = ctx.probes.reach.health
    need = threshold(ctx)
    lifetime = snap.info.node_cert_expiry
    for node in sorted(snap.nodes, key=lambda n: n.id):
        said = health.get(node.id)
        if said is None or said.cert_not_after is None:
            continue
        left = said.cert_not_after - now
        details = {
            "not_after": _iso(said.cert_not_after),
            "left_seconds": f"{left:.0f}",
            "reported_at": _iso(said.at),
        }
        if lifetime > 0:
            details["node_cert_expiry_seconds"] = f"{lifetime:.0f}"
        if node.state == NodeState.DOWN:
            if left < ctx.settings.down_warn:
                yield _down(ctx, node, left, details)
        elif node.state == NodeState.READY and now - said.at <= FRESH and left < need:
            critical = min(ctx.settings.critical, need / 2)
            yield Finding.for_node(
                node,
                f"the swarm certificate of {_who(node)} was not renewed in time: {_left(left)} "
                f"(swarm renews it with 20-50% of its lifetime left; threshold "
                f"{left_text(need)})",
                "not-renewed",
                key=f"{node.id}:not-renewed",
                severity=Severity.CRITICAL if left < critical else Severity.WARNING,
                advice="Swarm renews a node's certificate itself; one that was not renewed "
                "cannot reach a manager, or its clock is off (see clock-skew), or a CA "
                "rotation is stuck (`docker info` on a manager: CA rotation in progress). "
                "Check the node's connectivity to the managers (port 2377) and its time; "
                "`docker swarm ca --rotate` on a manager reissues every node's certificate. "
                "Once it expires the node cannot rejoin by itself: it must `docker swarm "
                "leave` and join again with a token.",
                details=details,
            )
    root = snap.info.trust_root
    ca = cert_not_after(root) if root else None
    if ca is not None and ca - now < ctx.settings.ca_warn:
        left = ca - now
        yield Finding.about(
            "ca",
            f"the swarm's CA certificate {'expired' if left <= 0 else 'expires'}: {_left(left)}",
            "ca-expiry",
            severity=Severity.CRITICAL if left < ctx.settings.critical else Severity.WARNING,
            advice="Rotate the swarm's root CA before it expires: `docker swarm ca --rotate` "
            "on a manager (every node gets a certificate from the new CA; the rotation "
            "finishes once every node has one, `docker info` shows the progress). Once the "
            "CA has expired, no node can renew and the swarm must be initialised again.",
            details={"not_after": _iso(ca), "left_seconds": f"{left:.0f}"},
        )


def _down(ctx: Context, node: Node, left: float, details: dict[str, str]) -> Finding:
    expired = left <= 0
    if expired:
        summary = (
            f"{_who(node)} is Down and its swarm certificate (as last reported) "
            f"{left_text(left)}: it will not rejoin the swarm by itself"
        )
    else:
        summary = (
            f"{_who(node)} is Down and its swarm certificate (as last reported) expires in "
            f"{left_text(left)}: bring it back before then, or it will not rejoin by itself"
        )
    return Finding.for_node(
        node,
        summary,
        "down-expiring" if not expired else "down-expired",
        key=f"{node.id}:down",
        severity=Severity.CRITICAL if left < ctx.settings.critical else Severity.WARNING,
        advice="Start the node (and its engine) before its certificate expires: it renews "
        "as soon as it reaches a manager. Once expired, on the node `docker swarm leave "
        "--force`, then on a manager `docker node rm "
        f"{node.id}` and `docker swarm join-token {node.role}`, and join the node again "
        "with that token. A manager that was off must also be demoted first "
        "(`docker node demote`) if the others still count it in the quorum.",
        details=details,
    )


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
