"""An instance killed between claiming and acting, or between acting and verifying.

The kill is a failpoint that raises (the process's memory is gone with it); the next instance
is a fresh Medic on the same swarm. Whatever the point, the fix is carried out exactly once and
judged: released and re-judged if it never reached the engine, verified (under the first
instance's incident id) if it did. The same on the real lab: tests/lab/test_kill_midway.py.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry

from swarm_medic.core.ledger import Ledger
from swarm_medic.core.settings import Settings
from swarm_medic.pipeline import registry as registry_mod
from swarm_medic.pipeline.scan import Medic
from swarm_medic.swarm.fake import FakeEngine
from swarm_medic.telemetry.journal import Journal
from swarm_medic.telemetry.metrics import Metrics
from tests.builders import NOW as T0
from tests.pipeline.support import Logs

ME = "mgr1"
S = Settings(verify_hold=5.0, verify_timeout=60.0)


class Killed(Exception):
    pass


def kill_at(point: str) -> Callable[[str], None]:
    def failpoint(reached: str) -> None:
        if reached == point:
            raise Killed(point)

    return failpoint


def world() -> tuple[FakeEngine, str]:
    fake = FakeEngine(node_id=ME, now=T0)
    fake.add_node("manager-1", node_id=ME, leader=True)
    sid = fake.add_service("api", labels={"swarm-medic.enable": "true"}, previous_spec=True)
    fake.add_task(sid, state="running", node_id=ME)
    fake.pause_update(sid)
    return fake, sid


def instance(
    fake: FakeEngine, name: str, now: list[float], failpoint: Callable[[str], None] | None = None
) -> tuple[Medic, Logs]:
    logs = Logs()
    ids = itertools.count(1)
    medic = Medic(
        fake,
        S,
        registry_mod.load([registry_mod.builtin_dir()]),
        Journal(Metrics(CollectorRegistry()), logs.logger),
        clock=lambda: now[0],
        make_id=lambda: f"{name}-inc-{next(ids)}",
        failpoint=failpoint or (lambda point: None),
    )
    return medic, logs


def pending(fake: FakeEngine, sid: str) -> object:
    return Ledger.from_doc(fake.read_ledger(S.ledger_name)).history(sid).pending


def test_killed_after_the_claim_the_next_instance_releases_it_and_acts_once() -> None:
    fake, sid = world()
    now = [T0]
    first, _ = instance(fake, "a", now, kill_at("after-claim"))
    with pytest.raises(Killed):
        first.scan()
    assert fake.writes == []  # claimed, never carried out
    assert pending(fake, sid) is not None

    now[0] += 3
    second, logs = instance(fake, "b", now)
    second.scan()
    (released,) = logs.starting("pending fix released")
    assert released["incident"] == "a-inc-1"
    # released before the decision: no cooldown from a claim that did nothing
    assert fake.writes == [("rollback", sid, 10)]
    history = Ledger.from_doc(fake.read_ledger(S.ledger_name)).history(sid)
    assert len(history.actions) == 1 and history.pending is not None


def test_killed_after_acting_the_next_instance_verifies_under_the_same_incident() -> None:
    fake, sid = world()
    now = [T0]
    first, _ = instance(fake, "a", now, kill_at("after-act"))
    with pytest.raises(Killed):
        first.scan()
    assert fake.writes == [("rollback", sid, 10)]

    now[0] += 3
    second, logs = instance(fake, "b", now)
    second.scan()
    (resumed,) = logs.starting("verifying a fix claimed by an earlier instance")
    assert resumed["incident"] == "a-inc-1"
    fake.set_update_status(sid, "rollback_completed")
    for dt in (4, 10, 16):
        now[0] = T0 + dt
        second.scan()
    (healed,) = logs.named("verified: healed")
    assert healed["incident"] == "a-inc-1"
    assert fake.writes == [("rollback", sid, 10)]  # nothing done twice
    assert logs.starting("action:") == []
    assert pending(fake, sid) is None  # the outcome is written, the pending fix gone


def test_a_pending_fix_past_its_deadline_is_dropped_and_judged_again() -> None:
    fake, sid = world()
    now = [T0]
    first, _ = instance(fake, "a", now, kill_at("after-act"))
    with pytest.raises(Killed):
        first.scan()
    now[0] += S.verify_timeout + 1
    second, logs = instance(fake, "b", now)
    second.scan()
    assert len(logs.starting("pending fix dropped: its verification deadline passed")) == 1
    assert pending(fake, sid) is None
    assert fake.writes == [("rollback", sid, 10)]  # the rollback under way is not repeated
