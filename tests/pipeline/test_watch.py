"""The Watcher on the FakeEngine's event stream: relevance, malformed events, reconnect, stop.

No real time passes in back-off: the watcher's `sleep` is injected (it records the delay and
returns at once, or when the test releases it). Waits are on threading conditions with short
timeouts, never fixed sleeps.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry

from swarm_medic.core.model import Event
from swarm_medic.pipeline.watch import Watcher, relevant
from swarm_medic.swarm import EventStream
from swarm_medic.swarm.fake import FakeEngine
from swarm_medic.swarm.mapping import event_from_api
from swarm_medic.telemetry.journal import Journal
from tests.pipeline.support import Logs, sample
from tests.waiting import wait_until

SEC = 10**9
N0 = 1_700_000_100 * SEC  # where the watcher starts reading


def ev(etype: str, action: str, actor: str, nano: int) -> dict[str, Any]:
    """An event shaped like the Engine API's /events."""
    return {
        "Type": etype,
        "Action": action,
        "Actor": {"ID": actor, "Attributes": {"name": f"{actor}-name"}},
        "scope": "swarm",
        "time": nano // SEC,
        "timeNano": nano,
    }


def event(etype: str, action: str, actor: str, nano: int) -> Event:
    """The same event as the engine's stream yields it to the watcher: decoded."""
    return event_from_api(ev(etype, action, actor, nano))


def emit_raw(fake: FakeEngine, raw: object) -> None:
    """Publishes anything, not only a well-formed event (the engine's bytes are not typed)."""
    fake.emit(cast(dict[str, Any], raw))


class Received:
    """The watcher's on_event: keeps the events and lets a test wait for the n-th one."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._cond = threading.Condition()

    def __call__(self, event: Event) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def wait_for(self, n: int, timeout: float = 1.0) -> list[str]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.events) >= n, timeout):
                raise AssertionError(f"{len(self.events)} of {n} events arrived: {self.actors()}")
            return self.actors()

    def actors(self) -> list[str]:
        return [e.actor_id for e in self.events]


class Backoff:
    """The watcher's injected sleep: records each delay and returns when released."""

    def __init__(self, *, auto: bool = True) -> None:
        self.delays: list[float] = []
        self.release = threading.Event()
        self.stopping = threading.Event()
        if auto:
            self.release.set()

    def __call__(self, delay: float) -> bool:
        self.delays.append(delay)
        self.release.wait(2.0)
        return self.stopping.is_set()  # True: stop asked during back-off


class RecordingFake(FakeEngine):
    """A FakeEngine that records the `since` of every events() call; its second call (the
    first reconnect) can be held until `proceed` is set."""

    def __init__(self, *, hold_reconnect: bool = False) -> None:
        super().__init__(node_id="mgr1")
        self.since: list[int | None] = []
        self.hold_reconnect = hold_reconnect
        self.reconnecting = threading.Event()
        self.proceed = threading.Event()

    def events(self, since_nano: int | None) -> EventStream:
        self.since.append(since_nano)
        if self.hold_reconnect and len(self.since) == 2:
            self.reconnecting.set()
            self.proceed.wait(2.0)
        return super().events(since_nano)


@contextmanager
def watching(
    fake: FakeEngine,
    journal: Journal,
    received: Received,
    backoff: Backoff | None = None,
    since: int | None = N0,
) -> Iterator[Watcher]:
    backoff = backoff or Backoff()
    w = Watcher(fake, journal, received, sleep=backoff)
    w.start(since_nano=since)
    try:
        yield w
    finally:
        backoff.stopping.set()
        backoff.release.set()
        w.stop()
        assert w._thread is not None
        assert not w._thread.is_alive()


def connections(logs: Logs) -> int:
    return len(logs.named("event stream connected"))


# --- what reaches on_event ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("etype", "action", "expected"),
    [
        ("service", "update", True),
        ("service", "create", True),
        ("service", "remove", True),
        ("node", "update", True),
        ("container", "die", True),
        ("container", "oom", True),
        ("container", "health_status: unhealthy", True),
        ("container", "health_status: healthy", True),
        ("container", "exec_start: sh", False),
        ("container", "attach", False),
        ("network", "connect", False),
        ("image", "pull", False),
        ("service", "exec_start", False),
    ],
)
def test_relevant(etype: str, action: str, expected: bool) -> None:
    assert relevant(Event(etype, action, "x", N0)) is expected


