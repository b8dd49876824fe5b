"""Settings: one frozen object, read from flags, then SWARM_MEDIC_* env, then defaults.

Every setting is declared once, as a field of `Settings` made by `setting(...)`: name, type,
parser, default, help, metavar, group and environment variable. `SPECS` lists them; the CLI
flags, the environment variables, `swarm-medic run --help` (one group per GROUPS entry) and
the README table (`python -m swarm_medic.core.settings --readme README.md`) are generated from
it. Any setting X may also be given as SWARM_MEDIC_X_FILE=path (docker secrets); a value that
does not parse fails at start with a message naming the flag and the variable.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from swarm_medic.core.errors import SettingsError

ENV_PREFIX = "SWARM_MEDIC_"

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


def _say(seconds: float) -> str:
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
            raise ValueError(f"expected a duration from {_say(self.low)} to {_say(self.high)}")
        return value


def parse_positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("expected a whole number of at least 1")
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


# One range per duration setting. Zero would spin a loop or switch a safeguard off, and a
# month is already longer than anyone means; the lower ends leave room for the lab's fast runs.
SCAN_INTERVAL = Duration(0.1, DAY)
SCAN_JITTER = Duration(0.0, HOUR)  # the one duration that may be 0: no jitter
VERIFY_TIMEOUT = Duration(1.0, DAY)
VERIFY_HOLD = Duration(0.1, DAY)
COOLDOWN = Duration(1.0, 30 * DAY)
BREAKER_RESET = Duration(1.0, 30 * DAY)
API_TIMEOUT = Duration(0.1, HOUR)
PROBE_INTERVAL = Duration(0.1, DAY)
PROBE_TIMEOUT = Duration(0.01, MINUTE)
PROBE_GRACE = Duration(0.1, DAY)
NOTIFY_REMIND = Duration(1.0, 30 * DAY)

SECRET_MIN_BYTES = 32  # 256 bits: what an HMAC-SHA256 key should carry at least
FILE_MAX_BYTES = 64 * 1024  # a *_FILE is one value; /dev/zero by mistake must not hang the start


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


# The groups, in the order of `--help` and of the README table. Settings are declared group by
# group in this order (checked when the module is imported).
GROUPS: Mapping[str, str] = MappingProxyType(
    {
        "safety": "what may be touched, and how much: dry run, scope, cooldowns, budgets, breakers",
        "scan": "how often the swarm is looked at",
        "runbooks": "where the runbooks come from (each declares its own settings: "
        "--runbook-setting NAME.KEY=VALUE, `swarm-medic runbooks NAME`)",
        "probes": "overlay probes and the brain-to-node channel",
        "http": "the /metrics and /healthz server",
        "notify": "notifications of each step of an incident (Apprise URLs: Slack, Teams, "
        "Matrix, Discord, email, JSON webhooks, ...)",
        "log": "logging",
        "engine": "the Docker Engine API",
    }
)

T = TypeVar("T")


@dataclass(frozen=True)
class Spec(Generic[T]):
    """Everything about one setting but its Python type, which is its `Settings` field's."""

    name: str
    parse: Callable[[str], T]
    default: T
    help: str
    metavar: str
    group: str
    env: str
    hidden: bool = False  # a secret: never echoed in an error message, its default never shown
    # what an error message may show of a raw value that is not hidden (e.g. a URL's userinfo
    # removed); None: the value as given
    redact: Callable[[str], str] | None = None


def setting(
    name: str,
    parse: Callable[[str], T],
    default: T,
    help: str,
    metavar: str = "VALUE",
    *,
    group: str,
    env: str = "",
    hidden: bool = False,
    redact: Callable[[str], str] | None = None,
) -> T:
    """The one declaration of a setting: a `Settings` field that carries its `Spec`.

    Typed as the default, so mypy checks the parser and the default against the field's type.
    The environment variable is SWARM_MEDIC_<NAME> unless `env` names another.
    """
    spec = Spec(
        name,
        parse,
        default,
        help,
        metavar,
        group,
        env or ENV_PREFIX + name.upper(),
        hidden,
        redact,
    )
    meta = {"spec": spec}
    if type(default).__hash__ is None:  # a mapping: dataclasses refuse it as a plain default
        return field(default_factory=lambda: default, repr=not hidden, metadata=meta)
    return field(default=default, repr=not hidden, metadata=meta)


