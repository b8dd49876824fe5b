"""An overlay path that carries small packets and loses large ones: found by full-size echoes.

Symptom: services on an overlay answer pings, health checks and TCP connects, while real
requests between some nodes hang or time out: whatever fits in a small packet passes (a
handshake, a health check, a short reply), a response of a full packet never arrives
(moby#41775, libnetwork#2661). Swarm sees nothing: every task is Running, every node Ready.

Cause: VXLAN adds 50 bytes to every packet. An overlay whose MTU plus 50 exceeds what the
path between two nodes carries (an underlay MTU below 1500: a cloud network, a VPN, a tunnel)
loses every full-size packet, and with don't-fragment set (TCP sets it) nothing is fragmented
and no error comes back. The same shows when a NIC's checksum offload mangles VXLAN packets
of some sizes, or a firewall on the path drops fragments or large UDP 4789 packets.

How it is measured: each node's instance, in the overlay namespace it already probes its
peers from, sends one task on each peer node two ICMP echoes with don't-fragment: one small,
one of the overlay's full MTU (the MTU of the route to that task, as this node's side of the
overlay has it). A task whose connect passed that round stands for its node; at most 16 paths
per overlay per round, the failing ones first, then the least recently checked. A path whose
small echo passes and large echo is lost `rounds` checks in a row (default 3) is lossy; a lost
small echo is no opinion (the task is gone, or blocks ICMP). Each node says its lossy paths
and the MTU of its own link that holds its swarm address (when the instance runs on the host
and sees it) in its probe answer; the brain keeps each node's last word (older than 10
minutes: not judged).

What it does: reports once per overlay, naming every lossy path (both nodes), the size lost,
each node's underlay MTU when known, and, when every lossy path touches one node, that node.
It says the fix: an overlay MTU of the underlay's less 50 (a new overlay with
`--opt com.docker.network.driver.mtu=N`, since an overlay's MTU cannot change), or the NIC's
checksum offload turned off, or the hop or firewall that drops the large packets. No action:
the medic never changes networks or hosts.

Risks: two ICMP echoes per path checked per round, 64 bytes and the overlay's MTU (about 3 KB
per peer node and overlay at most, 16 paths per overlay per round). A task that answers small
echoes and drops large ones itself (its own firewall) is named as a lossy path; the finding
names the task's address it was measured with, so it can be checked.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from swarm_medic.runbook import PROBES, Context, Count, Finding, Setting, Severity, Target

NAME = "overlay-mtu"
NEEDS = (PROBES,)
SETTINGS = (
    Setting(
        "rounds",
        Count(100),
        "3",
        "checks in a row a path must lose its full-size echo (small ones passing) to be reported",
        "COUNT",
    ),
)
FRESH = 600.0  # a node's word older than this is not judged: it stopped answering
# How long a lossy overlay waits for its other paths still counting to `rounds`: the first
# report names every path that fails, and the node they share, not the first pair confirmed.
SETTLE = 30.0
VXLAN = 50  # bytes VXLAN adds: outer Ethernet 14, IP 20, UDP 8, VXLAN 8


@dataclass(frozen=True, slots=True)
class Lossy:
    src: str
    dst: str
    ip: str
    size: int
    fails: int


def detect(ctx: Context) -> Iterator[Finding]:
    by_net: dict[str, list[Lossy]] = {}
    counting: set[str] = set()  # overlays with a path not yet lossy `rounds` checks in a row
    underlay: dict[str, int | None] = {}
    for nid, said in sorted(ctx.probes.reach.health.items()):
        if ctx.now - said.at > FRESH:
            continue
        underlay[nid] = said.underlay_mtu
        for p in said.lossy:
            if p.fails >= ctx.settings.rounds:
                by_net.setdefault(p.net, []).append(Lossy(nid, p.node, p.ip, p.size, p.fails))
            else:
                counting.add(p.net)
    for net, paths in sorted(by_net.items()):
        first = ctx.since(net)
        told = f"{net}:said"  # once said, said on every scan while it lasts: one incident
        if net in counting and ctx.now - first < SETTLE and not ctx.held(told):
            continue
        ctx.since(told)
        yield _finding(ctx, net, paths, underlay)


def _name(ctx: Context, node_id: str) -> str:
    node = ctx.snapshot.node(node_id)
    return (node.hostname or node.id) if node is not None else node_id


def _finding(
    ctx: Context, net: str, paths: list[Lossy], underlay: dict[str, int | None]
) -> Finding:
    network = next((n for n in ctx.snapshot.networks if n.id == net), None)
    net_name = network.name if network is not None else net[:12]
    named = {tuple(sorted((_name(ctx, p.src), _name(ctx, p.dst)))): (p.src, p.dst) for p in paths}
    pairs = [tuple(sorted(named[k])) for k in sorted(named)]
    nodes = sorted({n for pair in pairs for n in pair})
    common = set(pairs[0]).intersection(*map(set, pairs[1:])) if len(pairs) > 1 else set()
    size = max(p.size for p in paths)
    shown = ", ".join(f"{a} and {b}" for a, b in sorted(named))
    summary = (
        f"overlay {net_name}: packets of {size} bytes are lost between {shown} while small "
        f"ones pass (don't-fragment echoes, {min(p.fails for p in paths)}+ checks in a row); "
        "connects and health checks pass, full-size requests hang"
    )
    known = {n: underlay.get(n) for n in nodes}
    too_big = [n for n, mtu in known.items() if mtu is not None and size + VXLAN > mtu]
    if len(common) == 1:
        summary += f"; every lossy path touches {_name(ctx, next(iter(common)))}"
    cause = "mtu" if too_big else "path"
    if too_big:
        lowest = min(m for m in known.values() if m is not None)
        advice = (
            f"The overlay's MTU ({size}) plus VXLAN's {VXLAN} bytes exceeds the underlay MTU "
            f"({lowest}) of {', '.join(_name(ctx, n) for n in too_big)}. Create the overlay "
            f"with `--opt com.docker.network.driver.mtu={lowest - VXLAN}` (an overlay's MTU "
            "cannot change: create a new one, `docker service update --network-add` it, then "
            "`--network-rm` the old one), or raise the underlay's MTU."
        )
    else:
        advice = (
            f"Every node's underlay takes {size + VXLAN} bytes as far as the medic sees, so "
            "something between them loses large packets: a hop with a smaller MTU (a cloud "
            "network, a VPN or tunnel: then lower the overlay's MTU, `--opt "
            f"com.docker.network.driver.mtu=N` with N = that MTU less {VXLAN}, on a new "
            "overlay), a NIC whose checksum offload breaks VXLAN (`ethtool -K <iface> "
            "tx-checksum-ip-generic off` on the nodes), or a firewall that drops large UDP "
            "4789 packets or fragments. Check with `ping -M do -s "
            f"{size - 28} <task address>` from a container on the overlay."
        )
    details = {
        "network": net_name,
        "overlay_mtu": str(size),
        "underlay_mtu": ", ".join(
            f"{_name(ctx, n)}={mtu if mtu is not None else 'unknown'}" for n, mtu in known.items()
        ),
        "paths": "; ".join(f"{_name(ctx, p.src)} -> {_name(ctx, p.dst)} ({p.ip})" for p in paths),
    }
    # named after the node every lossy path touches, when there is one: that node's link is
    # where to look (and where a dashboard's per-node panel shows it)
    target = Target.for_node(next(iter(common))) if len(common) == 1 else None
    return Finding.about(
        net,
        summary,
        cause,
        severity=Severity.WARNING,
        advice=advice,
        details=details,
        node_ids=tuple(nodes),
        target=target,
    )
