"""The storm guard: too much failing at once, so the medic stands still. Pure, time injected.

When many services, or many nodes, have warning or critical findings within the same window,
the cause is not in any one service (a registry down, a network partition, a dead zone) and
acting on each makes it worse. `Guard.observe` is called once per scan with the scan's
findings; it remembers when each service and node was last seen failing and says whether the
swarm is in a storm:

- a service counts when a warning/critical finding about it was seen within `window`;
- a node counts when a finding about that one node was seen within `window`, or findings on
  tasks of at least two services running on it (one broken service with a replica on every
  node is that service's fault, not the nodes'); a finding that names several nodes and no
  service is about the swarm (manager-quorum's "no margin" names every manager), and counts
  for none of them, or one such finding would make a storm of any small swarm;
- a storm starts when either count is at least `minimum` and more than `share` of all
  services (nodes);
- it ends only once both shares stayed below the threshold for `HOLD_SCANS` scans and `hold`
  seconds (hysteresis: a storm that flickers does not let actions through between scans).

Findings keep being reported during a storm; the policy's `storm` gate skips every action.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from swarm_medic.core.model import Finding, Severity, Snapshot, TargetKind

HOLD_SCANS = 2  # scans in a row below the threshold before a storm ends (with `hold` seconds)
SHOWN = 10  # names listed in a storm's description


@dataclass(frozen=True)
class Storm:
    """A storm as it stands: what is failing, where, which runbooks fire."""

    since: float
    services: tuple[str, ...]  # names of the services failing
    nodes: tuple[str, ...]  # hostnames (ids when unknown) of the nodes failing
    runbooks: tuple[str, ...]
    total_services: int
    total_nodes: int
    id: str = ""  # the storm incident's id (set by the caller)

    def describe(self) -> str:
        """One line: what is failing and where."""
        parts = []
        if self.services:
            parts.append(
                f"{len(self.services)} of {self.total_services} services failing "
                f"({_names(self.services)})"
            )
        if self.nodes:
            parts.append(
                f"{len(self.nodes)} of {self.total_nodes} nodes failing ({_names(self.nodes)})"
            )
        return "; ".join(parts) + f"; runbooks firing: {', '.join(self.runbooks) or '-'}"


def _names(names: tuple[str, ...]) -> str:
    more = f", +{len(names) - SHOWN} more" if len(names) > SHOWN else ""
    return ", ".join(names[:SHOWN]) + more


@dataclass(frozen=True)
class Change:
    """What one scan changed: the storm that started, the one that ended (None: neither)."""

    started: Storm | None = None
    ended: Storm | None = None


def _node_scoped(f: Finding) -> bool:
    """About one node itself (not a task of a service on it, not the swarm's managers)."""
    if f.service_id or len(_nodes_of(f)) != 1:
        return False
    return (f.target is not None and f.target.kind is TargetKind.NODE) or bool(f.node_ids)


def _nodes_of(f: Finding) -> tuple[str, ...]:
    return f.node_ids or ((f.target.id,) if f.target is not None else ())


def _over(count: int, total: int, share: float, minimum: int) -> bool:
    return total > 0 and count >= minimum and count > share * total


@dataclass
class Guard:
    """The storm guard's memory from scan to scan: the last time each service and node was
    seen failing, and the storm in force (None: none)."""

    share: float
    minimum: int
    window: float
    hold: float
    storm: Storm | None = None
    services_seen: dict[str, tuple[float, str, str]] = field(default_factory=dict)
    nodes_seen: dict[str, tuple[float, str, str]] = field(default_factory=dict)
    _below: tuple[float, int] | None = None  # since when, and for how many scans, below

    def observe(
        self,
        findings: Iterable[Finding],
        *,
        services: Mapping[str, str],
        nodes: Mapping[str, str],
        task_nodes: Mapping[str, str],
        now: float,
    ) -> Change:
        """One scan: `services` / `nodes` are all of them (id -> name / hostname), `task_nodes`
        task id -> the node it runs on."""
        self._note(findings, services, nodes, task_nodes, now)
        since = now - self.window
        for seen in (self.services_seen, self.nodes_seen):
            for k in [k for k, (t, _, _) in seen.items() if t < since]:
                del seen[k]
        svc = {k: v for k, v in self.services_seen.items() if k in services}
        nod = {k: v for k, v in self.nodes_seen.items() if k in nodes}
        over = _over(len(svc), len(services), self.share, self.minimum) or _over(
            len(nod), len(nodes), self.share, self.minimum
        )
        if over:
            self._below = None
            current = Storm(
                since=self.storm.since if self.storm else now,
                services=tuple(sorted(n for _, n, _ in svc.values())),
                nodes=tuple(sorted(n for _, n, _ in nod.values())),
                runbooks=tuple(sorted({rb for _, _, rb in (*svc.values(), *nod.values())})),
                total_services=len(services),
                total_nodes=len(nodes),
                id=self.storm.id if self.storm else "",
            )
            started = self.storm is None
            self.storm = current
            return Change(started=current if started else None)
        if self.storm is None:
            return Change()
        first, scans = self._below or (now, 0)
        self._below = (first, scans + 1)
        if scans + 1 >= HOLD_SCANS and now - first >= self.hold:
            ended, self.storm, self._below = self.storm, None, None
            return Change(ended=ended)
        return Change()

    def observe_snapshot(self, findings: Iterable[Finding], snap: Snapshot, now: float) -> Change:
        """`observe` with the services, nodes and tasks of one scan's snapshot."""
        return self.observe(
            findings,
            services={s.id: s.name for s in snap.services},
            nodes={n.id: n.hostname or n.id for n in snap.nodes},
            task_nodes={t.id: t.node_id for t in snap.tasks if t.node_id},
            now=now,
        )

    def _note(
        self,
        findings: Iterable[Finding],
        services: Mapping[str, str],
        nodes: Mapping[str, str],
        task_nodes: Mapping[str, str],
        now: float,
    ) -> None:
        """Remembers the services and nodes this scan's warning/critical findings are about."""
        by_node: dict[str, set[str]] = {}
        for f in findings:
            if f.severity is Severity.INFO:
                continue
            if f.service_id in services:
                self.services_seen[f.service_id] = (now, services[f.service_id], f.runbook)
            if _node_scoped(f):
                for n in _nodes_of(f):
                    if n in nodes:
                        self.nodes_seen[n] = (now, nodes[n], f.runbook)
                continue
            for n in {task_nodes.get(t, "") for t in f.task_ids} & set(nodes):
                on_it = by_node.setdefault(n, set())
                on_it.add(f.service_id)
                if len(on_it) >= 2:
                    self.nodes_seen[n] = (now, nodes[n], f.runbook)

    def why(self) -> str:
        """For the policy's `storm` gate: what is failing ("" : no storm)."""
        return self.storm.describe() if self.storm is not None else ""
