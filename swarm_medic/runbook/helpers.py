"""Helpers for runbooks: functions over what a runbook is given, pure like it.

Not the contract (that is `swarm_medic.runbook`): a runbook needs none of these, but they
answer questions several runbooks ask, the same way the pipeline answers them.

    running(task)                      running and meant to run
    running_ips(snapshot, sid, net)    the sorted IPs of a service's running tasks on a network
    probe_port(service)                the port the probes use (label swarm-medic.probe.port,
                                       else the first target port), or None
    published_targets(snapshot)        every published TCP port of a settled service, with
                                       the node address it answers at (Published)
    placement_misses(snapshot, svc)    every node that cannot take one more task, and why (Miss)
    fitting_nodes(snapshot, svc)       the nodes that can
    summarise(misses)                  the misses in words, one clause per reason
    stale_versions(stored, services, keep)
                                       config/secret families with versions no spec names
                                       beyond the newest `keep` (VersionFamily), as
                                       `swarm-medic rollout gc` sees them; DEFAULT_KEEP is
                                       its `--keep` default
    ghosts(snapshot)                   Down node entries of machines that joined the swarm
                                       again under a new id: entry id -> Ghost (entry, twin)
"""

from dataclasses import dataclass

from swarm_medic.core.constraints import Miss, fitting_nodes, placement_misses, summarise
from swarm_medic.core.model import Node, NodeState, Snapshot
from swarm_medic.core.reach import (
    Published,
    probe_port,
    published_targets,
    running,
    running_ips,
)
from swarm_medic.core.versions import DEFAULT_KEEP, VersionFamily, stale_versions

__all__ = [
    "DEFAULT_KEEP",
    "Ghost",
    "Miss",
    "Published",
    "VersionFamily",
    "fitting_nodes",
    "ghosts",
    "placement_misses",
    "probe_port",
    "published_targets",
    "running",
    "running_ips",
    "stale_versions",
    "summarise",
]


# 0.0.0.0 is what some managers report as their address: no machine is told apart by it
_NO_ADDRESS = frozenset({"", "0.0.0.0"})  # noqa: S104 - compared, never bound


@dataclass(frozen=True, slots=True)
class Ghost:
    """A Down node entry left behind by a machine that joined again (moby#24106): `entry` is
    the old one, `twin` the Ready node that carries its hostname now."""

    entry: Node
    twin: Node


def ghosts(snapshot: Snapshot) -> dict[str, Ghost]:
    """The Down entries whose hostname a Ready node carries, that node having joined after
    the entry went down (its CreatedAt after the entry's UpdatedAt), or at the same address
    after the entry itself had joined. Entry id -> Ghost, with the newest such twin.

    A hostname alone is not enough: two machines cloned from one image can share it, and one
    of them rebooting is Down for a while next to the other; but that other joined long before
    the reboot, and from another address. A leader change marks every node unknown and then
    down again, which moves a Down entry's UpdatedAt past its twin's joining: then only the
    address tells, and an entry that has neither is not called a ghost (it stays a Down node)."""
    ready: dict[str, list[Node]] = {}
    for n in snapshot.nodes:
        if n.state == NodeState.READY and n.hostname:
            ready.setdefault(n.hostname, []).append(n)
    out: dict[str, Ghost] = {}
    for entry in snapshot.nodes:
        if entry.state != NodeState.DOWN or not entry.hostname:
            continue
        twins = [n for n in ready.get(entry.hostname, ()) if _joined_again(entry, n)]
        if twins:
            out[entry.id] = Ghost(entry, max(twins, key=lambda n: (n.created_at, n.id)))
    return out


def _joined_again(entry: Node, twin: Node) -> bool:
    if twin.id == entry.id or not twin.created_at:
        return False
    after_it_went_down = bool(entry.updated_at) and twin.created_at > entry.updated_at
    same_machine = (
        entry.addr not in _NO_ADDRESS
        and twin.addr == entry.addr
        and twin.created_at > entry.created_at
    )
    return after_it_went_down or same_machine
