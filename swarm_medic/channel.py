"""The brain-to-node channel: JSON over HTTP on the nodes' underlay addresses, signed.

The overlay may be the broken thing, so the brain talks to each node's instance on the node's
own address (Node.Status.Addr) and host-mode port. Every request carries a timestamp, a fresh
nonce and an HMAC-SHA256 over method, path, timestamp, nonce and body with the shared secret
(a docker secret, `--secret` / SWARM_MEDIC_SECRET_FILE). A node refuses (and logs) a request
whose signature does not verify, whose timestamp is more than `skew` seconds off, or whose
nonce it has already seen: a captured request cannot be replayed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

H_TIME = "X-Medic-Timestamp"
H_NONCE = "X-Medic-Nonce"
H_SIG = "X-Medic-Signature"


class Refused(Exception):
    """The request was not authentic or was a replay; the reason is safe to log."""


def signature(secret: bytes, method: str, path: str, *, ts: str, nonce: str, body: bytes) -> str:
    msg = b"\n".join([method.upper().encode(), path.encode(), ts.encode(), nonce.encode(), body])
    return hmac.new(secret, msg, hashlib.sha256).hexdigest()


def sign(secret: bytes, method: str, path: str, body: bytes, now: float) -> dict[str, str]:
    ts, nonce = f"{now:.3f}", os.urandom(16).hex()
    return {
        H_TIME: ts,
        H_NONCE: nonce,
        H_SIG: signature(secret, method, path, ts=ts, nonce=nonce, body=body),
    }


class Verifier:
    """Checks signatures and remembers nonces for the whole window a timestamp is accepted."""

    def __init__(
        self, secret: bytes, *, skew: float = 30.0, clock: Callable[[], float] = time.time
    ) -> None:
        self._secret = secret
        self._skew = skew
        self._clock = clock
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def verify(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> None:
        lower = {k.lower(): v for k, v in headers.items()}  # HTTP header names: any case
        ts, nonce, sig = (lower.get(h.lower()) for h in (H_TIME, H_NONCE, H_SIG))
        if not (ts and nonce and sig):
            raise Refused("unsigned request")
        expected = signature(self._secret, method, path, ts=ts, nonce=nonce, body=body)
        if not hmac.compare_digest(expected, sig):
            raise Refused("bad signature (wrong secret or altered request)")
        try:
            when = float(ts)
        except ValueError:
            raise Refused("unreadable timestamp") from None
        now = self._clock()
        if abs(now - when) > self._skew:
            raise Refused(f"timestamp {now - when:+.0f}s off (clock skew or a replay)")
        with self._lock:
            for n, t in list(self._seen.items()):
                if t < now - 2 * self._skew:
                    del self._seen[n]
            if nonce in self._seen:
                raise Refused("replayed request (nonce already used)")
            self._seen[nonce] = now


class ChannelError(Exception):
    """A node could not be asked (unreachable, bad answer): nothing is known to have happened."""


class NodeRefused(ChannelError):
    """The node's instance answered, and said no (a definitive answer, with its reason)."""


def call(
    url: str,
    path: str,
    payload: Mapping[str, Any],
    secret: bytes,
    *,
    timeout: float,
    clock: Callable[[], float] = time.time,
) -> dict[str, Any]:
    """POST a signed JSON request to http://ADDR:PORT + path; the decoded JSON answer."""
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    headers = {"Content-Type": "application/json", **sign(secret, "POST", path, body, clock())}
    req = urllib.request.Request(url + path, data=body, headers=headers, method="POST")  # noqa: S310 - http:// to a node address from the swarm's own node list
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
            answer = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:200].decode(errors="replace")
        kind = NodeRefused if exc.code == 409 else ChannelError
        raise kind(f"{url}{path}: HTTP {exc.code}: {detail}") from exc
    except (OSError, ValueError) as exc:
        raise ChannelError(f"{url}{path}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(answer, dict):
        raise ChannelError(f"{url}{path}: answer is not a JSON object")
    return answer
