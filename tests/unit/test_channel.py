"""swarm_medic.nodes.channel: signed brain-to-node requests, RequestAuth, and `call` over loopback.

The HTTP server listens on 127.0.0.1 port 0 and is only ever asked from 127.0.0.1.
"""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from swarm_medic.nodes.channel import (
    H_NODE,
    H_NONCE,
    H_SIG,
    H_TIME,
    ChannelError,
    Refused,
    RequestAuth,
    Stale,
    call,
    said_skew,
    seal,
    sign,
)
from tests.builders import NOW as T0
from tests.netkit import closed_port

SECRET = b"correct horse battery staple"
NODE = "node-a"
PATH = "/v1/probe"
BODY = b'{"tcp":[]}'


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def signed(
    *,
    secret: bytes = SECRET,
    method: str = "POST",
    path: str = PATH,
    body: bytes = BODY,
    at: float = T0,
    node: str = NODE,
) -> dict[str, str]:
    return sign(secret, method, path, body, at, node=node)


def auth(clock: Clock | None = None, skew: float = 30.0) -> RequestAuth:
    return RequestAuth(SECRET, skew=skew, clock=clock or Clock())


# --- sign / verify -----------------------------------------------------------------------------


def test_a_signed_request_verifies() -> None:
    headers = signed()
    assert set(headers) == {H_TIME, H_NONCE, H_NODE, H_SIG}
    auth().authenticate("POST", PATH, headers, BODY, node=NODE)  # no exception


def test_method_case_does_not_matter() -> None:
    auth().authenticate("post", PATH, signed(method="POST"), BODY, node=NODE)


def test_each_signature_gets_a_fresh_nonce() -> None:
    assert signed()[H_NONCE] != signed()[H_NONCE]


def test_wrong_secret_is_refused() -> None:
    with pytest.raises(Refused, match=r"^bad signature"):
        auth().authenticate("POST", PATH, signed(secret=b"another secret"), BODY, node=NODE)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", PATH, b'{"tcp":[1]}'),
        ("POST", "/v1/act", BODY),
        ("GET", PATH, BODY),
    ],
    ids=["body", "path", "method"],
)
def test_an_altered_request_is_refused(method: str, path: str, body: bytes) -> None:
    with pytest.raises(Refused, match=r"^bad signature"):
        auth().authenticate(method, path, signed(), body, node=NODE)


def test_an_altered_timestamp_is_refused() -> None:
    headers = {**signed(), H_TIME: f"{T0 + 1:.3f}"}
    with pytest.raises(Refused, match=r"^bad signature"):
        auth().authenticate("POST", PATH, headers, BODY, node=NODE)


@pytest.mark.parametrize("missing", [H_TIME, H_NONCE, H_NODE, H_SIG])
def test_a_missing_header_is_unsigned(missing: str) -> None:
    headers = {k: v for k, v in signed().items() if k != missing}
    with pytest.raises(Refused, match=r"^unsigned"):
        auth().authenticate("POST", PATH, headers, BODY, node=NODE)


def test_an_empty_header_is_unsigned() -> None:
    with pytest.raises(Refused, match=r"^unsigned"):
        auth().authenticate("POST", PATH, {**signed(), H_SIG: ""}, BODY, node=NODE)


def test_no_headers_at_all_is_unsigned() -> None:
    with pytest.raises(Refused, match=r"^unsigned"):
        auth().authenticate("POST", PATH, {}, BODY, node=NODE)


def test_a_request_for_another_node_is_refused_after_its_signature() -> None:
    v = auth()
    headers = signed(node="node-b")
    with pytest.raises(Refused, match=r"^request meant for node node-b, not for this node"):
        v.authenticate("POST", PATH, headers, BODY, node=NODE)
    v.authenticate("POST", PATH, signed(), BODY, node=NODE)


def test_the_node_header_is_signed() -> None:
    headers = {**signed(node="node-b"), H_NODE: NODE}
    with pytest.raises(Refused, match=r"^bad signature"):
        auth().authenticate("POST", PATH, headers, BODY, node=NODE)


def test_verify_gives_back_the_nonce_the_answer_is_sealed_with() -> None:
    headers = signed()
    assert auth().authenticate("POST", PATH, headers, BODY, node=NODE) == headers[H_NONCE]


@pytest.mark.parametrize("offset", [-31.0, 31.0], ids=["too-old", "from-the-future"])
def test_a_timestamp_beyond_the_skew_is_refused(offset: float) -> None:
    headers = signed(at=T0 + offset)
    with pytest.raises(Refused, match=r"^timestamp"):
        auth(Clock(T0), skew=30.0).authenticate("POST", PATH, headers, BODY, node=NODE)


