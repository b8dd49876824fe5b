"""swarm_medic.nodes.fanout: every node's exchange of a round at once, from one thread, each
within its own deadline; whatever one peer does fails its exchange alone.

The peers are scripted servers on 127.0.0.1 (a thread per connection, every wait bounded)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from swarm_medic.core.settings import ProbeSettings, SafetySettings
from swarm_medic.nodes.agent import NodeAgent
from swarm_medic.nodes.fanout import ExchangeError, Reply, Request, exchange_all
from swarm_medic.nodes.rounds import Prober
from swarm_medic.swarm.fake import FakeEngine
from tests import builders as build
from tests.builders import NOW
from tests.netkit import closed_port

Script = Callable[[socket.socket], None]


def http(body: bytes, status: str = "200 OK", extra: str = "") -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n"
    return head.encode() + body


class Peer:
    """Accepts connections on 127.0.0.1; reads each request's head, then runs `script`."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.open = 0
        self.most_open = 0
        self.requests: list[bytes] = []
        self.accepted: list[float] = []  # when each connection came (monotonic)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.accepted.append(time.monotonic())
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with self._lock:
            self.open += 1
            self.most_open = max(self.most_open, self.open)
        with conn:
            conn.settimeout(2.0)
            try:
                got = b""
                while b"\r\n\r\n" not in got:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    got += chunk
                self.requests.append(got)
                self.script(conn)
            except OSError:
                pass  # the client gave up: what some tests are about
            finally:
                with self._lock:
                    self.open -= 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def peers() -> Iterator[Callable[[Script], Peer]]:
    made: list[Peer] = []

    def make(script: Script) -> Peer:
        p = Peer(script)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


def says(data: bytes) -> Script:
    return lambda conn: conn.sendall(data)


def trickles(data: bytes, every: float = 0.05) -> Script:
    def script(conn: socket.socket) -> None:
        for b in data:
            conn.sendall(bytes([b]))
            time.sleep(every)

    return script


def ask(
    *ports: int, timeout: float = 1.0, limit: int = 1 << 16, at_once: int = 256
) -> dict[str, Reply | ExchangeError]:
    return exchange_all(
        [Request(f"n{i}", "127.0.0.1", p, b"GET / HTTP/1.1\r\n\r\n") for i, p in enumerate(ports)],
        timeout=timeout,
        limit=limit,
        at_once=at_once,
    )


def failed(got: Reply | ExchangeError) -> str:
    assert isinstance(got, ExchangeError), got
    return str(got)


def test_every_peer_is_asked_at_once_and_each_reply_is_its_own(
    peers: Callable[[Script], Peer],
) -> None:
    ps = [peers(says(http(f"body {i}".encode(), extra=f"X-Peer: {i}\r\n"))) for i in range(5)]
    got = ask(*(p.port for p in ps))
    assert got == {f"n{i}": Reply(200, f"body {i}".encode()) for i in range(5)}
    assert all(p.requests == [b"GET / HTTP/1.1\r\n\r\n"] for p in ps)


def test_a_status_other_than_200_is_a_reply_the_caller_judges(
    peers: Callable[[Script], Peer],
) -> None:
    p = peers(says(http(b'{"error": "refused"}', "401 Unauthorized")))
    assert ask(p.port) == {"n0": Reply(401, b'{"error": "refused"}')}


def test_a_closed_port_fails_alone(peers: Callable[[Script], Peer]) -> None:
    good = peers(says(http(b"ok")))
    got = ask(closed_port(), good.port)
    assert failed(got["n0"]).startswith("ConnectionRefusedError: ")
    assert got["n1"] == Reply(200, b"ok")


@pytest.mark.parametrize("where", ["head", "body"])
def test_a_peer_trickling_its_answer_fails_at_its_deadline_and_holds_no_one_else(
    peers: Callable[[Script], Peer], where: str
) -> None:
    full = http(b"x" * 200)
    cut = full.index(b"\r\n\r\n") + 4 if where == "body" else 3

    def slowly(conn: socket.socket) -> None:
        conn.sendall(full[:cut])
        trickles(full[cut:])(conn)

    slow = peers(slowly)
    quick = peers(says(http(b"ok")))
    started = time.monotonic()
    got = ask(slow.port, quick.port, timeout=0.4)
    took = time.monotonic() - started
    assert failed(got["n0"]) == "no complete answer within 0.4s"
    assert got["n1"] == Reply(200, b"ok")
    assert took < 1.0


