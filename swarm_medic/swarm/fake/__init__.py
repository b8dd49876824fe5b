"""An in-memory Engine for unit tests and benchmarks: `FakeEngine`, one object with every role.

It stores Engine-API-shaped dictionaries and answers the list calls (nodes, services, tasks)
with their JSON bytes, and the event stream with JSON lines, decoded by the same `wire` path
as the real engine (`info` and the local containers go through `mapping` as dicts), so the
contract tests in tests/contract/ hold for both and the benchmark measures the decoding a real
scan does. It models what the pipeline relies on: Version.Index compare-and-swap on services
and the ledger, rollback to PreviousSpec, the `since` replay of events, and injected engine
failures. It does not model scheduling: tests move tasks between states themselves
(`set_task_state`).

Written as the interface is, by role (`swarm.SwarmReader`, ...), over one `World` that holds
the objects and builds them; a new engine call goes into its role's module.
"""

from __future__ import annotations

from swarm_medic.swarm.fake.ledger import LedgerStoring
from swarm_medic.swarm.fake.local import NodeLocalContainers
from swarm_medic.swarm.fake.objects import ObjectStoring
from swarm_medic.swarm.fake.reading import Reading
from swarm_medic.swarm.fake.writing import NodeWriting, ServiceWriting


class FakeEngine(
    Reading, ServiceWriting, NodeWriting, LedgerStoring, ObjectStoring, NodeLocalContainers
):
    """Every role of `swarm.Engine`, in memory."""


__all__ = ["FakeEngine"]