@pytest.mark.parametrize("offset", [-31.0, 31.0, float("nan")])
def test_a_stale_refusal_says_this_nodes_clock_minus_the_timestamp(offset: float) -> None:
    headers = signed(at=T0 - offset)  # NaN: signed as "nan", which passed the check before
    with pytest.raises(Stale) as refused:
        auth(Clock(T0), skew=30.0).authenticate("POST", PATH, headers, BODY, node=NODE)
    assert refused.value.off == pytest.approx(offset, nan_ok=True)


@pytest.mark.parametrize(
    ("detail", "skew"),
    [
        (b'{"error": "refused", "skew": 45.5}', 45.5),
        (b'{"error": "refused", "skew": -3600}', -3600.0),
        (b'{"error": "refused"}', None),  # refused for another reason: not a clock's
        (b'{"error": "refused", "skew": true}', None),
        (b'{"error": "refused", "skew": "45"}', None),
        (b'{"error": "refused", "skew": 1e300}', None),  # not a believable clock
        (b'{"error": "refused", "skew": NaN}', None),
        (b'["skew", 4]', None),
        (b'{"error": "refused", "sk', None),  # cut at 200 bytes, or not JSON at all
    ],
)
def test_the_skew_a_refusal_names_is_read_only_when_believable(
    detail: bytes, skew: float | None
) -> None:
    assert said_skew(detail) == skew


@pytest.mark.parametrize("offset", [-29.0, 29.0])
def test_a_timestamp_within_the_skew_is_accepted(offset: float) -> None:
    auth(Clock(T0), skew=30.0).authenticate("POST", PATH, signed(at=T0 + offset), BODY, node=NODE)


def test_the_same_request_twice_is_a_replay() -> None:
    v = auth()
    headers = signed()
    v.authenticate("POST", PATH, headers, BODY, node=NODE)
    with pytest.raises(Refused, match=r"^replayed"):
        v.authenticate("POST", PATH, headers, BODY, node=NODE)


def test_a_replay_is_refused_later_within_the_skew() -> None:
    clock = Clock()
    v = auth(clock)
    headers = signed()
    v.authenticate("POST", PATH, headers, BODY, node=NODE)
    clock.now = T0 + 20
    with pytest.raises(Refused, match=r"^replayed"):
        v.authenticate("POST", PATH, headers, BODY, node=NODE)


def test_a_refused_forgery_does_not_burn_the_nonce() -> None:
    v = auth()
    headers = signed()
    with pytest.raises(Refused, match=r"^bad signature"):
        v.authenticate("POST", PATH, {**headers, H_SIG: "0" * 64}, BODY, node=NODE)
    v.authenticate("POST", PATH, headers, BODY, node=NODE)  # the genuine one still goes through


def test_nonces_older_than_twice_the_skew_are_forgotten() -> None:
    clock = Clock()
    v = RequestAuth(SECRET, skew=30.0, clock=clock, monotonic=clock)
    for _ in range(3):
        v.authenticate("POST", PATH, signed(at=T0), BODY, node=NODE)
    assert len(v._seen) == 3

    clock.now = T0 + 59  # within 2 * skew: all remembered, plus the new one
    v.authenticate("POST", PATH, signed(at=clock.now), BODY, node=NODE)
    assert len(v._seen) == 4

    clock.now = T0 + 61  # the first three are now older than 2 * skew
    v.authenticate("POST", PATH, signed(at=clock.now), BODY, node=NODE)
    assert len(v._seen) == 2

    clock.now = T0 + 200
    v.authenticate("POST", PATH, signed(at=clock.now), BODY, node=NODE)
    assert len(v._seen) == 1


def test_a_wall_clock_stepped_forward_and_back_does_not_forget_a_nonce() -> None:
    # before: the store was pruned by the wall clock; stepped 100 s ahead, one request swept
    # every nonce, and stepped back the captured request was inside the skew again
    wall, mono = Clock(), Clock(0.0)
    v = RequestAuth(SECRET, skew=30.0, clock=wall, monotonic=mono)
    captured = signed(at=T0)
    v.authenticate("POST", PATH, captured, BODY, node=NODE)
    wall.now, mono.now = T0 + 100, 1.0
    v.authenticate("POST", PATH, signed(at=wall.now), BODY, node=NODE)
    wall.now, mono.now = T0 + 1, 2.0
    with pytest.raises(Refused, match=r"^replayed"):
        v.authenticate("POST", PATH, captured, BODY, node=NODE)