def test_each_exchange_has_its_own_deadline_from_its_own_start(
    peers: Callable[[Script], Peer],
) -> None:
    slow = peers(trickles(http(b"x" * 100)))
    started = time.monotonic()
    got = exchange_all(
        [Request(f"n{i}", "127.0.0.1", slow.port, b"GET / HTTP/1.1\r\n\r\n") for i in range(3)],
        timeout=0.2,
        limit=1 << 16,
        at_once=1,
    )
    took = time.monotonic() - started
    assert [failed(g) for g in got.values()] == ["no complete answer within 0.2s"] * 3
    assert 0.6 <= took < 1.5  # one after the other, 0.2 s each
    first, second, third = slow.accepted
    assert second - first >= 0.19 and third - second >= 0.19


def test_at_most_at_once_exchanges_are_open(peers: Callable[[Script], Peer]) -> None:
    def slowly(conn: socket.socket) -> None:
        time.sleep(0.05)
        conn.sendall(http(b"ok"))

    p = peers(slowly)
    got = ask(*([p.port] * 8), at_once=3)
    assert got == {f"n{i}": Reply(200, b"ok") for i in range(8)}
    assert p.most_open <= 3


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (b"\x00\xff\x13 not HTTP at all\r\n\r\n", "the answer is not HTTP"),
        (b"SSH-2.0-OpenSSH_9.2\r\n", "the answer is not HTTP"),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nno length", "with a length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nab", "with a length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n", "length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n", "answer over 65536 bytes"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "ended before"),
        (b"HTTP/1.1 200", "the answer is not HTTP"),
        (b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"a" * 9000 + b"\r\n\r\n", "not HTTP"),
    ],
    ids=[
        "garbage",
        "another-protocol",
        "no-length",
        "two-lengths",
        "chunked",
        "too-long",
        "cut-short",
        "head-cut-short",
        "endless-head",
    ],
)
def test_an_answer_that_is_not_a_complete_http_answer_fails_saying_how(
    peers: Callable[[Script], Peer], answer: bytes, why: str
) -> None:
    p = peers(says(answer))
    assert why in failed(ask(p.port)["n0"])


def test_nothing_past_the_content_length_is_read(peers: Callable[[Script], Peer]) -> None:
    def endless(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 60000\r\n\r\n")
        for _ in range(100):
            conn.sendall(b"x" * 4096)

    p = peers(endless)
    assert ask(p.port, limit=60000)["n0"] == Reply(200, b"x" * 60000)


def test_an_address_that_is_not_an_ip_is_never_resolved() -> None:
    got = exchange_all([Request("n0", "node2.example.com", 80, b"x")], timeout=0.5, limit=1 << 16)
    assert failed(got["n0"]) == "'node2.example.com' is not an IP address"


def test_a_prober_round_is_not_held_by_a_node_that_trickles(
    peers: Callable[[Script], Peer],
) -> None:
    """The round's promise: one node's trickle costs that node a failure, and the round
    its own timeout, not the trickle's length."""
    slow = peers(trickles(http(b"{}"), every=0.2))
    settings = ProbeSettings(secret="s" * 32, probe_timeout=0.05)  # an exchange: 5.2 s
    prober = Prober(
        settings, NodeAgent(FakeEngine(node_id="n1"), "n1"), port=slow.port, scope=SafetySettings()
    )
    snap = build.snapshot(
        nodes=[build.node("n1", addr="127.0.0.1"), build.node("n2", addr="127.0.0.1")],
        taken_at=NOW,
    )
    started = time.monotonic()
    answers = prober.run(snap, NOW)
    took = time.monotonic() - started
    assert sorted(answers) == ["n1"]
    assert prober.failures["n2"] == (
        f"http://127.0.0.1:{slow.port}/v1/probe: no complete answer within {prober.timeout:g}s"
    )
    assert took < prober.timeout + 1
