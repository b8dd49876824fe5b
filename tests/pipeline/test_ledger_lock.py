"""Two instances, one fault: exactly one action, every time.

During a leader change two instances can each believe they lead and decide on the same ledger
state. The ledger claim must then act as a lock: the executor judges the claim against the
history the decision was made on, so the instance that comes second stands down instead of
claiming on top of the first one's claim (spending the budget twice, and acting twice where
no service version protects the action).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from swarm_medic.core.ledger import Ledger
from swarm_medic.core.model import LedgerDoc
from swarm_medic.core.settings import Settings
from swarm_medic.pipeline import registry as registry_mod
from swarm_medic.pipeline.scan import Medic
from swarm_medic.swarm.fake import FakeEngine
from swarm_medic.telemetry.journal import Journal
from swarm_medic.telemetry.metrics import Metrics
from tests.builders import NOW as T0
from tests.pipeline.support import Logs

ME = "mgr1"
SETTINGS = Settings()


class Interleave:
    """Holds each instance after its decision-time ledger read until both have decided, then
    lets them claim in a chosen order (or race freely)."""

    def __init__(self, order: tuple[str, ...] | None) -> None:
        self.decided = threading.Barrier(2, timeout=10)
        self.order = order
        self.turn = threading.Condition()
        self.done: list[str] = []

    def after_decision(self, who: str) -> None:
        self.decided.wait()
        if self.order is None:
            return
        with self.turn:
            mine = self.order.index(who)
            self.turn.wait_for(lambda: len(self.done) >= mine, timeout=10)

    def finished(self, who: str) -> None:
        with self.turn:
            self.done.append(who)
            self.turn.notify_all()


class Instance:
    """One swarm-medic instance's view of the shared fake engine."""

    def __init__(self, fake: FakeEngine, who: str, gate: Interleave) -> None:
        self._fake, self.who, self.gate = fake, who, gate
        self.ledger_reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fake, name)

    def read_ledger(self, name: str) -> LedgerDoc | None:
        doc = self._fake.read_ledger(name)
        self.ledger_reads += 1
        # read 1: pending fixes to take over on becoming the leader; read 2: the one the
        # policy decides on
        if self.ledger_reads == 2:
            self.gate.after_decision(self.who)
        return doc


def world() -> FakeEngine:
    fake = FakeEngine(node_id=ME, now=T0)
    fake.add_node("manager-1", node_id=ME, leader=True)
    sid = fake.add_service("api", labels={"swarm-medic.enable": "true"}, previous_spec=True)
    fake.pause_update(sid)
    return fake


def medic(engine: Any, logs: Logs) -> Medic:
    ids = itertools.count(1)
    reg = registry_mod.load([registry_mod.builtin_dir()])
    return Medic(
        engine,
        SETTINGS,
        reg,
        Journal(Metrics(CollectorRegistry()), logs.logger),
        clock=lambda: T0,
        make_id=lambda: f"inc-{next(ids)}",
    )


def run_both(order: tuple[str, ...] | None) -> tuple[FakeEngine, list[Logs]]:
    fake, gate = world(), Interleave(order)
    logs = [Logs(), Logs()]
    medics = [medic(Instance(fake, w, gate), lg) for w, lg in zip("AB", logs, strict=True)]
    errors: list[BaseException] = []

    def scan(m: Medic, who: str) -> Callable[[], None]:
        def go() -> None:
            try:
                m.scan()
            except BaseException as exc:  # noqa: BLE001 - surfaced by the assertion below
                errors.append(exc)
            finally:
                gate.finished(who)

        return go

    threads = [threading.Thread(target=scan(m, w)) for m, w in zip(medics, "AB", strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert not errors, errors
    return fake, logs


@pytest.mark.parametrize(
    "order", [("A", "B"), ("B", "A"), *([None] * 20)], ids=["A-first", "B-first", *["race"] * 20]
)
def test_two_instances_deciding_on_the_same_ledger_act_once(order: tuple[str, ...] | None) -> None:
    fake, logs = run_both(order)
    done = [e for lg in logs for e in lg.entries if e["event"] == "action: rollback done"]
    assert len(done) == 1, [lg.events() for lg in logs]
    ledger = Ledger.from_doc(fake.read_ledger(SETTINGS.ledger_name))
    ((_, history),) = ledger.services.items()
    assert len(history.actions) == 1, "the budget was spent twice"
    # the other instance says why it stood down
    stood_down = [
        e
        for lg in logs
        for e in lg.entries
        if e["event"] == "action: rollback conflict" and "another instance" in e["error"]
    ]
    assert len(stood_down) == 1
