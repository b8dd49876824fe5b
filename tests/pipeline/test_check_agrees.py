"""`swarm-medic check` and the daemon decide alike: the same snapshot and ledger, the same
decisions (verdict, reason, explanation), whatever the ledger holds or whoever leads.

The daemon runs in dry-run (check never acts) and its decisions are taken from the journal;
check runs on the same FakeEngine, first, so that nothing the daemon writes is seen by it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import pytest
from prometheus_client import CollectorRegistry

from swarm_medic.commands.check import diagnose
from swarm_medic.core.errors import EngineUnavailable
from swarm_medic.core.incidents import Incident
from swarm_medic.core.ledger import (
    PAUSE_LABEL,
    PREFIX,
    History,
    Pause,
    Verifying,
    encode,
    encode_pause,
)
from swarm_medic.core.model import Decision, LedgerDoc, Reason, Verdict
from swarm_medic.core.parsers import Share
from swarm_medic.core.settings import SafetySettings, Settings
from swarm_medic.pipeline import registry as registry_mod
from swarm_medic.swarm.fake import FakeEngine
from swarm_medic.telemetry.journal import Journal
from swarm_medic.telemetry.metrics import Metrics
from tests.builders import NOW as T0
from tests.pipeline.harness import LEDGER, Harness, stuck_service, swarm
from tests.pipeline.support import Logs

Seen = tuple[str, Verdict, Reason, str]  # (service, verdict, reason, explanation)


class Recording(Journal):
    """The daemon's journal, keeping every decision it is told about."""

    def __init__(self) -> None:
        super().__init__(Metrics(CollectorRegistry()), Logs().logger)
        self.seen: list[Decision] = []

    def decision(
        self, inc: Incident, d: Decision, *, reminder: bool = False, notify: bool = False
    ) -> None:
        self.seen.append(d)
        super().decision(inc, d, reminder=reminder, notify=notify)


def seen(decisions: list[Decision]) -> list[Seen]:
    return sorted((d.finding.service_name, d.verdict, d.reason, d.explanation) for d in decisions)


def history(fake: FakeEngine, **entries: History) -> None:
    """The ledger holding these histories, by service name."""
    ids = {s.name: s.id for s in fake.services()}
    labels = {PREFIX + ids[name]: encode(h) for name, h in entries.items()}
    fake.write_ledger(LEDGER, None, labels)


def sick(*, leader: bool = True) -> FakeEngine:
    """web, api, db, cache: opted in, each with a task stuck in starting; batch not opted in."""
    fake = swarm(leader=leader)
    if not leader:
        # three managers: two would be a manager-quorum finding (no margin, an even count)
        fake.add_node("manager-2", role="manager", leader=True)
        fake.add_node("manager-3", role="manager")
    for name in ("web", "api", "db", "cache"):
        stuck_service(fake, name)
    stuck_service(fake, "batch", labels={})
    return fake


def pending(fake: FakeEngine, name: str, *, at_version: bool, deadline: float) -> History:
    """A fix claimed by an earlier instance on `name` and not judged yet."""
    svc = next(s for s in fake.services() if s.name == name)
    version = svc.version if at_version else svc.version - 1
    fix = Verifying("inc-old", "stuck-task", "force_update", version, T0 - 30, deadline)
    return History(actions=((T0 - 30, "stuck-task"),), pending=fix)


def with_histories(fake: FakeEngine) -> None:
    history(
        fake,
        web=History(open_until=T0 + 600, open_reason="1 fix(es) in a row did not hold"),
        api=History(actions=((T0 - 100, "stuck-task"),)),  # in the 300 s cooldown
        db=History(actions=((T0 - 3000, "stuck-task"), (T0 - 2000, "stuck-task"))),
    )


def with_pending_fixes(fake: FakeEngine) -> None:
    history(
        fake,
        web=pending(fake, "web", at_version=False, deadline=T0 + 60),  # reached it: verifying
        api=pending(fake, "api", at_version=True, deadline=T0 + 60),  # never did: released
        db=pending(fake, "db", at_version=False, deadline=T0 - 1),  # deadline passed
    )


def with_a_corrupt_entry(fake: FakeEngine) -> None:
    api = next(s.id for s in fake.services() if s.name == "api")
    fake.write_ledger(LEDGER, None, {PREFIX + api: "{garbage"})


def with_an_unreadable_ledger(fake: FakeEngine) -> None:
    def down(name: str) -> LedgerDoc | None:
        raise EngineUnavailable("config inspect: the engine is down")

    fake.read_ledger = down  # type: ignore[method-assign]


def paused(fake: FakeEngine) -> None:
    pause = Pause("maintenance", T0 - 60, "ops@host", T0 + 3600)
    fake.write_ledger(LEDGER, None, {PAUSE_LABEL: encode_pause(pause)})


