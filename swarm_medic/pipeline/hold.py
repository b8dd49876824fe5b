"""The alerts hold (`--hold-while-alerts URL,NAME,...`): no action while a chosen alert fires.

Like kured's: Prometheus's `/api/v1/alerts` is asked with a short timeout on each scan that
could act, and the answer is one string for the policy's `alerts_hold` gate: "" (no hold) or
why it holds. Prometheus unreachable, an error status, an answer too large or not the JSON
Prometheus writes: hold, and the string says which. The medic does not act on a swarm whose
state it was told to check and could not.

The client is urllib, kept small: http and https only (the setting refuses anything else),
no proxy from the environment, no redirects, a bounded read.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence

TIMEOUT = 3.0  # seconds: a scan waits this long at most for Prometheus
MAX_BYTES = 4 * 1024 * 1024  # a Prometheus with thousands of active alerts still fits


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # a 3xx is an answer we do not follow: it holds


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


class AlertsHold:
    """Asks Prometheus whether any of `names` fires. `check()` -> why it holds, or ""."""

    def __init__(
        self,
        url: str,
        names: Sequence[str],
        *,
        timeout: float = TIMEOUT,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"not an http or https URL: {url[:80]!r}")
        self.url = url.rstrip("/") + "/api/v1/alerts"
        self.names = frozenset(names)
        self.timeout = timeout
        self.max_bytes = max_bytes

    @classmethod
    def from_setting(cls, value: Sequence[str]) -> AlertsHold | None:
        """From `Settings.hold_while_alerts` ((URL, NAME, ...)); None when it is not set."""
        return cls(value[0], value[1:]) if value else None

    def check(self) -> str:
        try:
            body = self._get()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            # HTTPError is a URLError: its str() carries the status
            return f"Prometheus could not be asked ({self.url}): {exc}; holding"
        try:
            firing = self._firing(body)
        except ValueError as exc:
            return f"Prometheus's answer could not be read ({self.url}): {exc}; holding"
        if firing:
            return f"alert(s) firing: {', '.join(firing)}"
        return ""

    def _get(self) -> bytes:
        # S310: the scheme is http or https, checked in __init__ (and by the setting's parser)
        request = urllib.request.Request(self.url, headers={"Accept": "application/json"})  # noqa: S310
        with _OPENER.open(request, timeout=self.timeout) as answer:
            body: bytes = answer.read(self.max_bytes + 1)
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
                firing.add(str(name))
        return sorted(firing)
