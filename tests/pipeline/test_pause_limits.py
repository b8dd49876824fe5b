"""The pause switch and the swarm-wide limits, end to end on a FakeEngine: `swarm-medic pause`
obeyed by running medics within one scan, expiry, max concurrent remediations, the report
label, and the alerts hold against a fake Prometheus on the loopback."""

from __future__ import annotations

import http.server
import json
import os
import threading
from collections.abc import Iterator

import pytest

from swarm_medic import cli
from swarm_medic.commands.pause import set_pause
from swarm_medic.core.ledger import Ledger, Pause, Verifying
from swarm_medic.core.parsers import Share
from swarm_medic.core.settings import HttpSettings, SafetySettings, Settings
from swarm_medic.pipeline.hold import AlertsHold
from swarm_medic.swarm.fake import FakeEngine
from tests.builders import NOW as T0
from tests.pipeline.harness import LEDGER, Harness, stuck_service, swarm


def use_engine(monkeypatch: pytest.MonkeyPatch, fake: FakeEngine) -> None:
    monkeypatch.setattr(cli, "_engine_factory", lambda settings: lambda: fake)
    for var in [v for v in os.environ if v.startswith("SWARM_MEDIC_")] + ["DOCKER_HOST"]:
        monkeypatch.delenv(var, raising=False)


def acted(h: Harness) -> float:
    return h.actions("done")


def test_a_pause_written_by_the_cli_is_obeyed_within_one_scan_and_resume_ends_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = swarm()
    use_engine(monkeypatch, fake)
    h = Harness(fake)
    h.scan(T0 - 15)  # running, nothing to do yet
    stuck_service(fake)

    assert cli.main(["pause", "--reason", "db migration", "--for", "2h"]) == 0
    out = capsys.readouterr().out
    assert "reason: db migration" in out
    h.scan(T0)

    assert acted(h) == 0
    assert h.decisions("skip", "paused") == 1
    assert h.metric("swarm_medic_paused") == 1
    (said,) = [e for e in h.logs.entries if str(e["event"]).startswith("paused since")]
    assert said["reason"] == "db migration"
    assert h.medic.state.pause is not None
    assert h.medic.state.pause.by.count("@") == 1

    assert cli.main(["resume"]) == 0
    assert "resumed; was paused since" in capsys.readouterr().out
    h.scan(T0 + 15)
    assert acted(h) == 1
    assert h.metric("swarm_medic_paused") == 0
    assert h.logs.named("resumed: acting again")
    assert cli.main(["resume"]) == 0
    assert "not paused" in capsys.readouterr().out


def test_two_medics_sharing_the_ledger_both_see_the_pause_and_neither_acts() -> None:
    fake = swarm()
    stuck_service(fake)
    leader, other = Harness(fake), Harness(fake)
    set_pause(fake, LEDGER, Pause("freeze", T0 - 1, "ops@x"), T0 - 1)

    leader.scan(T0)
    other.scan(T0)

    assert acted(leader) == acted(other) == 0
    assert leader.metric("swarm_medic_paused") == other.metric("swarm_medic_paused") == 1
    assert Ledger.from_doc(fake.read_ledger(LEDGER)).services == {}


def test_a_pause_written_between_decision_and_claim_stands_the_executor_down() -> None:
    fake = swarm()
    stuck_service(fake)
    h = Harness(fake)
    real = fake.read_ledger
    reads = [0]

    def pause_after_the_decision(name: str):  # type: ignore[no-untyped-def]
        reads[0] += 1
        if reads[0] == 3:  # 1: take over pending fixes; 2: the decision; 3: the claim
            set_pause_raw(fake, real)
        return real(name)

    def set_pause_raw(fake: FakeEngine, read):  # type: ignore[no-untyped-def]
        doc = read(LEDGER)
        labels = Ledger.from_doc(doc).with_pause(Pause("now", T0, "ops@x")).labels(T0)
        fake.write_ledger(LEDGER, doc, labels)

    fake.read_ledger = pause_after_the_decision  # type: ignore[method-assign]
    h.scan(T0)

    assert h.decisions("act", "ok") == 1
    assert h.actions("conflict") == 1
    assert acted(h) == 0
    assert Ledger.from_doc(real(LEDGER)).services == {}


def test_a_pause_that_expires_says_so_and_the_medic_acts_again() -> None:
    fake = swarm()
    stuck_service(fake)
    h = Harness(fake)
    set_pause(fake, LEDGER, Pause("short", T0 - 1, "ops@x", until=T0 + 60), T0 - 1)

    h.scan(T0)
    assert acted(h) == 0
    h.scan(T0 + 61)
    assert h.logs.named("pause expired: acting again")
    assert acted(h) == 1
    assert h.metric("swarm_medic_paused") == 0