def sick_cache_report_only() -> FakeEngine:
    """sick(), but cache is labelled swarm-medic.action=report: its findings, never actions."""
    fake = swarm()
    for name in ("web", "api", "db"):
        stuck_service(fake, name)
    stuck_service(
        fake, "cache", labels={"swarm-medic.enable": "true", "swarm-medic.action": "report"}
    )
    stuck_service(fake, "batch", labels={})
    return fake


# every service of `sick` is failing: a storm, unless the guard is off (share 1) as in the
# worlds that show the other gates
DRY = SafetySettings(dry_run=True, storm_share=Share(1.0))


@dataclass(frozen=True)
class World:
    make: Callable[[], FakeEngine]
    prepare: Callable[[FakeEngine], None] = lambda fake: None
    settings: Settings = field(default_factory=lambda: Settings(safety=DRY))


WORLDS = {
    "a storm": World(sick, settings=Settings(safety=SafetySettings(dry_run=True))),
    "no history": World(sick),
    "circuit open, cooldown, budget": World(
        sick, with_histories, Settings(safety=replace(DRY, budget_per_hour=2))
    ),
    "fixes left pending by an earlier leader": World(sick, with_pending_fixes),
    "a corrupt ledger entry": World(sick, with_a_corrupt_entry),
    "the ledger cannot be read": World(sick, with_an_unreadable_ledger),
    "not the leader": World(lambda: sick(leader=False), with_histories),
    "scope all": World(sick, settings=Settings(safety=replace(DRY, scope="all"))),
    "paused": World(sick, paused),
    "paused, not the leader": World(lambda: sick(leader=False), paused),
    "a report-only service": World(sick_cache_report_only),
    "max concurrent actions": World(
        sick,
        with_pending_fixes,
        Settings(safety=replace(DRY, max_concurrent_actions=2)),
    ),
    # nothing listens on port 9 of the loopback: Prometheus unreachable holds
    "alerts hold, Prometheus unreachable": World(
        sick,
        settings=Settings(safety=replace(DRY, hold_while_alerts=("http://127.0.0.1:9", "Down"))),
    ),
}


@pytest.mark.parametrize("world", list(WORLDS.values()), ids=list(WORLDS))
def test_check_decides_what_the_daemon_decides(world: World) -> None:
    fake = world.make()
    world.prepare(fake)
    registry = registry_mod.load([registry_mod.builtin_dir()])

    checked = diagnose(fake, world.settings, registry, T0)
    journal = Recording()
    Harness(fake, world.settings, runbooks=registry, journal=journal).scan(T0)

    assert seen(checked.decisions) == seen(journal.seen)
    assert len(checked.decisions) == 5


def test_the_worlds_cover_the_gates_check_can_see() -> None:
    # node_unreachable needs a probe round (check asks no node); busy two findings on a service
    reasons: set[Reason] = set()
    for world in WORLDS.values():
        fake = world.make()
        world.prepare(fake)
        registry = registry_mod.load([registry_mod.builtin_dir()])
        reasons |= {d.reason for d in diagnose(fake, world.settings, registry, T0).decisions}
    assert {r for r in Reason if r.verdict is Verdict.SKIP} - reasons == {
        Reason.NO_ACTION,
        Reason.SELF,
        Reason.OPTED_OUT,
        Reason.BUSY,
        Reason.NODE_UNREACHABLE,
    }


def test_check_on_a_follower_says_not_leader_and_needs_no_history() -> None:
    fake = sick(leader=False)
    with_an_unreadable_ledger(fake)  # read for the pause switch only: not an error here

    report = diagnose(fake, Settings(), registry_mod.load([registry_mod.builtin_dir()]), T0)

    assert report.errors == []
    assert report.pause_unknown.startswith("cannot read the ledger")
    opted_in = [d for d in report.decisions if d.finding.service_name != "batch"]
    assert {d.reason for d in opted_in} == {Reason.NOT_LEADER}


def test_check_with_an_unreadable_ledger_acts_on_nothing_and_says_why() -> None:
    fake = sick()
    with_an_unreadable_ledger(fake)

    settings = Settings(safety=replace(DRY, dry_run=False))
    report = diagnose(fake, settings, registry_mod.load([registry_mod.builtin_dir()]), T0)

    assert report.errors == ["cannot read the ledger: config inspect: the engine is down"]
    opted_in = [d for d in report.decisions if d.finding.service_name != "batch"]
    assert {d.reason for d in opted_in} == {Reason.LEDGER_UNREADABLE}


def test_check_leaves_the_pending_fixes_as_they_are() -> None:
    fake = sick()
    with_pending_fixes(fake)
    before = fake.read_ledger(LEDGER)

    diagnose(fake, Settings(), registry_mod.load([registry_mod.builtin_dir()]), T0)

    assert fake.read_ledger(LEDGER) == before
