"""An overlay network whose subnet has run out of addresses, or nearly.

Symptom: tasks of services on an overlay network sit in new / allocated / pending (desired
running, longer than the setting `after`) while the network's subnet has no free address,
with no error at all; or tasks rejected in the last 5 minutes with "node is missing network
attachments, ip addresses may be exhausted" (20.10: a /29 overlay and 8 replicas: tasks sit in
new and preparing, then are rejected and replaced, again and again) or "could not find an
available IP" (moby#37338, moby#43052, swarmkit#3230). Or the subnet is at least `full`
percent used with nothing stuck yet.

Cause: every task on an overlay takes one address of its subnet, every service in VIP mode
one more (its VIP), and every node with a task on the network one more (its load-balancer
endpoint); a subnet of prefix /p has 2^(32-p) - 3 usable (network, broadcast and gateway
addresses are not given out). Scale-ups, rolling updates with start-first order and more nodes
all need more addresses; the default /24 has 253.

What the medic does: reports, one incident per network: the subnet, its size, the addresses in
use by tasks, VIPs and load-balancer endpoints (one per node with a task on it: an estimate),
the stuck tasks, the services on the network with their addresses, and which services to move
to a larger subnet (`docker network create --driver overlay --subnet .../N NEW`, then
`docker service update --network-add NEW --network-rm OLD SVC`). IPv4 subnets only; the
ingress network is left out (its addresses are not in the tasks' attachments).

Risks: none; it never acts. A force update does not help (it needs the same addresses) and
moving a service to another network changes its DNS neighbours: a person plans it.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from swarm_medic.runbook import (
    DAY,
    LIVE_STATES,
    Context,
    Count,
    Duration,
    Finding,
    Service,
    Setting,
    Severity,
    Snapshot,
    TaskState,
)

NAME = "ip-exhaustion"
# before (or at) address allocation
WAITING = frozenset({TaskState.NEW, TaskState.ALLOCATED, TaskState.PENDING})

SETTINGS = (
    Setting(
        "after",
        Duration(1.0, 30 * DAY),
        "30s",
        "how long a task may wait in new/allocated/pending on a full network before it counts",
        "DURATION",
    ),
    Setting(
        "full",
        Count(100),
        "90",
        "percent of a network's usable addresses in use that is reported as nearly full",
        "PERCENT",
    ),
)


# What the engine says when it could not give a task (or its node's load-balancer endpoint)
# an address; on 20.10 the tasks then churn: new -> preparing -> rejected, again and again.
EXHAUSTED_SAYS = (
    "ip addresses may be exhausted",
    "missing network attachments",
    "could not find an available ip",
    "no available ip",
)
RECENT = 300.0  # seconds a rejection saying so counts as evidence


def says_exhausted(err: str) -> bool:
    low = err.lower()
    return any(phrase in low for phrase in EXHAUSTED_SAYS)


def usable(subnets: tuple[str, ...]) -> int | None:
    """Usable IPv4 addresses of these subnets together (None: no IPv4 subnet to judge)."""
    total, any_v4 = 0, False
    for text in subnets:
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            continue
        if net.version == 4:
            any_v4 = True
            total += max(0, net.num_addresses - 3)
    return total if any_v4 else None


def larger_prefix(needed: int) -> int:
    """The longest IPv4 prefix whose subnet holds twice `needed` addresses, /24 at most."""
    return min(24, 32 - math.ceil(math.log2(2 * max(needed, 1) + 3)))


@dataclass
class Use:
    """Who holds addresses on one network."""

    task_ips: set[str] = field(default_factory=set)
    vips: set[str] = field(default_factory=set)
    lb_nodes: set[str] = field(default_factory=set)  # nodes with a task on it: one LB endpoint each
    per_service: dict[str, int] = field(default_factory=dict)  # service id -> addresses it holds

    @property
    def used(self) -> int:
        return len(self.task_ips) + len(self.vips) + len(self.lb_nodes)


def members(snap: Snapshot) -> dict[str, list[Service]]:
    """Network id or name -> the services on it: those that ask for it, or have a VIP on it.
    (TaskTemplate.Networks[].Target is an id once the engine took the spec; the API also
    accepts a name.)"""
    out: dict[str, list[Service]] = {}
    for svc in snap.services:
        for target in sorted({*svc.networks, *(n for n, _ in svc.vips)}):
            out.setdefault(target, []).append(svc)
    return out


def usage(snap: Snapshot) -> dict[str, Use]:
    """Addresses in use per network id, from the tasks' attachments and the services' VIPs."""
    out: dict[str, Use] = {}
    for t in snap.tasks:
        if t.state not in LIVE_STATES:
            continue  # the allocator has freed (or will free) an ended task's addresses
        for net, _, ip in t.addresses:
            use = out.setdefault(net, Use())
            if ip not in use.task_ips:
                use.task_ips.add(ip)
                use.per_service[t.service_id] = use.per_service.get(t.service_id, 0) + 1
            if t.node_id:
                use.lb_nodes.add(t.node_id)
    for svc in snap.services:
        for net, ip in svc.vips:
            use = out.setdefault(net, Use())
            if ip not in use.vips:
                use.vips.add(ip)
                use.per_service[svc.id] = use.per_service.get(svc.id, 0) + 1
    return out


def _most(items: Iterable[str], shown: int = 10) -> str:
    listed = list(items)
    more = f", and {len(listed) - shown} more" if len(listed) > shown else ""
    return ", ".join(listed[:shown]) + more


def detect(ctx: Context) -> Iterator[Finding]:
    snap = ctx.snapshot
    uses, on = usage(snap), members(snap)
    for net in snap.networks:
        if net.driver != "overlay" or net.ingress:
            continue
        size = usable(net.subnets)
        if not size:
            continue
        use = uses.get(net.id, Use())
        by_id = {s.id: s for s in (*on.get(net.id, ()), *on.get(net.name, ()))}
        services = list(by_id.values())
        said = [
            t
            for s in services
            for t in snap.tasks_of(s.id)
            if t.state == "rejected" and says_exhausted(t.err) and ctx.now - t.timestamp <= RECENT
        ]
        if not said and use.used * 100 < ctx.settings.full * size:
            continue  # room enough (and `full` is at most 100: not full either)
        waiting = [
            t
            for s in services
            for t in snap.tasks_of(s.id)
            if t.desired_state == "running" and t.state in WAITING
        ]
        stuck = [t for t in waiting if ctx.age(t) >= ctx.settings.after]
        full = use.used >= size
        exhausted = bool(said) or bool(stuck and full)
        if waiting and not exhausted:
            continue  # tasks still being given addresses (or stuck for another reason)
        services.sort(key=lambda s: (-use.per_service.get(s.id, 0), s.name))
        held = _most(f"{s.name} {use.per_service.get(s.id, 0)}" for s in services)
        numbers = (
            f"{use.used} of {size} usable addresses in use ({len(use.task_ips)} by tasks, "
            f"{len(use.vips)} VIPs, {len(use.lb_nodes)} load-balancer endpoints, one per node "
            f"with a task on it)"
        )
        subnets = ", ".join(net.subnets)
        details = {
            "network": net.name,
            "network_id": net.id,
            "subnets": subnets,
            "usable": str(size),
            "used": str(use.used),
            "used_percent": str(100 * use.used // size),
            "tasks": str(len(use.task_ips)),
            "vips": str(len(use.vips)),
            "lb_endpoints": str(len(use.lb_nodes)),
            "services": held,
        }
        prefix = larger_prefix(use.used + len(waiting))
        move = _most(
            f"`docker service update --network-add NEW --network-rm {net.name} {s.name}`"
            for s in services
        )
        advice = (
            f"create a larger overlay (`docker network create --driver overlay --subnet "
            f"A.B.C.0/{prefix} NEW`) and move the services on {net.name} to it: {move}"
            if services
            else f"recreate {net.name} with a larger subnet (/{prefix} or shorter)"
        ) + f"; addresses per service: {held or 'none'}"
        if exhausted:
            blocked = [*stuck, *said]
            names = sorted({s.name for s in services if any(t.service_id == s.id for t in blocked)})
            if stuck:
                oldest = max(ctx.age(t) for t in stuck)
                by_state = "/".join(sorted({t.state for t in stuck}))
                what = (
                    f"{len(stuck)} task(s) of {', '.join(names)} stuck in {by_state} for up "
                    f"to {oldest:.0f}s"
                )
            else:
                what = f"{len(said)} task(s) of {', '.join(names)} rejected: {said[-1].err!r}"
            yield Finding.about(
                f"{net.id}:exhausted",
                summary=f"overlay {net.name} ({subnets}) has no free address: {numbers}; {what}",
                cause="exhausted",
                severity=Severity.CRITICAL,
                task_ids=tuple(sorted(t.id for t in stuck)),
                node_ids=tuple(sorted({t.node_id for t in blocked if t.node_id})),
                advice=advice,
                actionable=False,
                details=details | {"stuck": str(len(stuck)), "rejected": str(len(said))},
            )
        else:
            yield Finding.about(
                f"{net.id}:nearly-full",
                summary=f"overlay {net.name} ({subnets}) is nearly full: {numbers}",
                cause="nearly-full",
                severity=Severity.WARNING,
                advice=advice,
                actionable=False,
                details=details,
            )
