"""One HTTP port: GET / (the status page, telemetry/status.py), GET /metrics (Prometheus),
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
* At most `Limits.connections` connections are held. A new one, when full, evicts the oldest
  connection that has not finished sending its head (the shape of a slowloris); only when every
  held connection is past its head is the new one refused with 503.
* /, /metrics and /healthz are answered on the loop itself: quick, and never queued behind the
  channel. Control handlers (which may block for seconds while they probe) run on a pool of
  `Limits.control_workers` threads; a request that finds them all busy, or whose body would
  take the bodies held at once past `Limits.body_budget_bytes`, gets 503 at once. Nothing queues.
* One request per connection (`Connection: close`): no keep-alive state to bound.
* Every refusal goes to `Journal.http_refused` (counted by reason, logged rate-limited).
"""

from __future__ import annotations

import asyncio
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

from swarm_medic.telemetry import status as status_mod
from swarm_medic.telemetry.httphead import Limits, Reason, Refusal, Request, parse_head, split_head
from swarm_medic.telemetry.journal import Journal

Health = Callable[[], tuple[bool, dict[str, Any]]]
Control = Callable[[str, Mapping[str, str], bytes, str], tuple[int, dict[str, Any]]]
StatusPage = Callable[[], bytes]  # the rendered HTML of GET / (status.Page)
_BACKLOG = 128


@dataclass
class _Connection:
    task: asyncio.Task[None]
    writer: asyncio.StreamWriter
    peer: str
    head_done: bool = False


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
    extra = {"Allow": "GET, POST"} if r.reason is Reason.METHOD_NOT_ALLOWED else None
    return _response(r.status, "text/plain", f"{r.reason}: {r.detail}\n".encode(), extra)


_FULL = Refusal(503, Reason.TOO_MANY_CONNECTIONS, "connection limit reached")
_EVICTED = Refusal(503, Reason.EVICTED, "oldest connection still sending its head")