@dataclass(frozen=True)
class Settings:
    """Every setting, declared once: name, parser, default, help, metavar, group, env name.

    The CLI flags, the environment variables, `--help` and the README table (see `markdown`)
    are all generated from these declarations, through `SPECS`.
    """

    # --- safety
    dry_run: bool = setting(
        "dry_run",
        parse_bool,
        False,
        "observe and say what would be done; change nothing",
        "BOOL",
        group="safety",
    )
    scope: str = setting(
        "scope",
        choice("opt-in", "all"),
        "opt-in",
        "act on services labelled swarm-medic.enable=true (opt-in) or on every service "
        "not labelled swarm-medic.enable=false (all)",
        "opt-in|all",
        group="safety",
    )
    self_services: tuple[str, ...] = setting(
        "self_services",
        parse_names,
        (),
        "names of swarm-medic's own services (never acted on; "
        "services labelled swarm-medic.self=true are excluded too)",
        "NAME,...",
        group="safety",
    )
    verify_timeout: float = setting(
        "verify_timeout",
        VERIFY_TIMEOUT,
        120.0,
        "how long a fix has to take effect",
        "DURATION",
        group="safety",
    )
    verify_hold: float = setting(
        "verify_hold",
        VERIFY_HOLD,
        10.0,
        "how long a fix must hold to count as healed",
        "DURATION",
        group="safety",
    )
    cooldown: float = setting(
        "cooldown",
        COOLDOWN,
        300.0,
        "minimum time between actions of one runbook on one service",
        "DURATION",
        group="safety",
    )
    budget_per_hour: int = setting(
        "budget_per_hour",
        Count(100),
        3,
        "actions per service per hour before the circuit breaker opens",
        "N",
        group="safety",
    )
    breaker_failures: int = setting(
        "breaker_failures",
        Count(100),
        1,
        "fixes in a row that did not hold before the circuit breaker opens",
        "N",
        group="safety",
    )
    breaker_reset: float = setting(
        "breaker_reset",
        BREAKER_RESET,
        3600.0,
        "how long an open circuit stays open",
        "DURATION",
        group="safety",
    )
    max_concurrent_actions: int = setting(
        "max_concurrent_actions",
        Count(1000, low=0),
        0,
        "remediations under way at once across the swarm, those still being verified "
        "included (0: no limit)",
        "N",
        group="safety",
    )
    hold_while_alerts: tuple[str, ...] = setting(
        "hold_while_alerts",
        parse_alerts_hold,
        (),
        "no action while any of these Prometheus alerts fires; Prometheus unreachable also "
        "holds (e.g. http://prometheus:9090,NodeDown,HighErrorRate)",
        "URL,NAME,...",
        group="safety",
        redact=redact_userinfo,
    )
    hold_basic_auth: str = setting(
        "hold_basic_auth",
        parse_basic_auth,
        "",
        "USER:PASSWORD for the Prometheus of --hold-while-alerts, sent as basic auth (use "
        "SWARM_MEDIC_HOLD_BASIC_AUTH_FILE with a docker secret; never shown)",
        "USER:PASSWORD",
        group="safety",
        hidden=True,
    )
    hold_bearer_token: str = setting(
        "hold_bearer_token",
        parse_bearer,
        "",
        "bearer token for the Prometheus of --hold-while-alerts (use "
        "SWARM_MEDIC_HOLD_BEARER_TOKEN_FILE with a docker secret; never shown)",
        "TOKEN",
        group="safety",
        hidden=True,
    )
    ledger_name: str = setting(
        "ledger_name",
        str,
        "swarm-medic-ledger",
        "name of the swarm config whose labels keep the durable history",
        "NAME",
        group="safety",
    )
    # --- scan
    scan_interval: float = setting(
        "scan_interval",
        SCAN_INTERVAL,
        15.0,
        "time between scans (events trigger earlier ones)",
        "DURATION",
        group="scan",
    )
    scan_jitter: float = setting(
        "scan_jitter",
        SCAN_JITTER,
        2.0,
        "random delay added to each scheduled scan",
        "DURATION",
        group="scan",
    )
    # --- runbooks
    runbooks_dir: str = setting(
        "runbooks_dir",
        str,
        "",
        "an extra directory of runbook files to load",
        "PATH",
        group="runbooks",
    )
    # --- probes
    secret: str = setting(
        "secret",
        parse_secret,
        "",
        "shared secret of the brain-to-node channel (use SWARM_MEDIC_SECRET_FILE "
        "with a docker secret); without it each instance probes from its own node only",
        "TEXT",
        group="probes",
        hidden=True,
    )
    probe_interval: float = setting(
        "probe_interval",
        PROBE_INTERVAL,
        15.0,
        "time between overlay probe rounds",
        "DURATION",
        group="probes",
    )
    probe_timeout: float = setting(
        "probe_timeout",
        PROBE_TIMEOUT,
        1.0,
        "TCP connect / DNS timeout of one probe",
        "DURATION",
        group="probes",
    )
    probe_failures: int = setting(
        "probe_failures",
        Count(100),
        3,
        "failed rounds in a row before a task counts as unreachable",
        "N",
        group="probes",
    )
    probe_grace: float = setting(
        "probe_grace",
        PROBE_GRACE,
        20.0,
        "how long a task must have run before it is probed",
        "DURATION",
        group="probes",
    )
    netns_dir: str = setting(
        "netns_dir",
        str,
        "/var/run/docker/netns",
        "where this node's sandbox namespaces are (the host's "
        "/var/run/docker/netns, mounted into the container)",
        "PATH",
        group="probes",
    )
    # --- http
    http_addr: str = setting(
        "http_addr",
        str,
        "0.0.0.0",  # noqa: S104 - scraped by Prometheus from other hosts
        "address of the /metrics and /healthz server",
        "ADDR",
        group="http",
    )
    http_port: int = setting(
        "http_port",
        parse_port,
        9324,
        "port of the /metrics and /healthz server (0: off)",
        "PORT",
        group="http",
    )
    pages_addr: str = setting(
        "pages_addr",
        str,
        "",
        "address of the read-only pages' own listener (/, /metrics, /healthz) when "
        "--pages-port is set; empty: --http-addr",
        "ADDR",
        group="http",
    )
    pages_port: int = setting(
        "pages_port",
        parse_port,
        0,
        "port of the read-only pages' own listener; then --http-port serves only the signed "
        "channel, /v1/alerts and a bare /healthz (0: the pages are on --http-port too)",
        "PORT",
        group="http",
    )
    status_token: str = setting(
        "status_token",
        parse_bearer,
        "",
        "token the status page (GET /) asks for: Authorization: Bearer TOKEN, or basic auth "
        "with it as the password (use SWARM_MEDIC_STATUS_TOKEN_FILE); unset: no token",
        "TEXT",
        group="http",
        hidden=True,
    )
    alerts_token: str = setting(
        "alerts_token",
        parse_token,
        "",
        "bearer token Alertmanager must send to POST /v1/alerts (its http_config."
        "authorization.credentials_file; use SWARM_MEDIC_ALERTS_TOKEN_FILE); unset: alerts off",
        "TEXT",
        group="http",
        hidden=True,
    )
    alerts_max_age: float = setting(
        "alerts_max_age",
        Duration(MINUTE, 7 * DAY),
        5 * HOUR,
        "a firing alert not heard of again for this long is forgotten (longer than "
        "Alertmanager's repeat_interval)",
        "DURATION",
        group="http",
    )
    # --- notify
    notify: tuple[str, ...] = setting(
        "notify",
        parse_urls,
        (),
        "where to send notifications: Apprise URLs separated by commas (they carry tokens: "
        "use SWARM_MEDIC_NOTIFY_FILE with a docker secret); sent only by the leader",
        "URL,...",
        group="notify",
        hidden=True,
    )
    notify_min_severity: str = setting(
        "notify_min_severity",
        choice("info", "warning", "critical"),
        "info",
        "incidents below this severity are not notified (services labelled "
        "swarm-medic.notify=false never are)",
        "info|warning|critical",
        group="notify",
    )
    notify_remind: float = setting(
        "notify_remind",
        NOTIFY_REMIND,
        3600.0,
        "how often an incident still open is notified again",
        "DURATION",
        group="notify",
    )
    # --- log
    log_format: str = setting(
        "log_format",
        choice("auto", "json", "console"),
        "auto",
        "auto: console on a terminal, JSON lines otherwise",
        "auto|json|console",
        group="log",
    )
    log_level: str = setting(
        "log_level",
        choice("debug", "info", "warning", "error"),
        "info",
        "log level",
        "LEVEL",
        group="log",
    )
    # --- engine
    docker_host: str = setting(
        "docker_host",
        str,
        "",
        "Engine address (unset: the local socket)",
        "URL",
        group="engine",
        env="DOCKER_HOST",
    )
    api_timeout: float = setting(
        "api_timeout",
        API_TIMEOUT,
        10.0,
        "timeout of one Engine API request",
        "DURATION",
        group="engine",
    )