def test_only_relevant_events_reach_on_event(
    journal: Journal, logs: Logs, prom: CollectorRegistry
) -> None:
    fake, received = FakeEngine(), Received()
    with watching(fake, journal, received) as w:
        wait_until("connected", lambda: connections(logs) == 1)
        for raw in [
            ev("service", "update", "s1", N0 + 1),
            ev("container", "exec_start: sh", "c1", N0 + 2),
            ev("node", "update", "n1", N0 + 3),
            ev("network", "connect", "net1", N0 + 4),
            ev("container", "health_status: healthy", "c2", N0 + 5),
            ev("container", "die", "c3", N0 + 6),
            ev("service", "update", "s2", N0 + 7),
        ]:
            fake.emit(raw)
        assert received.wait_for(5) == ["s1", "n1", "c2", "c3", "s2"]
        assert w.handled == 7
        assert w.last_nano == N0 + 7
        (first,) = received.events[:1]
        assert first == Event("service", "update", "s1", N0 + 1, first.attributes)
        assert dict(first.attributes) == {"name": "s1-name"}
    assert sample(prom, "swarm_medic_events_total", type="service") == 2
    assert sample(prom, "swarm_medic_events_total", type="container") == 3
    assert sample(prom, "swarm_medic_events_total", type="node") == 1
    assert sample(prom, "swarm_medic_events_total", type="network") == 1
    assert sample(prom, "swarm_medic_events_malformed_total") == 0


