"""The world of the crash-loop and stuck-update tests: two workers, worker-1 (n1) and worker-2
(n2), seen at NOW or at a later scan."""

from __future__ import annotations

from swarm_medic.core.model import Service, Task
from swarm_medic.core.runbook import Context, TaskClock, context
from swarm_medic.core.settings import Settings
from tests import builders as b
from tests.builders import NOW


def ctx(services: list[Service], tasks: list[Task], now: float = NOW) -> Context:
    snap = b.snapshot(
        nodes=[b.node("n1", hostname="worker-1"), b.node("n2", hostname="worker-2")],
        services=services,
        tasks=tasks,
        taken_at=now,
    )
    return context(snap, now, Settings(), TaskClock())
