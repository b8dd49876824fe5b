"""The HTTP port (/metrics, /healthz), pre-initialised metrics, the CLI and `check` output.

The HTTP server listens on 127.0.0.1 port 0 and is only ever asked from 127.0.0.1. The CLI runs
in-process through `main(argv)` with a clean environment; `check` reads a FakeEngine (or an
engine address that does not exist).
"""

from __future__ import annotations

import http.client
import io
import json
import os
import re
import time
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry

from swarm_medic import __version__, cli
from swarm_medic.app import App
from swarm_medic.commands.check import Report, diagnose, render_json, render_table
from swarm_medic.core.errors import EngineError
from swarm_medic.core.ledger import PREFIX, History, encode
from swarm_medic.core.model import ActionKind, Reason
from swarm_medic.core.parsers import Share
from swarm_medic.core.settings import HttpSettings, SafetySettings, Settings
from swarm_medic.pipeline import registry as registry_mod
from swarm_medic.swarm import Engine
from swarm_medic.swarm.engine import DockerEngine
from swarm_medic.swarm.fake import FakeEngine
from swarm_medic.telemetry.metrics import Metrics
from swarm_medic.web.http import Health, serve
from tests.builders import NOW as T0

ME = "mgr1"
ENABLE = {"swarm-medic.enable": "true"}
# every file in runbooks/ is a runbook named after it (stuck_task.py -> stuck-task)
RUNBOOKS = sorted(
    p.stem.replace("_", "-")
    for p in registry_mod.builtin_dir().glob("*.py")
    if not p.name.startswith("_")
)


# --- HTTP ------------------------------------------------------------------------------------


