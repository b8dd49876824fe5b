"""The brain-to-node channel: JSON over HTTP on the nodes' underlay addresses, signed both ways.

The overlay may be the broken thing, so the brain talks to each node's instance on the node's
own address (Node.Status.Addr) and host-mode port. Every request carries a timestamp, a fresh
nonce, the id of the node it is meant for and an HMAC-SHA256 over method, path, timestamp,
nonce, node id and body with the shared secret (a docker secret, `--secret` /
SWARM_MEDIC_SECRET_FILE). A node refuses (and logs) a request whose signature does not verify,
whose timestamp is more than `skew` seconds off, whose nonce it has already seen, or that is
meant for another node: a captured request can be replayed neither to the same node nor to
another one.

Every 200 answer is sealed the same way (`seal`): an HMAC over "answer", the path, the
request's nonce, the answering node's id and the answer's exact bytes, in a JSON envelope
(protocol.Envelope). The brain checks it (`open_answer`) before decoding anything, so a
forged or replayed answer — a fake "TCP failure" that would get a healthy task replaced — is
that node's failure, never data.

Neither the signature nor the seal changed when the protocol got versions: the version rides in
the signed body (protocol.encode), so an instance of the release before versions verifies a
newer one's requests and answers as it always did. `Versions` keeps the protocol each peer last
spoke, on both sides, so a peer that speaks another one is said once, not every round.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
import time
import urllib.parse
from collections.abc import Callable, Collection, Mapping
from http.client import HTTPConnection, HTTPException, HTTPResponse
from typing import NamedTuple

from swarm_medic.core.protocol import (
    MAX_ANSWER,
    MAX_ENVELOPE,
    PROTOCOL,
    Envelope,
    ProtocolError,
    decode,
)
from swarm_medic.nodes import deadline

H_TIME = "X-Medic-Timestamp"
H_NONCE = "X-Medic-Nonce"
H_NODE = "X-Medic-Node"
H_SIG = "X-Medic-Signature"


class Refused(Exception):
    """The request was not authentic or was a replay; the reason is safe to log."""


class Stale(Refused):
    """A genuine request (its signature verified) whose timestamp is more than the skew off:
    `off` is this node's clock minus it. Clock skew, or a replay: the node tells the brain
    how far off, since only a holder of the secret (or a replayer, who learns the node's time,
    as any HTTP Date header says) gets this far."""

    def __init__(self, off: float) -> None:
        super().__init__(f"timestamp {off:+.0f}s off (clock skew or a replay)")
        self.off = off


def signature(
    secret: bytes, method: str, path: str, *, ts: str, nonce: str, node: str, body: bytes
) -> str:
    parts = [method.upper(), path, ts, nonce, node]
    msg = b"\n".join([*(p.encode() for p in parts), body])
    return hmac.new(secret, msg, hashlib.sha256).hexdigest()


def sign(
    secret: bytes, method: str, path: str, body: bytes, now: float, *, node: str
) -> dict[str, str]:
    """Headers of a request meant for node `node` only."""
    ts, nonce = f"{now:.3f}", os.urandom(16).hex()
    return {
        H_TIME: ts,
        H_NONCE: nonce,
        H_NODE: node,
        H_SIG: signature(secret, method, path, ts=ts, nonce=nonce, node=node, body=body),
    }


def answer_signature(secret: bytes, path: str, nonce: str, node: str, body: bytes) -> str:
    # "answer" first: no answer can be mistaken for a request (whose message starts with
    # the method), so a node's answer signature is never a valid request signature.
    msg = b"\n".join([b"answer", path.encode(), nonce.encode(), node.encode(), body])
    return hmac.new(secret, msg, hashlib.sha256).hexdigest()


def seal(secret: bytes, path: str, nonce: str, node: str, body: bytes) -> dict[str, str]:
    """The JSON envelope of a node's answer to the request with nonce `nonce`."""
    return {"sig": answer_signature(secret, path, nonce, node, body), "body": body.decode()}