def specs_of(cls: type[Any]) -> tuple[Spec[Any], ...]:
    """The specs of a settings class, in declaration order; TypeError if one is declared wrong:
    a field without `setting(...)`, a name that is not the field's, an unknown group, or a
    group out of the order of GROUPS (which keeps `--help` and the README table grouped)."""
    out: list[Spec[Any]] = []
    order = list(GROUPS)
    for f in fields(cls):
        spec = f.metadata.get("spec")
        if not isinstance(spec, Spec):
            raise TypeError(f"{cls.__name__}.{f.name} is not declared with setting(...)")
        if spec.name != f.name:
            raise TypeError(f"{cls.__name__}.{f.name} is declared as setting({spec.name!r}, ...)")
        if spec.group not in GROUPS:
            raise TypeError(f"{cls.__name__}.{f.name}: unknown group {spec.group!r}")
        if out and order.index(spec.group) < order.index(out[-1].group):
            raise TypeError(
                f"{cls.__name__}.{f.name}: group {spec.group!r} after {out[-1].group!r}; "
                f"declare the settings group by group, in the order {', '.join(order)}"
            )
        out.append(spec)
    return tuple(out)


SPECS: tuple[Spec[Any], ...] = specs_of(Settings)


def env_name(spec: Spec[Any]) -> str:
    return spec.env


