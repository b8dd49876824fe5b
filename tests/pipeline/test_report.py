"""What the healing was worth, end to end on the FakeEngine: the daemon finds, acts, verifies
and records each incident in the shared ledger; `swarm-medic report` reads the figures back
from there (never the daemon's memory), and the metrics say the same."""

from __future__ import annotations

import io
import json
import os
from typing import Any

import pytest

from swarm_medic import cli
from swarm_medic.commands import report
from swarm_medic.core.errors import EngineUnavailable
from swarm_medic.core.ledger import Ledger
from swarm_medic.core.records import RECORD_PREFIX, IncidentRecord
from swarm_medic.core.settings import SafetySettings, Settings
from swarm_medic.core.worth import HARM_WINDOW, Worth
from swarm_medic.swarm.fake import FakeEngine
from tests.builders import NOW as T0
from tests.pipeline.harness import LEDGER, ME, Harness, fix, ledger, stuck_service, swarm

HOLD = Settings().safety.verify_hold
WEEK = 7 * 86400.0


def use_engine(monkeypatch: pytest.MonkeyPatch, fake: FakeEngine) -> None:
    monkeypatch.setattr(cli, "_engine_factory", lambda settings: lambda: fake)
    for var in [v for v in os.environ if v.startswith("SWARM_MEDIC_")] + ["DOCKER_HOST"]:
        monkeypatch.delenv(var, raising=False)


def record(fake: FakeEngine, incident: str) -> IncidentRecord:
    return ledger(fake).records().by_id[incident]


def figures(fake: FakeEngine, now: float) -> Worth:
    worth, exists = report.read(fake, LEDGER, now, WEEK)
    assert exists
    return worth


def heal_stuck_task(h: Harness, fake: FakeEngine, at: float) -> tuple[str, str]:
    """A task hung in starting: found at `at`, force-updated, replaced by swarm, verified."""
    sid, tid = stuck_service(fake)
    h.scan(at)
    fix(fake, sid, tid)
    h.scan(at + 5)
    h.scan(at + 5 + HOLD + 1)
    return sid, tid


