"""Every node's exchange of a probe round at once, from one thread.

A round is one signed request to each node. With a thread each (32 at a time, `http.client`),
100 nodes cost the brain about 0.45 ms of CPU an exchange: threads taking turns, a socket
watched by the deadline reaper, headers parsed by the email package. Here the calling thread
drives every exchange's non-blocking socket (selectors), each within its own deadline from the
moment it starts: connect, request, the head and the body, as one deadline (deadline.py's
promise, without its thread). The node's port answers HTTP/1.1 with a Content-Length and then
closes; an answer that is not that, is not complete by its deadline or is larger than `limit`
fails its exchange alone, with a reason that says which. Nothing here knows the protocol: a
reply is a status and a body, and the caller opens the seal (channel.open_answer).

The address must be an IP address (a node's Status.Addr always is): nothing is resolved, so
no DNS query can hold the round.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import re
import selectors
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

MAX_HEAD = 8192  # the node's port sends four short lines
_STATUS = re.compile(rb"HTTP/1\.[01] ([0-9]{3})(?: [^\r\n]*)?\r\n")
_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*([0-9]{1,12})[ \t]*(?=\r\n)", re.IGNORECASE)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding:", re.IGNORECASE)


@dataclass(frozen=True)
class Request:
    key: str  # what the caller calls it (a node id)
    host: str  # an IP address
    port: int
    data: bytes  # the whole HTTP request


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    # time.monotonic() when the exchange began (its connect) and when its answer was complete
    started: float = field(default=0.0, compare=False)
    ended: float = field(default=0.0, compare=False)


class ExchangeError(Exception):
    """This exchange failed; the text says how (safe to log: no bytes of the answer)."""


@dataclass
class _Open:
    req: Request
    sock: socket.socket
    until: float
    sent: int = 0
    connected: bool = False
    got: bytearray = field(default_factory=bytearray)
    status: int = -1  # -1 until the head is read
    body_at: int = 0  # where the body starts
    length: int = 0  # Content-Length
    started: float = 0.0  # time.monotonic() of the connect


def exchange_all(
    requests: Sequence[Request], *, timeout: float, limit: int, at_once: int = 256
) -> dict[str, Reply | ExchangeError]:
    """Each request's reply, or why there is none; at most `at_once` open at a time, each given
    `timeout` seconds from its own start; returns once every one is answered or failed."""
    out: dict[str, Reply | ExchangeError] = {}
    waiting = list(reversed(requests))
    sel = selectors.DefaultSelector()
    live: dict[int, _Open] = {}
    try:
        while waiting or live:
            while waiting and len(live) < at_once:
                req = waiting.pop()
                try:
                    ex = _start(req, timeout)
                except ExchangeError as exc:
                    out[req.key] = exc
                    continue
                live[ex.sock.fileno()] = ex
                sel.register(ex.sock, selectors.EVENT_WRITE, ex)
            now = time.monotonic()
            for fd, ex in list(live.items()):
                if ex.until <= now:
                    _end(sel, live, fd, ex)
                    out[ex.req.key] = ExchangeError(f"no complete answer within {timeout:g}s")
            if not live:
                continue
            wait = max(0.0, min(ex.until for ex in live.values()) - now)
            for key, events in sel.select(wait):
                ex = key.data
                fd = ex.sock.fileno()
                try:
                    done = _step(sel, ex, events, limit)
                except ExchangeError as exc:
                    _end(sel, live, fd, ex)
                    out[ex.req.key] = exc
                    continue
                if done is not None:
                    _end(sel, live, fd, ex)
                    out[ex.req.key] = done
    finally:
        for fd, ex in list(live.items()):
            _end(sel, live, fd, ex)
        sel.close()
    return out


def _start(req: Request, timeout: float) -> _Open:
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(req.host).version == 6 else socket.AF_INET
    except ValueError:
        raise ExchangeError(f"{req.host[:64]!r} is not an IP address") from None
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:  # out of descriptors, say: this exchange fails, the others go on
        raise ExchangeError(f"{type(exc).__name__}: {exc}") from None
    sock.setblocking(False)
    code = sock.connect_ex((req.host, req.port))
    if code not in (0, errno.EINPROGRESS):
        sock.close()
        raise ExchangeError(_oserror(code))
    now = time.monotonic()
    return _Open(req, sock, now + timeout, started=now)


def _step(sel: selectors.BaseSelector, ex: _Open, events: int, limit: int) -> Reply | None:
    """Moves one exchange on; its reply once complete."""
    if not ex.connected:
        code = ex.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            raise ExchangeError(_oserror(code))
        ex.connected = True
    if ex.sent < len(ex.req.data):
        _send(sel, ex)
        return None
    if events & selectors.EVENT_READ:
        return _receive(ex, limit)
    return None


def _send(sel: selectors.BaseSelector, ex: _Open) -> None:
    try:
        ex.sent += ex.sock.send(ex.req.data[ex.sent :])
    except BlockingIOError:
        return
    except OSError as exc:
        raise ExchangeError(f"{type(exc).__name__}: {exc}") from None
    if ex.sent == len(ex.req.data):
        sel.modify(ex.sock, selectors.EVENT_READ, ex)


def _receive(ex: _Open, limit: int) -> Reply | None:
    try:
        chunk = ex.sock.recv(65536)
    except BlockingIOError:
        return None
    except OSError as exc:
        raise ExchangeError(f"{type(exc).__name__}: {exc}") from None
    ex.got += chunk  # bounded: the head by MAX_HEAD, the body by its length (<= limit)
    if ex.status < 0:
        _head(ex, limit, ended=not chunk)
    if ex.status >= 0 and len(ex.got) - ex.body_at >= ex.length:
        # what comes past the Content-Length is not the answer's, and not read further
        body = bytes(ex.got[ex.body_at : ex.body_at + ex.length])
        return Reply(ex.status, body, ex.started, time.monotonic())
    if not chunk:
        raise ExchangeError("the answer ended before its Content-Length")
    return None


def _head(ex: _Open, limit: int, *, ended: bool) -> None:
    """Reads the status and the length once the head is complete; ExchangeError as soon as the
    bytes cannot be an HTTP/1.1 head with a Content-Length."""
    end = ex.got.find(b"\r\n\r\n")
    if end < 0:
        if len(ex.got) > MAX_HEAD or ended or not b"HTTP/1.".startswith(bytes(ex.got[:7])):
            raise ExchangeError("the answer is not HTTP")
        return
    head = bytes(ex.got[: end + 2])
    status = _STATUS.match(head)
    lengths = _LENGTH.findall(head)
    if status is None or _CHUNKED.search(head) or end > MAX_HEAD or len(lengths) != 1:
        raise ExchangeError("the answer is not HTTP/1.1 with a length")
    length = int(lengths[0])
    if length > limit:
        raise ExchangeError(f"answer over {limit} bytes")
    ex.status, ex.body_at, ex.length = int(status.group(1)), end + 4, length


def _end(sel: selectors.BaseSelector, live: dict[int, _Open], fd: int, ex: _Open) -> None:
    sel.unregister(ex.sock)
    del live[fd]
    ex.sock.close()


def _oserror(code: int) -> str:
    exc = OSError(code, os.strerror(code))  # the subclass for the code, as a blocking call raises
    return f"{type(exc).__name__}: {exc}"
