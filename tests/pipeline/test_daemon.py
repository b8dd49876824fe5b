"""Medic.scan() end to end on the FakeEngine: observe -> match -> decide -> act -> verify -> record.

Every test drives a real Medic (built-in runbooks, real policy, executor, verifier and journal)
against an in-memory swarm, with an injected clock, a fresh Prometheus registry and the log
events captured (tests/pipeline/harness.py), and asserts on what an operator would see: log
lines, metrics, engine writes and the durable ledger.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from swarm_medic.core.errors import Conflict, EngineUnavailable
from swarm_medic.core.incidents import REMIND_EVERY
from swarm_medic.core.ledger import PREFIX, History
from swarm_medic.core.model import Action, Finding, LedgerDoc, Severity
from swarm_medic.core.runbook import Context, Runbook
from swarm_medic.core.settings import SafetySettings, Settings
from swarm_medic.pipeline import registry as registry_mod
from swarm_medic.pipeline.observe import CALLS_PER_SCAN
from swarm_medic.pipeline.scan import VERIFY_POLL
from swarm_medic.telemetry.journal import Journal
from swarm_medic.telemetry.metrics import Metrics
from tests.builders import NOW as T0
from tests.pipeline.harness import (
    ENABLE,
    LEDGER,
    ME,
    STUCK_FOR,
    Harness,
    builtin,
    fix,
    history,
    ledger,
    stuck_service,
    swarm,
)
from tests.pipeline.support import sample

# --- the whole loop ----------------------------------------------------------------------


def test_stuck_task_is_found_acted_on_verified_and_recorded() -> None:
    fake = swarm()
    sid, tid = stuck_service(fake)
    h = Harness(fake)

    calls = h.scan(T0)

    (finding,) = h.logs.named("finding")
    assert finding["incident"] == "inc-1"
    assert finding["runbook"] == "stuck-task"
    assert finding["service"] == "web"
    assert finding["service_id"] == sid
    assert finding["tasks"] == [tid]
    assert finding["nodes"] == [ME]
    assert finding["cause"] == "hang"
    assert finding["log_level"] == "warning"
    (decision,) = h.logs.named("decision: act")
    assert decision["incident"] == "inc-1"
    assert decision["action"] == "force_update"
    (done,) = h.logs.named("action: force_update done")
    assert done["incident"] == "inc-1"
    assert done["service_version"] == 10
    # exactly one write, carrying the version the decision was made on
    assert fake.writes == [("force_update", sid, 10)]
    assert fake.raw_service(sid)["Spec"]["TaskTemplate"]["ForceUpdate"] == 1
    # the claim is in the durable ledger, as a label of the ledger config
    doc = fake.read_ledger(LEDGER)
    assert doc is not None
    assert PREFIX + sid in doc.labels
    assert history(fake, sid).actions == ((T0, "stuck-task"),)
    # a verification is pending and the next scan was pulled forward
    assert list(h.medic.state.pending) == [sid]
    assert h.medic.state.pending[sid].incident_id == "inc-1"
    assert h.wakes == [VERIFY_POLL]
    # 4 snapshot calls + the first leader scan's ledger read (pending fixes to take over) +
    # the ledger read of decide + (ledger read, ledger write, update) of act + (ledger read,
    # ledger write) of the incident's record: found, and acted on
    assert calls == CALLS_PER_SCAN + 1 + 1 + 3 + 2
    assert h.actions("done") == 1
    assert h.decisions("act", "ok") == 1
    assert h.metric("swarm_medic_incidents_total", runbook="stuck-task") == 1
    assert h.metric("swarm_medic_incidents_open", runbook="stuck-task") == 1
    assert h.metric("swarm_medic_scans_total", result="ok") == 1
    assert h.metric("swarm_medic_leader") == 1
    assert h.medic.state.role == "leader"

    # still stuck one second later: the fix is being verified, nothing else is done
    h.scan(T0 + 1)
    (verifying,) = h.logs.named("decision: skip (verifying)")
    assert verifying["incident"] == "inc-1"
    assert h.logs.named("verified: healed") == []
    assert h.decisions("skip", "verifying") == 1
    assert len(fake.writes) == 1
    assert h.metric("swarm_medic_incident_oldest_open_seconds", runbook="stuck-task") == 1

    # swarm replaced the task; the fix must hold for verify_hold (10 s) over two scans
    fix(fake, sid, tid)
    h.scan(T0 + 5)
    # the finding cleared while the fix is verified: not "resolved", healed is the verifier's word
    (cleared,) = h.logs.named("cleared; verifying the fix holds")
    assert cleared["incident"] == "inc-1"
    assert h.logs.named("resolved") == []
    assert h.logs.named("verified: healed") == []
    assert sid in h.medic.state.pending
    assert h.metric("swarm_medic_incidents_open", runbook="stuck-task") == 0
    assert h.metric("swarm_medic_incident_oldest_open_seconds", runbook="stuck-task") == 0

    h.scan(T0 + 5 + h.settings.safety.verify_hold + 1)
    (healed,) = h.logs.named("verified: healed")
    assert healed["incident"] == "inc-1"
    assert healed["service_id"] == sid
    assert healed["action"] == "force_update"
    assert healed["elapsed_seconds"] == 16.0
    assert h.medic.state.pending == {}
    assert h.metric("swarm_medic_remediations_total", runbook="stuck-task", result="healed") == 1
    assert (
        h.metric("swarm_medic_remediations_total", runbook="stuck-task", result="not_healed") == 0
    )
    assert h.metric("swarm_medic_time_to_heal_seconds_count", runbook="stuck-task") == 1
    assert h.metric("swarm_medic_time_to_heal_seconds_sum", runbook="stuck-task") == 16.0
    assert h.actions("done") == 1
    assert len(fake.writes) == 1
    assert history(fake, sid) == History(actions=((T0, "stuck-task"),))
    assert h.logs.named("verified: NOT healed") == []


def test_a_finding_is_logged_once_per_incident_and_resolved_when_it_goes_away() -> None:
    fake = swarm()
    sid, tid = stuck_service(fake, labels={})  # not opted in: observed, never acted on
    h = Harness(fake)

    for i in range(6):
        h.scan(T0 + 15 * i)

    assert [e["incident"] for e in h.logs.named("finding")] == ["inc-1"]
    assert [e["incident"] for e in h.logs.named("decision: skip (not_opted_in)")] == ["inc-1"]
    # counted and logged when the incident's decision changes, not once per scan
    assert h.decisions("skip", "not_opted_in") == 1
    assert h.metric("swarm_medic_incidents_total", runbook="stuck-task") == 1
    assert h.metric("swarm_medic_scans_total", result="ok") == 6
    assert h.logs.named("resolved") == []

    # an unchanged decision is logged again as a reminder, no more often than REMIND_EVERY
    h.scan(T0 + REMIND_EVERY)
    assert len(h.logs.named("decision: skip (not_opted_in)")) == 2
    assert h.decisions("skip", "not_opted_in") == 1  # a reminder is not a new decision

    fix(fake, sid, tid)
    h.scan(T0 + REMIND_EVERY + 15)
    h.scan(T0 + REMIND_EVERY + 30)
    (resolved,) = h.logs.named("resolved")
    assert resolved["incident"] == "inc-1"
    assert resolved["lasted_seconds"] == REMIND_EVERY + 15
    assert h.metric("swarm_medic_incidents_open", runbook="stuck-task") == 0

    # the same fault coming back is a new incident
    fake.add_task(sid, state="starting", node_id=ME, since=T0)
    h.scan(T0 + STUCK_FOR + REMIND_EVERY)
    assert [e["incident"] for e in h.logs.named("finding")] == ["inc-1", "inc-2"]
    assert h.metric("swarm_medic_incidents_total", runbook="stuck-task") == 2
    assert h.decisions("skip", "not_opted_in") == 2
    assert fake.writes == []


# --- gates that say no ---------------------------------------------------------------------


def test_dry_run_says_what_it_would_do_and_changes_nothing(prom: CollectorRegistry) -> None:
    fake = swarm()
    sid, _ = stuck_service(fake)
    # the default journal logger (structlog.get_logger) is what capture_logs() sees
    h = Harness(fake, Settings(safety=SafetySettings(dry_run=True)), journal=Journal(Metrics(prom)))

    with capture_logs() as captured:
        h.scan(T0)
        h.scan(T0 + 15)

    would = [e for e in captured if e["event"].startswith("decision: would force_update")]
    assert would[0]["event"] == "decision: would force_update (dry-run: nothing changed)"
    assert len(would) == 1
    assert would[0]["incident"] == "inc-1"
    assert would[0]["service_id"] == sid
    assert would[0]["log_level"] == "warning"
    assert [e["event"] for e in captured if e["event"].startswith("action:")] == []
    assert fake.writes == []
    assert fake.read_ledger(LEDGER) is None  # not even a ledger claim
    assert fake.raw_service(sid)["Version"]["Index"] == 10
    assert h.medic.state.pending == {}
    assert sample(prom, "swarm_medic_decisions_total", runbook="stuck-task",
                  verdict="would_act", reason="dry_run") == 1  # fmt: skip
    assert sample(prom, "swarm_medic_actions_total", runbook="stuck-task",
                  action="force_update", result="done") == 0  # fmt: skip


@pytest.mark.parametrize(
    ("labels", "reason"),
    [
        ({}, "not_opted_in"),
        ({"swarm-medic.enable": "false"}, "opted_out"),
        ({"swarm-medic.enable": "true", "swarm-medic.self": "true"}, "self"),
    ],
)
def test_services_out_of_scope_are_reported_not_touched(
    labels: dict[str, str], reason: str
) -> None:
    fake = swarm()
    sid, _ = stuck_service(fake, labels=labels)
    h = Harness(fake)

    h.scan(T0)
    h.scan(T0 + 15)

    (finding,) = h.logs.named("finding")
    (skip,) = h.logs.named(f"decision: skip ({reason})")
    assert skip["incident"] == finding["incident"] == "inc-1"
    assert skip["would"] == "force_update"
    assert h.decisions("skip", reason) == 1
    assert h.decisions("act", "ok") == 0
    assert fake.writes == []
    assert dict(ledger(fake).services) == {}  # nothing claimed (the incident is recorded)
    assert fake.raw_service(sid)["Spec"]["TaskTemplate"]["ForceUpdate"] == 0


def test_only_the_leader_acts_and_a_follower_reads_only_the_pause_switch() -> None:
    fake = swarm(leader=False)
    fake.add_node("manager-2", role="manager", leader=True)
    fake.add_node("manager-3", role="manager")  # two managers: a manager-quorum incident too
    stuck_service(fake)
    h = Harness(fake)

    calls = h.scan(T0)

    (skip,) = h.logs.named("decision: skip (not_leader)")
    assert skip["incident"] == "inc-1"
    assert h.decisions("skip", "not_leader") == 1
    assert fake.writes == []
    # one ledger read, for the pause switch only: nothing can be acted on from here
    assert calls == CALLS_PER_SCAN + 1
    assert h.medic.state.role == "manager"
    assert h.metric("swarm_medic_leader") == 0


def test_cooldown_holds_back_a_second_action_on_the_same_service() -> None:
    fake = swarm()
    sid, _ = stuck_service(fake)
    s = Settings(safety=SafetySettings(cooldown=300.0, verify_timeout=10.0, breaker_failures=100))
    h = Harness(fake, s)

    h.scan(T0)
    h.scan(T0 + 10)  # the fix did not hold (the fake never replaces the task)
    h.scan(T0 + 200)

    (not_healed,) = h.logs.named("verified: NOT healed")
    assert not_healed["incident"] == "inc-1"
    (cooling,) = h.logs.named("decision: skip (cooldown)")
    assert cooling["incident"] == "inc-1"
    assert cooling["explanation"] == "acted 10s ago; cooldown 300s"
    assert cooling["gate"] == "the same runbook acted on this service less than --cooldown ago"
    assert h.decisions("skip", "cooldown") == 1
    assert fake.writes == [("force_update", sid, 10)]

    h.scan(T0 + 300)  # cooldown over: acts again, on the service's new version
    assert fake.writes == [("force_update", sid, 10), ("force_update", sid, 11)]
    assert h.actions("done") == 2
    assert history(fake, sid).actions == ((T0, "stuck-task"), (T0 + 300, "stuck-task"))


def test_budget_per_hour_opens_the_circuit_after_that_many_actions() -> None:
    fake = swarm()
    sid, _ = stuck_service(fake)
    s = Settings(
        safety=SafetySettings(
            budget_per_hour=2, cooldown=0.0, verify_timeout=10.0, breaker_failures=100
        )
    )
    h = Harness(fake, s)

    for t in range(0, 200, 5):
        h.scan(T0 + t)

    assert fake.writes == [("force_update", sid, 10), ("force_update", sid, 11)]
    assert h.actions("done") == 2
    (opened,) = h.logs.starting("circuit breaker OPENED")
    assert opened["service_id"] == sid
    assert opened["why"] == "action budget spent: 2 in the last hour"
    assert h.metric("swarm_medic_circuit_breaker_trips_total", runbook="stuck-task") == 1
    assert h.decisions("skip", "circuit_open") == 1  # counted when the decision changes
    assert h.decisions("act", "ok") == 2
    assert h.decisions("skip", "budget_spent") == 0  # the breaker says it first
    (refused,) = h.logs.named("decision: circuit breaker OPEN, not acting")
    assert refused["incident"] == "inc-1"
    assert history(fake, sid).open_until == T0 + 10 + s.safety.breaker_reset


def test_verify_timeout_is_not_healed_and_opens_the_circuit() -> None:
    fake = swarm()
    sid, _ = stuck_service(fake)
    s = Settings(safety=SafetySettings(breaker_failures=1))
    h = Harness(fake, s)

    h.scan(T0)
    h.scan(T0 + 60)
    assert h.logs.named("verified: NOT healed") == []
    h.scan(T0 + s.safety.verify_timeout)

    (not_healed,) = h.logs.named("verified: NOT healed")
    assert not_healed["incident"] == "inc-1"
    assert not_healed["elapsed_seconds"] == s.safety.verify_timeout
    assert not_healed["detail"] == "update state updating"
    assert not_healed["log_level"] == "error"
    assert (
        h.metric("swarm_medic_remediations_total", runbook="stuck-task", result="not_healed") == 1
    )
    (opened,) = h.logs.starting("circuit breaker OPENED")
    assert opened["service_id"] == sid
    assert opened["runbook"] == "stuck-task"
    assert opened["why"] == "1 fix(es) in a row did not hold"
    assert h.metric("swarm_medic_circuit_breaker_trips_total", runbook="stuck-task") == 1
    hist = history(fake, sid)
    assert hist.failures_in_row == 1
    assert hist.open_until == T0 + s.safety.verify_timeout + s.safety.breaker_reset
    assert hist.open_until > h.now[0]

    # the circuit holds: later scans skip with circuit_open and never write
    for t in (200.0, 300.0, 400.0):  # within REMIND_EVERY of the first refusal
        h.scan(T0 + t)
    assert fake.writes == [("force_update", sid, 10)]
    (refused,) = h.logs.named("decision: circuit breaker OPEN, not acting")
    assert refused["incident"] == "inc-1"
    assert "resets in" in refused["explanation"]
    assert h.decisions("skip", "circuit_open") == 1
    assert h.metric("swarm_medic_circuit_breakers_open") == 1
    assert h.medic.state.circuits_open == 1

    # once the breaker resets (and the old action left the budget window) it acts again
    h.scan(hist.open_until + 1)
    assert fake.writes == [("force_update", sid, 10), ("force_update", sid, 11)]


def test_the_open_circuits_gauge_falls_when_the_breaker_resets() -> None:
    fake = swarm()
    sid, tid = stuck_service(fake)
    s = Settings(safety=SafetySettings(breaker_failures=1))
    h = Harness(fake, s)
    h.scan(T0)
    h.scan(T0 + s.safety.verify_timeout)
    assert h.metric("swarm_medic_circuit_breakers_open") == 1

    fix(fake, sid, tid)  # the fault goes away by itself; nothing is actionable any more
    reset = history(fake, sid).open_until
    h.scan(reset + 15)
    h.scan(reset + 30)

    assert h.metric("swarm_medic_circuit_breakers_open") == 0
    assert h.medic.state.circuits_open == 0


def test_each_open_incident_has_a_series_naming_its_service_and_the_medics_stance() -> None:
    """What SwarmMedicIncidentUnfixed pages on: acting while it fixes, gave_up once the
    breaker opens, and no series at all once the fault is gone."""
    fake = swarm()
    sid, tid = stuck_service(fake)
    s = Settings(safety=SafetySettings(breaker_failures=1))
    h = Harness(fake, s)
    name = "swarm_medic_incident_open_since_timestamp_seconds"

    def series() -> dict[tuple[str, str, str], float]:
        return {
            (x.labels["runbook"], x.labels["service"], x.labels["state"]): x.value
            for m in h.prom.collect()
            for x in m.samples
            if x.name == name
        }

    h.scan(T0)
    assert series() == {("stuck-task", "web", "acting"): T0}
    h.scan(T0 + s.safety.verify_timeout)  # not healed: the breaker opens
    h.scan(T0 + s.safety.verify_timeout + 15)
    assert series() == {("stuck-task", "web", "gave_up"): T0}

    fix(fake, sid, tid)
    h.scan(T0 + s.safety.verify_timeout + 30)
    assert series() == {}


# --- the world changing under us -----------------------------------------------------------


def test_a_deploy_between_decide_and_act_makes_the_action_a_clean_conflict(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = swarm()
    sid, _ = stuck_service(fake)
    h = Harness(fake)
    read_ledger = fake.read_ledger
    deployed: list[bool] = []

    def read_and_deploy(name: str) -> LedgerDoc | None:
        if not deployed:  # someone deploys right after the snapshot was taken
            deployed.append(True)
            fake._services[sid]["Version"]["Index"] += 1
        return read_ledger(name)

    monkeypatch.setattr(fake, "read_ledger", read_and_deploy)
    h.scan(T0)

    (conflict,) = h.logs.named("action: force_update conflict")
    assert conflict["incident"] == "inc-1"
    assert conflict["service_version"] == 10
    assert "out of sequence" in conflict["error"]
    assert conflict["log_level"] == "error"
    assert h.actions("conflict") == 1
    assert h.actions("done") == 0
    # nothing else changed: no service write, the deploy's version kept, nothing to verify
    assert fake.writes == []
    raw = fake.raw_service(sid)
    assert raw["Version"]["Index"] == 11
    assert raw["Spec"]["TaskTemplate"]["ForceUpdate"] == 0
    assert "UpdateStatus" not in raw
    assert h.medic.state.pending == {}
    assert h.wakes == []
    assert h.logs.starting("verified") == []
    # the ledger keeps the claim (act.py: the ledger write is the claim), as the cooldown sees
    assert history(fake, sid).actions == ((T0, "stuck-task"),)


def test_force_update_raising_conflict_is_recorded_as_conflict(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = swarm()
    sid, _ = stuck_service(fake)
    h = Harness(fake)

    def conflict(service_id: str, version: int) -> None:
        raise Conflict(f"force_update service {service_id}: update out of sequence")

    monkeypatch.setattr(fake, "force_update", conflict)
    h.scan(T0)

    assert h.actions("conflict") == 1
    assert len(h.logs.named("action: force_update conflict")) == 1
    assert h.medic.state.pending == {}
    assert fake.raw_service(sid)["Version"]["Index"] == 10


def test_two_instances_deciding_at_the_same_instant_act_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = swarm()
    sid, _ = stuck_service(fake)
    first, second = Harness(fake), Harness(fake)
    write_ledger = fake.write_ledger
    raced: list[bool] = []

    def write_after_the_other(name: str, doc: LedgerDoc | None, labels: Mapping[str, str]) -> None:
        # `first` has read the ledger and is about to claim; `second` scans (and claims) now.
        if not raced:
            raced.append(True)
            second.scan(T0)
        write_ledger(name, doc, labels)

    monkeypatch.setattr(fake, "write_ledger", write_after_the_other)
    first.scan(T0)

    assert fake.writes == [("force_update", sid, 10)]
    assert second.actions("done") == 1
    assert len(second.logs.named("action: force_update done")) == 1
    (lost,) = first.logs.named("action: force_update conflict")
    assert lost["error"].startswith("another instance is acting (ledger moved)")
    assert first.actions("conflict") == 1
    assert first.actions("done") == 0
    assert first.medic.state.pending == {}
    assert list(second.medic.state.pending) == [sid]
    assert history(fake, sid).actions == ((T0, "stuck-task"),)


def test_the_ledger_survives_a_restart_circuit_open() -> None:
    fake = swarm()
    sid, _ = stuck_service(fake)
    old = Harness(fake, Settings(safety=SafetySettings(breaker_failures=1)))
    old.scan(T0)
    old.scan(T0 + 120)
    assert len(old.logs.starting("circuit breaker OPENED")) == 1

    new = Harness(
        fake, Settings(safety=SafetySettings(breaker_failures=1))
    )  # a restart: fresh memory, same swarm
    new.scan(T0 + 600)
    new.scan(T0 + 700)

    (refused,) = new.logs.named("decision: circuit breaker OPEN, not acting")
    assert refused["service_id"] == sid
    assert new.decisions("skip", "circuit_open") == 1
    assert new.metric("swarm_medic_circuit_breakers_open") == 1
    assert fake.writes == [("force_update", sid, 10)]


def test_a_restart_takes_over_the_pending_verification_from_the_ledger() -> None:
    fake = swarm()
    sid, _ = stuck_service(fake)
    old = Harness(fake)
    old.scan(T0)
    assert len(fake.writes) == 1

    new = Harness(fake)  # restarted 30 s later: its memory is gone, the ledger is not
    new.scan(T0 + 30)

    (resumed,) = new.logs.starting("verifying a fix claimed by an earlier instance")
    assert resumed["incident"] == "inc-1" and resumed["action"] == "force_update"
    assert list(new.medic.state.pending) == [sid]
    assert fake.writes == [("force_update", sid, 10)]


# --- paused updates ------------------------------------------------------------------------


def test_a_paused_update_is_rolled_back_and_verified() -> None:
    fake = swarm()
    sid = fake.add_service(
        "api",
        labels=ENABLE,
        previous_spec=True,
    )
    fake.pause_update(sid)
    fake.add_task(sid, state="running", node_id=ME)
    h = Harness(fake)

    h.scan(T0)

    (finding,) = h.logs.named("finding")
    assert finding["runbook"] == "paused-update"
    assert finding["cause"] == "new-spec-failed"
    (act,) = h.logs.named("decision: act")
    assert act["action"] == "rollback"
    assert fake.writes == [("rollback", sid, 10)]
    assert fake.raw_service(sid)["UpdateStatus"]["State"] == "rollback_started"
    assert h.actions("done", runbook="paused-update", kind="rollback") == 1

    # tasks are running but the rollback has not completed: not healed yet, however long
    h.scan(T0 + 20)
    h.scan(T0 + 40)
    assert len(h.logs.named("cleared; verifying the fix holds")) == 1
    assert h.logs.starting("verified") == []

    fake.set_update_status(sid, "rollback_completed")
    h.scan(T0 + 41)
    h.scan(T0 + 52)

    (healed,) = h.logs.named("verified: healed")
    assert healed["incident"] == "inc-1"
    assert healed["action"] == "rollback"
    assert h.metric("swarm_medic_remediations_total", runbook="paused-update", result="healed") == 1
    assert fake.writes == [("rollback", sid, 10)]


def test_an_update_paused_because_a_node_stopped_its_task_is_resumed_not_rolled_back() -> None:
    fake = swarm()
    sid = fake.add_service("api", labels=ENABLE, previous_spec=True)
    fake.add_task(sid, state="running", node_id=ME)
    fake.pause_update(sid, task_state="shutdown")  # e.g. its node was drained mid-update
    h = Harness(fake)

    h.scan(T0)

    (finding,) = h.logs.named("finding")
    assert finding["cause"] == "stopped-by-node"
    assert "was stopped, not failed" in finding["summary"]
    assert fake.writes == [("resume_update", sid, 10)]  # the operator's deploy carries on
    fake.set_update_status(sid, "completed")
    h.scan(T0 + 1)
    h.scan(T0 + 12)
    (healed,) = h.logs.named("verified: healed")
    assert healed["action"] == "resume_update"


def test_two_findings_on_one_service_act_once() -> None:
    fake = swarm()
    sid = fake.add_service(
        "api",
        labels=ENABLE,
        previous_spec=True,
    )
    fake.pause_update(sid)
    fake.add_task(sid, state="starting", node_id=ME, since=T0 - STUCK_FOR)
    h = Harness(fake)

    h.scan(T0)

    assert sorted(e["runbook"] for e in h.logs.named("finding")) == [
        "paused-update",
        "stuck-task",
    ]
    assert len(fake.writes) == 1
    assert h.decisions("skip", "busy") + h.decisions("skip", "busy", "paused-update") == 1


# --- failures are recorded, never fatal ------------------------------------------------------


def test_engine_down_is_a_failed_scan_and_the_next_scan_runs() -> None:
    fake = swarm()
    stuck_service(fake)
    h = Harness(fake)
    fake.unavailable(1)

    h.scan(T0)  # must not raise

    (failed,) = h.logs.named("scan failed")
    assert failed["error_type"] == "EngineUnavailable"
    assert failed["error"] == "fake engine is down"
    assert failed["log_level"] == "error"
    assert h.metric("swarm_medic_scans_total", result="error") == 1
    assert h.metric("swarm_medic_scans_total", result="ok") == 0
    assert h.metric("swarm_medic_engine_api_calls_total") == 1
    assert h.medic.state.role == "unreachable"
    assert h.medic.state.last_error == "fake engine is down"
    assert h.logs.named("finding") == []

    h.scan(T0 + 15)
    assert h.metric("swarm_medic_scans_total", result="ok") == 1
    assert h.metric("swarm_medic_scans_total", result="error") == 1
    assert h.medic.state.role == "leader"
    assert h.medic.state.last_error == ""
    assert h.medic.state.last_ok == T0 + 15
    assert len(h.logs.named("finding")) == 1


def test_an_unreadable_ledger_means_no_action_this_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = swarm()
    sid, _ = stuck_service(fake)
    h = Harness(fake)
    read_ledger = fake.read_ledger
    fails = [EngineUnavailable("ledger read timed out")]

    def flaky(name: str) -> LedgerDoc | None:
        if fails:
            raise fails.pop()
        return read_ledger(name)

    monkeypatch.setattr(fake, "read_ledger", flaky)
    h.scan(T0)

    (err,) = h.logs.starting("cannot read the ledger to take over pending fixes")
    assert err["error"] == "ledger read timed out"
    assert len(h.logs.named("decision: skip (ledger_unreadable)")) == 1
    assert fake.writes == []
    assert h.metric("swarm_medic_scans_total", result="ok") == 1

    h.scan(T0 + 15)
    assert fake.writes == [("force_update", sid, 10)]


def test_a_corrupt_ledger_entry_blocks_that_service_only() -> None:
    fake = swarm()
    bad, _ = stuck_service(fake, "bad")
    good, _ = stuck_service(fake, "good")
    fake.write_ledger(LEDGER, None, {PREFIX + bad: "{not json", "owner": "ops"})
    h = Harness(fake)

    h.scan(T0)

    (skip,) = h.logs.named("decision: skip (ledger_unreadable)")
    assert skip["service_id"] == bad
    assert fake.writes == [("force_update", good, 10)]
    doc = fake.read_ledger(LEDGER)
    assert doc is not None
    assert doc.labels[PREFIX + bad] == "{not json"  # kept as it was, for a person to look at
    assert doc.labels["owner"] == "ops"


def test_a_failed_ledger_claim_is_a_failed_action_and_nothing_is_updated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = swarm()
    sid, _ = stuck_service(fake)
    h = Harness(fake)

    def down(name: str, doc: LedgerDoc | None, labels: Mapping[str, str]) -> None:
        raise EngineUnavailable("fake engine is down")

    monkeypatch.setattr(fake, "write_ledger", down)
    h.scan(T0)

    (failed,) = h.logs.named("action: force_update failed")
    assert failed["error"] == "could not claim the action in the ledger: fake engine is down"
    assert h.actions("failed") == 1
    assert fake.writes == []
    assert fake.raw_service(sid)["Spec"]["TaskTemplate"]["ForceUpdate"] == 0
    assert h.medic.state.pending == {}


def _explodes(ctx: Context) -> Iterator[Finding]:
    raise RuntimeError("kaput")


def _never(finding: Finding, ctx: Context) -> Action | None:
    return None


def test_a_runbook_whose_detect_raises_is_isolated() -> None:
    fake = swarm()
    sid, _ = stuck_service(fake)
    runbooks = builtin()
    runbooks.register(Runbook("boom", "Always raises.", _explodes, _never, "test"))
    h = Harness(fake, runbooks=runbooks)

    h.scan(T0)

    (raised,) = h.logs.starting("runbook raised")
    assert raised["runbook"] == "boom"
    assert raised["error"] == "RuntimeError: kaput"
    assert h.metric("swarm_medic_runbook_errors_total", runbook="boom") == 1
    assert h.metric("swarm_medic_runbook_errors_total", runbook="stuck-task") == 0
    # the other runbooks still found, decided and acted
    assert [e["runbook"] for e in h.logs.named("finding")] == ["stuck-task"]
    assert fake.writes == [("force_update", sid, 10)]
    assert h.metric("swarm_medic_scans_total", result="ok") == 1


def _finds_every_service(ctx: Context) -> Iterator[Finding]:
    for svc in ctx.snapshot.services:
        yield Finding(
            runbook="plan-boom",
            key=f"plan-boom:{svc.id}",
            summary=f"{svc.name} looks odd",
            cause="odd",
            severity=Severity.INFO,
            service_id=svc.id,
            service_name=svc.name,
            actionable=True,
        )


def _plan_explodes(finding: Finding, ctx: Context) -> Action | None:
    raise ValueError("cannot plan")


def test_a_runbook_whose_plan_raises_is_isolated() -> None:
    fake = swarm()
    sid, _ = stuck_service(fake)
    other = fake.add_service("other", labels=ENABLE)
    fake.add_task(other, state="running", node_id=ME)
    runbooks = builtin()
    runbooks.register(
        Runbook("plan-boom", "Plans raise.", _finds_every_service, _plan_explodes, "test")
    )
    h = Harness(fake, runbooks=runbooks)

    h.scan(T0)

    raised = h.logs.starting("runbook raised")
    assert [e["runbook"] for e in raised] == ["plan-boom", "plan-boom"]
    assert {e["error"] for e in raised} == {"plan: ValueError: cannot plan"}
    assert h.metric("swarm_medic_runbook_errors_total", runbook="plan-boom") == 2
    # its findings are still reported (with no action); stuck-task still acts
    assert sorted(e["runbook"] for e in h.logs.named("finding")) == [
        "plan-boom",
        "plan-boom",
        "stuck-task",
    ]
    assert h.decisions("skip", "no_action", runbook="plan-boom") == 2
    assert len(h.logs.named("decision: report only")) == 2
    assert fake.writes == [("force_update", sid, 10)]


def test_a_worker_engine_is_not_a_crash() -> None:
    fake = swarm()
    stuck_service(fake)
    fake.manager = False
    h = Harness(fake)

    assert h.scan(T0) == 1  # info only
    h.scan(T0 + 15)

    assert h.medic.state.role == "worker"
    assert h.medic.state.last_ok == T0 + 15
    assert len(h.logs.named("not a manager: nothing to observe from here")) == 1
    assert h.logs.named("scan failed") == []
    assert h.logs.named("finding") == []
    assert h.metric("swarm_medic_scans_total", result="error") == 0

    fake.manager = True  # promoted
    h.scan(T0 + 30)
    assert h.medic.state.role == "leader"
    assert len(h.logs.named("finding")) == 1


def test_a_malformed_engine_object_is_skipped_and_the_scan_goes_on() -> None:
    fake = swarm()
    _, tid = stuck_service(fake)
    stuck_service(fake, name="other")
    fake._tasks[tid]["ID"] = ""  # a half-created task, as the Engine may list it
    h = Harness(fake)

    h.scan(T0)

    (skipped,) = h.logs.starting("engine object skipped")
    assert "task object without an ID" in skipped["problem"]
    assert h.metric("swarm_medic_engine_objects_malformed_total") == 1
    assert h.metric("swarm_medic_scans_total", result="ok") == 1
    assert h.metric("swarm_medic_scans_total", result="error") == 0
    assert [f["service"] for f in h.logs.named("finding")] == ["other"]


# --- constant cost -------------------------------------------------------------------------


@pytest.mark.parametrize("n", [10, 200])
def test_api_calls_per_scan_do_not_grow_with_the_swarm(n: int) -> None:
    fake = swarm()
    tasks: list[tuple[str, str]] = []
    for i in range(n):
        sid = fake.add_service(f"svc-{i}", labels=ENABLE)
        tasks.append((sid, fake.add_task(sid, state="running", node_id=ME)))
    h = Harness(fake, Settings(safety=SafetySettings(dry_run=True)))

    # healthy: the snapshot and the ledger (its pause switch), and, on becoming the leader,
    # one look for pending fixes
    assert h.scan(T0) == CALLS_PER_SCAN + 2
    assert h.scan(T0 + 15) == CALLS_PER_SCAN + 1

    # every service stuck and actionable: the same one ledger read, whatever n is
    for sid, tid in tasks:
        fake.set_task_state(tid, "shutdown", desired="shutdown")
        fake.add_task(sid, state="starting", node_id=ME, since=T0 - STUCK_FOR)
    assert h.scan(T0 + 30) == CALLS_PER_SCAN + 1
    assert h.scan(T0 + 45) == CALLS_PER_SCAN + 1
    assert len(h.logs.named("finding")) == n
    assert h.metric("swarm_medic_engine_api_calls_total") == 4 * CALLS_PER_SCAN + 5
    assert h.metric("swarm_medic_snapshot_objects", kind="service") == n
    assert h.metric("swarm_medic_snapshot_objects", kind="task") == 2 * n
    assert fake.writes == []


@pytest.mark.parametrize(
    ("label", "problem"),
    [
        ("[" * 100_000, "bytes long"),
        ("[" * 5_000, "nested too deeply"),
        ('{"a":[[NaN,"stuck-task"]]}', "action 0's time is not a plausible time"),
        ('{"u":Infinity}', "the circuit's end ('u') is not a plausible time"),
    ],
)
def test_a_hostile_ledger_entry_is_said_loudly_and_never_acted_on(label: str, problem: str) -> None:
    fake = swarm()
    bad, _ = stuck_service(fake, "bad")
    good, _ = stuck_service(fake, "good")
    fake.write_ledger(LEDGER, None, {PREFIX + bad: label})
    h = Harness(fake)

    h.scan(T0)

    said = "ledger entry unreadable: no action on this service until the label is fixed or removed"
    (err,) = h.logs.named(said)
    assert err["log_level"] == "error"
    assert (err["service"], err["service_id"], err["label"]) == ("bad", bad, PREFIX + bad)
    assert problem in err["problem"]
    (skip,) = h.logs.named("decision: skip (ledger_unreadable)")
    assert skip["service_id"] == bad
    assert fake.writes == [("force_update", good, 10)]
    assert h.metric("swarm_medic_scans_total", result="ok") == 1

    h.scan(T0 + 15)  # said again only after REMIND_EVERY, not every scan
    assert len(h.logs.named(said)) == 1
    h.scan(T0 + REMIND_EVERY + 1)
    assert len(h.logs.named(said)) == 2
    assert fake.writes == [("force_update", good, 10)]


ROGUE = '''
"""Finds something on one service and plans to force-update another."""

from swarm_medic.core.model import Action, ActionKind, Finding

NAME = "rogue"


def detect(ctx):
    front = next(s for s in ctx.snapshot.services if s.name == "front")
    yield Finding(
        runbook=NAME, key="rogue:front", summary="front looks odd", cause="odd",
        service_id=front.id, service_name=front.name, actionable=True,
    )


def plan(finding, ctx):
    victim = next(s for s in ctx.snapshot.services if s.name == "victim")
    return Action(ActionKind.FORCE_UPDATE, victim.id, victim.name, victim.version, "mine now")
'''


def test_a_runbook_file_acting_on_another_service_is_refused(tmp_path: Path) -> None:
    (tmp_path / "rogue.py").write_text(ROGUE)
    runbooks = registry_mod.load(registry_mod.default_dirs(str(tmp_path)))
    assert runbooks.errors == []
    fake = swarm()
    for name in ("front", "victim"):
        sid = fake.add_service(name, labels=ENABLE)
        fake.add_task(sid, state="running", node_id=ME)
    h = Harness(fake, runbooks=runbooks)

    h.scan(T0)

    (raised,) = h.logs.starting("runbook raised")
    assert raised["runbook"] == "rogue"
    assert raised["error"].startswith("plan refused: its action names service")
    assert h.metric("swarm_medic_runbook_errors_total", runbook="rogue") == 1
    assert h.decisions("skip", "no_action", runbook="rogue") == 1
    assert fake.writes == []
    assert dict(ledger(fake).services) == {}  # not even claimed