def test_a_forgotten_nonce_cannot_be_replayed_because_its_timestamp_is_stale() -> None:
    clock = Clock()
    v = RequestAuth(SECRET, skew=30.0, clock=clock, monotonic=clock)
    headers = signed(at=T0)
    v.authenticate("POST", PATH, headers, BODY, node=NODE)
    clock.now = T0 + 61
    v.authenticate("POST", PATH, signed(at=clock.now), BODY, node=NODE)  # sweeps the old nonce
    with pytest.raises(Refused, match=r"^timestamp"):
        v.authenticate("POST", PATH, headers, BODY, node=NODE)


# --- call over loopback --------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    def server_bind(self) -> None:
        # skip HTTPServer's getfqdn(): no DNS query from a unit test
        socketserver.TCPServer.server_bind(self)


class Node:
    """A stand-in node on 127.0.0.1: verifies with a real RequestAuth, then answers by path,
    sealed (or, on the hostile paths, not)."""

    def __init__(self) -> None:
        self.verifier = RequestAuth(SECRET)
        self.received: list[dict[str, Any]] = []
        node = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    nonce = node.verifier.authenticate(
                        "POST", self.path, dict(self.headers.items()), body, node=NODE
                    )
                except Exception as exc:  # noqa: BLE001 - the test server answers every error
                    self._send(401, json.dumps({"error": str(exc)}).encode())
                    return
                node.received.append(json.loads(body))
                answer = json.dumps({"ok": True, "echo": json.loads(body)}).encode()
                if self.path == "/text":
                    self._send(200, b"<html>not json</html>")
                elif self.path == "/unsealed":
                    self._send(200, answer)
                elif self.path == "/wrong-nonce":
                    self._send(
                        200, json.dumps(seal(SECRET, self.path, "0" * 32, NODE, answer)).encode()
                    )
                elif self.path == "/huge":
                    self._send(200, b" " * (3 << 20))
                elif self.path == "/garbage":
                    self.wfile.write(b"\x00\xffnot http at all\r\n\r\n")
                else:
                    self._send(
                        200, json.dumps(seal(SECRET, self.path, nonce, NODE, answer)).encode()
                    )

            def _send(self, code: int, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        ).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def node() -> Iterator[Node]:
    n = Node()
    yield n
    n.close()


def ask(url: str, path: str, payload: object, key: bytes = SECRET, **kw: Any) -> bytes:
    return call(url, path, json.dumps(payload).encode(), key, node=NODE, timeout=5, **kw)


def test_call_gets_the_sealed_answer(node: Node) -> None:
    answer = ask(node.url, "/v1/probe", {"tcp": [], "n": 1})
    assert json.loads(answer) == {"ok": True, "echo": {"tcp": [], "n": 1}}
    assert node.received == [{"tcp": [], "n": 1}]


def test_call_signs_with_the_injected_clock(node: Node) -> None:
    with pytest.raises(ChannelError, match=r"HTTP 401.*timestamp"):
        ask(node.url, "/v1/probe", {}, clock=lambda: 1000.0)
    assert node.received == []


def test_call_with_the_wrong_secret_is_a_channel_error(node: Node) -> None:
    with pytest.raises(ChannelError, match=r"HTTP 401.*bad signature"):
        ask(node.url, "/v1/probe", {}, b"wrong")
    assert node.received == []


def test_call_to_the_wrong_node_is_refused(node: Node) -> None:
    with pytest.raises(ChannelError, match=r"HTTP 401.*meant for node node-b"):
        call(node.url, "/v1/probe", b"{}", SECRET, node="node-b", timeout=5)
    assert node.received == []


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("/text", "Envelope: JSON is malformed"),
        ("/unsealed", "Envelope: Object missing required field `sig`"),
        ("/wrong-nonce", "answer signature does not verify"),
        ("/huge", "answer over"),
        ("/garbage", "BadStatusLine|RemoteDisconnected"),
    ],
)
def test_an_answer_that_is_not_sealed_for_this_request_is_a_channel_error(
    node: Node, path: str, why: str
) -> None:
    with pytest.raises(ChannelError, match=why):
        ask(node.url, path, {})
    assert node.received == [{}]  # the node did get (and accept) the request


def test_connection_refused_is_a_channel_error() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(ChannelError, match=f"^{url}/v1/probe: ConnectionRefusedError"):
        ask(url, "/v1/probe", {})
