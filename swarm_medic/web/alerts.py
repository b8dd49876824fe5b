"""Alerts in: POST /v1/alerts, Alertmanager's webhook, into the AlertBook the scan reads.

The HTTP server (http.py) has already applied every limit of the port (head, body
size and time, workers) before this is called. Here, in this order:

* alerts off (no --alerts-token): 404, as for any path the port does not serve: the
  endpoint does not exist, and a scanner learns nothing more (counted: `disabled`);
* the `Authorization: Bearer <token>` header (Alertmanager's
  `http_config.authorization.credentials_file`) compared in constant time with the token;
  missing or wrong: 401, nothing decoded (counted: `unauthorized`, logged rate-limited);
* the body decoded once into core.alerts.Notification; not one: 400 (`bad_request`);
* the alerts taken into the book: 200 (`accepted`), and the scan woken early.

Every instance that takes the notification keeps it, leader or not: only the leader acts, but
a manager that becomes the leader after a failover already knows which alerts fire (when
Alertmanager sends to every manager; see README "Alerts in").
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from typing import Any

from swarm_medic.core.alerts import AlertBook, PayloadError, decode
from swarm_medic.telemetry.journal import Journal

ALERTS_PATH = "/v1/alerts"
Answer = tuple[int, dict[str, Any]]


class AlertsEndpoint:
    def __init__(
        self,
        token: str,
        book: AlertBook | None,
        journal: Journal,
        clock: Callable[[], float],
        wake: Callable[[float], None] = lambda delay: None,
    ) -> None:
        self._expected = f"Bearer {token}".encode() if token else b""
        self.book = book
        self.journal = journal
        self.clock = clock
        self.wake = wake

    def handle(self, headers: Mapping[str, str], body: bytes, peer: str) -> Answer:
        now = self.clock()
        if not self._expected or self.book is None:
            self.journal.alerts_refused("disabled", peer, "no --alerts-token", now=now)
            return 404, {"error": f"no such endpoint {ALERTS_PATH}: alerts are off"}
        given = _header(headers, "authorization").strip().encode("utf-8", "replace")
        if not hmac.compare_digest(given, self._expected):
            why = "no bearer token" if not given else "wrong bearer token"
            self.journal.alerts_refused("unauthorized", peer, why, now=now)
            return 401, {"error": "unauthorized"}
        try:
            note = decode(body)
        except PayloadError as exc:
            self.journal.alerts_refused("bad_request", peer, str(exc)[:300], now=now)
            return 400, {"error": f"bad request: {str(exc)[:300]}"}
        received = self.book.receive(note, now)
        firing_now = len(self.book.view(now).firing)
        self.journal.alerts_received(peer, note.receiver, note.status, received, firing_now)
        self.wake(0.5)
        return 200, {"ok": True, "firing": received.firing, "resolved": received.resolved}


def _header(headers: Mapping[str, str], name: str) -> str:
    # httphead keeps header names as sent or lower-cased: accept either
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return ""


def route(
    alerts: AlertsEndpoint, control: Callable[[str, Mapping[str, str], bytes, str], Answer]
) -> Callable[[str, Mapping[str, str], bytes, str], Answer]:
    """The port's POST handler: /v1/alerts here, every other /v1/* path to `control`."""

    def handle(path: str, headers: Mapping[str, str], body: bytes, peer: str) -> Answer:
        if path == ALERTS_PATH:
            return alerts.handle(headers, body, peer)
        return control(path, headers, body, peer)

    return handle
