"""Alerts in: Alertmanager's webhook payload, decoded once at the edge, and the alerts held.

Pure: no network, no clock (every method is given `now`), no logging. `decode` turns the bytes
of a `POST /v1/alerts` body into a `Notification` (Alertmanager's webhook payload, version 4)
or raises `PayloadError`; `AlertBook` keeps the alerts that fire, by fingerprint, and forgets
them when Alertmanager says they resolved, or `max_age` after the last notification that named
them (so a lost "resolved" does not pin an alert forever). Alertmanager repeats a firing group
every `repeat_interval` (4h by default): `max_age` must be longer than that. `endsAt` of a
firing alert is not its end (Prometheus sets it a few resend intervals ahead and renews it,
but Alertmanager tells us again only at `repeat_interval`), so it is kept, never obeyed.

Which service an alert is about is read from a label: SERVICE_LABELS, in that order.
Unknown fields are ignored; every string, map and list is bounded, so a hostile body costs at
most what the HTTP server's body limit lets in.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Annotated, Final, Literal

import msgspec
from msgspec import Meta

# The labels that name the swarm service an alert is about, in order of preference: our own,
# a common one in hand-written rules, and the one cAdvisor puts on every container's metrics.
SERVICE_LABELS: Final = (
    "swarm_service",
    "service_name",
    "container_label_com_docker_swarm_service_name",
)
MAX_ALERTS: Final = 1000  # alerts of one notification (Alertmanager's max_alerts is 0 = all)
MAX_LABELS: Final = 64
MAX_KEY: Final = 128
MAX_VALUE: Final = 1024
MAX_BOOK: Final = 4096  # alerts held at once: past it the oldest are dropped
SUMMARY_MAX: Final = 300  # what a finding quotes of an annotation

Key = Annotated[str, Meta(max_length=MAX_KEY)]
Value = Annotated[str, Meta(max_length=MAX_VALUE)]
Labels = Annotated[dict[Key, Value], Meta(max_length=MAX_LABELS)]
Status = Literal["firing", "resolved"]


class PayloadError(ValueError):
    """A body that is not an Alertmanager webhook payload we read; the text is safe to log."""


class WireAlert(msgspec.Struct, frozen=True):
    status: Status
    labels: Labels = {}
    annotations: Labels = {}
    startsAt: datetime | None = None  # noqa: N815 - Alertmanager's field names
    endsAt: datetime | None = None  # noqa: N815
    fingerprint: Annotated[str, Meta(max_length=MAX_KEY)] = ""


class Notification(msgspec.Struct, frozen=True):
    """Alertmanager's webhook payload, what we read of it (version 4)."""

    version: Literal["4"]
    status: Status
    alerts: Annotated[list[WireAlert], Meta(max_length=MAX_ALERTS)]
    receiver: Annotated[str, Meta(max_length=MAX_VALUE)] = ""


_DECODER = msgspec.json.Decoder(Notification)


def decode(body: bytes) -> Notification:
    try:
        return _DECODER.decode(body)
    except msgspec.ValidationError as exc:
        raise PayloadError(f"not an Alertmanager webhook payload (version 4): {exc}") from None
    except msgspec.DecodeError as exc:
        raise PayloadError(f"not JSON: {exc}") from None
    except RecursionError:
        # a value nested deeper than the recursion limit, anywhere (unknown fields included)
        raise PayloadError("JSON nested too deeply") from None
    except UnicodeDecodeError as exc:
        raise PayloadError(f"not UTF-8: {exc.reason}") from None


def _epoch(when: datetime | None) -> float | None:
    # Alertmanager writes the zero time (0001-01-01) for "no end": not a time at all
    if when is None or when.year < 1971:
        return None
    return when.timestamp()


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert as a runbook reads it (`ctx.alerts.firing`): `name` is its alertname,
    `service` the swarm service its labels name ("" if none), `summary` its summary (or
    description) annotation, cut to SUMMARY_MAX characters."""

    fingerprint: str
    name: str
    service: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: float | None
    ends_at: float | None
    received_at: float

    @property
    def summary(self) -> str:
        text = self.annotations.get("summary") or self.annotations.get("description") or ""
        return " ".join(text.split())[:SUMMARY_MAX]


def service_of(labels: Mapping[str, str]) -> str:
    for name in SERVICE_LABELS:
        value = labels.get(name, "").strip()
        if value:
            return value
    return ""


def _identity(a: WireAlert) -> str:
    # Alertmanager always sends a fingerprint; a hand-made one without falls back to labels
    return a.fingerprint or "|".join(f"{k}={v}" for k, v in sorted(a.labels.items()))


@dataclass(frozen=True)
class Alerts:
    """What a runbook that declares NEEDS = (ALERTS,) reads: the alerts firing now."""

    firing: tuple[Alert, ...] = ()

    def firing_for(self, name: str, service: str, *also: str) -> tuple[Alert, ...]:
        """The firing alerts called `name` that name `service` (or one of `also`: its id)."""
        names = {service, *also}
        return tuple(a for a in self.firing if a.name == name and a.service in names)


@dataclass(frozen=True)
class Received:
    """What one notification changed: alerts now firing and resolved, and how many were
    stale (a firing that Alertmanager had already resolved) or did not name a service."""

    firing: int = 0
    resolved: int = 0
    stale: int = 0
    no_service: int = 0


class AlertBook:
    """The alerts Alertmanager said fire, by fingerprint. Thread-safe: the HTTP workers write,
    the scan reads (`view`)."""

    def __init__(self, max_age: float, limit: int = MAX_BOOK) -> None:
        self.max_age = max_age
        self.limit = limit
        self._firing: dict[str, Alert] = {}
        # fingerprint -> startsAt of its last resolution: a late "firing" of that same episode
        # (notifications of one group may cross) must not bring it back
        self._resolved: dict[str, float | None] = {}
        self._lock = threading.Lock()

    def receive(self, note: Notification, now: float) -> Received:
        firing = resolved = stale = no_service = 0
        with self._lock:
            for a in note.alerts:
                fp = _identity(a)
                starts = _epoch(a.startsAt)
                if a.status == "resolved":
                    resolved += self._firing.pop(fp, None) is not None
                    self._resolved[fp] = starts
                    continue
                if fp in self._resolved and self._resolved[fp] == starts:
                    stale += 1
                    continue
                self._resolved.pop(fp, None)
                service = service_of(a.labels)
                no_service += not service
                self._firing.pop(fp, None)  # re-inserted: the dict's order is by last news
                self._firing[fp] = Alert(
                    fp,
                    a.labels.get("alertname", ""),
                    service,
                    MappingProxyType(dict(a.labels)),
                    MappingProxyType(dict(a.annotations)),
                    starts,
                    _epoch(a.endsAt),
                    now,
                )
                firing += 1
            self._trim(now)
        return Received(firing, resolved, stale, no_service)

    def _trim(self, now: float) -> None:
        self._firing = {k: a for k, a in self._firing.items() if now - a.received_at < self.max_age}
        for book in (self._firing, self._resolved):
            while len(book) > self.limit:
                del book[next(iter(book))]  # insertion order: the oldest first

    def view(self, now: float) -> Alerts:
        with self._lock:
            self._trim(now)
            return Alerts(tuple(self._firing.values()))

    def load(self, alerts: Iterable[Alert]) -> None:
        """Alerts held as they are (tests)."""
        with self._lock:
            self._firing.update((a.fingerprint, a) for a in alerts)