def open_answer(secret: bytes, path: str, nonce: str, node: str, raw: bytes) -> bytes:
    """The answer's own bytes once its seal verifies; ProtocolError otherwise."""
    env = decode(raw, Envelope, limit=MAX_ENVELOPE)
    body = env.body.encode()
    if len(body) > MAX_ANSWER:
        raise ProtocolError(f"answer: {len(body)} bytes, over the {MAX_ANSWER} limit")
    expected = answer_signature(secret, path, nonce, node, body)
    if not hmac.compare_digest(expected, env.sig):
        raise ProtocolError("answer signature does not verify (forged, replayed or wrong node)")
    return body


class RequestAuth:
    """Checks signatures and remembers nonces for the whole window a timestamp is accepted."""

    def __init__(
        self,
        secret: bytes,
        *,
        skew: float = 30.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.secret = secret  # the node seals its answers with the same secret
        self._skew = skew
        self._clock = clock  # the request's timestamp is compared with the wall clock
        # ... but nonces are forgotten by the monotonic clock: a wall clock stepped forward
        # (NTP, an operator) must not sweep the nonces a clock stepped back then accepts again
        self._monotonic = monotonic
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def authenticate(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes, *, node: str
    ) -> str:
        """Checks a request meant for `node` (this node); returns its nonce."""
        lower = {k.lower(): v for k, v in headers.items()}  # HTTP header names: any case
        ts, nonce, to, sig = (lower.get(h.lower()) for h in (H_TIME, H_NONCE, H_NODE, H_SIG))
        if not (ts and nonce and to and sig):
            raise Refused("unsigned request")
        if not sig.isascii():
            # compare_digest raises on a non-ASCII str: that is a bad signature, not a bug
            raise Refused("bad signature (not ASCII)")
        expected = signature(self.secret, method, path, ts=ts, nonce=nonce, node=to, body=body)
        if not hmac.compare_digest(expected, sig):
            raise Refused("bad signature (wrong secret or altered request)")
        if to != node:
            # after the signature check: only a genuine request sent to the wrong place, or
            # replayed from another node, gets this far
            raise Refused(f"request meant for node {to[:32]}, not for this node")
        try:
            when = float(ts)
        except ValueError:
            raise Refused("unreadable timestamp") from None
        now = self._clock()
        if not abs(now - when) <= self._skew:  # NaN is off too
            raise Stale(now - when)
        held = self._monotonic()
        with self._lock:
            # kept for twice the window a timestamp is accepted in, whatever the wall clock did
            for n, t in list(self._seen.items()):
                if t < held - 2 * self._skew:
                    del self._seen[n]
            if nonce in self._seen:
                raise Refused("replayed request (nonce already used)")
            self._seen[nonce] = held
        return nonce


class Change(NamedTuple):
    """A peer heard speaking another protocol than before (`before` None: first heard)."""

    before: int | None
    theirs: int


class Versions:
    """The protocol each peer last spoke (only peers that proved they hold the secret: a signed
    request, a sealed answer), so that a change is news once rather than a line every round;
    bounded, the oldest forgotten first."""

    def __init__(self, ours: int = PROTOCOL, *, limit: int = 1024) -> None:
        self.ours = ours
        self._limit = limit
        self._last: dict[str, int] = {}
        self._lock = threading.Lock()

    def get(self, peer: str) -> int | None:
        with self._lock:
            return self._last.get(peer)

    def heard(self, peer: str, theirs: int) -> Change | None:
        """Records what `peer` speaks; the change worth saying, if any: a peer first heard
        speaking another protocol than ours, or one that speaks another than it did."""
        with self._lock:
            before = self._last.pop(peer, None)
            self._last[peer] = theirs  # last in the order: the most recently heard
            if len(self._last) > self._limit:
                del self._last[next(iter(self._last))]
        if theirs == before or (before is None and theirs == self.ours):
            return None
        return Change(before, theirs)

    def keep(self, peers: Collection[str]) -> None:
        """Forgets every peer not in `peers` (nodes that left the swarm)."""
        with self._lock:
            self._last = {p: v for p, v in self._last.items() if p in peers}


class ChannelError(Exception):
    """A node could not be asked (unreachable, bad answer): nothing is known to have happened."""


class NodeRefused(ChannelError):
    """The node's instance answered, and said no (a definitive answer, with its reason)."""


# The largest clock offset a refusal may report and be believed: ten years either way. It is
# unsigned (a forged one can only make the brain say a node's clock looks off).
MAX_SKEW = 10 * 365 * 86400.0


class ClockRefused(ChannelError):
    """The node refused the request as too far off in time: `skew` is what it said (its clock
    minus the request's timestamp), `sent` and `received` when the brain signed the request
    and heard the refusal (its clock)."""

    def __init__(self, message: str, *, skew: float, sent: float, received: float) -> None:
        super().__init__(message)
        self.skew, self.sent, self.received = skew, sent, received


def said_skew(detail: bytes) -> float | None:
    """The clock offset a node's 401 answer names (`{"error": "refused", "skew": S}`), or
    None: another refusal, or not a believable number."""
    try:
        said = json.loads(detail)
    except ValueError:
        return None
    skew = said.get("skew") if isinstance(said, dict) else None
    if isinstance(skew, bool) or not isinstance(skew, int | float):
        return None
    return float(skew) if abs(skew) <= MAX_SKEW else None  # NaN is refused by the comparison


def call(
    url: str,
    path: str,
    body: bytes,
    secret: bytes,
    *,
    node: str,
    timeout: float,
    clock: Callable[[], float] = time.time,
) -> bytes:
    """POST a signed request meant for `node` to http://ADDR:PORT + path; the answer's bytes
    once its seal verifies (decoding them into a message is the caller's, with protocol)."""
    sent = clock()
    signed = sign(secret, "POST", path, body, sent, node=node)
    headers = {"Content-Type": "application/json", **signed}
    parts = urllib.parse.urlsplit(url)
    # http.client, not urllib: a round is one request per node, and urllib's opener and
    # handler chain cost about a third more CPU per request for nothing we use
    conn = HTTPConnection(parts.hostname or "", parts.port or 80, timeout=timeout)
    # One deadline for the whole exchange, the head included: whatever answers on a node's
    # address and trickles its head one byte at a time costs one timeout, and holds no pool
    # thread of the rounds past it (every node, the brain's own, would read as "no answer").
    with deadline.within(conn, timeout) as exchange:
        try:
            conn.request("POST", path, body=body, headers=headers)
            resp = conn.getresponse()
            if resp.status != 200:
                detail = resp.read(200)
                if exchange.expired:
                    raise TimeoutError
                raise not_ok(f"{url}{path}", resp.status, detail, sent, clock())
            raw = _read(resp, MAX_ENVELOPE)
            if exchange.expired:
                raise TimeoutError
        except (NodeRefused, ClockRefused):
            raise
        except (OSError, HTTPException, ValueError) as exc:
            if exchange.expired:
                raise ChannelError(f"{url}{path}: no complete answer within {timeout:g}s") from None
            # HTTPException: whatever answers on that port does not speak HTTP
            raise ChannelError(f"{url}{path}: {type(exc).__name__}: {str(exc)[:200]}") from None
        finally:
            conn.close()
    try:
        return open_answer(secret, path, signed[H_NONCE], node, raw)
    except ProtocolError as exc:
        raise ChannelError(f"{url}{path}: {exc}") from None


def request_bytes(host: str, port: int, path: str, body: bytes, signed: Mapping[str, str]) -> bytes:
    """The whole HTTP request of a signed POST, as `call` sends one (nodes/fanout.py sends it)."""
    where = f"[{host}]" if ":" in host else host
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {where}:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{k}: {v}" for k, v in signed.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def not_ok(where: str, status: int, detail: bytes, sent: float, received: float) -> ChannelError:
    """The error a node's non-200 answer is: ClockRefused (a 401 that says how far off the
    request's time was), NodeRefused (409) or ChannelError; `sent`/`received` on the brain's
    clock."""
    said = f"{where}: HTTP {status}: {detail.decode(errors='replace')}"
    skew = said_skew(detail) if status == 401 else None
    if skew is not None:
        return ClockRefused(said, skew=skew, sent=sent, received=received)
    # 409: the node's instance answered and said no (its reason, unsigned: a forged refusal
    # can only make the brain do less)
    return NodeRefused(said) if status == 409 else ChannelError(said)


def _read(resp: HTTPResponse, limit: int) -> bytes:
    """At most `limit` bytes (the exchange's deadline cuts a node that drips them): a node
    that talks forever costs one round's timeout, not memory or the round itself."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = resp.read1(65536)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise ValueError(f"answer over {limit} bytes")
        chunks.append(chunk)