def test_a_corrupt_pause_label_is_a_pause_and_says_so() -> None:
    fake = swarm()
    stuck_service(fake)
    fake.write_ledger(LEDGER, None, {"swarm-medic.pause": "{half a write"})
    h = Harness(fake)

    h.scan(T0)

    assert acted(h) == 0
    assert h.decisions("skip", "paused") == 1
    assert [e for e in h.logs.entries if "pause label is unreadable" in str(e["event"])]


def test_a_medic_starting_while_paused_says_so_at_its_first_scan() -> None:
    fake = swarm()
    set_pause(fake, LEDGER, Pause("freeze", T0 - 1, "ops@x"), T0 - 1)
    h = Harness(fake)
    h.scan(T0)
    assert [e for e in h.logs.entries if str(e["event"]).startswith("paused since")]
    assert h.metric("swarm_medic_paused") == 1


def test_max_concurrent_counts_fixes_being_verified_across_services() -> None:
    fake = swarm()
    for name in ("web", "api", "db"):
        stuck_service(fake, name)
    # three of three services failing would be a storm: the guard off (share 1) for this one
    h = Harness(
        fake, Settings(safety=SafetySettings(max_concurrent_actions=2, storm_share=Share(1.0)))
    )

    h.scan(T0)

    assert acted(h) == 2
    assert h.decisions("skip", "max_concurrent") == 1
    assert h.metric("swarm_medic_remediations_in_progress") == 2
    # a second instance (a new leader) sees the two fixes pending in the ledger: still full
    other = Harness(fake, Settings(safety=SafetySettings(max_concurrent_actions=2)))
    other.scan(T0 + 1)
    assert other.actions("done") == 0
    assert other.metric("swarm_medic_remediations_in_progress") == 2


def test_the_limit_is_judged_again_on_the_ledger_the_claim_is_written_against() -> None:
    # Two instances that both believe they lead (an election under way) decide on the same
    # ledger: each sees room under the limit. The other one claims a fix for another service
    # between this one's decision and its claim: this one must stand down, not exceed the limit.
    fake = swarm()
    stuck_service(fake, "web")
    other_sid, _ = stuck_service(fake, "api", labels={})  # out of this instance's scope
    h = Harness(fake, Settings(safety=SafetySettings(max_concurrent_actions=1)))
    real = fake.read_ledger
    reads = [0]

    def the_other_leader_claims_first(name: str):  # type: ignore[no-untyped-def]
        reads[0] += 1
        if reads[0] == 3:  # 1: take over pending fixes; 2: the decision; 3: the claim
            doc = real(LEDGER)
            pending = Verifying("other", "stuck-task", "force_update", 1, T0, T0 + 600)
            claimed, _ = Ledger.from_doc(doc).record_action(
                other_sid, "stuck-task", T0, 10, 3600, pending=pending
            )
            fake.write_ledger(LEDGER, doc, claimed.labels(T0))
        return real(name)

    fake.read_ledger = the_other_leader_claims_first  # type: ignore[method-assign]
    h.scan(T0)

    assert h.decisions("act", "ok") == 1
    assert h.actions("conflict") == 1
    assert acted(h) == 0
    assert Ledger.from_doc(real(LEDGER)).in_progress(T0) == {other_sid}


def test_a_report_label_means_findings_never_actions() -> None:
    fake = swarm()
    stuck_service(fake, labels={"swarm-medic.enable": "true", "swarm-medic.action": "report"})
    h = Harness(fake)

    h.scan(T0)

    assert h.logs.named("finding")
    assert h.decisions("skip", "report_label") == 1
    assert acted(h) == 0
    assert fake.writes == []


# --- the alerts hold, against a fake Prometheus on 127.0.0.1 --------------------------------


class Prometheus:
    def __init__(self) -> None:
        self.alerts: list[dict[str, object]] = []
        self.status = 200
        self.requests = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests += 1
                body = json.dumps({"status": "success", "data": {"alerts": outer.alerts}})
                data = body.encode() if self.path == "/api/v1/alerts" else b"{}"
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def fire(self, name: str, state: str = "firing") -> None:
        self.alerts.append({"labels": {"alertname": name, "severity": "page"}, "state": state})

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def prometheus() -> Iterator[Prometheus]:
    p = Prometheus()
    yield p
    p.stop()


