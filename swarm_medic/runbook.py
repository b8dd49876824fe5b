"""What a runbook is, and what it is given.

A runbook is a module in runbooks/ with a docstring (what the operator reads: symptom, cause,
what the medic does, risks), a NAME, and two pure functions:

    detect(ctx: Context) -> Iterable[Finding]       what is wrong, in plain words
    plan(finding: Finding, ctx: Context) -> Action | None   what would fix it, as data

Neither may do I/O: everything they need is in the Context.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from swarm_medic.model import Action, Finding, Snapshot, Task
from swarm_medic.reach import Reachability
from swarm_medic.settings import Settings

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


@dataclass(frozen=True)
class Context:
    snapshot: Snapshot
    now: float
    settings: Settings
    clock: TaskClock
    reach: Reachability | None = None  # the overlay probe matrix, on the brain only

    def age(self, task: Task) -> float:
        return self.clock.age(task, self.now)


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
