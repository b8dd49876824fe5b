"""What a runbook is, and what it is given.

A runbook is a module in runbooks/ with a docstring (what the operator reads: symptom, cause,
what the medic does, risks), a NAME, and two pure functions:

    detect(ctx: Context) -> Iterable[Finding]       what is wrong, in plain words
    plan(finding: Finding, ctx: Context) -> Action | None   what would fix it, as data

Neither may do I/O: everything they need is in the Context.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from swarm_medic.core.model import Action, Finding, Service, Snapshot, Task
from swarm_medic.core.reach import Reachability
from swarm_medic.core.settings import Settings

EMPTY_SERVICES: Mapping[str, Service] = MappingProxyType({})
Detect = Callable[["Context"], Iterable[Finding]]
Plan = Callable[[Finding, "Context"], Action | None]


class TaskClock:
    """Remembers when the medic first saw each task in its current state.

    Status.Timestamp is written by whichever node moved the task; if that node's clock runs
    ahead of ours the age would be negative and the task never "stuck", so the age is taken
    from our own first sighting whenever the engine's stamp is in the future.
    """

    def __init__(self) -> None:
        self._seen: dict[str, tuple[str, float]] = {}

    def observe(self, tasks: Iterable[Task], now: float) -> None:
        fresh: dict[str, tuple[str, float]] = {}
        for t in tasks:
            prev = self._seen.get(t.id)
            fresh[t.id] = prev if prev and prev[0] == t.state else (t.state, now)
        self._seen = fresh

    def age(self, task: Task, now: float) -> float:
        if task.timestamp and task.timestamp <= now:
            return now - task.timestamp
        seen = self._seen.get(task.id)
        return now - seen[1] if seen and seen[0] == task.state else 0.0


class Sightings:
    """When the medic first saw a condition that has held on every scan since.

    A runbook asks `ctx.since(key)` only while its condition holds; the first ask starts the
    clock, and a key not asked during a whole scan is forgotten, so the clock restarts if the
    condition comes back. Engine timestamps say when something happened on its node; this says
    how long *we* have been watching it, which is what a grace period must count from (and it
    errs on the safe side after a restart: the clock starts again).
    """

    def __init__(self) -> None:
        self._first: dict[str, float] = {}
        self._asked: set[str] = set()

    def since(self, key: str, now: float) -> float:
        self._asked.add(key)
        return self._first.setdefault(key, now)

    def end_scan(self) -> None:
        self._first = {k: v for k, v in self._first.items() if k in self._asked}
        self._asked = set()


class ServiceMemory:
    """Services the medic saw in the last `keep` seconds, removed ones included: what a
    runbook needs to know of a service swarm has already forgotten (its stop grace period)."""

    def __init__(self, keep: float = 3600.0) -> None:
        self._keep = keep
        self._seen: dict[str, tuple[Service, float]] = {}

    def observe(self, services: Iterable[Service], now: float) -> Mapping[str, Service]:
        for s in services:
            self._seen[s.id] = (s, now)
        self._seen = {k: v for k, v in self._seen.items() if now - v[1] <= self._keep}
        return {k: v[0] for k, v in self._seen.items()}


@dataclass(frozen=True)
class Context:
    snapshot: Snapshot
    now: float
    settings: Settings
    clock: TaskClock
    reach: Reachability | None = None  # the overlay probe matrix, on the brain only
    sightings: Sightings = field(default_factory=Sightings)
    # every service seen in the last hour, by id, removed ones included
    services_seen: Mapping[str, Service] = field(default_factory=lambda: EMPTY_SERVICES)

    def age(self, task: Task) -> float:
        return self.clock.age(task, self.now)

    def since(self, key: str) -> float:
        """When the medic first saw the condition `key` names (now, the first time asked)."""
        return self.sightings.since(key, self.now)


@dataclass(frozen=True)
class Runbook:
    name: str
    doc: str
    detect: Detect
    plan: Plan
    source: str = ""

    @property
    def summary(self) -> str:
        return self.doc.strip().splitlines()[0] if self.doc.strip() else self.name


@dataclass(frozen=True)
class RunbookFailure:
    """A runbook that raised while detecting or planning: the others still run."""

    runbook: str
    error: str


@dataclass(frozen=True)
class LoadError:
    """A runbook file that could not be loaded, and why."""

    path: str
    message: str