class Server:
    """The running port. `server_address`, `shutdown()` and `server_close()` as socketserver's."""

    def __init__(
        self,
        sock: socket.socket,
        registry: CollectorRegistry,
        health: Health,
        control: Control | None,
        *,
        limits: Limits,
        journal: Journal | None,
        clock: Callable[[], float],
        status: StatusPage | None = None,
    ) -> None:
        self.server_address: tuple[str, int] = sock.getsockname()[:2]
        self.limits = limits
        self._registry = registry
        self._health = health
        self._control = control
        self._status = status
        self._journal = journal
        self._clock = clock
        # Only the loop thread touches these three: no lock.
        self._connections: dict[int, _Connection] = {}
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
            target=self._run, args=(sock,), name="swarm-medic-http", daemon=True
        )
        self._thread.start()
        self._started.wait()
        if self._start_error is not None:
            raise self._start_error

    # --- life cycle -------------------------------------------------------------------------

    def _run(self, sock: socket.socket) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        try:
            server = loop.run_until_complete(
                asyncio.start_server(
                    self._serve_connection, sock=sock, limit=self.limits.head_bytes
                )
            )
        except Exception as exc:  # noqa: BLE001 - handed to serve()'s caller, raised there
            self._start_error = exc
            sock.close()
            loop.close()
            return
        finally:
            self._started.set()
        try:
            loop.run_forever()
        finally:
            server.close()
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
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

    def _admit(self, conn: _Connection) -> bool:
        if len(self._connections) >= self.limits.connections:
            victim = next((c for c in self._connections.values() if not c.head_done), None)
            if victim is None:
                self._refused(_FULL, conn.peer)
                conn.writer.write(_refusal_response(_FULL))
                conn.writer.close()
                return False
            del self._connections[id(victim)]
            self._refused(_EVICTED, victim.peer)
            victim.writer.write(_refusal_response(_EVICTED))
            victim.task.cancel()
        self._connections[id(conn)] = conn
        return True

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        # A connection callback always runs in a task of its own.
        task = cast("asyncio.Task[None]", asyncio.current_task())
        peer_addr = writer.get_extra_info("peername")
        peer = str(peer_addr[0]) if isinstance(peer_addr, tuple) else "?"
        # Zero: drain() then waits until every byte is with the kernel, so a client that does
        # not read cannot park an answer in our memory beyond the write deadline.
        writer.transport.set_write_buffer_limits(high=0)
        conn = _Connection(task, writer, peer)
        if not self._admit(conn):
            return
        try:
            await self._exchange(conn, reader, writer)
        except Refusal as r:
            self._refused(r, peer)
            await self._send(writer, _refusal_response(r), peer)
        except asyncio.CancelledError:
            pass  # evicted, or the server is stopping: the connection just closes
        except (ConnectionError, OSError):
            pass  # the client went away: nobody to answer
        except Exception as exc:  # noqa: BLE001 - a bug in one request must not stop the port
            bug = Refusal(500, Reason.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
            self._refused(bug, peer)
            await self._send(writer, _refusal_response(bug), peer)
        finally:
            self._connections.pop(id(conn), None)
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
            self._refused(Refusal(0, Reason.WRITE_TIMEOUT, "client does not read"), peer)
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
                raise Refusal(400, Reason.INCOMPLETE, "connection closed inside the head")
            buf += chunk

    async def _exchange(
        self, conn: _Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            async with asyncio.timeout(self.limits.head_timeout):
                split = await self._read_head(reader)
        except TimeoutError:
            raise Refusal(
                408, Reason.HEAD_TIMEOUT, f"no complete head in {self.limits.head_timeout:g}s"
            ) from None
        if split is None:
            return
        conn.head_done = True
        head, rest = split
        request = parse_head(head, self.limits)
        if request.method == "GET":
            await self._send(writer, self._get(request), conn.peer)
        elif self._control is None or not request.path.startswith("/v1/"):
            await self._send(writer, _response(404, "text/plain", b"not found\n"), conn.peer)
        else:
            code, answer = await self._post(self._control, request, rest, reader, conn)
            body = json.dumps(answer).encode()
            await self._send(writer, _response(code, "application/json", body), conn.peer)

    def _get(self, request: Request) -> bytes:
        if request.path == "/metrics":
            encoder, ctype = choose_encoder(request.header("Accept"))
            return _response(200, ctype, encoder(self._registry))
        if request.path == "/healthz":
            ok, detail = self._health()
            body = json.dumps({"ok": ok, **detail}, sort_keys=True).encode()
            return _response(200 if ok else 503, "application/json", body)
        if request.path == "/" and self._status is not None:
            return _response(200, status_mod.CONTENT_TYPE, self._status(), status_mod.HEADERS)
        if request.path == "/favicon.ico" and self._status is not None:
            # every browser asks; a 404 would be a console error on the status page
            return _response(204, "image/x-icon", b"", {"Cache-Control": "max-age=86400"})
        return _response(404, "text/plain", b"not found: try /metrics or /healthz\n")

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
            raise Refusal(503, Reason.BUSY, "control workers or body budget exhausted")
        self._body_bytes += length
        try:
            body = await self._read_body(request, rest, reader, conn.writer)
            if self._workers_busy >= self.limits.control_workers:
                raise Refusal(503, Reason.BUSY, "control workers exhausted")
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
                408, Reason.BODY_TIMEOUT, f"body not complete in {self.limits.body_timeout:g}s"
            ) from None
        except asyncio.IncompleteReadError:
            raise Refusal(400, Reason.INCOMPLETE, "connection closed inside the body") from None
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
                Reason.HANDLER_TIMEOUT,
                f"{request.path} took over {self.limits.handler_timeout:g}s",
            ) from None


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
) -> Server:
    """Listen on addr:port (bind errors raise here) and serve from a daemon thread.

    `journal` counts and logs refusals (None: not recorded); `clock` times the rate limit of
    those log lines; `status` renders GET / (None: 404).
    """
    # Bound here, in the caller's thread, so "address in use" is the caller's exception.
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    sock = socket.create_server((addr, port), family=family, backlog=_BACKLOG)
    return Server(
        sock,
        registry,
        health,
        control,
        limits=limits or Limits(),
        journal=journal,
        clock=clock,
        status=status,
    )
