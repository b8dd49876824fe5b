"""Alerts in: the webhook payload (hostile ones included), the book, the token. Pure, no port
(tests/pipeline has one); the on-alert runbook is tests/unit/runbooks/test_on_alert.py."""

from __future__ import annotations

import json
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from swarm_medic.core.alerts import (
    MAX_ALERTS,
    MAX_LABELS,
    AlertBook,
    PayloadError,
    decode,
    service_of,
)
from swarm_medic.core.errors import SettingsError
from swarm_medic.core.settings import Settings
from swarm_medic.core.settings import load as load_settings
from swarm_medic.pipeline.alerts import ALERTS_PATH, AlertsEndpoint, route
from swarm_medic.telemetry.journal import Journal
from swarm_medic.telemetry.metrics import Metrics
from tests.builders import NOW
from tests.pipeline.support import Logs, sample

TOKEN = "t0ken-" + "y" * 40


def wire(status: str = "firing", **labels: str) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": "HighLatency", "swarm_service": "web", **labels},
        "annotations": {"summary": "p99  over\n 2s"},
        "startsAt": "2023-11-14T22:13:20.123456789Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph",
        "fingerprint": "fp-" + "".join(sorted(labels.values())),
    }


def payload(*alerts: dict[str, Any], status: str = "firing") -> bytes:
    return json.dumps(
        {
            "version": "4",
            "groupKey": "{}:{}",
            "truncatedAlerts": 0,
            "status": status,
            "receiver": "swarm-medic",
            "groupLabels": {},
            "commonLabels": {},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093",
            "alerts": list(alerts),
        }
    ).encode()


# --- the payload -------------------------------------------------------------------------------


def test_a_webhook_payload_is_read_and_unknown_fields_ignored() -> None:
    note = decode(payload(wire(), wire("resolved", instance="b")))
    assert note.version == "4" and note.receiver == "swarm-medic"
    assert [a.status for a in note.alerts] == ["firing", "resolved"]
    assert note.alerts[0].labels["swarm_service"] == "web"
    assert note.alerts[0].startsAt is not None


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'{"version": "3", "status": "firing", "alerts": []}',
        b'{"version": 4, "status": "firing", "alerts": []}',
        b'{"version": "4", "status": "burning", "alerts": []}',
        b'{"version": "4", "status": "firing"}',
        b'{"version": "4", "status": "firing", "alerts": [{"status": "x"}]}',
        b'{"version": "4", "status": "firing", "alerts": [{"status": "firing", "labels": []}]}',
        b'{"version": "4", "status": "firing", "alerts": [{"status": "firing", '
        b'"labels": {"a": 1}}]}',
        b'{"version": "4", "status": "firing", "alerts": [{"status": "firing", '
        b'"startsAt": "yesterday"}]}',
        b'{"version": "4", "status": "firing", "alerts": [' + b"[" * 5000 + b"]}",
        b"\xff\xfe{}",
    ],
)
def test_anything_else_is_refused_with_a_payload_error(body: bytes) -> None:
    with pytest.raises(PayloadError):
        decode(body)


def test_counts_and_lengths_are_bounded() -> None:
    with pytest.raises(PayloadError, match="length"):
        decode(payload(*[wire(instance=str(i)) for i in range(MAX_ALERTS + 1)]))
    many = {f"l{i}": "v" for i in range(MAX_LABELS + 1)}
    with pytest.raises(PayloadError):
        decode(payload(wire(**many)))
    with pytest.raises(PayloadError):
        decode(payload(wire(swarm_service="x" * 5000)))
    with pytest.raises(PayloadError):
        decode(payload(wire(**{"k" * 500: "v"})))


def test_the_service_label_is_read_in_order() -> None:
    cadvisor = "container_label_com_docker_swarm_service_name"
    assert service_of({cadvisor: "c", "service_name": "b", "swarm_service": "a"}) == "a"
    assert service_of({cadvisor: "c", "service_name": "b"}) == "b"
    assert service_of({cadvisor: "c"}) == "c"
    assert service_of({"swarm_service": "  ", "job": "x"}) == ""


# --- the book ----------------------------------------------------------------------------------


def test_the_book_keeps_firing_alerts_until_resolved() -> None:
    book = AlertBook(max_age=3600)
    got = book.receive(decode(payload(wire(), wire(instance="b"))), NOW)
    assert (got.firing, got.resolved) == (2, 0)
    firing = book.view(NOW).firing
    assert {a.name for a in firing} == {"HighLatency"} and len(firing) == 2
    assert firing[0].service == "web" and firing[0].summary == "p99 over 2s"
    assert firing[0].ends_at is None  # Alertmanager's zero time is no time
    # the same alert again is one alert, not two
    book.receive(decode(payload(wire())), NOW + 1)
    assert len(book.view(NOW + 1).firing) == 2
    got = book.receive(decode(payload(wire("resolved"))), NOW + 2)
    assert got.resolved == 1
    assert [a.labels.get("instance") for a in book.view(NOW + 2).firing] == ["b"]


