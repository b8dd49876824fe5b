"""Placement constraints and capacity, evaluated the way swarmkit's scheduler does. Pure.

Used to explain a Pending task in words ("node.labels.zone==eu: no node has label zone") and
to tell whether a node could take it now (the one case where a nudge helps).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from swarm_medic.core.model import Node, Service, Snapshot

_EXPR = re.compile(r"^\s*([\w.\-/]+)\s*(==|!=)\s*(.*?)\s*$")


@dataclass(frozen=True)
class Miss:
    node: Node
    why: str


_KNOWN = frozenset(
    {"node.id", "node.hostname", "node.role", "node.platform.os", "node.platform.arch"}
)


def _attribute(node: Node, key: str) -> str | None:
    low = key.lower()
    simple = {
        "node.id": node.id,
        "node.hostname": node.hostname,
        "node.role": node.role,
        "node.platform.os": node.platform_os,
        "node.platform.arch": node.platform_arch,
    }
    if low in simple:
        return simple[low]
    if key.startswith("node.labels."):
        return node.labels.get(key[len("node.labels.") :])
    if key.startswith("engine.labels."):
        return node.engine_labels.get(key[len("engine.labels.") :])
    return None


def _ip_matches(addr: str, want: str) -> bool:
    try:
        ip = ipaddress.ip_address(addr)
        return ip in ipaddress.ip_network(want, strict=False)
    except ValueError:
        return False


def violation(constraint: str, node: Node) -> str | None:
    """None if `node` satisfies `constraint`, else why not, in words."""
    m = _EXPR.match(constraint)
    if not m:
        return f"cannot read constraint {constraint!r}"
    key, op, want = m.groups()
    if key.lower() == "node.ip":  # an address or a CIDR, as swarmkit allows
        eq = _ip_matches(node.addr, want)
        have: str | None = node.addr
    else:
        known = key.lower() in _KNOWN or key.startswith(("node.labels.", "engine.labels."))
        if not known:
            return f"unknown constraint key {key!r} (swarm rejects it too)"
        have = _attribute(node, key)
        # swarmkit (constraint.Match) compares every value case-insensitively, labels included.
        eq = have is not None and have.lower() == want.lower()
    if op == "==" and not eq:
        return f"{key} is {have!r}, needs {want!r}" if have is not None else f"{key} is not set"
    if op == "!=" and eq:
        return f"{key} is {have!r}, must not be"
    return None


def free_resources(snapshot: Snapshot, node: Node) -> tuple[int, int]:
    cpu, mem = snapshot.reserved_by_node.get(node.id, (0, 0))
    return node.resources.nano_cpus - cpu, node.resources.memory_bytes - mem


def _ruled_out(snapshot: Snapshot, constraints: tuple[str, ...]) -> list[tuple[Node, str | None]]:
    """Each node with the first reason its state, availability or `constraints` rule it out
    (None: they do not). Depends on the snapshot and the constraints only, so it is computed
    once per snapshot for each set of constraints, however many services share it."""
    key = ("constraints.ruled_out", constraints)
    found: list[tuple[Node, str | None]] | None = snapshot.derived.get(key)
    if found is None:
        found = []
        for node in snapshot.nodes:
            why = None
            if node.state != "ready":
                why = f"node is {node.state}"
            elif node.availability != "active":
                why = f"node availability is {node.availability}"
            if why is None:
                why = next((w for c in constraints if (w := violation(c, node))), None)
            found.append((node, why))
        snapshot.derived[key] = found
    return found


def placement_misses(snapshot: Snapshot, service: Service) -> list[Miss]:
    """For every node that cannot take one more task of `service`, the first reason why."""
    misses: list[Miss] = []
    for node, ruled_out in _ruled_out(snapshot, service.constraints):
        why = ruled_out
        if why is None and (service.reservations.nano_cpus or service.reservations.memory_bytes):
            cpu, mem = free_resources(snapshot, node)
            if cpu < service.reservations.nano_cpus:
                why = f"{cpu / 1e9:.2f} CPUs free, needs {service.reservations.nano_cpus / 1e9:.2f}"
            elif mem < service.reservations.memory_bytes:
                why = (
                    f"{mem >> 20} MiB memory free, needs "
                    f"{service.reservations.memory_bytes >> 20} MiB"
                )
        if why is None and service.max_replicas_per_node:
            here = sum(
                1
                for t in snapshot.tasks_of(service.id)
                if t.node_id == node.id and t.desired_state == "running"
            )
            if here >= service.max_replicas_per_node:
                why = f"already runs {here} (max {service.max_replicas_per_node} per node)"
        if why is not None:
            misses.append(Miss(node, why))
    return misses


def fitting_nodes(
    snapshot: Snapshot, service: Service, misses: list[Miss] | None = None
) -> list[Node]:
    if misses is None:
        misses = placement_misses(snapshot, service)
    missed = {m.node.id for m in misses}
    return [n for n in snapshot.nodes if n.id not in missed]


def summarise(misses: list[Miss], most: int = 3) -> str:
    """'node.labels.zone is not set on 97 nodes (n1, n2, n3, ...)': one clause per reason."""
    by_why: dict[str, list[str]] = {}
    for m in misses:
        by_why.setdefault(m.why, []).append(m.node.hostname or m.node.id)
    parts = []
    for why, names in sorted(by_why.items(), key=lambda kv: -len(kv[1])):
        if len(names) == 1:
            parts.append(f"{names[0]}: {why}")
            continue
        shown = ", ".join(names[:most]) + (", ..." if len(names) > most else "")
        parts.append(f"{why} on {len(names)} nodes ({shown})")
    return "; ".join(parts)
