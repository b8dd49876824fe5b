"""A port a service publishes does not answer at some nodes' addresses while its tasks run.

Symptom: a TCP connect to NODE_ADDRESS:PUBLISHED_PORT fails for --probe-failures probes in a
row, from one or more nodes (each node connects to every such address from its own network
namespace, as a client would), while every task of the service meant to run is running and no
update or rollback is under way. The addresses probed: mode ingress, every ready node's (the
routing mesh answers on all of them); mode host, those of the nodes that run one of its tasks.
Only TCP ports: a connect says nothing about udp or sctp ones, which are not probed. Clients
sent to that address time out or are refused; swarm reports nothing (moby#33911, moby#29417,
moby#26563).

Cause, by mode and by what answers:
  no-ipvs        ingress, on a node whose kernel has no IPVS (no /proc/net/ip_vs): the
                 routing mesh cannot work there at all
  ingress-rules  ingress, the node has IPVS: its DOCKER-INGRESS rules or IPVS entries for the
                 port are missing or stale (docker/cli#2274)
  host-mapping   host: the task container's port mapping on that node (docker-proxy and the
                 iptables DNAT rule) is gone while the container runs
  some-nodes     it answers from some nodes and not from others: a firewall or route between
                 those nodes and that address, not the service

What the medic does: reports it once per (service, published port, node address), naming the
nodes it fails from, the addresses of the same port that answer, and the mode. The advice:
no-ipvs, publish with mode=host or load the ip_vs module; ingress-rules and host-mapping,
`docker service update --force SVC` re-creates the tasks and with them the mapping and the
rules (not automatic: it restarts every task of the service to mend one node).

Risks: none; it never acts. The probes open (and at once close) one TCP connection per
address and port per round: a service that logs every connection logs those.
"""

from __future__ import annotations

from collections.abc import Iterator

from swarm_medic.runbook import PROBES, Cell, Context, Finding, Severity
from swarm_medic.runbook.helpers import Published, published_targets

NAME = "published-port"
NEEDS = (PROBES,)


def _advice(cause: str, pub: Published, *, svc: str, host: str, good: str, bad: str) -> str:
    if cause == "no-ipvs":
        return (
            f"node {host} has no IPVS (no /proc/net/ip_vs): the routing mesh cannot work "
            "there; publish with mode=host or load the ip_vs module. Not automatic."
        )
    if cause == "ingress-rules":
        return (
            f"the routing mesh on {host} does not forward port {pub.port} (its DOCKER-INGRESS "
            f"rules or IPVS entries are missing): `docker service update --force {svc}` "
            f"programs them again; if it does not hold, restart the engine of {host}. "
            "Not automatic."
        )
    if cause == "host-mapping":
        return (
            f"the container's port mapping on {host} (docker-proxy / iptables DNAT) is gone: "
            f"`docker service update --force {svc}` re-creates the mapping. Not automatic."
        )
    return (
        f"it answers from {good} but not from {bad}: a firewall or route between those nodes "
        f"and {pub.ip}, not the service. Not automatic."
    )


def detect(ctx: Context) -> Iterator[Finding]:
    reach, snap = ctx.probes.reach, ctx.snapshot
    if not reach.ports:
        return
    k = ctx.probes.failures
    cells: dict[tuple[str, int], dict[str, Cell]] = {}
    for (vantage, ip, port), cell in reach.ports.items():
        cells.setdefault((ip, port), {})[vantage] = cell
    # current targets only: a service that is updating or has a task not running is not here
    targets = published_targets(snap)
    names = {n.id: n.hostname or n.id for n in snap.nodes}
    for pub in targets:
        seen = cells.get((pub.ip, pub.port), {})
        if not any(c.fails >= k for c in seen.values()):
            continue
        svc = snap.service(pub.service)
        name = svc.name if svc else pub.service
        failing = sorted(n for n, c in seen.items() if c.fails >= 1)
        good = sorted(n for n, c in seen.items() if c.ok)
        host = names.get(pub.node, pub.node)
        if pub.mode == "ingress" and reach.ipvs.get(pub.node) is False:
            cause = "no-ipvs"
        elif good:
            cause = "some-nodes"
        else:
            cause = "ingress-rules" if pub.mode == "ingress" else "host-mapping"
        answering = sorted(
            {
                o.ip
                for o in targets
                if (o.service, o.port) == (pub.service, pub.port)
                and (oc := cells.get((o.ip, o.port)))
                and all(c.ok for c in oc.values())
            }
        )
        where = ", ".join(sorted(names.get(n, n) for n in failing))
        errors = ", ".join(sorted({seen[n].error for n in failing}))
        yield Finding.for_service(
            svc or pub.service,
            key=f"{pub.service}:{pub.port}:{pub.ip}",
            summary=f"published port {pub.port}/tcp ({pub.mode} mode) of {name} does not "
            f"answer at {pub.ip} ({host}) from {where} ({errors}) for {k}+ probes while its "
            "tasks run; "
            + (f"it answers at {', '.join(answering)}" if answering else "no address answers"),
            cause=cause,
            severity=Severity.CRITICAL,
            node_ids=tuple(sorted({pub.node, *failing})),
            advice=_advice(
                cause,
                pub,
                svc=name,
                host=host,
                good=", ".join(sorted(names.get(n, n) for n in good)),
                bad=where,
            ),
            actionable=False,
            details={
                "mode": pub.mode,
                "address": pub.ip,
                "port": str(pub.port),
                "node": pub.node,
                "from": ",".join(failing),
                "answers_at": ",".join(answering),
            },
        )
