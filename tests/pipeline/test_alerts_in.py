"""Alerts in, end to end on 127.0.0.1: Alertmanager's webhook POSTed to the real HTTP port ->
the AlertBook -> a scan's on-alert finding -> the policy -> a force update on the FakeEngine
-> verification that waits for both convergence and the alert's "resolved"."""

from __future__ import annotations

import http.client
import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from swarm_medic.core.alerts import AlertBook
from swarm_medic.core.settings import Settings
from swarm_medic.pipeline import registry as registry_mod
from swarm_medic.pipeline.alerts import ALERTS_PATH, AlertsEndpoint, route
from swarm_medic.pipeline.scan import Medic
from swarm_medic.swarm.fake import FakeEngine
from swarm_medic.telemetry.http import Server, serve
from swarm_medic.telemetry.journal import Journal
from swarm_medic.telemetry.metrics import Metrics
from tests.builders import NOW as T0
from tests.pipeline.support import Logs, sample

ME = "mgr1"
TOKEN = "alert-token-" + "z" * 40
LABELS = {"swarm-medic.enable": "true", "swarm-medic.on-alert.LabStale": "force-update"}


def note(status: str) -> bytes:
    alert = {
        "status": status,
        "labels": {"alertname": "LabStale", "swarm_service": "web", "severity": "warning"},
        "annotations": {"summary": "web started too long ago"},
        "startsAt": "2023-11-14T22:13:00Z",
        "endsAt": "2023-11-14T22:20:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
        "fingerprint": "0123456789abcdef",
    }
    return json.dumps(
        {"version": "4", "status": status, "receiver": "medic", "alerts": [alert]}
    ).encode()


class World:
    def __init__(self) -> None:
        self.fake = FakeEngine(node_id=ME, now=T0)
        self.fake.add_node("manager-1", node_id=ME, leader=True)
        self.sid = self.fake.add_service("web", labels=LABELS)
        self.tid = self.fake.add_task(self.sid, state="running", node_id=ME, since=T0 - 600)
        self.prom = CollectorRegistry()
        metrics = Metrics(self.prom)
        self.logs = Logs()
        journal = Journal(metrics, self.logs.logger)
        reg = registry_mod.load([registry_mod.builtin_dir()])
        metrics.preinitialise()
        self.now = [T0]
        book = AlertBook(Settings().alerts_max_age)
        ids = itertools.count(1)
        self.medic = Medic(
            self.fake,
            Settings(verify_hold=5.0, verify_timeout=60.0),
            reg,
            journal,
            clock=lambda: self.now[0],
            make_id=lambda: f"inc-{next(ids)}",
            alerts=book,
        )
        self.wakes: list[float] = []
        endpoint = AlertsEndpoint(TOKEN, book, journal, lambda: self.now[0], self.wakes.append)
        self.server: Server = serve(
            "127.0.0.1",
            0,
            self.prom,
            lambda: (True, {}),
            route(endpoint, lambda *a: (404, {"error": "no channel"})),
            journal=journal,
        )
        self.port = int(self.server.server_address[1])

    def post(self, body: bytes, token: str = TOKEN) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request(
                "POST",
                ALERTS_PATH,
                body=body,
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            resp = conn.getresponse()
            resp.read()
            return resp.status
        finally:
            conn.close()

    def scan(self, at: float) -> None:
        self.now[0] = at
        self.medic.scan()

    def converge(self) -> None:
        """What swarm does after the force update: a new task running, the update done."""
        self.fake.set_task_state(self.tid, "shutdown", desired="shutdown")
        self.fake.add_task(self.sid, state="running", node_id=ME)
        self.fake.set_update_status(self.sid, "completed")

    def metric(self, name: str, **labels: str) -> float:
        return sample(self.prom, name, **labels)

    def lines(self, event: str) -> list[dict[str, Any]]:
        return self.logs.named(event)


@pytest.fixture
def world() -> Iterator[World]:
    w = World()
    try:
        yield w
    finally:
        w.server.shutdown()


def acted(w: World) -> float:
    return w.metric(
        "swarm_medic_actions_total", runbook="on-alert", action="force_update", result="done"
    )


def test_an_alert_is_acted_on_and_healed_once_it_resolves(world: World) -> None:
    w = world
    w.scan(T0)
    assert acted(w) == 0  # nothing fires yet
    assert w.post(note("firing")) == 200
    assert w.wakes == [0.5]
    w.scan(T0 + 1)
    assert acted(w) == 1
    (opened,) = [e for e in w.lines("finding") if e["runbook"] == "on-alert"]
    incident = opened["incident"]
    assert "LabStale" in opened["summary"]
    w.converge()
    w.scan(T0 + 2)
    w.scan(T0 + 10)  # converged and held, but the alert still fires: not healed
    assert w.logs.starting("verified:") == []
    assert acted(w) == 1  # one fix being verified: not again
    assert w.post(note("resolved")) == 200
    w.scan(T0 + 11)
    w.scan(T0 + 17)
    outcomes = w.logs.starting("verified:")
    assert [(e["event"], e["incident"]) for e in outcomes] == [("verified: healed", incident)]
    assert "LabStale resolved" in outcomes[0]["detail"]
    assert w.metric("swarm_medic_remediations_total", runbook="on-alert", result="healed") == 1
    assert w.metric("swarm_medic_alerts_received_total", result="accepted") == 2


def test_an_alert_that_does_not_resolve_is_not_healed(world: World) -> None:
    w = world
    assert w.post(note("firing")) == 200
    w.scan(T0)
    assert acted(w) == 1
    w.converge()
    for at in (T0 + 10, T0 + 30, T0 + 61):
        w.scan(at)
    outcomes = w.logs.starting("verified:")
    assert [e["event"] for e in outcomes] == ["verified: NOT healed"]
    assert "still firing" in outcomes[0]["detail"]
    assert w.metric("swarm_medic_remediations_total", runbook="on-alert", result="not_healed") == 1


def test_a_wrong_token_changes_nothing_and_is_counted(world: World) -> None:
    w = world
    assert w.post(note("firing"), token="x" * 50) == 401
    w.scan(T0)
    assert acted(w) == 0
    assert w.metric("swarm_medic_alerts_received_total", result="unauthorized") == 1


def test_a_report_only_service_is_reported_not_touched(world: World) -> None:
    w = world
    w.fake.add_service("api", labels={"swarm-medic.enable": "true"})
    body = note("firing").replace(b'"web"', b'"api"')
    assert w.post(body) == 200
    w.scan(T0)
    assert acted(w) == 0
    (opened,) = [e for e in w.lines("finding") if e["runbook"] == "on-alert"]
    assert opened["service"] == "api"