def hold_settings(p: Prometheus) -> Settings:
    return Settings(safety=SafetySettings(hold_while_alerts=(p.url, "NodeDown", "SwarmDegraded")))


def test_no_action_while_a_chosen_alert_fires(prometheus: Prometheus) -> None:
    fake = swarm()
    stuck_service(fake)
    prometheus.fire("NodeDown")
    prometheus.fire("Unrelated")
    h = Harness(fake, hold_settings(prometheus))

    h.scan(T0)

    assert acted(h) == 0
    assert h.decisions("skip", "alerts_hold") == 1
    (said,) = h.logs.named("holding: no action while alerts fire")
    assert said["why"] == "alert(s) firing: NodeDown"
    assert h.metric("swarm_medic_alerts_hold") == 1

    prometheus.alerts.clear()
    prometheus.fire("NodeDown", state="pending")  # pending is not firing
    h.scan(T0 + 15)
    assert h.logs.named("alerts hold lifted: acting again")
    assert acted(h) == 1
    assert h.metric("swarm_medic_alerts_hold") == 0


def test_prometheus_unreachable_holds_and_says_why(prometheus: Prometheus) -> None:
    fake = swarm()
    stuck_service(fake)
    settings = hold_settings(prometheus)
    prometheus.stop()
    h = Harness(fake, settings)

    h.scan(T0)

    assert acted(h) == 0
    (said,) = h.logs.named("holding: no action while alerts fire")
    assert "could not be asked" in said["why"]


@pytest.mark.parametrize("status", [500, 404])
def test_a_prometheus_error_holds(prometheus: Prometheus, status: int) -> None:
    prometheus.status = status
    why = AlertsHold(prometheus.url, ["NodeDown"]).check()
    assert "could not be asked" in why and str(status) in why


def test_an_answer_too_large_or_not_prometheus_s_holds(prometheus: Prometheus) -> None:
    for i in range(50):
        prometheus.fire(f"A{i}", state="pending")
    assert "larger than" in AlertsHold(prometheus.url, ["X"], max_bytes=100).check()
    assert AlertsHold(prometheus.url, ["X"]).check() == ""
    assert "could not be read" in AlertsHold(prometheus.url + "/other", ["X"]).check()


def test_the_hold_is_not_asked_when_nothing_could_act(prometheus: Prometheus) -> None:
    h = Harness(swarm(), hold_settings(prometheus))
    h.scan(T0)
    assert prometheus.requests == 0


# --- where the pause is shown: /healthz details and `check` ---------------------------------


def test_healthz_details_say_paused_until_and_why() -> None:
    import time

    from prometheus_client import CollectorRegistry

    from swarm_medic.app import App

    fake = swarm()
    app = App(Settings(http=HttpSettings(http_port=0)), lambda: fake, CollectorRegistry())
    assert app.health()[1]["paused"] is None  # not read yet
    now = time.time()
    set_pause(fake, LEDGER, Pause("upgrade", now, "ops@x", now + 600), now)
    app.medic.scan()
    _ok, detail = app.health()
    assert detail["paused"] is True
    assert detail["pause"]["until"] == pytest.approx(now + 600, abs=0.01)
    assert detail["pause"]["reason"] == "upgrade"
    assert detail["remediations_in_progress"] == 0
    assert detail["alerts_hold"] is None
    # and the status page says it too, in words a person reads
    assert app.status().pause == Pause("upgrade", now, "ops@x", now + 600).describe()
    from swarm_medic.web.status import render

    assert "reason: upgrade" in render(app.status())


def test_check_shows_the_pause_first_and_every_action_held_back() -> None:
    import io

    from swarm_medic.commands.check import diagnose, render_json, render_table
    from swarm_medic.pipeline import registry as registry_mod

    fake = swarm()
    stuck_service(fake)
    set_pause(fake, LEDGER, Pause("upgrade", T0 - 60, "ops@x"), T0 - 60)
    report = diagnose(fake, Settings(), registry_mod.load([registry_mod.builtin_dir()]), T0)

    table = io.StringIO()
    render_table(report, table)
    lines = table.getvalue().splitlines()
    assert lines[1].startswith("PAUSED: paused since 2023-11-14T22:12:20Z until resume")
    assert "not acted on: swarm-medic is paused swarm-wide" in table.getvalue()
    doc = io.StringIO()
    render_json(report, doc)
    parsed = json.loads(doc.getvalue())
    assert parsed["paused"] is True and parsed["pause"]["reason"] == "upgrade"
    assert parsed["findings"][0]["skip_reason"] == "paused"
