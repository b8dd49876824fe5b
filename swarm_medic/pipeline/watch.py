"""watch: the Engine event stream -> early scans. Reconnects with back-off, loses nothing.

On every (re)connect the stream is resumed with `since` = the time of the last event seen, and
the events of that same instant that were already handled are skipped, so a disconnect neither
loses nor repeats events. Malformed events are logged, counted and skipped.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

import tenacity

from swarm_medic.core.model import Event
from swarm_medic.swarm import EventStream, MalformedEvent, SwarmReader
from swarm_medic.telemetry.journal import Journal

# Service and node changes can start or end a fault; container die/start/health changes are
# what a stuck or crash-looping task looks like from this node.
RELEVANT = {
    "service": {"create", "update", "remove"},
    "node": {"create", "update", "remove"},
    "container": {"start", "die", "kill", "oom", "health_status: unhealthy", "destroy"},
}


# An event stamped after now (clock skew, a buggy or hostile engine) is handled but never
# moves the resume point: the real events stamped between now and it would look already seen
# and be skipped, on this stream and on every reconnect. Even a second ahead is too far.
FUTURE_REMEMBERED = 1024  # such events are handled once, even when `since` replays them


def relevant(ev: Event) -> bool:
    return ev.action in RELEVANT.get(ev.type, set()) or (
        ev.type == "container" and ev.action.startswith("health_status")
    )


class Watcher:
    """The event stream's thread: a scan on a timer alone would see a fault up to a scan
    interval late, so relevant events bring the next scan forward; it owns reconnecting so
    that a lost stream never stops the timed scans."""

    def __init__(
        self,
        engine: SwarmReader,
        journal: Journal,
        on_event: Callable[[Event], None],
        *,
        sleep: Callable[[float], bool] | None = None,
        backoff_max: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._engine = engine
        self._journal = journal
        self._on_event = on_event
        self._stop = threading.Event()
        # `sleep` returns True when asked to stop (threading.Event.wait), so back-off is
        # interruptible and tests can inject an instant one.
        self._sleep = sleep or self._stop.wait
        self._wait = tenacity.wait_exponential(
            multiplier=0.5, max=backoff_max
        ) + tenacity.wait_random(0, 0.5)
        self._stream: EventStream | None = None
        self._thread: threading.Thread | None = None
        self.last_nano: int | None = None
        self._same_instant: set[tuple[int, str, str, str]] = set()
        self._clock = clock
        self._future: OrderedDict[tuple[int, str, str, str], None] = OrderedDict()
        self.connected = False
        self.handled = 0

    def start(self, since_nano: int | None = None) -> None:
        self.last_nano = since_nano
        self._thread = threading.Thread(target=self.run, name="swarm-medic-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        stream = self._stream
        if stream is not None:
            # closing a dead socket can fail; we are leaving anyway
            with contextlib.suppress(Exception):
                stream.close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def handle(self, ev: Event | MalformedEvent) -> None:
        if isinstance(ev, MalformedEvent):
            self._journal.event_malformed(ev.error, ev.raw)
            return
        if self.last_nano is not None and ev.time_nano < self.last_nano:
            return
        if ev.identity in self._same_instant or ev.identity in self._future:
            return  # replayed by `since` after a reconnect
        if ev.time_nano > self._clock() * 1e9:
            self._future[ev.identity] = None
            if len(self._future) > FUTURE_REMEMBERED:
                self._future.popitem(last=False)
        else:
            if self.last_nano is None or ev.time_nano > self.last_nano:
                self.last_nano = ev.time_nano
                self._same_instant = set()
            self._same_instant.add(ev.identity)
        self.handled += 1
        self._journal.event(ev.type)
        if relevant(ev):
            self._on_event(ev)

    def run(self) -> None:
        attempt = 0
        reconnect = False
        while not self._stop.is_set():
            try:
                self._stream = self._engine.events(self.last_nano)
                if self._stop.is_set():  # stop() ran while we were reconnecting
                    with contextlib.suppress(Exception):
                        self._stream.close()
                    return
                self.connected = True
                self._journal.stream_connected(self.last_nano, reconnect)
                attempt = 0
                for ev in self._stream:
                    if self._stop.is_set():
                        return
                    self.handle(ev)
                error = "stream ended (engine restarted or closed the connection)"
            except Exception as exc:  # noqa: BLE001 - the watcher must outlive any engine failure
                error = f"{type(exc).__name__}: {exc}"
            self.connected = False
            if self._stop.is_set():
                return
            attempt += 1
            reconnect = True
            delay = _backoff(self._wait, attempt)
            self._journal.stream_lost(error, delay)
            if self._sleep(delay):
                return


def _backoff(wait: tenacity.wait.wait_base, attempt: int) -> float:
    state = tenacity.RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]  # only attempt_number is read
    state.attempt_number = attempt
    return float(wait(state))
