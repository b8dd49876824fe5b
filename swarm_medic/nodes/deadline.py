"""One deadline for a whole HTTP exchange: connect, TLS handshake, request, head and body.

A socket timeout bounds each read, not the exchange: a peer that trickles its answer one byte
a second never lets a read time out, and holds the caller (a scan under its lock, a pool
thread of the probe rounds) for as long as it likes. Here every socket an `http.client`
connection opens inside `within(conn, seconds)` is registered, from the moment it exists, with
one daemon thread (the reaper) that shuts it down when the deadline passes: whatever the
caller is blocked in (connect, handshake, a read of the head or of the body) returns at once,
and `Exchange.expired` says why. The thread is one for the whole process, however many
exchanges run at once.

Each socket is watched through a duplicate of its descriptor (shutdown acts on the socket,
not on the descriptor), so a TLS wrapper that takes the socket over, or the caller closing
it, never leaves the reaper with a number that may already belong to another file.
"""

from __future__ import annotations

import heapq
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from http.client import HTTPConnection
from itertools import count


class Exchange:
    """The sockets of one exchange and its deadline (monotonic)."""

    def __init__(self, until: float) -> None:
        self.until = until
        self.expired = False
        self._socks: list[socket.socket] = []
        self._done = False

    def left(self) -> float:
        return max(0.001, self.until - time.monotonic())

    def watch(self, sock: socket.socket) -> None:
        dup = socket.socket(fileno=os.dup(sock.fileno()))
        with _REAPER.lock:
            if self._done:
                dup.close()
                return
            self._socks.append(dup)
            if self.expired:  # past the deadline already: no new socket may start
                _shut(dup)

    def expire(self) -> None:
        """Called by the reaper (with its lock held) when the deadline passes."""
        if self._done:
            return
        self.expired = True
        for s in self._socks:
            _shut(s)

    def finish(self) -> None:
        with _REAPER.lock:
            self._done = True
            socks, self._socks = self._socks, []
        for s in socks:
            s.close()


def _shut(sock: socket.socket) -> None:
    with suppress(OSError):  # already closed by the peer: nothing blocks on it
        sock.shutdown(socket.SHUT_RDWR)


class _Reaper:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._wake = threading.Condition(self.lock)
        self._heap: list[tuple[float, int, Exchange]] = []
        self._order = count()
        self._thread: threading.Thread | None = None

    def add(self, ex: Exchange) -> None:
        with self.lock:
            heapq.heappush(self._heap, (ex.until, next(self._order), ex))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="swarm-medic-deadlines", daemon=True
                )
                self._thread.start()
            self._wake.notify()

    def _run(self) -> None:
        with self.lock:
            while True:
                now = time.monotonic()
                while self._heap and (self._heap[0][0] <= now or self._heap[0][2]._done):
                    _, _, ex = heapq.heappop(self._heap)
                    ex.expire()
                timeout = self._heap[0][0] - now if self._heap else None
                self._wake.wait(timeout)


_REAPER = _Reaper()


@contextmanager
def within(conn: HTTPConnection, seconds: float) -> Iterator[Exchange]:
    """Every socket `conn` opens in this block is shut down `seconds` from now, if still open.

    After the block's own work, check `expired`: an answer cut by the deadline may have
    read as complete (an answer without Content-Length ends at the close)."""
    ex = Exchange(time.monotonic() + seconds)

    def create(
        address: tuple[str, int],
        timeout: float | None = None,
        source_address: tuple[str, int] | None = None,
    ) -> socket.socket:
        sock = socket.create_connection(address, ex.left(), source_address)
        ex.watch(sock)
        return sock

    conn._create_connection = create  # type: ignore[attr-defined]  # http.client's own seam
    _REAPER.add(ex)
    try:
        yield ex
    finally:
        ex.finish()