def test_a_late_firing_of_a_resolved_episode_does_not_come_back_but_a_new_one_does() -> None:
    book = AlertBook(max_age=3600)
    book.receive(decode(payload(wire())), NOW)
    book.receive(decode(payload(wire("resolved"))), NOW + 1)
    got = book.receive(decode(payload(wire())), NOW + 2)  # crossed in the post
    assert got.stale == 1 and book.view(NOW + 2).firing == ()
    again = wire() | {"startsAt": "2023-11-14T23:00:00Z"}
    assert book.receive(decode(payload(again)), NOW + 3).firing == 1
    assert len(book.view(NOW + 3).firing) == 1


def test_a_lost_resolved_does_not_pin_an_alert_forever() -> None:
    book = AlertBook(max_age=600)
    book.receive(decode(payload(wire())), NOW)
    assert len(book.view(NOW + 599).firing) == 1
    book.receive(decode(payload(wire())), NOW + 500)  # Alertmanager repeats: the age restarts
    assert len(book.view(NOW + 1000).firing) == 1
    assert book.view(NOW + 1100).firing == ()


def test_the_book_is_bounded() -> None:
    book = AlertBook(max_age=3600, limit=3)
    for i in range(5):
        book.receive(decode(payload(wire(instance=str(i)))), NOW + i)
    assert [a.labels["instance"] for a in book.view(NOW + 5).firing] == ["2", "3", "4"]


def test_an_alert_without_a_service_is_counted() -> None:
    book = AlertBook(max_age=3600)
    nameless = wire()
    nameless["labels"] = {"alertname": "X"}
    assert book.receive(decode(payload(nameless)), NOW).no_service == 1


# --- the token and the endpoint ----------------------------------------------------------------


class Door:
    def __init__(self, token: str = TOKEN) -> None:
        self.prom = CollectorRegistry()
        metrics = Metrics(self.prom)
        metrics.preinitialise()
        self.logs = Logs()
        self.book = AlertBook(3600)
        self.woken: list[float] = []
        self.endpoint = AlertsEndpoint(
            token,
            self.book if token else None,
            Journal(metrics, self.logs.logger),
            lambda: NOW,
            self.woken.append,
        )

    def post(self, body: bytes, auth: str | None = f"Bearer {TOKEN}") -> int:
        headers = {} if auth is None else {"Authorization": auth}
        handle = route(self.endpoint, lambda *a: (418, {}))
        return handle(ALERTS_PATH, headers, body, "10.0.0.9")[0]

    def count(self, result: str) -> float:
        return sample(self.prom, "swarm_medic_alerts_received_total", result=result)


def test_the_right_token_takes_the_alerts_in_and_wakes_the_scan() -> None:
    door = Door()
    assert door.post(payload(wire()), auth=f"Bearer {TOKEN}\n") == 200
    assert len(door.book.view(NOW).firing) == 1 and door.woken == [0.5]
    assert door.count("accepted") == 1
    assert sample(door.prom, "swarm_medic_alerts_firing") == 1
    (line,) = door.logs.named("alerts: received")
    assert line["firing"] == 1 and line["peer"] == "10.0.0.9"


@pytest.mark.parametrize(
    "auth",
    [None, "", "Bearer", f"Basic {TOKEN}", f"Bearer {TOKEN}x", f"bearer{TOKEN}", "Bearer é"],
)
def test_a_missing_or_wrong_token_is_refused_counted_and_logged_once(auth: str | None) -> None:
    door = Door()
    assert door.post(payload(wire()), auth=auth) == 401
    assert door.post(b"garbage", auth=auth) == 401  # nothing is decoded before the token
    assert door.book.view(NOW).firing == () and door.woken == []
    assert door.count("unauthorized") == 2
    (line,) = door.logs.named("alerts: refused")  # rate-limited: one line a minute
    assert TOKEN not in json.dumps(line, default=str)


def test_a_bad_body_with_the_right_token_is_a_bad_request() -> None:
    door = Door()
    assert door.post(b'{"version": "4"}') == 400
    assert door.count("bad_request") == 1


def test_without_a_token_the_endpoint_does_not_exist() -> None:
    door = Door(token="")
    assert door.post(payload(wire())) == 404
    assert door.post(payload(wire()), auth="Bearer ") == 404
    assert door.count("disabled") == 2


def test_other_paths_go_to_the_channel() -> None:
    door = Door()
    handle = route(door.endpoint, lambda *a: (418, {"channel": True}))
    assert handle("/v1/probe", {}, b"", "x") == (418, {"channel": True})


def test_the_token_is_a_hidden_setting_as_long_as_a_secret(tmp_path: Any) -> None:
    assert Settings().alerts_token == ""
    with pytest.raises(SettingsError) as err:
        load_settings({}, {"SWARM_MEDIC_ALERTS_TOKEN": "short"})
    assert "token" in str(err.value) and "short" not in str(err.value)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    got = load_settings({}, {"SWARM_MEDIC_ALERTS_TOKEN_FILE": str(token_file)})
    assert got.alerts_token == TOKEN
    assert TOKEN not in repr(got)


@pytest.mark.parametrize("token", ["é" * 32, "x" * 31 + "\u2603", "a b" * 16, "x" * 40 + "\t"])
def test_a_token_that_cannot_travel_in_a_header_is_refused_at_start(token: str) -> None:
    # before: accepted, and then no Authorization header could ever match it
    with pytest.raises(SettingsError, match="printable ASCII") as err:
        load_settings({}, {"SWARM_MEDIC_ALERTS_TOKEN": token})
    assert token not in str(err.value) and "<hidden>" in str(err.value)
