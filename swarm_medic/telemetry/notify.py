"""Notifications: each step of an incident told to people through Apprise, off the scan's path.

One Apprise URL per receiver (slack://, msteams://, matrix://, discord://, mailto://, json://
and ~100 more). The Journal hands a `Message` to `Notifier.offer`, which never blocks: the
message goes into a bounded queue (a full queue refuses it, and the Journal counts and says
the drop) and one daemon thread delivers it to every receiver, retrying each a few times with
a short bounded back-off. A slow or dead receiver therefore costs the worker its time, never
the scan. What the worker achieved is reported back through `on_result` (the Journal counts
and logs it: this module holds no logger and no metric).
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tenacity import Retrying, retry_if_result, stop_after_attempt, wait_exponential

QUEUE_SIZE = 100  # kinds of news waiting for the worker; more are dropped (and counted)
HOLD_MAX = 30.0  # seconds the worker waits for a scan to finish offering its messages
ATTEMPTS = 3  # per message and receiver
WAIT_FIRST = 0.5  # seconds before the second attempt; doubled, at most WAIT_MAX
WAIT_MAX = 4.0
ERROR_MAX = 200  # characters of a receiver's error kept for the log line

if TYPE_CHECKING:
    import apprise

# A step's kind is one of Apprise's notification types (its colour, its icon):
# info | success | warning | failure. Apprise itself is imported when a Notifier is made: half
# a second that a daemon without --notify (and `check`) need not spend.


@dataclass(frozen=True)
class Message:
    """One step of an incident, as people read it: a title and plain-text lines."""

    step: str  # finding | action | would | healed | not-healed | circuit | resolved | reminder
    headline: str  # what happened, e.g. "finding", "verified: healed"
    incident: str
    runbook: str
    service: str
    fields: tuple[tuple[str, str], ...] = ()  # (name, text), said in this order; empty: left out
    kind: str = "info"  # info | success | warning | failure
    # delivered in this order: 0 critical, 1 warning, 2 info, 3 what people are told anyway
    # (a report-only alert: Alertmanager's own receivers have it)
    priority: int = 2

    @property
    def title(self) -> str:
        on = f" on {self.service}" if self.service else ""
        return f"swarm-medic: {self.headline}{on} [{self.runbook}, incident {self.incident}]"

    @property
    def body(self) -> str:
        lines = [
            f"incident: {self.incident}",
            f"step: {self.step}",
            f"service: {self.service or '-'}",
            f"runbook: {self.runbook}",
        ]
        lines += [f"{name}: {text}" for name, text in self.fields if text]
        return "\n".join(lines)


SAID_MAX = 20  # lines of a coalesced message that name one incident each


def coalesced(msgs: Sequence[Message], count: int, services: Collection[str] = ()) -> Message:
    """One message for `count` messages of the same step, runbook and kind (`msgs`: the first
    SAID_MAX of them; `services`: of all of them): how many, on how many services, and a line
    per incident."""
    first = msgs[0]
    if count == 1:
        return first
    services = sorted(set(services) | {m.service for m in msgs if m.service})
    lines = [
        (
            f"incident {m.incident}",
            f"{m.service or '-'}: {dict(m.fields).get('summary') or m.headline}",
        )
        for m in msgs[:SAID_MAX]
    ]
    more = count - len(lines)
    if more > 0:
        lines.append(("and", f"{more} more"))
    on = f" on {len(services)} services" if len(services) > 1 else ""
    return Message(
        first.step,
        f"{count} x {first.headline}{on}",
        "many",
        first.runbook,
        services[0] if len(services) == 1 else "",
        tuple(lines),
        first.kind,
        first.priority,
    )


def storm(dropped: int, size: int) -> Message:
    """Said once, after a storm, instead of nothing: how many messages were not sent."""
    return Message(
        "storm",
        f"{dropped} notification(s) not sent in a storm",
        "-",
        "-",
        "",
        (
            ("dropped", str(dropped)),
            (
                "why",
                f"more kinds of news at once than the queue holds ({size}); the most "
                "urgent were kept and sent first",
            ),
            ("see", "the log and swarm-medic check for every finding"),
        ),
        "warning",
        1,
    )


@dataclass
class _Entry:
    """Messages waiting, coalesced by (step, runbook, kind, priority)."""

    priority: int
    seq: int
    key: tuple[str, str, str, int]
    msgs: list[Message]
    count: int = 1
    services: set[str] = field(default_factory=set)


def _capture() -> Any:
    """Apprise's log lines, kept from stderr: the daemon has one voice (the Journal)."""
    import apprise

    return apprise.LogCapture(level=logging.WARNING, fmt="%(message)s")  # type: ignore[no-untyped-call]