def flag_name(spec: Spec[Any]) -> str:
    return "--" + spec.name.replace("_", "-")


def show_value(value: object) -> str:
    """A value as one would write it in a flag or a variable ("" for nothing).

    Every float setting is a duration; the README test parses each shown default back."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _say(value)
    if isinstance(value, Mapping):
        return ",".join(f"{k}={show_value(v)}" for k, v in value.items())
    if isinstance(value, tuple):
        return ",".join(show_value(v) for v in value)
    return str(value)


def show_default(spec: Spec[Any]) -> str:
    """The default as it would be written; "" for none, and always "" for a hidden setting."""
    return "" if spec.hidden else show_value(spec.default)


def show_range(spec: Spec[Any]) -> str:
    """ "100ms to 1d" for a bounded duration or count, else ""."""
    if isinstance(spec.parse, Duration):
        return f"{_say(spec.parse.low)} to {_say(spec.parse.high)}"
    if isinstance(spec.parse, Count):
        return f"{spec.parse.low} to {spec.parse.high}"
    return ""


def add_arguments(
    parser: argparse.ArgumentParser, only: Collection[str] = (), names: Collection[str] = ()
) -> None:
    """One argparse group per settings group; each flag's help names range, default, variable.
    `only`: just those groups (a command that needs nothing but the engine's address), and
    `names`: those settings besides (a command's --help shows only the flags it uses).

    A boolean is a switch: `--dry-run` (true), `--no-dry-run` (false), or with a value as
    before (`--dry-run=false`, `--dry-run no`)."""
    wanted = [s for s in SPECS if not (only or names) or s.group in only or s.name in names]
    groups = {
        name: parser.add_argument_group(f"{name} settings", about)
        for name, about in GROUPS.items()
        if any(s.group == name for s in wanted)
    }
    for spec in wanted:
        notes = [f"range {r}" for r in (show_range(spec),) if r]
        notes += [f"default {d}" for d in (show_default(spec),) if d]
        notes.append(f"env {env_name(spec)}")
        text = f"{spec.help} [{'; '.join(notes)}]".replace("%", "%%")
        group = groups[spec.group]
        if spec.parse is parse_bool:
            group.add_argument(
                flag_name(spec), dest=spec.name, default=None, nargs="?", const="true",
                metavar=spec.metavar, help=text,
            )  # fmt: skip
            group.add_argument(
                "--no-" + flag_name(spec).removeprefix("--"),
                dest=spec.name,
                action="store_const",
                const="false",
                help=f"the same as {flag_name(spec)}=false",
            )
            continue
        group.add_argument(
            flag_name(spec), dest=spec.name, default=None, metavar=spec.metavar, help=text
        )


README_BEGIN = "<!-- settings:begin -->"
README_END = "<!-- settings:end -->"
REGENERATE = "python -m swarm_medic.core.settings --readme README.md"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown() -> str:
    """The README's settings table: flag, env, default, group, meaning (one row per setting)."""
    rows = [
        "| flag | env | default | group | meaning |",
        "|---|---|---|---|---|",
    ]
    for spec in SPECS:
        default = show_default(spec)
        meaning = spec.help + (f"; range {r}" if (r := show_range(spec)) else "")
        rows.append(
            f"| `{flag_name(spec)}` | `{env_name(spec)}` | "
            + (f"`{_cell(default)}`" if default else "—")
            + f" | {spec.group} | {_cell(meaning)} |"
        )
    return "\n".join(rows) + "\n"


def with_table(readme: str) -> str:
    """`readme` with the text between the settings markers replaced by `markdown()`."""
    begin, end = readme.find(README_BEGIN), readme.find(README_END)
    if begin < 0 or end < begin:
        raise ValueError(f"no {README_BEGIN} ... {README_END} block")
    note = f"<!-- generated from swarm_medic/core/settings.py by `{REGENERATE}` -->"
    return f"{readme[:begin]}{README_BEGIN}\n{note}\n\n{markdown()}\n{readme[end:]}"


def _read_file(spec: Spec[Any], file_var: str, path: str) -> str:
    def wrong(why: str) -> SettingsError:
        return SettingsError(
            f"{file_var}: {path!r} {why} ({flag_name(spec)} / {env_name(spec)} / {file_var})"
        )

    try:
        with Path(path).open("rb") as f:
            data = f.read(FILE_MAX_BYTES + 1)
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        raise wrong(f"cannot be read: {exc}") from None
    if len(data) > FILE_MAX_BYTES:
        raise wrong(f"is larger than {FILE_MAX_BYTES} bytes; it should hold one value")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise wrong(
            f"is not UTF-8 text (a binary file? byte {exc.start} is 0x{data[exc.start]:02x}); "
            "write the value as text, e.g. openssl rand -hex 32 for a secret"
        ) from None
    return text.strip()


def _raw_from_env(spec: Spec[Any], env: Mapping[str, str]) -> tuple[str | None, str]:
    """-> (the raw value or None, where it came from)."""
    name = env_name(spec)
    file_var = name + "_FILE"
    if file_var in env:
        if name in env:
            raise SettingsError(f"{name} and {file_var} are both set; set one of them")
        return _read_file(spec, file_var, env[file_var]), file_var
    return env.get(name), name


# Runbooks' own settings (core.runbook.configure reads them once the runbooks are loaded).
RUNBOOK_ENV_PREFIX = ENV_PREFIX + "RUNBOOK_"

# Settings that became a runbook's own: the old variable says where it went.
MOVED: Mapping[str, str] = MappingProxyType(
    {
        ENV_PREFIX + old: f"{RUNBOOK_ENV_PREFIX}{name.upper().replace('-', '_')}_{key.upper()}"
        f" or --runbook-setting {name}.{key}=..."
        for old, name, key in (
            ("STUCK_AFTER", "stuck-task", "after"),
            ("PAUSED_UPDATE_ACTION", "paused-update", "action"),
            ("REJECTION_THRESHOLD", "repeated-rejection", "threshold"),
            ("REJECTION_WINDOW", "repeated-rejection", "window"),
            ("DNS_GRACE", "stale-dns", "grace"),
            ("ORPHAN_GRACE", "orphan-container", "grace"),
        )
    }
)


def load(
    flags: Mapping[str, str | None] | None = None, env: Mapping[str, str] | None = None
) -> Settings:
    """Flags win over environment, environment over defaults. Unknown SWARM_MEDIC_* vars fail."""
    flags = flags or {}
    env = os.environ if env is None else env
    known = {env_name(s) for s in SPECS} | {env_name(s) + "_FILE" for s in SPECS}
    unknown = sorted(
        k
        for k in env
        if k.startswith(ENV_PREFIX) and k not in known and not k.startswith(RUNBOOK_ENV_PREFIX)
    )
    if unknown and unknown[0] in MOVED:
        raise SettingsError(
            f"{unknown[0]} is now a runbook's own setting: {MOVED[unknown[0]]} "
            "(see CHANGELOG.md and `swarm-medic runbooks NAME`)"
        )
    if unknown:
        raise SettingsError(
            f"unknown setting {unknown[0]} (known: {', '.join(sorted(env_name(s) for s in SPECS))})"
        )
    values: dict[str, Any] = {}
    for spec in SPECS:
        raw = flags.get(spec.name)
        source = flag_name(spec)
        if raw is None:
            raw, source = _raw_from_env(spec, env)
        if raw is None:
            continue
        try:
            values[spec.name] = spec.parse(raw)
        except ValueError as exc:
            if spec.hidden:
                shown = "<hidden>"
            else:
                shown = repr(spec.redact(raw) if spec.redact is not None else raw)
            raise SettingsError(
                f"{source}={shown} is not valid ({flag_name(spec)} / {env_name(spec)}): {exc}"
            ) from None
    return Settings(**values)


def describe(settings: Settings) -> str:
    """One line for the start-up banner: mode and scope first, the rest after."""
    mode = "DRY-RUN (observe only, changes nothing)" if settings.dry_run else "ACT"
    scope = (
        "services labelled swarm-medic.enable=true"
        if settings.scope == "opt-in"
        else "all services except those labelled swarm-medic.enable=false"
    )
    return f"mode={mode}; scope={scope}"


def main(argv: list[str] | None = None) -> int:
    """`--markdown`: print the README's settings table; `--readme PATH`: rewrite it in place."""
    p = argparse.ArgumentParser(prog="python -m swarm_medic.core.settings")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--markdown", action="store_true", help="print the settings table")
    how.add_argument("--readme", metavar="PATH", help="rewrite the table between the markers")
    args = p.parse_args(argv)
    if args.markdown:
        print(markdown(), end="")
        return 0
    path = Path(args.readme)
    try:
        path.write_text(with_table(path.read_text(encoding="utf-8")), encoding="utf-8")
    except (OSError, ValueError) as exc:
        p.error(f"{path}: {exc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
