"""A service's virtual IP does not answer while its tasks do.

Symptom: from a node, a TCP connect to the service VIP on the probe port fails for
--probe-failures rounds in a row, while at least one task of the service answers from the
same node. Clients that use the service name (not `tasks.<name>`) get timeouts.

Cause: the VIP is a load balancer made of IPVS rules in the node's sandbox; when those rules
are missing or stale, the VIP is dead and the tasks are fine. On a kernel without IPVS at all
(no /proc/net/ip_vs on the node — so it is on this project's lab machine) VIPs and the ingress
routing mesh can never work: the finding says so.

What the medic does: reports it once per incident. It cannot fix a kernel; where IPVS is
present, recreating the service or restarting the node's engine rebuilds the rules (not
automatic). For services that must be reached on such kernels: --endpoint-mode dnsrr.

Risks: none; it never acts.
"""

from __future__ import annotations

from collections.abc import Iterator

from swarm_medic.runbook import PROBES, Context, Finding, Severity
from swarm_medic.runbook.helpers import running

NAME = "dead-vip"
NEEDS = (PROBES,)


def detect(ctx: Context) -> Iterator[Finding]:
    reach, snap = ctx.probes.reach, ctx.snapshot
    names = {n.id: n.hostname or n.id for n in snap.nodes}
    dead: dict[tuple[str, str], list[str]] = {}
    for (node, sid, net), cell in sorted(reach.vip.items()):
        if cell.fails < ctx.probes.failures:
            continue
        tasks_ok = any(
            reach.tcp.get((node, t.id)) is not None and reach.tcp[(node, t.id)].ok
            for t in snap.tasks_of(sid)
            if running(t)
        )
        if tasks_ok:
            dead.setdefault((sid, net), []).append(node)
    for (sid, net), nodes in dead.items():
        svc = snap.service(sid)
        name = svc.name if svc else sid
        vip = next((ip for n, ip in (svc.vips if svc else ()) if n == net), "?")
        no_ipvs = sorted(names.get(n, n) for n in nodes if reach.ipvs.get(n) is False)
        where = ", ".join(sorted(names.get(n, n) for n in nodes))
        kernel = (
            f"the kernel of {', '.join(no_ipvs)} has no IPVS (/proc/net/ip_vs missing): "
            "VIPs and the routing mesh cannot work there; use --endpoint-mode dnsrr. "
            if no_ipvs
            else "the node's IPVS rules for this VIP are missing or stale; "
            "recreating the service or restarting the engine rebuilds them. "
        )
        yield Finding.for_service(
            svc or sid,
            key=f"{sid}:{net}",
            summary=f"VIP {vip} of {name} does not answer from {where} while its tasks do",
            cause="no-ipvs" if no_ipvs else "lb-rules",
            severity=Severity.CRITICAL,
            node_ids=tuple(sorted(nodes)),
            advice=kernel + "Not automatic.",
            actionable=False,
        )
