"""Values from text: the parsers every setting (the daemon's and each runbook's) is read with,
and the way back, a value written as one would type it.

Each parser takes the text an operator wrote and returns the value, or raises ValueError with
a message that says what was expected (the caller names the setting). Bounded parsers
(`Duration`, `Count`) carry their range, so `--help` and the README can say it. Pure.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_bool(text: str) -> bool:
    low = text.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError(f"expected one of {sorted(_TRUE | _FALSE)}")


# ASCII only: "\\d" would also take other scripts' digits, which nobody means in a duration.
# A bare number is seconds; otherwise one or more number+unit parts, Go-style (docker's own
# flags: 1h30m, 1m30s, 1.5h) plus `d` for days (what --help and the README write: 1d, 30d).
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$", re.ASCII)
_COMPOUND = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$", re.ASCII)
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", re.ASCII)
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0


def say_duration(seconds: float) -> str:
    """A duration as --help writes it: 15s, 2m, 1d, 500ms, 0."""
    for unit, size in (("d", DAY), ("h", HOUR), ("m", MINUTE), ("s", 1.0)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds * 1000:g}ms" if seconds else "0"


def parse_duration(text: str) -> float:
    m = _DURATION.match(text)
    if m:
        value = float(m.group(1)) * _UNIT[m.group(2)]
    elif _COMPOUND.match(text.strip()):
        value = sum(float(n) * _UNIT[u] for n, u in _PART.findall(text.strip()))
    else:
        raise ValueError("expected a duration such as 30, 30s, 5m, 1h30m or 2d")
    # 309 digits make float() say inf, and an infinite interval or cooldown switches it off
    if not math.isfinite(value):
        raise ValueError("expected a finite duration")
    return value


@dataclass(frozen=True)
class Duration:
    """A duration parser bounded to [low, high]: each setting says what makes sense for it."""

    low: float
    high: float

    def __call__(self, text: str) -> float:
        value = parse_duration(text)
        if not self.low <= value <= self.high:
            low, high = say_duration(self.low), say_duration(self.high)
            raise ValueError(f"expected a duration from {low} to {high}")
        return value


@dataclass(frozen=True)
class Count:
    """A whole number from `low` (1 unless told) to `high`."""

    high: int
    low: int = 1

    def __call__(self, text: str) -> int:
        value = int(text)
        if not self.low <= value <= self.high:
            raise ValueError(f"expected a whole number from {self.low} to {self.high}")
        return value


class Share(float):
    """A share of a whole (0.3: 30 %): the one float setting that is not a duration."""

    __slots__ = ()


def parse_share(text: str) -> Share:
    """A share above 0 and at most 1."""
    value = float(text)
    if not 0 < value <= 1:  # also false for NaN
        raise ValueError("expected a share above 0 and at most 1 (e.g. 0.3)")
    return Share(value)


def parse_port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError("expected a TCP port from 0 to 65535 (0: no HTTP server)")
    return value


def choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}")
        return text

    return parse


SECRET_MIN_BYTES = 32  # 256 bits: what an HMAC-SHA256 key should carry at least


def parse_secret(text: str) -> str:
    # The value itself never appears in a message: only its length.
    if not text:
        raise ValueError(
            "the secret is empty; give at least "
            f"{SECRET_MIN_BYTES} bytes, or leave the setting unset for no channel"
        )
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError("the secret is not valid UTF-8 text") from None
    if size < SECRET_MIN_BYTES:
        raise ValueError(
            f"the secret is {size} byte(s) long; it must be at least {SECRET_MIN_BYTES} "
            "(e.g. openssl rand -hex 32)"
        )
    return text


def parse_token(text: str) -> str:
    """The bearer token Alertmanager sends to POST /v1/alerts: as long as a secret, and
    printable ASCII, since it travels in an HTTP header (a token that cannot be sent as
    written would pass here and then never match)."""
    try:
        token = parse_secret(text)
    except ValueError as exc:
        raise ValueError(str(exc).replace("the secret", "the token")) from None
    if not all("!" <= c <= "~" for c in token):
        raise ValueError(
            "the token must be printable ASCII without spaces: it is sent in an HTTP "
            "header (e.g. openssl rand -hex 32)"
        )
    return token


def parse_names(text: str) -> tuple[str, ...]:
    return tuple(sorted({n.strip() for n in text.split(",") if n.strip()}))


_ALERT_NAME = re.compile(r"^[A-Za-z_:][A-Za-z0-9_:]*$", re.ASCII)  # a Prometheus alert name


def parse_alerts_hold(text: str) -> tuple[str, ...]:
    """ "URL,NAME,..." -> (URL, NAME, ...): Prometheus's base URL, then the alert names.

    Only http and https: the URL is fetched each scan, and urllib would also read file://.
    Empty: no hold."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        return ()
    url, names = parts[0].rstrip("/"), sorted(set(parts[1:]))
    if not re.match(r"^https?://[^/?#\s]+", url, re.ASCII):
        raise ValueError("expected Prometheus's http:// or https:// URL first, then alert names")
    if "@" in url.split("/", 3)[2]:
        # urllib never sent them (the medic held forever) and the URL is shown in /healthz,
        # `check` and the log: credentials come from their own hidden settings
        raise ValueError(
            "the URL carries credentials; give them with --hold-basic-auth USER:PASSWORD or "
            "--hold-bearer-token (SWARM_MEDIC_HOLD_BASIC_AUTH_FILE / _BEARER_TOKEN_FILE)"
        )
    if not names:
        raise ValueError("expected at least one alert name after the URL")
    if bad := [n for n in names if not _ALERT_NAME.match(n)]:
        raise ValueError(f"not an alert name: {bad[0][:60]!r}")
    return (url, *names)


def parse_basic_auth(text: str) -> str:
    """USER:PASSWORD for Prometheus's basic auth (never shown: only what is wrong with it)."""
    user, colon, password = text.partition(":")
    if not colon or not user or not password:
        raise ValueError("expected USER:PASSWORD")
    if any(c in "\r\n" for c in text):
        raise ValueError("expected USER:PASSWORD on one line")
    return text


def parse_bearer(text: str) -> str:
    """A bearer token for Prometheus: printable ASCII, it is sent in an HTTP header."""
    if not text or not all("!" <= c <= "~" for c in text):
        raise ValueError("expected a token of printable ASCII without spaces")
    return text


def redact_userinfo(text: str) -> str:
    """`text` with the user and password of any URL in it removed: what an error may show."""
    return re.sub(r"(?<=://)[^/?#\s,@]*@", "", text)


def parse_urls(text: str) -> tuple[str, ...]:
    """Notification URLs, separated by commas or white space, in order, each once. Only the
    form is checked here (Apprise checks the rest when the daemon starts); a message never
    repeats a URL: they carry tokens."""
    urls = tuple(dict.fromkeys(u for u in re.split(r"[,\s]+", text) if u))
    for i, url in enumerate(urls, 1):
        if "://" not in url:
            raise ValueError(
                f"URL #{i} has no scheme; expected e.g. slack://..., json://host/path "
                "(Apprise URLs)"
            )
    return urls


def show_value(value: object) -> str:
    """A value as one would write it in a flag or a variable ("" for nothing).

    Every float setting but a Share is a duration; the README test parses each shown default
    back."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Share):
        return repr(float(value))
    if isinstance(value, float):
        return say_duration(value)
    if isinstance(value, Mapping):
        return ",".join(f"{k}={show_value(v)}" for k, v in value.items())
    if isinstance(value, tuple):
        return ",".join(show_value(v) for v in value)
    return str(value)