@contextmanager
def serving(registry: CollectorRegistry, health: Health) -> Iterator[int]:
    server = serve("127.0.0.1", 0, registry, health)
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def get(port: int, path: str, accept: str = "") -> tuple[int, str, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", path, headers={"Accept": accept} if accept else {})
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type") or "", resp.read()
    finally:
        conn.close()


def healthy() -> tuple[bool, dict[str, Any]]:
    return True, {"role": "leader"}


def unhealthy() -> tuple[bool, dict[str, Any]]:
    return False, {"role": "unreachable", "last_error": "fake engine is down"}


def test_metrics_are_served_in_prometheus_text() -> None:
    reg = CollectorRegistry()
    metrics = Metrics(reg)
    metrics.preinitialise()
    metrics.scans.labels("ok").inc(3)

    with serving(reg, healthy) as port:
        status, ctype, body = get(port, "/metrics")
        om_status, om_type, om_body = get(port, "/metrics", "application/openmetrics-text")

    text = body.decode()
    assert status == 200
    assert ctype.startswith("text/plain")
    assert "# TYPE swarm_medic_scans_total counter" in text
    assert 'swarm_medic_scans_total{result="ok"} 3.0' in text
    assert 'swarm_medic_scans_total{result="error"} 0.0' in text
    assert "swarm_medic_incidents_open{" not in text  # no incident yet: no series
    assert "_created" not in text
    assert om_status == 200
    assert om_type.startswith("application/openmetrics-text")
    assert om_body.decode().rstrip().endswith("# EOF")


@pytest.mark.parametrize(
    ("health", "code", "doc"),
    [
        (healthy, 200, {"ok": True, "role": "leader"}),
        (unhealthy, 503, {"ok": False, "role": "unreachable", "last_error": "fake engine is down"}),
    ],
)
def test_healthz(health: Health, code: int, doc: dict[str, Any]) -> None:
    with serving(CollectorRegistry(), health) as port:
        status, ctype, body = get(port, "/healthz")
        with_query = get(port, "/healthz?verbose=1")[0]

    assert status == code
    assert with_query == code
    assert ctype == "application/json"
    assert json.loads(body) == doc


def test_an_unknown_path_is_404() -> None:
    with serving(CollectorRegistry(), healthy) as port:
        status, _, body = get(port, "/metricz")
    assert status == 404
    assert b"/metrics" in body
    assert b"/healthz" in body


def test_healthz_of_the_app_follows_the_scan_and_the_event_stream() -> None:
    fake = FakeEngine(node_id=ME)
    fake.add_node("manager-1", node_id=ME, leader=True)
    reg = CollectorRegistry()
    app = App(Settings(http=HttpSettings(http_port=0)), lambda: fake, reg)

    with serving(reg, app.health) as port:
        before = get(port, "/healthz")
        app.medic.scan()
        app.watcher.connected = True
        after = get(port, "/healthz")
        app.watcher.connected = False
        lost = get(port, "/healthz")

    assert before[0] == 503
    assert json.loads(before[2])["role"] == "starting"
    assert json.loads(before[2])["snapshot_fresh"] is False
    assert after[0] == 200
    doc = json.loads(after[2])
    assert (doc["ok"], doc["role"], doc["snapshot_fresh"]) == (True, "leader", True)
    assert (doc["verifying"], doc["circuit_breakers_open"], doc["last_error"]) == (0, 0, "")
    assert lost[0] == 503
    assert json.loads(lost[2])["event_stream_connected"] is False


def test_only_the_fixed_label_sets_alerts_read_with_increase_are_created_up_front() -> None:
    """Per-runbook series appear at their first count (issue 18: 1,653 series on an idle
    brain, nearly all zeros); the few fixed sets an alert reads with increase() exist at 0."""
    reg = CollectorRegistry()
    Metrics(reg).preinitialise()

    def value(name: str, **labels: str) -> float | None:
        return reg.get_sample_value(name, labels)

    assert value("swarm_medic_scans_total", result="error") == 0
    assert value("swarm_medic_alerts_received_total", result="unauthorized") == 0
    for reason in ("cooldown", "ok", "dry_run"):
        labels = {"runbook": "stuck-task", "verdict": "skip", "reason": reason}
        assert value("swarm_medic_decisions_total", **labels) is None
    for kind in ActionKind:
        labels = {"runbook": "stuck-task", "action": kind.value, "result": "done"}
        assert value("swarm_medic_actions_total", **labels) is None
    assert value("swarm_medic_remediations_total", runbook="stuck-task", result="healed") is None
    assert value("swarm_medic_runbook_errors_total", runbook="stuck-task") is None
    assert not [s for m in reg.collect() for s in m.samples if s.name.endswith("_created")]


# --- CLI: runbooks ----------------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in list(os.environ):
        if var.startswith("SWARM_MEDIC_") or var.startswith("DOCKER_"):
            monkeypatch.delenv(var)


def test_runbooks_lists_the_builtin_runbooks(
    clean_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["runbooks"]) == 0

    out, err = capsys.readouterr()
    reg = registry_mod.load([registry_mod.builtin_dir()])
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == RUNBOOKS
    for line, name in zip(lines, RUNBOOKS, strict=True):
        assert line.endswith(reg.runbooks[name].summary)
    assert "Tasks stuck before running" in lines[RUNBOOKS.index("stuck-task")]
    assert err == ""


def test_runbooks_explains_one(
    clean_env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # stuck-task says each service's thresholds: read from a fake swarm, never the host's
    fake = FakeEngine(node_id="mgr1", now=time.time())
    fake.add_node("manager-1", node_id="mgr1", leader=True)
    fake.add_service("web")
    monkeypatch.setattr(cli, "_engine_factory", lambda _settings: lambda: fake)
    assert cli.main(["runbooks", "stuck-task"]) == 0

    out, _ = capsys.readouterr()
    first, *rest = out.splitlines()
    assert re.fullmatch(r"stuck-task  \(.*stuck_task\.py\)", first)
    body = "\n".join(rest)
    assert "Tasks stuck before running" in body
    assert "What the medic does:" in body
    assert "Risks:" in body
    assert body.endswith(
        "Per service, in this swarm now:\n  web  new=60s (default), pending=60s (default), "
        "assigned=120s (default), preparing=300s (default), starting=300s (default)"
    )


def test_runbooks_says_when_it_cannot_read_the_swarm(
    clean_env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def down() -> FakeEngine:
        raise EngineError("the engine does not answer")

    monkeypatch.setattr(cli, "_engine_factory", lambda _settings: down)
    assert cli.main(["runbooks", "stuck-task"]) == 0
    out, _ = capsys.readouterr()
    assert out.endswith("Per service: cannot read the swarm here (the engine does not answer).\n")


def test_an_unknown_runbook_is_exit_2(clean_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["runbooks", "no-such-runbook"]) == 2

    out, err = capsys.readouterr()
    assert out == ""
    assert err.strip() == ("no runbook named 'no-such-runbook'; known: " + ", ".join(RUNBOOKS))


def test_version(clean_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"swarm-medic {__version__}"


# --- CLI: check -----------------------------------------------------------------------------


def test_check_with_a_bad_setting_is_exit_2_and_names_it(
    clean_env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SWARM_MEDIC_SCAN_INTERVAL", "abc")

    assert cli.main(["check"]) == 2

    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("swarm-medic: wrong setting: SWARM_MEDIC_SCAN_INTERVAL='abc'")
    assert "--scan-interval" in err
    assert "expected a duration" in err


def test_check_with_a_bad_flag_names_the_flag(
    clean_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["check", "--budget-per-hour", "0"]) == 2
    assert "--budget-per-hour='0' is not valid" in capsys.readouterr().err


def test_check_against_an_unreachable_engine_is_exit_3(
    clean_env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    # the real engine and its retries, without the real back-off time
    init = cast(types.FunctionType, DockerEngine.__init__)
    assert init.__kwdefaults__ is not None
    monkeypatch.setitem(init.__kwdefaults__, "sleep", lambda _seconds: None)

    assert cli.main(["check"]) == 3  # could not check

    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("swarm-medic check: could not check: docker info: cannot reach")
    assert "is dockerd running and is DOCKER_HOST right?" in err


@pytest.mark.usefixtures("clean_env")
def test_check_with_a_malformed_docker_host_is_exit_3(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "foo://bar")

    assert cli.main(["check"]) == 3  # could not check
    assert "could not check" in capsys.readouterr().err


@pytest.mark.usefixtures("clean_env")
def test_check_on_a_worker_is_exit_3(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeEngine(node_id=ME)
    fake.manager = False

    def factory(settings: Settings) -> Callable[[], Engine]:
        return lambda: fake

    monkeypatch.setattr(cli, "_engine_factory", factory)

    assert cli.main(["check"]) == 3  # could not check

    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("swarm-medic check: could not check: this engine (node mgr1, ")
    assert "not a swarm manager" in err


# all three services of `sick_swarm` fail: a storm, unless the guard is off (share 1)
NO_STORM = Settings(safety=SafetySettings(storm_share=Share(1.0)))


def sick_swarm() -> FakeEngine:
    """web: opted in, a task hangs in starting; api: its image is missing (rejected 3 times);
    batch: hangs like web but is not opted in."""
    fake = FakeEngine(node_id=ME, now=T0)
    fake.add_node("manager-1", node_id=ME, leader=True)
    web = fake.add_service("web", labels=ENABLE)
    fake.add_task(web, state="starting", node_id=ME, since=T0 - 400)
    api = fake.add_service("api", labels=ENABLE)
    for _ in range(3):
        fake.add_task(api, state="rejected", node_id=ME, since=T0 - 30, err="No such image: api:9")
    batch = fake.add_service("batch")
    fake.add_task(batch, state="starting", node_id=ME, since=T0 - 400)
    return fake


def healthy_swarm() -> FakeEngine:
    fake = FakeEngine(node_id=ME, now=T0)
    fake.add_node("manager-1", node_id=ME, leader=True)
    web = fake.add_service("web", labels=ENABLE)
    fake.add_task(web, state="running", node_id=ME)
    return fake


def report_of(fake: FakeEngine, settings: Settings = NO_STORM) -> Report:
    return diagnose(fake, settings, registry_mod.load([registry_mod.builtin_dir()]), T0)


def table_rows(text: str) -> dict[str, list[str]]:
    """The table's rows by service name, split into columns."""
    rows: dict[str, list[str]] = {}
    for line in text.splitlines():
        cols = re.split(r"\s{2,}", line.strip())
        if len(cols) == 5 and cols[0] in RUNBOOKS:
            rows[cols[1]] = cols
    return rows


def test_check_runs_the_storm_guard_on_its_scan() -> None:
    report = report_of(sick_swarm(), Settings())
    out = io.StringIO()
    render_table(report, out)
    assert "STORM: no action anywhere until it passes; 3 of 3 services failing" in out.getvalue()
    assert {d.reason for d in report.decisions if d.action} == {Reason.STORM, Reason.NOT_OPTED_IN}
    doc = io.StringIO()
    render_json(report, doc)
    assert json.loads(doc.getvalue())["storm"].startswith("3 of 3 services failing")


def test_check_table_says_what_would_be_done_and_changes_nothing() -> None:
    fake = sick_swarm()
    out = io.StringIO()

    report = report_of(fake)
    render_table(report, out)

    text = out.getvalue()
    assert text.startswith(
        "swarm: 1 node(s), 3 service(s), 5 task(s), engine Docker 28.5.2-fake (API 1.51)\n"
    )
    assert "RUNBOOK" in text
    assert "WOULD DO" in text
    rows = table_rows(text)
    assert rows["web"][:4] == ["stuck-task", "web", "warning", "force_update"]
    assert rows["web"][4] == (
        "1 task(s) of web stuck in starting for up to 400s (stuck starting after 300s (default))"
    )
    assert rows["api"][:4] == ["repeated-rejection", "api", "critical", "report only"]
    assert rows["batch"][3] == "force_update (skip: not_opted_in)"
    assert "  repeated-rejection / api:\n    the image cannot be found on the node" in text
    held = f"    not acted on: {Reason.NOT_OPTED_IN.wording}\n"
    # batch's paragraph comes last (the others were not held back), then each service's
    # stuck-task thresholds and where they came from
    assert text.split("\nstuck-task, per service:\n")[0].endswith(held)
    assert "  web    new=60s (default), pending=60s (default)" in text
    assert text.count("not acted on:") == 1
    assert "healthy" not in text
    assert fake.writes == []
    assert fake.read_ledger(Settings().safety.ledger_name) is None


def test_check_table_shows_an_open_circuit_from_the_ledger() -> None:
    fake = sick_swarm()
    web = next(s.id for s in fake.services() if s.name == "web")
    history = History(open_until=T0 + 600, open_reason="1 fix(es) in a row did not hold")
    fake.write_ledger(Settings().safety.ledger_name, None, {PREFIX + web: encode(history)})
    out = io.StringIO()

    render_table(report_of(fake), out)

    assert table_rows(out.getvalue())["web"][3] == "force_update (skip: circuit_open)"


def test_check_json_is_valid_and_complete() -> None:
    out = io.StringIO()

    render_json(report_of(sick_swarm()), out)

    doc = json.loads(out.getvalue())
    assert doc["healthy"] is False
    assert (doc["nodes"], doc["services"], doc["tasks"]) == (1, 3, 5)
    by_service = {f["service"]: f for f in doc["findings"]}
    assert set(by_service) == {"web", "api", "batch"}
    assert (by_service["web"]["would_do"], by_service["web"]["skip_reason"]) == (
        "force_update",
        None,
    )
    assert (by_service["api"]["would_do"], by_service["api"]["skip_reason"]) == (None, "no_action")
    assert by_service["batch"]["skip_reason"] == "not_opted_in"
    assert by_service["batch"]["skip_why"] == Reason.NOT_OPTED_IN.wording
    assert by_service["web"]["skip_why"] is None
    assert by_service["api"]["skip_why"] is None  # report only: nothing was held back
    assert by_service["api"]["runbook"] == "repeated-rejection"
    assert len(by_service["api"]["tasks"]) == 3
    assert by_service["web"]["nodes"] == [ME]
    assert doc["errors"] == []


def test_check_of_a_healthy_swarm() -> None:
    table, as_json = io.StringIO(), io.StringIO()
    report = report_of(healthy_swarm())

    render_table(report, table)
    render_json(report, as_json)

    assert table.getvalue() == (
        "swarm: 1 node(s), 1 service(s), 1 task(s), engine Docker 28.5.2-fake (API 1.51)\n"
        "healthy: no findings\n"
        "\nstuck-task, per service:\n"
        "  web  new=60s (default), pending=60s (default), assigned=120s (default), "
        "preparing=300s (default), starting=300s (default)\n"
    )
    doc = json.loads(as_json.getvalue())
    assert (doc["healthy"], doc["findings"], doc["errors"]) == (True, [], [])


@pytest.mark.parametrize(
    ("make", "argv", "code"),
    [
        (sick_swarm, ["check"], 1),
        (sick_swarm, ["check", "--json"], 1),
        (healthy_swarm, ["check"], 0),
        (healthy_swarm, ["check", "--json"], 0),
    ],
)
@pytest.mark.usefixtures("clean_env")
def test_check_exit_status(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    make: Callable[[], FakeEngine],
    argv: list[str],
    code: int,
) -> None:
    fake = make()

    def factory(settings: Settings) -> Callable[[], Engine]:
        def build() -> Engine:
            return fake

        return build

    monkeypatch.setattr(cli, "_engine_factory", factory)

    assert cli.main(argv) == code

    out, err = capsys.readouterr()
    assert err == ""
    if "--json" in argv:
        assert json.loads(out)["healthy"] is (code == 0)
    else:
        assert ("healthy: no findings" in out) is (code == 0)
    assert fake.writes == []