def test_found_acted_verified_and_read_back_by_report(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = swarm()
    h = Harness(fake)
    sid, _ = heal_stuck_task(h, fake, T0)
    healed_at = T0 + 5 + HOLD + 1

    r = record(fake, "inc-1")
    assert (r.runbook, r.service_id, r.service, r.key) == ("stuck-task", sid, "web", r.key)
    assert r.key.startswith("stuck-task:")
    assert (r.found, r.acted, r.actions, r.closed, r.healed) == (T0, T0, 1, T0 + 5, healed_at)
    assert (r.touched, r.not_held) == (None, 0)

    # the metrics say what the record says, counted by the brain
    for outcome in ("found", "fixed", "healed", "closed_no_human"):
        got = h.metric("swarm_medic_incident_outcomes_total", runbook="stuck-task", outcome=outcome)
        assert got == 1, outcome
    assert (
        h.metric("swarm_medic_incident_outcomes_total", runbook="stuck-task", outcome="undone") == 0
    )
    assert h.metric("swarm_medic_incident_time_to_heal_seconds_sum", runbook="stuck-task") == 16
    assert h.metric("swarm_medic_incident_time_to_heal_seconds_count", runbook="stuck-task") == 1

    # an hour later, from the shared ledger, by the command an operator runs on a manager
    use_engine(monkeypatch, fake)
    later = T0 + 3600
    monkeypatch.setattr("swarm_medic.cli.time.time", lambda: later)
    assert cli.main(["report", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (st,) = doc["runbooks"]
    assert st["runbook"] == "stuck-task"
    assert {k: st[k] for k in ("found", "open", "fixed", "healed", "did_not_hold")} == {
        "found": 1,
        "open": 0,
        "fixed": 1,
        "healed": 1,
        "did_not_hold": 0,
    }
    assert st["time_to_heal_p50_seconds"] == st["time_to_heal_p95_seconds"] == 16.0
    assert (st["no_human_share"], st["harm_rate"]) == (1.0, 0.0)
    assert doc["total"]["found"] == 1 and doc["complete"] and doc["errors"] == []

    assert cli.main(["report"]) == 0
    out = capsys.readouterr().out
    assert "from the ledger swarm-medic-ledger" in out
    (line,) = [ln for ln in out.splitlines() if ln.startswith("stuck-task")]
    cells = ["stuck-task", "1", "0", "1", "1", "0", "16s", "/", "16s", "1/1", "100%", "0/1"]
    assert line.split() == [*cells, "0%"]


def test_a_fault_back_soon_after_its_heal_undoes_it() -> None:
    fake = swarm()
    h = Harness(fake)
    sid, _ = heal_stuck_task(h, fake, T0)
    healed_at = T0 + 5 + HOLD + 1
    # the same service hangs again 5 minutes later, and stays so past the threshold
    back = healed_at + 300
    fake.now = back - 400
    fake.add_task(sid, state="starting", node_id=ME, since=back - 400, slot=2)
    h.scan(back)

    (undone,) = h.logs.named("heal undone: the service had another incident soon after its fix")
    assert (undone["incident"], undone["by_incident"]) == ("inc-1", "inc-2")
    assert undone["after_heal_seconds"] == 300
    assert (
        h.metric("swarm_medic_incident_outcomes_total", runbook="stuck-task", outcome="undone") == 1
    )

    w = figures(fake, back + 60)
    (harm,) = w.harms
    assert (harm.healed.id, harm.by.id) == ("inc-1", "inc-2")
    assert (w.total.found, w.total.healed, w.total.undone, w.total.did_not_hold) == (2, 1, 1, 1)
    assert w.total.harm_rate == 1.0


def test_a_fault_back_after_the_harm_window_is_a_new_incident_not_harm() -> None:
    fake = swarm()
    h = Harness(fake)
    sid, _ = heal_stuck_task(h, fake, T0)
    back = T0 + 5 + HOLD + 1 + HARM_WINDOW + 1
    fake.add_task(sid, state="starting", node_id=ME, since=back - 400, slot=2)
    h.scan(back)
    assert h.logs.named("heal undone: the service had another incident soon after its fix") == []
    w = figures(fake, back)
    assert (w.total.found, w.total.undone) == (2, 0)


def test_a_fix_that_does_not_hold_is_counted_and_so_is_the_persons_fix_after_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = swarm()
    settings = Settings(safety=SafetySettings(verify_timeout=60.0))
    h = Harness(fake, settings)
    sid, _ = stuck_service(fake)
    h.scan(T0)  # found, force-updated
    h.scan(T0 + 61)  # still stuck at the deadline: not healed, breaker opens (1 failure)
    assert (
        h.metric("swarm_medic_remediations_total", runbook="stuck-task", result="not_healed") == 1
    )
    # a person fixes it: `docker service update --image ... web`
    spec = fake.service_spec(sid)
    new = json.loads(json.dumps(spec.spec))
    new["TaskTemplate"]["ContainerSpec"]["Image"] = "medic/busybox:fixed"
    fake.update_service_spec(sid, spec.version, new)
    h.scan(T0 + 70)
    (said,) = h.logs.named("service changed by someone else while the incident is open")
    assert said["incident"] == "inc-1" and said["change"] == "its spec changed: image"
    for task in fake.tasks():
        if task.service_id == sid:
            fake.set_task_state(task.id, "shutdown", desired="shutdown")
    fake.add_task(sid, state="running", node_id=ME)
    h.scan(T0 + 80)

    (resolved,) = h.logs.named("resolved")
    assert resolved["changed_by_someone"] == "its spec changed: image"
    r = record(fake, "inc-1")
    assert (r.actions, r.not_held, r.healed, r.touched, r.closed) == (1, 1, None, T0 + 70, T0 + 80)
    m = "swarm_medic_incident_outcomes_total"
    assert h.metric(m, runbook="stuck-task", outcome="not_healed") == 1
    assert h.metric(m, runbook="stuck-task", outcome="closed_by_someone") == 1
    assert h.metric(m, runbook="stuck-task", outcome="closed_no_human") == 0
    t = figures(fake, T0 + 100).total
    assert (t.found, t.fixed, t.healed, t.did_not_hold, t.no_human, t.human) == (1, 1, 0, 1, 0, 1)
    assert t.no_human_share == 0.0


def test_the_medics_own_update_is_not_someone_elses() -> None:
    fake = swarm()
    h = Harness(fake)
    sid, tid = stuck_service(fake)
    h.scan(T0)
    fake.touch_service(sid)  # swarm's updater writing the update's progress
    h.scan(T0 + 2)
    fake.set_update_status(sid, "completed", "update completed")
    fake.touch_service(sid)
    h.scan(T0 + 4)
    fix(fake, sid, tid)
    h.scan(T0 + 6)
    h.scan(T0 + 6 + HOLD + 1)
    assert h.logs.named("service changed by someone else while the incident is open") == []
    assert record(fake, "inc-1").touched is None


def test_an_incident_that_goes_away_by_itself_closes_with_no_human_action() -> None:
    fake = swarm()
    h = Harness(fake)
    sid = fake.add_service("web")  # not opted in: reported, never acted on
    tid = fake.add_task(sid, state="starting", node_id=ME, since=T0 - 400)
    h.scan(T0)
    fake.set_task_state(tid, "running")  # its health check passed at last
    h.scan(T0 + 15)
    r = record(fake, "inc-1")
    assert (r.fixed, r.closed, r.touched) == (False, T0 + 15, None)
    t = figures(fake, T0 + 20).total
    assert (t.found, t.fixed, t.no_human, t.no_human_share) == (1, 0, 1, 1.0)


def test_a_new_leader_keeps_the_incident_its_id_and_its_found_time() -> None:
    """The first instance finds and acts and is gone; the next one (a restart, or another
    manager elected) takes the incident over from the ledger: one incident, one id, its time
    to heal from the first finding."""
    fake = swarm()
    first = Harness(fake)
    sid, tid = stuck_service(fake)
    first.scan(T0)
    assert record(fake, "inc-1").actions == 1

    second = Harness(fake)  # ids inc-1, inc-2, ... too: a fresh one would collide
    second.medic.incidents._make_id = lambda: "new-id"
    second.scan(T0 + 20)
    (inc,) = second.medic.incidents.all()
    assert (inc.id, inc.opened_at) == ("inc-1", T0)
    fix(fake, sid, tid)
    second.scan(T0 + 25)
    second.scan(T0 + 25 + HOLD + 1)
    (healed,) = second.logs.named("verified: healed")
    assert healed["incident"] == "inc-1"
    assert set(ledger(fake).records().by_id) == {"inc-1"}
    r = record(fake, "inc-1")
    assert (r.found, r.closed, r.healed) == (T0, T0 + 25, T0 + 25 + HOLD + 1)
    assert (
        second.metric("swarm_medic_incident_outcomes_total", runbook="stuck-task", outcome="found")
        == 0
    )
    assert (
        second.metric("swarm_medic_incident_time_to_heal_seconds_sum", runbook="stuck-task") == 36
    )


def test_a_new_leader_closes_the_incidents_an_earlier_one_left_open_whose_fault_is_gone() -> None:
    fake = swarm()
    first = Harness(fake)
    sid = fake.add_service("web")
    tid = fake.add_task(sid, state="starting", node_id=ME, since=T0 - 400)
    first.scan(T0)
    fake.set_task_state(tid, "running")  # gone while no instance led
    second = Harness(fake)
    second.scan(T0 + 60)
    r = record(fake, "inc-1")
    assert r.closed == T0 + 60  # when the next leader looked
    assert second.medic.incidents.all() == ()


def test_a_failed_write_keeps_the_steps_for_the_next_scan(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = swarm()
    h = Harness(fake)
    sid = fake.add_service("web")
    fake.add_task(sid, state="starting", node_id=ME, since=T0 - 400)
    cas_update = fake.cas_update

    def down(name: str, change: Any) -> Any:
        raise EngineUnavailable("the engine went away")

    monkeypatch.setattr(fake, "cas_update", down)
    h.scan(T0)
    (said,) = h.logs.named(
        "could not write the incidents' record to the ledger; tried again at the next scan"
    )
    assert said["waiting"] == 1
    assert fake.read_ledger(LEDGER) is None
    monkeypatch.setattr(fake, "cas_update", cas_update)
    h.scan(T0 + 15)
    assert record(fake, "inc-1").found == T0


def test_dry_run_records_nothing() -> None:
    fake = swarm()
    h = Harness(fake, Settings(safety=SafetySettings(dry_run=True)))
    stuck_service(fake)
    h.scan(T0)
    assert fake.read_ledger(LEDGER) is None
    assert (
        h.metric("swarm_medic_incident_outcomes_total", runbook="stuck-task", outcome="found") == 0
    )


def test_only_the_leader_records() -> None:
    fake = swarm(leader=False)
    fake.add_node("manager-2", node_id="mgr2", leader=True)
    h = Harness(fake)
    stuck_service(fake)
    h.scan(T0)
    assert fake.read_ledger(LEDGER) is None


def test_a_follower_does_not_take_the_leaders_fix_for_someone_elses() -> None:
    """Only the leader knows its own actions: another manager judges no hand, and when it
    leads later it starts from what it sees then."""
    fake = swarm(leader=False)
    fake.add_node("manager-2", node_id="mgr2", leader=True)
    h = Harness(fake)
    sid, _ = stuck_service(fake)
    h.scan(T0)
    fake.force_update(sid, fake.raw_service(sid)["Version"]["Index"])  # the leader's fix
    h.scan(T0 + 15)
    fake._nodes[ME]["ManagerStatus"]["Leader"] = True  # this manager leads from now on
    fake._nodes["mgr2"]["ManagerStatus"]["Leader"] = False
    h.scan(T0 + 30)
    h.scan(T0 + 45)
    assert h.logs.named("service changed by someone else while the incident is open") == []


def test_report_on_a_ledger_of_the_previous_release_and_on_none(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = swarm()
    use_engine(monkeypatch, fake)
    assert cli.main(["report"]) == 0
    assert "the ledger does not exist yet" in capsys.readouterr().out
    # written by the previous release: a service entry, no record
    fake.write_ledger(LEDGER, None, {"swarm-medic.svc.svc1": '{"a":[],"f":0,"r":"","u":0.0}'})
    assert cli.main(["report", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["ledger_exists"], doc["total"]["found"], doc["runbooks"]) == (True, 0, [])


def test_report_says_an_unreadable_record_and_exits_3(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = swarm()
    h = Harness(fake)
    heal_stuck_task(h, fake, T0)
    doc = fake.read_ledger(LEDGER)
    assert doc is not None
    fake.write_ledger(LEDGER, doc, {**doc.labels, RECORD_PREFIX + "x": '{"rb": 1, "f": 1}'})
    use_engine(monkeypatch, fake)
    monkeypatch.setattr("swarm_medic.cli.time.time", lambda: T0 + 3600)
    assert cli.main(["report"]) == cli.EXIT_FAILED
    out = capsys.readouterr().out
    assert "error: incident record x: the runbook ('rb') is not a string" in out
    assert [ln.split()[1] for ln in out.splitlines() if ln.startswith("stuck-task")] == ["1"]
    # the daemon's next write keeps it as it is, and everything else
    h.scan(T0 + 100)
    after = fake.read_ledger(LEDGER)
    assert after is not None and after.labels[RECORD_PREFIX + "x"] == '{"rb": 1, "f": 1}'
    assert "inc-1" in Ledger.from_doc(after).records().by_id


def test_report_flags(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    fake = swarm()
    use_engine(monkeypatch, fake)
    assert cli.main(["report", "--since", "31d", "--json"]) == cli.EXIT_USAGE
    assert "expected a duration from 1m to 30d" in json.loads(capsys.readouterr().out)["error"]
    assert cli.main(["report", "--since", "soon"]) == cli.EXIT_USAGE
    fake.unavailable()
    assert cli.main(["report", "--json"]) == cli.EXIT_FAILED
    got = json.loads(capsys.readouterr().out)
    assert got["ok"] is False and got["error"].startswith("swarm-medic report: could not read")


def test_the_table_names_every_figure() -> None:
    fake = swarm()
    h = Harness(fake)
    heal_stuck_task(h, fake, T0)
    out = io.StringIO()
    report.render_table(figures(fake, T0 + 60), out, LEDGER)
    text = out.getvalue()
    head = next(ln for ln in text.splitlines() if ln.startswith("RUNBOOK"))
    for column in report.HEAD:
        assert column in head
    assert "1 heal(s) in the last 10m: whether they hold is not known yet" in text
