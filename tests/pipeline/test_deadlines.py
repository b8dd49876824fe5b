"""One deadline for a whole exchange (issue 16, section 2), and no credential shown (section 3).

A trickling server on 127.0.0.1 answers one byte every 50 ms, for at most 4 s, then closes:
with a per-read timeout (the code before) the client waits the whole 4 s; with one deadline
for the exchange it gives up at its timeout. Every server and client is bounded in time.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from swarm_medic.config import load as load_settings
from swarm_medic.core.errors import SettingsError
from swarm_medic.core.settings import SafetySettings
from swarm_medic.nodes.channel import ChannelError, call
from swarm_medic.pipeline.hold import AlertsHold

SECRET = b"s" * 32
ALERTS = json.dumps({"status": "success", "data": {"alerts": []}}).encode()
TRICKLE_FOR = 4.0


def answer(body: bytes) -> bytes:
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    return head.encode() + body


class Trickler:
    """Accepts connections; sends `fast` at once, then `slow` one byte per `every` seconds."""

    def __init__(self, fast: bytes, slow: bytes, every: float = 0.05) -> None:
        self.fast, self.slow, self.every = fast, slow, every
        self.requests: list[bytes] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(1.0)
            try:
                self.requests.append(conn.recv(65536))
                conn.sendall(self.fast)
                until = time.monotonic() + TRICKLE_FOR
                for b in self.slow:
                    if self.stop.is_set() or time.monotonic() > until:
                        return
                    conn.sendall(bytes([b]))
                    time.sleep(self.every)
            except OSError:
                return  # the client gave up: what is being tested

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def trickler() -> Iterator[list[Trickler]]:
    made: list[Trickler] = []
    yield made
    for t in made:
        t.close()


def served(made: list[Trickler], fast: bytes, slow: bytes) -> Trickler:
    t = Trickler(fast, slow)
    made.append(t)
    return t


# --- the alerts hold ----------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["head", "body"])
def test_a_prometheus_trickling_its_answer_holds_within_the_timeout(
    trickler: list[Trickler], where: str
) -> None:
    full = answer(ALERTS)
    cut = full.index(b"\r\n\r\n") + 4 if where == "body" else 5
    t = served(trickler, full[:cut], full[cut:])
    hold = AlertsHold(f"http://127.0.0.1:{t.port}", ["X"], timeout=0.5)

    started = time.monotonic()
    why = hold.check()
    took = time.monotonic() - started

    print(f"\n[trickled {where}] check() returned in {took:.2f}s with timeout 0.5s")
    assert took < 1.5  # before: the whole TRICKLE_FOR, one byte never late for a read
    assert "within 0.5s" in why and why.endswith("holding")


def test_prometheus_is_asked_with_basic_auth_and_never_shows_it(trickler: list[Trickler]) -> None:
    t = served(trickler, answer(ALERTS), b"")
    hold = AlertsHold(f"http://127.0.0.1:{t.port}/prom", ["X"], basic_auth="ops:pa55word")
    assert hold.check() == ""
    expected = base64.b64encode(b"ops:pa55word").decode()
    assert f"Authorization: Basic {expected}".encode() in t.requests[0]
    assert t.requests[0].startswith(b"GET /prom/api/v1/alerts HTTP/1.1")
    t.stop.set()
    assert "pa55word" not in hold.check()  # refused now: the reason names no credential


def test_prometheus_is_asked_with_a_bearer_token(trickler: list[Trickler]) -> None:
    t = served(trickler, answer(ALERTS), b"")
    url = f"http://127.0.0.1:{t.port}"
    hold = AlertsHold.of(SafetySettings(hold_while_alerts=(url, "X"), hold_bearer_token="tok1"))  # noqa: S106 - a test token
    assert hold is not None and hold.check() == ""
    assert b"Authorization: Bearer tok1\r\n" in t.requests[0]


def test_credentials_in_the_url_are_refused_and_never_echoed() -> None:
    # before: accepted, never sent (urllib ignores them: held forever), and the password was
    # printed in /healthz, the log, `check` and this very error
    with pytest.raises(SettingsError) as err:
        load_settings({}, {"SWARM_MEDIC_HOLD_WHILE_ALERTS": "http://ops:s3cr3t@prom:9090,X"})
    assert "s3cr3t" not in str(err.value) and "ops" not in str(err.value)
    assert "--hold-basic-auth" in str(err.value)
    assert "http://prom:9090" in str(err.value)


def test_a_hold_names_the_url_without_credentials() -> None:
    hold = AlertsHold("https://prom.example:9443/base", ["X"], basic_auth="u:p4ss")
    assert hold.url == "https://prom.example:9443/base/api/v1/alerts"
    with pytest.raises(ValueError, match="credentials in the URL"):
        AlertsHold("http://u:p4ss@prom:9090", ["X"])


def test_basic_auth_and_a_bearer_token_together_are_refused_at_start() -> None:
    env = {
        "SWARM_MEDIC_HOLD_WHILE_ALERTS": "http://prom:9090,X",
        "SWARM_MEDIC_HOLD_BASIC_AUTH": "u:secretpw",
        "SWARM_MEDIC_HOLD_BEARER_TOKEN": "secrettok",
    }
    settings = load_settings({}, env)
    assert "secretpw" not in repr(settings) and "secrettok" not in repr(settings)
    with pytest.raises(ValueError, match="set one"):
        AlertsHold.of(settings.safety)
    with pytest.raises(SettingsError) as err:
        load_settings({}, {**env, "SWARM_MEDIC_HOLD_BASIC_AUTH": "no-colon"})
    assert "no-colon" not in str(err.value)


# --- the brain-to-node channel -----------------------------------------------------------------


@pytest.mark.parametrize("where", ["head", "body"])
def test_a_node_trickling_its_answer_costs_one_timeout(
    trickler: list[Trickler], where: str
) -> None:
    full = answer(b'{"sig":"' + b"0" * 64 + b'","body":"{}"}')
    cut = full.index(b"\r\n\r\n") + 4 if where == "body" else 3
    t = served(trickler, full[:cut], full[cut:])

    started = time.monotonic()
    with pytest.raises(ChannelError, match=r"no complete answer within 0\.5s"):
        call(f"http://127.0.0.1:{t.port}", "/v1/probe", b"{}", SECRET, node="n1", timeout=0.5)
    took = time.monotonic() - started

    print(f"\n[node trickling its {where}] call() returned in {took:.2f}s with timeout 0.5s")
    assert took < 1.5  # before, the head: the whole TRICKLE_FOR (the deadline was the body's)


def test_many_trickling_calls_at_once_share_one_deadline_thread(trickler: list[Trickler]) -> None:
    full = answer(b"{}")
    t = served(trickler, full[:3], full[3:])
    before = threading.active_count()
    errors: list[str] = []

    def one() -> None:
        try:
            call(f"http://127.0.0.1:{t.port}", "/v1/probe", b"{}", SECRET, node="n", timeout=0.3)
        except ChannelError as exc:
            errors.append(str(exc))

    callers = [threading.Thread(target=one) for _ in range(20)]
    started = time.monotonic()
    for c in callers:
        c.start()
    for c in callers:
        c.join(timeout=5)
    took = time.monotonic() - started
    time.sleep(0.2)  # the trickler's own threads notice the closed sockets

    assert len(errors) == 20 and all("within 0.3s" in e for e in errors)
    assert took < 1.5
    assert threading.active_count() <= before + 1  # at most the reaper, started once