def shown(receiver: Any, position: int) -> str:
    """A receiver as it may be shown: its position, its scheme and its host, nothing more.

    Apprise's privacy mode masks passwords and the tokens a plugin declares, but not a secret
    in a webhook's path (json://hooks.example.com/services/T000/B000/SECRET, Slack-style hook
    paths) nor in a custom header (?+X-Api-Key=...). The host is taken from the masked URL,
    so a plugin whose "host" is a token (slack://TokenA/...) shows it masked (T...A)."""
    parts = urllib.parse.urlsplit(str(receiver.url(privacy=True)))
    host = (parts.netloc.rpartition("@")[2]).split(":")[0]
    return f"#{position} {parts.scheme}://{host}"


_URL = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)(?:[^/\s@'\"]*@)?([^/\s?#'\"]*)[^\s'\"]*")


class Scrub:
    """Removes from a receiver's error text every part of the notification URLs that may be
    secret: userinfo, path segments, query values (custom headers), a host Apprise masks; and
    cuts any URL in it down to its scheme and host."""

    def __init__(self, urls: Sequence[str]) -> None:
        pieces: set[str] = set()
        for url in urls:
            parts = urllib.parse.urlsplit(url)
            pieces.update((parts.username or "", parts.password or "", parts.fragment))
            pieces.update(urllib.parse.unquote(seg) for seg in parts.path.split("/"))
            for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
                pieces.update((value, urllib.parse.quote(value, safe="")))
                if key.startswith(("+", "-")):  # a header: its value may be "Bearer X"
                    pieces.update(value.split())
            host = parts.netloc.rpartition("@")[2].split(":")[0]
            if "." not in host:  # not a DNS name or an address: a token in the host's place
                pieces.add(host)
        # the longest first, so that a piece inside another leaves nothing behind
        self._pieces = sorted((p for p in pieces if len(p) >= 3), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        text = _URL.sub(lambda m: f"{m.group(1)}{m.group(2)}/...", text)
        for piece in self._pieces:
            text = text.replace(piece, "***")
        return text


# (receiver as it may be shown, its error or "" when delivered, attempts made)
OnResult = Callable[[str, str, int], None]


class Notifier:
    """The receivers, a bounded queue and the one worker thread that empties it."""

    def __init__(
        self,
        urls: Sequence[str],
        on_result: OnResult,
        *,
        maxsize: int = QUEUE_SIZE,
        attempts: int = ATTEMPTS,
        wait_first: float = WAIT_FIRST,
        wait_max: float = WAIT_MAX,
    ) -> None:
        """ValueError if a URL is not one Apprise knows (the URL itself is never repeated:
        it carries tokens)."""
        import apprise

        self._receivers: list[apprise.plugins.NotifyBase] = []
        self._shown: list[str] = []
        self._scrub = Scrub(urls)
        with _capture():  # apprise's own lines: said by us, once, or not at all
            for i, url in enumerate(urls, 1):
                one = apprise.Apprise()
                if not one.add(url):
                    raise ValueError(
                        f"notification URL #{i} of {len(urls)} is not one Apprise can use "
                        "(its scheme names the service: slack://, msteams://, json://, ...; "
                        "see https://github.com/caronc/apprise/wiki)"
                    )
                for receiver in one:
                    self._receivers.append(receiver)
                    self._shown.append(shown(receiver, i))
        self._on_result = on_result
        self._attempts = attempts
        self._wait = wait_exponential(multiplier=wait_first, min=wait_first, max=wait_max)
        # Waiting messages, by priority then arrival; a newcomer of a step, runbook and kind
        # already waiting joins that entry (one message for a storm of findings), so the
        # `maxsize` entries fill only with different kinds of news. When full, a newcomer
        # more urgent than the least urgent entry takes its place (evicted: counted as
        # dropped); what was dropped is said in one message once the queue is empty.
        self._cv = threading.Condition()
        self._entries: list[_Entry] = []
        self._maxsize = maxsize
        self._seq = 0
        self._held = 0  # > 0: a scan is offering its messages; the worker waits for all
        self._closing = False
        self.evicted = 0  # messages dropped to make room for more urgent ones (not yet read)
        self._unsaid = 0  # messages dropped since the last storm message
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="notify", daemon=True)
        self._started = False

    @property
    def receivers(self) -> list[str]:
        """The receivers as they may be shown: position, scheme and host (`shown`)."""
        return list(self._shown)

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    def offer(self, msg: Message) -> bool:
        """Queue a message for the worker, never waiting; False when it was dropped (the
        queue full of news at least as urgent)."""
        key = (msg.step, msg.runbook, msg.kind, msg.priority)
        with self._cv:
            for entry in self._entries:
                if entry.key == key:
                    if len(entry.msgs) < SAID_MAX:
                        entry.msgs.append(msg)
                    entry.count += 1
                    if msg.service:
                        entry.services.add(msg.service)
                    return True
            if len(self._entries) >= self._maxsize:
                worst = max(self._entries, key=lambda e: (e.priority, e.seq))
                if worst.priority <= msg.priority:
                    self._unsaid += 1
                    return False
                self._entries.remove(worst)
                self.evicted += worst.count
                self._unsaid += worst.count
            self._seq += 1
            self._entries.append(_Entry(msg.priority, self._seq, key, [msg]))
            self._cv.notify()
        return True

    def take_evicted(self) -> int:
        """Messages dropped for more urgent ones since the last call (for the counter)."""
        with self._cv:
            n, self.evicted = self.evicted, 0
        return n

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Messages offered inside are delivered once all are in, the most urgent first (a
        scan's findings: the critical one is not queued behind the first of a storm)."""
        with self._cv:
            self._held += 1
        try:
            yield
        finally:
            with self._cv:
                self._held -= 1
                self._cv.notify()

    def stop(self, timeout: float = 2.0) -> None:
        """Give the worker `timeout` seconds to deliver what is queued, then leave it (a
        daemon thread: a hung receiver does not hold the exit)."""
        if not self._started:
            return
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        self._thread.join(timeout)
        self._stop.set()  # cut a back-off short; what is still queued is left
        with self._cv:
            self._cv.notify_all()
        self._thread.join(0.5)

    def _sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def pending(self) -> int:
        with self._cv:
            return len(self._entries)

    def _next(self) -> Message | None:
        """The most urgent message waiting (coalesced), a storm message once the queue is
        empty after drops, or None to leave."""
        with self._cv:
            held_since = time.monotonic()
            while not self._stop.is_set():
                ready = self._entries and (
                    not self._held or time.monotonic() - held_since > HOLD_MAX
                )
                if ready:
                    entry = min(self._entries, key=lambda e: (e.priority, e.seq))
                    self._entries.remove(entry)
                    return coalesced(entry.msgs, entry.count, entry.services)
                if not self._entries and self._unsaid:
                    n, self._unsaid = self._unsaid, 0
                    return storm(n, self._maxsize)
                if self._closing and not self._entries:
                    return None
                self._cv.wait(0.5 if self._held else None)
        return None

    def _run(self) -> None:
        while not self._stop.is_set():
            msg = self._next()
            if msg is None:
                return
            for receiver, name in zip(self._receivers, self._shown, strict=True):
                if self._stop.is_set():  # stopped while a receiver hung: the rest is left
                    return
                error, attempts = self._deliver(receiver, msg)
                self._on_result(name, self._scrub(error), attempts)

    def _deliver(self, receiver: apprise.plugins.NotifyBase, msg: Message) -> tuple[str, int]:
        """-> (error, or "" when delivered; attempts made)."""
        errors: list[str] = []

        def once() -> bool:
            with _capture() as said:
                try:
                    ok = bool(receiver.notify(body=msg.body, title=msg.title, notify_type=msg.kind))
                except Exception as exc:  # noqa: BLE001 - a plugin's bug must not kill the worker
                    errors.append(f"{type(exc).__name__}: {exc}")
                    return False
                if not ok:
                    lines = [ln for ln in said.getvalue().splitlines() if ln.strip()]
                    errors.append(lines[-1] if lines else "the receiver did not accept it")
                return ok

        retrying = Retrying(
            stop=stop_after_attempt(self._attempts),
            wait=self._wait,
            retry=retry_if_result(lambda ok: not ok),
            retry_error_callback=lambda state: False,
            sleep=self._sleep,
        )
        ok = retrying(once)
        return ("" if ok else errors[-1][:ERROR_MAX]), max(1, len(errors) + (1 if ok else 0))
