"""One HTTP port: GET / (the status page, status.py), GET /metrics (Prometheus),
GET /healthz (JSON, 200 or 503), POST /v1/* (the signed brain-to-node channel).

The port is published on every node of a production swarm, so it must stay up, small and
answering while anything on the network misbehaves against it. Design:

* One asyncio event loop in one daemon thread serves every connection. An idle or trickling
  (slowloris) client costs a few kilobytes of buffers, not a thread with its stack.
* Every limit (`httphead.Limits`) is checked on bytes already held, before reading more: the
  head is read in pieces no larger than what is still allowed and `httphead.split_head` refuses
  as soon as the request line, header count or head size is over; a body is read only after
  its `Content-Length` was accepted, never past it. The head and the body each have a deadline
  for the whole of them, and so does writing the answer to a client that does not read.
* Connections are held in pools, one per listener, each of `Limits.connections`; no peer
  address holds more than `Limits.per_address` of a pool (a newcomer from an address at its
  share evicts that address's slowest connection). A newcomer to a full pool evicts the slowest
  connection of that pool in ANY phase it waits on the client (sending its head, sending its
  body, reading the answer): the one whose current phase started first. A connection whose
  handler runs is never evicted (at most `control_workers` of them). So one client, or five
  hundred, that hold connections open in whatever phase only ever take each other's slots,
  while a client that is quick (a health check, a scrape, the brain) is in and out.
* The channel's listener keeps `Limits.reserved_connections` more, for the peers that sent an
  authenticated request lately (a signed channel request or an alert with the right token
  answered 2xx or 409) and for the node itself (127.0.0.1, ::1: the image's HEALTHCHECK):
  from then on, for `trusted_for`, their connections go to the reserved pool at once and
  never compete with anonymous traffic for a slot. A connection whose head carries
  credentials (the channel's signature header, a bearer token on /v1/alerts) moves there too
  once its head is read (`_promote`): the brain's first request after a restart.
* Listeners: by default one, serving everything; with `pages=(addr, port)` the read-only pages
  (/, /metrics, /healthz) have their own listener and pool, and the channel's listener serves
  POST /v1/* and a bare /healthz (200 or 503, no details: the image's HEALTHCHECK) only. The
  status page may require a token (`status_token`: `Authorization: Bearer T`, or basic auth
  with T as the password, which a browser asks for).
* /, /metrics and /healthz are answered on the loop itself: quick, and never queued behind the
  channel. Control handlers (which may block for seconds while they probe) run on a pool of
  `Limits.control_workers` threads; a request that finds them all busy, or whose body would
  take the bodies held at once past `Limits.body_budget_bytes`, gets 503 at once. Nothing queues.
* One request per connection (`Connection: close`): no keep-alive state to bound.
* Every refusal goes to `Journal.http_refused` (counted by reason, logged rate-limited).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hmac
import json
import socket
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, cast

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from swarm_medic.telemetry.journal import Journal
from swarm_medic.telemetry.metrics import HttpRefusal
from swarm_medic.web import status as status_mod
from swarm_medic.web.httphead import Limits, Refusal, Request, parse_head, split_head

Health = Callable[[], tuple[bool, dict[str, Any]]]
Control = Callable[[str, Mapping[str, str], bytes, str], tuple[int, dict[str, Any]]]
StatusPage = Callable[[], bytes]  # the rendered HTML of GET / (status.Page)
# Connections the kernel completes before the loop accepts them. A connect-and-close flood
# fills a short queue, and then the kernel drops the SYNs of everyone, who retry after 1 s.
_BACKLOG = 1024
# The node itself (its own health check) is served from the reserved slots: a remote client
# cannot come from these addresses.
_LOCAL = frozenset({"127.0.0.1", "::1"})


PAGES, CHANNEL, BOTH = "pages", "channel", "both"  # what a listener serves


@dataclass
class _Connection:
    task: asyncio.Task[None]
    writer: asyncio.StreamWriter
    peer: str
    phase: str = "head"  # head | body | handler | write: what it waits for
    since: float = 0.0  # when its current phase started (the loop's clock)
    pool: _Pool | None = None


class _Pool:
    """The connections of one listener in one class (anonymous or reserved), with a count per
    peer address. Only the loop thread touches it: no lock."""

    def __init__(self, name: str, capacity: int, per_address: int) -> None:
        self.name = name
        self.capacity = capacity
        self.per_address = per_address
        self.held: dict[int, _Connection] = {}
        self.by_peer: dict[str, int] = {}

    def add(self, conn: _Connection) -> None:
        self.held[id(conn)] = conn
        self.by_peer[conn.peer] = self.by_peer.get(conn.peer, 0) + 1
        conn.pool = self

    def remove(self, conn: _Connection) -> None:
        if self.held.pop(id(conn), None) is not None:
            left = self.by_peer[conn.peer] - 1
            if left:
                self.by_peer[conn.peer] = left
            else:
                del self.by_peer[conn.peer]
        conn.pool = None

    def slowest(self, peer: str | None = None) -> _Connection | None:
        """The connection (of `peer`, or any) whose current wait on its client began first;
        never one whose handler runs."""
        victim: _Connection | None = None
        for c in self.held.values():
            if c.phase == "handler" or (peer is not None and c.peer != peer):
                continue
            if victim is None or c.since < victim.since:
                victim = c
        return victim


@dataclass
class _Listener:
    serves: str  # PAGES | CHANNEL | BOTH
    anonymous: _Pool
    reserved: _Pool | None  # only where the channel is served


def _response(
    status: int, ctype: str, body: bytes, extra: Mapping[str, str] | None = None
) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    lines = [
        f"HTTP/1.1 {status} {phrase}",
        f"Content-Type: {ctype}",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{k}: {v}" for k, v in (extra or {}).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _refusal_response(r: Refusal) -> bytes:
    extra = {"Allow": "GET, POST"} if r.reason is HttpRefusal.METHOD_NOT_ALLOWED else None
    return _response(r.status, "text/plain", f"{r.reason}: {r.detail}\n".encode(), extra)


_FULL = Refusal(503, HttpRefusal.TOO_MANY_CONNECTIONS, "connection limit reached")
_PER_ADDRESS = Refusal(503, HttpRefusal.TOO_MANY_FROM_ADDRESS, "this address holds its share")
_EVICTED = Refusal(503, HttpRefusal.EVICTED, "the slowest connection, for a newcomer")
_UNAUTHORIZED = Refusal(401, HttpRefusal.UNAUTHORIZED, "the status page needs its token")


class Server:
    """The running port. `server_address`, `shutdown()` and `server_close()` as socketserver's."""

    def __init__(
        self,
        socks: list[tuple[socket.socket, str]],
        registry: CollectorRegistry,
        health: Health,
        control: Control | None,
        *,
        limits: Limits,
        journal: Journal | None,
        clock: Callable[[], float],
        status: StatusPage | None = None,
        status_token: str = "",
    ) -> None:
        self.server_address: tuple[str, int] = socks[0][0].getsockname()[:2]
        # where the read-only pages are served (the same as server_address unless separate)
        self.pages_address: tuple[str, int] = socks[-1][0].getsockname()[:2]
        self.limits = limits
        self._registry = registry
        self._health = health
        self._control = control
        self._status = status
        self._journal = journal
        self._clock = clock
        self._status_auth = _status_auth(status_token)
        # Only the loop thread touches these: no lock.
        self._listeners = [
            _Listener(
                serves,
                _Pool("anonymous", limits.connections, limits.per_address),
                _Pool("reserved", limits.reserved_connections, limits.per_address)
                if serves != PAGES
                else None,
            )
            for _, serves in socks
        ]
        self._trusted: dict[str, float] = {}  # peer -> until (loop clock)
        self._workers_busy = 0
        self._body_bytes = 0
        self._pool = ThreadPoolExecutor(
            max_workers=limits.control_workers, thread_name_prefix="swarm-medic-control"
        )
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._start_error: Exception | None = None
        self._stopped = False
        self._thread = threading.Thread(
            target=self._run, args=([sk for sk, _ in socks],), name="swarm-medic-http", daemon=True
        )
        self._thread.start()
        self._started.wait()
        if self._start_error is not None:
            raise self._start_error

    # --- life cycle -------------------------------------------------------------------------

    def _run(self, socks: list[socket.socket]) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        servers: list[asyncio.Server] = []
        try:
            for sock, listener in zip(socks, self._listeners, strict=True):
                servers.append(
                    loop.run_until_complete(
                        asyncio.start_server(
                            functools.partial(self._serve_connection, listener),
                            sock=sock,
                            limit=self.limits.head_bytes,
                            # asyncio listens again with its own default (100) otherwise
                            backlog=_BACKLOG,
                        )
                    )
                )
        except Exception as exc:  # noqa: BLE001 - handed to serve()'s caller, raised there
            self._start_error = exc
            for server in servers:
                server.close()
            for sock in socks:
                sock.close()
            loop.close()
            return
        finally:
            self._started.set()
        try:
            loop.run_forever()
        finally:
            for server in servers:
                server.close()
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            for server in servers:
                loop.run_until_complete(server.wait_closed())
            loop.close()

    def shutdown(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        # A handler still probing finishes on its own; nothing waits for it.
        self._pool.shutdown(wait=False, cancel_futures=True)

    def server_close(self) -> None:
        self.shutdown()

    # --- connections ------------------------------------------------------------------------

    def _refused(self, r: Refusal, peer: str) -> None:
        if self._journal is not None:
            self._journal.http_refused(r.reason, r.status, peer, r.detail, now=self._clock())

    def _is_trusted(self, peer: str) -> bool:
        if peer in _LOCAL:
            return True  # this node itself: the image's HEALTHCHECK
        until = self._trusted.get(peer)
        if until is None:
            return False
        if until < self._loop.time():
            del self._trusted[peer]
            return False
        return True

    def _trust(self, peer: str) -> None:
        """`peer` just authenticated (a signed request or the alerts token was accepted)."""
        self._trusted.pop(peer, None)
        self._trusted[peer] = self._loop.time() + self.limits.trusted_for
        while len(self._trusted) > 1024:  # bounded: the oldest trust goes first
            del self._trusted[next(iter(self._trusted))]

    def _evict(self, victim: _Connection) -> None:
        if victim.pool is not None:
            victim.pool.remove(victim)
        self._refused(_EVICTED, victim.peer)
        if victim.phase != "write":  # one that does not read its answer gets no other
            victim.writer.write(_refusal_response(_EVICTED))
        victim.task.cancel()

    def _admit(self, conn: _Connection, listener: _Listener) -> bool:
        pool = listener.anonymous
        if listener.reserved is not None and self._is_trusted(conn.peer):
            pool = listener.reserved
        refusal = None
        if pool.by_peer.get(conn.peer, 0) >= pool.per_address:
            victim = pool.slowest(conn.peer)
            refusal = _PER_ADDRESS
        elif len(pool.held) >= pool.capacity:
            victim = pool.slowest()
            refusal = _FULL
        else:
            victim = None
        if refusal is not None:
            if victim is None:
                self._refused(refusal, conn.peer)
                conn.writer.write(_refusal_response(refusal))
                conn.writer.close()
                return False
            self._evict(victim)
        pool.add(conn)
        return True

    def _promote(self, conn: _Connection, request: Request, reserved: _Pool) -> None:
        """A head that carries credentials (the channel's signature, or a bearer token for
        /v1/alerts) moves its connection to the reserved pool: the brain's first request after
        a restart does not wait for a trust it cannot have earned yet. Only the body can prove
        the credentials, so a forged head may take a reserved slot too, but only its address's
        share, and the slowest of them goes first when a trusted newcomer needs one."""
        if request.method != "POST" or not request.path.startswith("/v1/"):
            return
        if not (request.header("X-Medic-Signature") or request.header("Authorization")):
            return
        if reserved.by_peer.get(conn.peer, 0) >= reserved.per_address:
            return
        if len(reserved.held) >= reserved.capacity:
            victim = reserved.slowest()
            if victim is None or victim.since >= conn.since:
                return  # nothing slower than this one to make room
            self._evict(victim)
        assert conn.pool is not None  # noqa: S101 - admitted connections have a pool
        conn.pool.remove(conn)
        reserved.add(conn)

    def _phase(self, conn: _Connection, phase: str) -> None:
        conn.phase, conn.since = phase, self._loop.time()

    async def _serve_connection(
        self, listener: _Listener, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        # A connection callback always runs in a task of its own.
        task = cast("asyncio.Task[None]", asyncio.current_task())
        peer_addr = writer.get_extra_info("peername")
        peer = str(peer_addr[0]) if isinstance(peer_addr, tuple) else "?"
        # Zero: drain() then waits until every byte is with the kernel, so a client that does
        # not read cannot park an answer in our memory beyond the write deadline.
        writer.transport.set_write_buffer_limits(high=0)
        conn = _Connection(task, writer, peer, since=self._loop.time())
        if not self._admit(conn, listener):
            writer.transport.abort()  # refused at the door: no FIN wait, no buffer kept
            return
        try:
            await self._exchange(conn, listener, reader, writer)
        except Refusal as r:
            self._refused(r, peer)
            await self._send(writer, _refusal_response(r), peer)
        except asyncio.CancelledError:
            pass  # evicted, or the server is stopping: the connection just closes
        except (ConnectionError, OSError):
            pass  # the client went away: nobody to answer
        except Exception as exc:  # noqa: BLE001 - a bug in one request must not stop the port
            bug = Refusal(500, HttpRefusal.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
            self._refused(bug, peer)  # the log has the text; the client, who may be anyone, not
            said = Refusal(500, HttpRefusal.INTERNAL_ERROR, "see the node's log")
            await self._send(writer, _refusal_response(said), peer)
        finally:
            if conn.pool is not None:
                conn.pool.remove(conn)
            if writer.transport.get_write_buffer_size():
                writer.transport.abort()  # the write deadline passed: drop what is left
            else:
                writer.close()

    async def _send(self, writer: asyncio.StreamWriter, data: bytes, peer: str) -> None:
        try:
            writer.write(data)
            async with asyncio.timeout(self.limits.write_timeout):
                await writer.drain()
        except TimeoutError:
            self._refused(Refusal(0, HttpRefusal.WRITE_TIMEOUT, "client does not read"), peer)
        except (ConnectionError, OSError):
            pass  # the client went away: nobody to answer

    async def _read_head(self, reader: asyncio.StreamReader) -> tuple[bytes, bytes] | None:
        buf = bytearray()
        while True:
            split = split_head(buf, self.limits)
            if split is not None:
                return split
            # Never more than one byte past what the limits allow, so the next split refuses.
            chunk = await reader.read(self.limits.head_bytes + 1 - len(buf))
            if not chunk:
                if not buf:
                    return None  # connected and left (a port check): nothing to answer
                raise Refusal(400, HttpRefusal.INCOMPLETE, "connection closed inside the head")
            buf += chunk

    async def _exchange(
        self,
        conn: _Connection,
        listener: _Listener,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        try:
            async with asyncio.timeout(self.limits.head_timeout):
                split = await self._read_head(reader)
        except TimeoutError:
            raise Refusal(
                408, HttpRefusal.HEAD_TIMEOUT, f"no complete head in {self.limits.head_timeout:g}s"
            ) from None
        if split is None:
            return
        head, rest = split
        request = parse_head(head, self.limits)
        if listener.reserved is not None and conn.pool is listener.anonymous:
            self._promote(conn, request, listener.reserved)
        if request.method == "GET":
            self._phase(conn, "write")
            await self._send(writer, self._get(request, listener.serves), conn.peer)
        elif (
            self._control is None or listener.serves == PAGES or not request.path.startswith("/v1/")
        ):
            self._phase(conn, "write")
            await self._send(writer, _response(404, "text/plain", b"not found\n"), conn.peer)
        else:
            code, answer = await self._post(self._control, request, rest, reader, conn)
            if 200 <= code < 300 or code == 409:  # only ever after authentication
                self._trust(conn.peer)
            body = json.dumps(answer).encode()
            self._phase(conn, "write")
            await self._send(writer, _response(code, "application/json", body), conn.peer)

    def _bare_health(self, request: Request) -> bytes:
        """The channel's listener, when the pages have their own: only what the image's
        HEALTHCHECK needs, 200 or 503 without a detail."""
        if request.path == "/healthz":
            ok, _ = self._health()
            return _response(200 if ok else 503, "text/plain", b"ok\n" if ok else b"no\n")
        return _response(404, "text/plain", b"not found\n")

    def _get(self, request: Request, serves: str) -> bytes:
        if serves == CHANNEL:
            return self._bare_health(request)
        if request.path == "/metrics":
            encoder, ctype = choose_encoder(request.header("Accept"))
            return _response(200, ctype, encoder(self._registry))
        if request.path == "/healthz":
            ok, detail = self._health()
            body = json.dumps({"ok": ok, **detail}, sort_keys=True).encode()
            return _response(200 if ok else 503, "application/json", body)
        if request.path == "/" and self._status is not None:
            return self._status_page(request)
        if request.path == "/favicon.ico" and self._status is not None:
            # every browser asks; a 404 would be a console error on the status page
            return _response(204, "image/x-icon", b"", {"Cache-Control": "max-age=86400"})
        return _response(404, "text/plain", b"not found: try /metrics or /healthz\n")

    def _status_page(self, request: Request) -> bytes:
        assert self._status is not None  # noqa: S101 - checked by the caller
        if self._status_auth and not _authorized(request, self._status_auth):
            self._refused(_UNAUTHORIZED, "?")
            return _response(
                401,
                "text/plain",
                b"unauthorized: the status page needs its token\n",
                {"WWW-Authenticate": 'Basic realm="swarm-medic status", charset="UTF-8"'},
            )
        return _response(200, status_mod.CONTENT_TYPE, self._status(), status_mod.HEADERS)

    def _busy(self, length: int) -> bool:
        return (
            self._workers_busy >= self.limits.control_workers
            or self._body_bytes + length > self.limits.body_budget_bytes
        )

    async def _post(
        self,
        control: Control,
        request: Request,
        rest: bytes,
        reader: asyncio.StreamReader,
        conn: _Connection,
    ) -> tuple[int, dict[str, Any]]:
        length = request.content_length or 0
        if self._busy(length):
            raise Refusal(503, HttpRefusal.BUSY, "control workers or body budget exhausted")
        self._body_bytes += length
        try:
            self._phase(conn, "body")
            body = await self._read_body(request, rest, reader, conn.writer)
            if self._workers_busy >= self.limits.control_workers:
                raise Refusal(503, HttpRefusal.BUSY, "control workers exhausted")
            self._phase(conn, "handler")
            return await self._call(control, request, body, conn.peer)
        finally:
            self._body_bytes -= length

    async def _read_body(
        self,
        request: Request,
        rest: bytes,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bytes:
        length = request.content_length or 0
        if len(rest) >= length:
            return rest[:length]
        if request.header("Expect").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        try:
            async with asyncio.timeout(self.limits.body_timeout):
                more = await reader.readexactly(length - len(rest))
        except TimeoutError:
            raise Refusal(
                408, HttpRefusal.BODY_TIMEOUT, f"body not complete in {self.limits.body_timeout:g}s"
            ) from None
        except asyncio.IncompleteReadError:
            raise Refusal(
                400, HttpRefusal.INCOMPLETE, "connection closed inside the body"
            ) from None
        return rest + more

    async def _call(
        self, control: Control, request: Request, body: bytes, peer: str
    ) -> tuple[int, dict[str, Any]]:
        self._workers_busy += 1
        done = self._loop.run_in_executor(
            self._pool, control, request.path, dict(request.headers), body, peer
        )

        def free(_: object) -> None:
            self._workers_busy -= 1

        # The slot is freed when the thread is, not when we stop waiting for it: a handler
        # past its deadline still occupies a worker, and admitting more would queue them.
        done.add_done_callback(free)
        try:
            async with asyncio.timeout(self.limits.handler_timeout):
                return await asyncio.shield(done)
        except TimeoutError:
            raise Refusal(
                504,
                HttpRefusal.HANDLER_TIMEOUT,
                f"{request.path} took over {self.limits.handler_timeout:g}s",
            ) from None


def _status_auth(token: str) -> tuple[bytes, ...]:
    """The Authorization values that open the status page: the bearer token, or basic auth
    with the token as password (any user name is taken: see `_authorized`)."""
    return (f"Bearer {token}".encode(),) if token else ()


def _authorized(request: Request, accepted: tuple[bytes, ...]) -> bool:
    given = request.header("Authorization").strip()
    token = accepted[0][len(b"Bearer ") :]
    if given[:6].lower() == "basic ":
        try:
            user_pass = base64.b64decode(given[6:].strip(), validate=True)
        except (ValueError, binascii.Error):
            return False
        return hmac.compare_digest(user_pass.partition(b":")[2], token)
    return hmac.compare_digest(given.encode("latin-1", "replace"), accepted[0])


def _bind(addr: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    return socket.create_server((addr, port), family=family, backlog=_BACKLOG)


def serve(
    addr: str,
    port: int,
    registry: CollectorRegistry,
    health: Health,
    control: Control | None = None,
    *,
    journal: Journal | None = None,
    limits: Limits | None = None,
    clock: Callable[[], float] = time.monotonic,
    status: StatusPage | None = None,
    pages: tuple[str, int] | None = None,
    status_token: str = "",
) -> Server:
    """Listen on addr:port (bind errors raise here) and serve from a daemon thread.

    `journal` counts and logs refusals (None: not recorded); `clock` times the rate limit of
    those log lines; `status` renders GET / (None: 404); `pages`: the read-only pages on their
    own address and port, the channel alone on addr:port; `status_token`: GET / needs it.
    """
    # Bound here, in the caller's thread, so "address in use" is the caller's exception.
    socks = [(_bind(addr, port), CHANNEL if pages else BOTH)]
    if pages:
        try:
            socks.append((_bind(*pages), PAGES))
        except OSError:
            socks[0][0].close()
            raise
    return Server(
        socks,
        registry,
        health,
        control,
        limits=limits or Limits(),
        journal=journal,
        clock=clock,
        status=status,
        status_token=status_token,
    )
