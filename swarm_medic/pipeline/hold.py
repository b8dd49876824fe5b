"""The alerts hold (`--hold-while-alerts URL,NAME,...`): no action while a chosen alert fires.

Like kured's: Prometheus's `/api/v1/alerts` is asked on each scan that could act, and the
answer is one string for the policy's `alerts_hold` gate: "" (no hold) or why it holds.
Prometheus unreachable, an error status, an answer too large, late or not the JSON Prometheus
writes: hold, and the string says which. The medic does not act on a swarm whose state it was
told to check and could not.

The client is http.client, kept small: http and https only (the setting refuses anything
else), no proxy from the environment, no redirects (a 3xx holds), a bounded read, and ONE
deadline (`TIMEOUT`) for the whole exchange, connect and TLS included (nodes.deadline): a
Prometheus, or whatever answers at its address, that trickles its answer a byte a second
costs the scan 3 s, not as long as it likes. Authentication is basic auth or a bearer token
(`--hold-basic-auth`, `--hold-bearer-token`, from files like every secret); the URL itself
never carries credentials and is the only thing shown (`/healthz`, `check`, the log).
"""

from __future__ import annotations

import base64
import json
import ssl
import urllib.parse
from collections.abc import Sequence
from http.client import HTTPConnection, HTTPException, HTTPSConnection

from swarm_medic.core.settings import SafetySettings
from swarm_medic.nodes import deadline

TIMEOUT = 3.0  # seconds: a scan waits this long at most for Prometheus, all of the exchange
MAX_BYTES = 4 * 1024 * 1024  # a Prometheus with thousands of active alerts still fits


def shown(url: str) -> str:
    """`url` as it may be printed: scheme, host, port and path, never a user or password."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


class AlertsHold:
    """Asks Prometheus whether any of `names` fires. `check()` -> why it holds, or ""."""

    def __init__(
        self,
        url: str,
        names: Sequence[str],
        *,
        timeout: float = TIMEOUT,
        max_bytes: int = MAX_BYTES,
        basic_auth: str = "",
        bearer_token: str = "",
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http or https URL: {shown(url)[:80]!r}")
        if parts.username is not None or parts.password is not None:
            raise ValueError("credentials in the URL: use --hold-basic-auth")
        if basic_auth and bearer_token:
            raise ValueError("both --hold-basic-auth and --hold-bearer-token are set: set one")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._path = parts.path.rstrip("/") + "/api/v1/alerts"
        self.url = shown(url).rstrip("/") + "/api/v1/alerts"  # what is ever shown
        self.names = frozenset(names)
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._headers = {"Accept": "application/json"}
        if basic_auth:
            pair = base64.b64encode(basic_auth.encode()).decode()
            self._headers["Authorization"] = f"Basic {pair}"
        elif bearer_token:
            self._headers["Authorization"] = f"Bearer {bearer_token}"

    @classmethod
    def from_setting(
        cls, value: Sequence[str], *, basic_auth: str = "", bearer_token: str = ""
    ) -> AlertsHold | None:
        """From `SafetySettings.hold_while_alerts` ((URL, NAME, ...)); None when it is not set."""
        if not value:
            return None
        return cls(value[0], value[1:], basic_auth=basic_auth, bearer_token=bearer_token)

    @classmethod
    def of(cls, settings: SafetySettings) -> AlertsHold | None:
        """From the settings: the URL and names, and the credentials. ValueError when both
        kinds of credentials are set (the message names the flags, never a value)."""
        return cls.from_setting(
            settings.hold_while_alerts,
            basic_auth=settings.hold_basic_auth,
            bearer_token=settings.hold_bearer_token,
        )

    def check(self) -> str:
        try:
            body = self._get()
        except (OSError, HTTPException, ValueError) as exc:
            return f"Prometheus could not be asked ({self.url}): {_said(exc)}; holding"
        try:
            firing = self._firing(body)
        except ValueError as exc:
            return f"Prometheus's answer could not be read ({self.url}): {exc}; holding"
        if firing:
            return f"alert(s) firing: {', '.join(firing)}"
        return ""

    def _connection(self) -> HTTPConnection:
        if self._https:
            return HTTPSConnection(
                self._host, self._port, timeout=self.timeout, context=ssl.create_default_context()
            )
        return HTTPConnection(self._host, self._port, timeout=self.timeout)

    def _get(self) -> bytes:
        conn = self._connection()
        with deadline.within(conn, self.timeout) as exchange:
            try:
                conn.request("GET", self._path, headers=self._headers)
                answer = conn.getresponse()
                status, reason = answer.status, answer.reason
                body = answer.read(self.max_bytes + 1)
            except (OSError, HTTPException):
                if exchange.expired:
                    raise TimeoutError(f"no complete answer within {self.timeout:g}s") from None
                raise
            finally:
                conn.close()
            if exchange.expired:
                raise TimeoutError(f"no complete answer within {self.timeout:g}s")
        if status != 200:
            raise ValueError(f"HTTP Error {status}: {reason[:80]}")
        if len(body) > self.max_bytes:
            raise ValueError(f"the answer is larger than {self.max_bytes} bytes")
        return body

    def _firing(self, body: bytes) -> list[str]:
        """The chosen alerts firing now, by name, sorted. ValueError: not Prometheus's JSON."""
        try:
            doc = json.loads(body)
        except (RecursionError, UnicodeDecodeError):
            raise ValueError("not JSON") from None
        if not isinstance(doc, dict) or doc.get("status") != "success":
            raise ValueError(f"status is not success: {str(doc)[:120]}")
        data = doc.get("data")
        alerts = data.get("alerts") if isinstance(data, dict) else None
        if not isinstance(alerts, list):
            raise ValueError("no data.alerts list")
        firing: set[str] = set()
        for alert in alerts:
            labels = alert.get("labels") if isinstance(alert, dict) else None
            if not isinstance(labels, dict):
                raise ValueError("an alert without labels")
            name = labels.get("alertname")
            if isinstance(name, str) and name in self.names and alert.get("state") == "firing":
                firing.add(name)
        return sorted(firing)


def _said(exc: BaseException) -> str:
    """What went wrong, in a few words: never the request (its headers carry credentials)."""
    text = str(exc)[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