def test_malformed_events_are_logged_counted_and_skipped(
    journal: Journal, logs: Logs, prom: CollectorRegistry
) -> None:
    fake, received = FakeEngine(), Received()
    bad: list[object] = [
        "not a dict",
        ["a", "list"],
        {"Action": "update", "Actor": {"ID": "x"}, "time": N0 // SEC},  # no Type
        {"Type": "service", "Action": "update", "Actor": {"ID": "x"}},  # no time
        {"Type": "service", "Action": "update", "timeNano": "soon"},  # no usable time
    ]
    with watching(fake, journal, received) as w:
        wait_until("connected", lambda: connections(logs) == 1)
        for raw in bad:
            emit_raw(fake, raw)
        fake.emit(ev("service", "update", "good", N0 + 1))

        assert received.wait_for(1) == ["good"]
        assert w.handled == 1
        assert w.connected
    skipped = logs.named("malformed event skipped")
    assert [e["error"] for e in skipped] == [
        "event is not an object: str",
        "event is not an object: list",
        "event without Type/Action: keys ['Action', 'Actor', 'time']",
        "service update event without a time",
        "service update event without a time",
    ]
    assert skipped[0]["raw"] == "'not a dict'"
    assert all(e["log_level"] == "error" for e in skipped)
    assert sample(prom, "swarm_medic_events_malformed_total") == 5
    assert logs.starting("event stream lost") == []  # a bad event is not a lost stream
    assert connections(logs) == 1


# --- losing the stream ---------------------------------------------------------------------


def test_a_lost_stream_resumes_from_the_last_event_and_loses_and_repeats_nothing(
    journal: Journal, logs: Logs, prom: CollectorRegistry
) -> None:
    fake, received, backoff = RecordingFake(), Received(), Backoff(auto=False)
    t1, t2, t3 = N0 + 5 * SEC, N0 + 6 * SEC, N0 + 7 * SEC
    with watching(fake, journal, received, backoff) as w:
        wait_until("connected", lambda: connections(logs) == 1)
        fake.emit(ev("service", "update", "a", t1))
        fake.emit(ev("service", "update", "b", t1))  # same instant, another service
        assert received.wait_for(2) == ["a", "b"]

        fake.drop_streams()  # dockerd restarts
        wait_until("back-off", lambda: backoff.delays)
        assert not w.connected
        assert sample(prom, "swarm_medic_event_stream_connected") == 0
        (lost,) = logs.starting("event stream lost")
        assert lost["error"] == "stream ended (engine restarted or closed the connection)"
        assert 0.5 <= lost["retry_in_seconds"] <= 1.0
        assert lost["log_level"] == "warning"
        # while disconnected: one more event of the same instant, and a later one
        fake.emit(ev("service", "update", "c", t1))
        fake.emit(ev("node", "update", "d", t2))

        backoff.release.set()
        assert received.wait_for(4) == ["a", "b", "c", "d"]
        fake.emit(ev("service", "remove", "e", t3))  # live again, after the replayed backlog
        assert received.wait_for(5) == ["a", "b", "c", "d", "e"]
        assert w.handled == 5

    assert fake.since == [N0, t1]  # resumed from the last event's timeNano
    first, again = logs.named("event stream connected")
    assert (first["resumed_from"], first["reconnect"]) == (N0, False)
    assert (again["resumed_from"], again["reconnect"]) == (t1, True)
    assert sample(prom, "swarm_medic_event_stream_reconnects_total") == 1
    assert sample(prom, "swarm_medic_events_total", type="service") == 4
    assert len(received.events) == 5


def test_engine_down_backs_off_longer_each_time_then_reconnects(
    journal: Journal, logs: Logs, prom: CollectorRegistry
) -> None:
    fake, received, backoff = RecordingFake(), Received(), Backoff()
    fake.unavailable(3)
    with watching(fake, journal, received, backoff) as w:
        wait_until("connected after 3 failures", lambda: w.connected)
        lost = logs.starting("event stream lost")
        assert [e["error"] for e in lost] == ["EngineUnavailable: fake engine is down"] * 3
        # exponential (0.5 s, 1 s, 2 s) plus up to 0.5 s of jitter
        assert len(backoff.delays) == 3
        for delay, base in zip(backoff.delays, (0.5, 1.0, 2.0), strict=True):
            assert base <= delay <= base + 0.5
        assert fake.since == [N0] * 4

        fake.emit(ev("service", "update", "s1", N0 + 1))
        assert received.wait_for(1) == ["s1"]

        # a connection that worked resets the back-off
        fake.drop_streams()
        wait_until("a fourth back-off", lambda: len(backoff.delays) == 4)
        assert 0.5 <= backoff.delays[3] <= 1.0
        wait_until("reconnected", lambda: connections(logs) == 2)
    assert sample(prom, "swarm_medic_event_stream_reconnects_total") == 2
    assert fake.since == [N0] * 4 + [N0 + 1]


def test_start_resumes_from_since_and_none_means_from_now(journal: Journal, logs: Logs) -> None:
    fake, received = FakeEngine(), Received()
    fake.emit(ev("service", "update", "before", N0 - 1))
    fake.emit(ev("service", "update", "at", N0))
    fake.emit(ev("service", "update", "after", N0 + 1))
    with watching(fake, journal, received, since=N0):
        assert received.wait_for(2) == ["at", "after"]

    fresh, received2 = Logs(), Received()
    other = Journal(journal.metrics, fresh.logger)
    with watching(fake, other, received2, since=None):
        wait_until("connected", lambda: connections(fresh) == 1)
        fake.emit(ev("service", "update", "live", N0 + 2))
        assert received2.wait_for(1) == ["live"]  # nothing from the backlog


# --- stopping ------------------------------------------------------------------------------


def test_stop_ends_a_connected_watcher_promptly(journal: Journal, logs: Logs) -> None:
    fake = FakeEngine()
    w = Watcher(fake, journal, Received(), sleep=Backoff())
    w.start(since_nano=N0)
    wait_until("connected", lambda: w.connected)

    started = time.monotonic()
    w.stop()

    assert time.monotonic() - started < 0.5
    assert w._thread is not None
    assert not w._thread.is_alive()
    assert not w.connected
    assert logs.starting("event stream lost") == []  # stopping is not losing the stream


def test_stop_interrupts_the_default_back_off(journal: Journal, logs: Logs) -> None:
    fake = FakeEngine()
    fake.unavailable(5)
    w = Watcher(fake, journal, Received())  # the real, interruptible back-off (0.5 s and up)
    w.start(since_nano=N0)
    wait_until("the first back-off", lambda: logs.starting("event stream lost"))

    started = time.monotonic()
    w.stop()

    assert time.monotonic() - started < 0.3
    assert w._thread is not None
    assert not w._thread.is_alive()
    assert len(logs.starting("event stream lost")) == 1


def test_stop_during_a_reconnect_ends_the_thread_promptly(journal: Journal, logs: Logs) -> None:
    fake = RecordingFake(hold_reconnect=True)
    w = Watcher(fake, journal, Received(), sleep=Backoff())
    w.start(since_nano=N0)
    wait_until("connected", lambda: w.connected)
    fake.drop_streams()
    assert fake.reconnecting.wait(1.0)  # the watcher is inside events(), reconnecting

    stopper = threading.Thread(target=w.stop)
    stopper.start()
    wait_until("stop requested", w._stop.is_set)
    fake.proceed.set()  # the reconnect completes just after stop() was called
    try:
        stopper.join(timeout=0.5)
        assert w._thread is not None
        assert not w._thread.is_alive()
    finally:
        fake.drop_streams()  # end the stream the watcher reopened, so the thread exits
        stopper.join(timeout=2.0)


# --- events stamped in the future --------------------------------------------------------


def test_an_event_from_the_future_is_handled_once_but_does_not_move_the_resume_point(
    journal: Journal,
) -> None:
    received = Received()
    now = [N0 / SEC + 10]
    w = Watcher(FakeEngine(), journal, received, clock=lambda: now[0])
    w.last_nano = N0
    skewed = event("service", "update", "from-the-future", N0 + 3600 * SEC)

    w.handle(skewed)
    w.handle(event("service", "update", "real-1", N0 + 1 * SEC))
    w.handle(skewed)  # replayed after a reconnect: not handled again
    w.handle(event("service", "update", "real-2", N0 + 2 * SEC))

    assert received.actors() == ["from-the-future", "real-1", "real-2"]
    assert w.last_nano == N0 + 2 * SEC
    assert w.handled == 3


def test_an_event_stamped_even_a_little_ahead_never_moves_the_resume_point_past_now(
    journal: Journal,
) -> None:
    # before: up to 60 s ahead moved it, and the real events of those 60 s were skipped
    received = Received()
    w = Watcher(FakeEngine(), journal, received, clock=lambda: N0 / SEC)
    w.last_nano = N0 - SEC
    w.handle(event("service", "update", "ahead", N0 + 59 * SEC))
    assert w.last_nano == N0 - SEC
    w.handle(event("service", "update", "real", N0 - SEC // 2))  # real, after the resume point
    w.handle(event("service", "update", "ahead", N0 + 59 * SEC))  # replayed: handled once
    assert received.actors() == ["ahead", "real"]
    assert w.last_nano == N0 - SEC // 2


def test_an_event_of_the_past_still_moves_the_resume_point(journal: Journal) -> None:
    received = Received()
    w = Watcher(FakeEngine(), journal, received, clock=lambda: N0 / SEC + 60)
    w.handle(event("service", "update", "s1", N0 + 59 * SEC))
    assert w.last_nano == N0 + 59 * SEC
    w.handle(event("service", "update", "s0", N0 + 30 * SEC))  # older than the resume point
    assert received.actors() == ["s1"]


def test_the_resume_point_after_a_future_event_is_the_last_real_one(
    journal: Journal, logs: Logs
) -> None:
    fake, received = RecordingFake(), Received()
    now = N0 / SEC + 10
    w = Watcher(fake, journal, received, sleep=Backoff(), clock=lambda: now)
    w.start(since_nano=N0)
    try:
        wait_until("connected", lambda: connections(logs) == 1)
        fake.emit(ev("service", "update", "real", N0 + SEC))
        fake.emit(ev("service", "update", "skewed", N0 + 86400 * SEC))
        received.wait_for(2)
        fake.emit(ev("service", "update", "later", N0 + 2 * SEC))
        assert received.wait_for(3) == ["real", "skewed", "later"]
        assert w.last_nano == N0 + 2 * SEC
    finally:
        w.stop()
