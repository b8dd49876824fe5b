"""Notifications: the story of an incident told to a real JSON webhook on 127.0.0.1, in order,
once; never at the cost of a scan.

A real Medic on the FakeEngine (tests/pipeline/harness.py), a real Journal and a real
Notifier (Apprise, its json:// plugin, the worker thread) posting to a receiver in this test.
The filters (leader only, mute label, minimum severity) are checked against a notifier that
keeps what it is offered: what they decide is what reaches the queue.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from swarm_medic.app import App
from swarm_medic.core.alerts import AlertBook
from swarm_medic.core.alerts import decode as decode_alerts
from swarm_medic.core.errors import SettingsError
from swarm_medic.core.settings import NotifySettings, SafetySettings, Settings
from swarm_medic.pipeline.scan import Medic
from swarm_medic.swarm.fake import FakeEngine
from swarm_medic.telemetry.journal import Journal
from swarm_medic.telemetry.metrics import Metrics
from swarm_medic.telemetry.notify import Message, Notifier, Scrub
from tests.builders import NOW as T0
from tests.netkit import Hanging, Receiver, closed_port
from tests.pipeline.harness import (
    ENABLE,
    ME,
    Kept,
    Told,
    builtin,
    fix,
    stuck_service,
    swarm,
)
from tests.pipeline.support import Logs, sample
from tests.waiting import wait_until

DROPPED = (
    "notification dropped: the queue is full (a slow or dead receiver); further drops are "
    "counted, not logged, until the queue is caught up"
)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def started(
    urls: list[str],
    journal_holder: list[Journal],
    *,
    maxsize: int = 100,
    attempts: int = 3,
    wait_first: float = 0.5,
    wait_max: float = 4.0,
) -> Notifier:
    """A started Notifier reporting to the journal put in `journal_holder` (once it exists)."""

    def report(receiver: str, error: str, attempts: int) -> None:
        journal_holder[0].notification(receiver, error, attempts)

    n = Notifier(
        urls,
        report,
        maxsize=maxsize,
        attempts=attempts,
        wait_first=wait_first,
        wait_max=wait_max,
    )
    n.start()
    return n


# --- the story, over HTTP ------------------------------------------------------------------


def test_the_story_of_a_fault_arrives_in_order_once(receiver: Receiver) -> None:
    holder: list[Journal] = []
    notifier = started([receiver.url()], holder)
    fake = swarm()
    sid, tid = stuck_service(fake)
    t = Told(fake, notifier)
    holder.append(t.journal)
    try:
        t.scan(T0)  # found, acted on
        t.scan(T0 + 1)  # still stuck, being verified: nothing to tell
        fix(fake, sid, tid)
        t.scan(T0 + 5)  # cleared while verifying: not "resolved", healed is the verifier's word
        t.scan(T0 + 16)  # held for verify_hold: healed
        wait_until("3 messages", lambda: len(receiver.payloads) >= 3, timeout=10)
        t.scan(T0 + 30)
        time.sleep(0.3)  # anything more would have arrived by now
    finally:
        notifier.stop()

    got = receiver.messages()
    assert [m["step"] for m in got] == ["finding", "action", "healed"]
    assert {m["incident"] for m in got} == {"inc-1"}
    assert all(m["service"] == "web" and m["runbook"] == "stuck-task" for m in got)
    finding, action, healed = got
    assert finding["title"] == "swarm-medic: finding (warning) on web [stuck-task, incident inc-1]"
    assert finding["type"] == "warning"
    assert "starting" in finding["summary"]
    assert finding["diagnosis"]  # the runbook's advice, in words
    assert action["title"].startswith("swarm-medic: action: force_update done on web")
    assert action["next"] == "verifying that the fix holds"
    assert healed["title"].startswith("swarm-medic: verified: healed on web")
    assert healed["time to heal"] == "16.0s"
    assert healed["type"] == "success"
    assert {p["path"] for p in receiver.payloads} == {"/hook"}
    # the log says the same steps
    assert [e["incident"] for e in t.logs.named("finding")] == ["inc-1"]
    assert t.notifications("sent") == 3
    assert t.notifications("failed") == 0
    assert t.notifications("dropped") == 0


def twenty_scans(t: Told, fake: FakeEngine) -> float:
    """20 scans, a new fault each (not opted in: found, never acted on): a message or more per
    scan. -> the time the scans took."""
    took = 0.0
    for i in range(20):
        sid = fake.add_service(f"svc-{i}")
        fake.add_task(sid, state="starting", node_id=ME, since=T0 - 400)
        t0 = time.perf_counter()
        t.scan(T0 + i)
        took += time.perf_counter() - t0
    return took


def test_a_hanging_receiver_never_slows_a_scan_and_the_drops_are_counted() -> None:
    fake = swarm()
    t = Told(fake, Kept())
    t.journal.notifier = None  # the same scans, notifying nobody
    baseline = twenty_scans(t, fake)

    with Hanging() as hang:
        holder: list[Journal] = []
        # a receiver that holds every attempt for 30 s: a scan waiting for it would show
        notifier = started([hang.url("rto=30&cto=30")], holder, maxsize=3)
        fake = swarm()
        t = Told(fake, notifier)
        holder.append(t.journal)
        try:
            took = twenty_scans(t, fake)
        finally:
            notifier.stop(timeout=0.1)

    assert took < max(10 * baseline, 2.0), (took, baseline)
    # 20 findings of one kind: one taken by the worker (hung), the rest wait as ONE message
    assert notifier.pending() <= 1
    assert t.notifications("sent") == 0


def test_a_full_queue_drops_the_least_urgent_counts_it_and_says_it_once() -> None:
    fake = swarm()
    t = Told(fake, Kept())
    notifier = Notifier([], lambda *a: None, maxsize=3)
    t.journal.notifier = notifier
    news = [
        Message("finding", "finding", f"i{n}", f"rb{n}", "svc", (), "info", prio)
        for n, prio in enumerate([2, 2, 3, 3, 1, 0])
    ]
    for m in news:
        t.journal._tell(m)
    # 3 kinds fit: the two of priority 3 were dropped (one refused, one evicted), then the two
    # of priority 2 evicted by the warning and the critical
    assert notifier.pending() == 3
    assert t.notifications("dropped") == 3
    (said,) = t.logs.named(DROPPED)
    order = [notifier._next() for _ in range(4)]
    assert [m.priority for m in order if m is not None][:3] == [0, 1, 2]
    storm = order[3]
    assert storm is not None and storm.step == "storm" and dict(storm.fields)["dropped"] == "3"
    assert said["step"] == "finding"


def test_a_dead_receiver_is_retried_then_counted_failed_and_logged_once() -> None:
    holder: list[Journal] = []
    dead = f"json://127.0.0.1:{closed_port()}/hook?cto=1&rto=1"
    notifier = started([dead], holder, attempts=2, wait_first=0.01, wait_max=0.02)
    fake = swarm()
    stuck_service(fake, name="a", labels={})
    stuck_service(fake, name="b", labels={})
    t = Told(fake, notifier)
    holder.append(t.journal)
    try:
        t.scan(T0)  # two findings of one scan and kind: one message
        wait_until("a failure", lambda: t.notifications("failed") >= 1, timeout=20)
    finally:
        notifier.stop()
    (said,) = t.logs.starting("notification not delivered")
    assert said["attempts"] == 2
    assert said["receiver"] == "#1 json://127.0.0.1"
    assert t.notifications("sent") == 0


# --- what is told, and by whom -------------------------------------------------------------


def test_dry_run_tells_what_would_be_done() -> None:
    kept = Kept()
    fake = swarm()
    stuck_service(fake)
    t = Told(fake, kept, dry_run=True)
    t.scan(T0)
    t.scan(T0 + 15)
    assert kept.steps() == [("finding", "inc-1"), ("would", "inc-1")]
    would = kept.kept[1]
    assert would.headline == "would force_update (dry-run: nothing changed)"
    assert "would force_update" in would.title
    assert fake.writes == []


def test_only_the_leader_tells() -> None:
    kept = Kept()
    fake = swarm(leader=False)
    stuck_service(fake)
    t = Told(fake, kept)
    t.scan(T0)
    t.scan(T0 + 400)
    assert len(t.logs.named("finding")) == 1  # seen and logged by every manager
    assert kept.kept == []  # told by the brain only


def test_a_muted_service_is_never_told() -> None:
    kept = Kept()
    fake = swarm()
    stuck_service(fake, labels={**ENABLE, "swarm-medic.notify": "false"})
    t = Told(fake, kept)
    t.scan(T0)
    assert len(t.logs.named("action: force_update done")) == 1  # acted on all the same
    assert kept.kept == []


def test_below_the_minimum_severity_nothing_is_told() -> None:
    fake = swarm()
    stuck_service(fake)  # a hang: severity warning
    kept = Kept()
    Told(fake, kept, notify_min_severity="critical").scan(T0)
    assert kept.kept == []
    assert len(fake.writes) == 1  # acted on all the same
    fake = swarm()
    stuck_service(fake)
    kept = Kept()
    Told(fake, kept, notify_min_severity="warning").scan(T0)
    assert [s for s, _ in kept.steps()] == ["finding", "action"]


def test_an_open_incident_is_recalled_at_most_every_remind_and_resolved_on_its_own() -> None:
    kept = Kept()
    fake = swarm()
    sid, tid = stuck_service(fake, labels={})  # not opted in: never acted on
    t = Told(fake, kept, notify_remind=60.0)
    for at in (0, 30, 59, 61, 90, 120, 125):
        t.scan(T0 + at)
    assert [s for s, _ in kept.steps()] == ["finding", "reminder", "reminder"]
    assert kept.kept[1].headline == "still open after 1m01s"
    fix(fake, sid, tid)
    t.scan(T0 + 130)
    last = kept.kept[-1]
    assert (last.step, last.headline, last.incident) == ("resolved", "resolved on its own", "inc-1")


def test_a_fix_that_does_not_hold_tells_not_healed_and_the_breaker() -> None:
    kept = Kept()
    fake = swarm()
    stuck_service(fake)
    t = Told(fake, kept)
    t.scan(T0)
    t.scan(T0 + t.h.settings.safety.verify_timeout + 1)  # still stuck past the deadline
    steps = kept.steps()
    assert steps[:4] == [
        ("finding", "inc-1"),
        ("action", "inc-1"),
        ("not-healed", "inc-1"),
        ("circuit", "inc-1"),
    ]
    assert kept.kept[3].kind == "failure"
    assert dict(kept.kept[3].fields)["resets in"] == "60m00s"


def test_a_new_leader_tells_at_once_the_incidents_it_never_told() -> None:
    kept = Kept()
    fake = swarm(leader=False)
    stuck_service(fake, labels={})
    t = Told(fake, kept)
    t.scan(T0)
    assert kept.kept == []
    fake.add_node("manager-1", node_id=ME, leader=True)  # this manager now leads
    t.scan(T0 + 15)
    assert [s for s, _ in kept.steps()] == ["reminder"]


def test_a_notify_url_apprise_does_not_know_stops_the_start_without_repeating_it() -> None:
    settings = Settings(notify=NotifySettings(notify=("nosuchscheme://secret-token@host",)))
    with pytest.raises(SettingsError) as err:
        App(settings, FakeEngine, metrics_registry=CollectorRegistry())
    assert "secret-token" not in str(err.value)
    assert "#1" in str(err.value)


# --- one cause, one story ----------------------------------------------------------------------


def bad_deploy(fake: FakeEngine, *, crashes_since: float) -> tuple[str, str]:
    """The demo's bad deploy of `api`: its update started at T0 - 300 and paused on a task of
    the new spec; three tasks of slot 1 crashed (exit 3) from `crashes_since` on."""
    sid = fake.add_service("api", labels=ENABLE, previous_spec=True)
    for i in range(3):
        fake.add_task(
            sid,
            state="failed",
            desired="shutdown",
            node_id=ME,
            since=crashes_since + 60 * i,
            err="task: non-zero exit (3)",
            exit_code=3,
        )
    paused_on = fake.pause_update(sid, started=T0 - 300)
    return sid, paused_on


def test_a_crash_loop_of_the_paused_updates_new_tasks_is_linked_and_not_told_apart() -> None:
    """Issue 18 section 6: the bad deploy opened two incidents and two notifications for one
    cause. The crash loop of the tasks that made the update pause is now said in the log with
    the paused update's incident id, and told once, as the paused update's story."""
    fake = swarm()
    bad_deploy(fake, crashes_since=T0 - 250)  # every crash is of a task the update started
    kept = Kept()
    t = Told(fake, kept, dry_run=True)
    t.scan(T0)

    findings = {f["runbook"]: f for f in t.logs.named("finding")}
    assert set(findings) == {"paused-update", "crash-loop"}
    cause = findings["paused-update"]
    assert findings["crash-loop"]["linked_to"] == cause["incident"]
    assert "linked_to" not in cause
    told = {m.incident for m in kept.kept}
    assert told == {cause["incident"]}, kept.steps()

    t.scan(T0 + 3 * 3600)  # reminders too: the linked incident is never told apart
    assert {m.incident for m in kept.kept} == {cause["incident"]}, kept.steps()


def test_a_crash_loop_from_before_the_update_is_its_own_story() -> None:
    fake = swarm()
    bad_deploy(fake, crashes_since=T0 - 500)  # the first crash came before the update
    kept = Kept()
    t = Told(fake, kept, dry_run=True)
    t.scan(T0)

    findings = {f["runbook"]: f for f in t.logs.named("finding")}
    assert set(findings) == {"paused-update", "crash-loop"}
    assert "linked_to" not in findings["crash-loop"]
    assert {m.incident for m in kept.kept} == {f["incident"] for f in findings.values()}


# --- no secret of a notification URL is ever shown (issue 16, section 3) ---------------------

PATH_SECRET = "B0000SECRETPATH"  # noqa: S105 - test values that must never be shown
HEADER_SECRET = "HdrSecret42"  # noqa: S105
TOKEN_SECRET = "TokSecret77"  # noqa: S105


def hooks(port: int) -> list[str]:
    """Secrets where privacy mode does not look: a hook path and custom headers."""
    return [
        f"json://127.0.0.1:{port}/services/T000/{PATH_SECRET}?cto=1&rto=1"
        f"&+X-Api-Key={HEADER_SECRET}&+Authorization=Bearer%20{TOKEN_SECRET}",
        "slack://TokenAAAA/TokenBBBB/TokenCCCC/#ops",
    ]


def test_a_receiver_is_shown_by_its_scheme_and_host_only() -> None:
    # before: json://127.0.0.1:PORT/services/T000/B0000SECRETPATH?...&%2BX-Api-Key=HdrSecret42
    n = Notifier(hooks(9), lambda *a: None)
    assert n.receivers == ["#1 json://127.0.0.1", "#2 slack://T...A"]


def test_a_failing_receiver_logs_no_secret_of_its_url() -> None:
    holder: list[Journal] = []
    notifier = started(hooks(closed_port())[:1], holder, attempts=1, wait_first=0.01)
    fake = swarm()
    stuck_service(fake, name="a", labels={})
    t = Told(fake, notifier)
    holder.append(t.journal)
    try:
        t.scan(T0)
        wait_until("a failure", lambda: t.notifications("failed") >= 1, timeout=20)
    finally:
        notifier.stop()
    (said,) = t.logs.starting("notification not delivered")
    text = repr(t.logs.entries)
    for secret in (PATH_SECRET, HEADER_SECRET, TOKEN_SECRET, "T000"):
        assert secret not in text
    assert said["receiver"] == "#1 json://127.0.0.1"


def test_an_error_text_naming_the_url_is_scrubbed() -> None:
    urls = hooks(8080)
    scrub = Scrub(urls)
    error = (
        f"HTTPConnectionPool(host='127.0.0.1', port=8080): Max retries exceeded with url: "
        f"/services/T000/{PATH_SECRET} headers {{'X-Api-Key': '{HEADER_SECRET}', "
        f"'Authorization': 'Bearer {TOKEN_SECRET}'}} via {urls[0]} and "
        "https://hooks.slack.com/services/TokenAAAA/TokenBBBB/TokenCCCC"
    )
    clean = scrub(error)
    for secret in (PATH_SECRET, HEADER_SECRET, TOKEN_SECRET, "TokenAAAA", "TokenBBBB"):
        assert secret not in clean
    assert "json://127.0.0.1:8080/..." in clean and "https://hooks.slack.com/..." in clean


def test_the_start_up_line_shows_receivers_by_scheme_and_host() -> None:
    logs = Logs()
    app = App(
        Settings(notify=NotifySettings(notify=tuple(hooks(9)))),
        FakeEngine,
        metrics_registry=CollectorRegistry(),
    )
    app.journal._log = logs.logger
    app.banner()
    (line,) = logs.starting("swarm-medic")
    assert line["notify"] == ["#1 json://127.0.0.1", "#2 slack://T...A"]
    for secret in (PATH_SECRET, HEADER_SECRET, TOKEN_SECRET, "TokenAAAA"):
        assert secret not in repr(logs.entries)


# --- storms (issue 16, section 5) -------------------------------------------------------------


def test_an_alert_storm_and_one_critical_finding_the_critical_one_goes_first(
    receiver: Receiver,
) -> None:
    # before: 1,000 alerts opened 1,000 incidents, filled the queue (100) and dropped 901
    # messages, the medic's own critical finding about a paused update among them
    fake = swarm()
    paused = fake.add_service("api", labels=ENABLE, previous_spec=True)
    fake.pause_update(paused)
    fake.add_task(paused, state="running", node_id=ME)
    for n in range(38):
        fake.add_service(f"svc{n}")
    alerts = [
        {
            "status": "firing",
            "labels": {"alertname": f"Storm{n}", "swarm_service": f"svc{n % 38}"},
            "annotations": {"summary": f"storm {n}"},
            "fingerprint": f"fp{n}",
        }
        for n in range(1000)
    ]
    body = json.dumps({"version": "4", "status": "firing", "alerts": alerts}).encode()
    book = AlertBook(Settings().http.alerts_max_age)
    book.receive(decode_alerts(body), T0)
    holder: list[Journal] = []
    notifier = started([receiver.url()], holder)
    prom, logs = CollectorRegistry(), Logs()
    metrics = Metrics(prom)
    metrics.preinitialise()
    journal = Journal(metrics, logs.logger, notifier)
    holder.append(journal)
    medic = Medic(
        fake,
        Settings(
            safety=SafetySettings(dry_run=True),
            notify=NotifySettings(notify=(receiver.url(),)),
        ),
        builtin(),
        journal,
        clock=lambda: T0,
        alerts=book,
    )
    try:
        medic.scan()
        wait_until("all told", lambda: notifier.pending() == 0 and len(receiver.payloads) >= 2)
        time.sleep(0.3)  # anything else the worker still had
    finally:
        notifier.stop()

    titles = [str(p["title"]) for p in receiver.payloads]
    # 38 services failing at once is a storm too (the storm guard): told first, once, then
    # the critical finding before the alerts' own
    assert titles[0].startswith("swarm-medic: storm: standing still"), titles[:3]
    assert "finding (critical) on api [paused-update" in titles[1], titles[:3]
    storm = [t for t in titles if "on-alert" in t]
    assert storm == [
        "swarm-medic: 1000 x finding (warning) on 38 services [on-alert, incident many]"
    ]
    assert sample(prom, "swarm_medic_notifications_total", result="dropped") == 0
    assert len(titles) <= 5, titles  # the storm, the critical one, its would-act, the alerts in one
