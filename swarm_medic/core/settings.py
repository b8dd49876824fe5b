"""Settings: one frozen object, read from flags, then SWARM_MEDIC_* env, then defaults.

Every setting is declared once in `SPECS` (name, parser, default, help); the CLI flags, the
environment variables and `swarm-medic run --help` are all generated from that table. Any
setting X may also be given as SWARM_MEDIC_X_FILE=path (docker secrets); a value that does not
parse fails at start with a message naming the flag and the variable.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

from swarm_medic.core.errors import SettingsError
from swarm_medic.core.model import PRE_RUNNING_STATES

ENV_PREFIX = "SWARM_MEDIC_"

# How long a task may sit in a state before it counts as stuck. Pulls and health start periods
# make preparing/starting legitimately slow; the scheduler's states should be near instant.
DEFAULT_STUCK_AFTER: Mapping[str, float] = MappingProxyType(
    {
        "new": 60.0,
        "allocated": 60.0,
        "pending": 60.0,
        "assigned": 120.0,
        "accepted": 120.0,
        "preparing": 300.0,
        "ready": 120.0,
        "starting": 300.0,
    }
)

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
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$", re.ASCII)
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0


def _say(seconds: float) -> str:
    for unit, size in (("d", DAY), ("h", HOUR), ("m", MINUTE), ("s", 1.0)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds * 1000:g}ms" if seconds else "0"


def parse_duration(text: str) -> float:
    m = _DURATION.match(text)
    if not m:
        raise ValueError("expected a duration such as 30, 30s, 5m or 1h")
    value = float(m.group(1)) * _UNIT[m.group(2)]
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
    """A whole number from 1 to `high`."""

    high: int

    def __call__(self, text: str) -> int:
        value = parse_positive_int(text)
        if value > self.high:
            raise ValueError(f"expected a whole number from 1 to {self.high}")
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
STUCK_AFTER = Duration(1.0, 30 * DAY)  # also bounds the swarm-medic.stuck-after labels
REJECTION_WINDOW = Duration(1.0, 30 * DAY)
VERIFY_TIMEOUT = Duration(1.0, DAY)
VERIFY_HOLD = Duration(0.1, DAY)
COOLDOWN = Duration(1.0, 30 * DAY)
BREAKER_RESET = Duration(1.0, 30 * DAY)
API_TIMEOUT = Duration(0.1, HOUR)
PROBE_INTERVAL = Duration(0.1, DAY)
PROBE_TIMEOUT = Duration(0.01, MINUTE)
PROBE_GRACE = Duration(0.1, DAY)
DNS_GRACE = Duration(0.1, DAY)
ORPHAN_GRACE = Duration(0.1, 30 * DAY)

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


def parse_stuck_after(text: str) -> Mapping[str, float]:
    """ "pending=30s,starting=2m" -> overrides of DEFAULT_STUCK_AFTER."""
    out = dict(DEFAULT_STUCK_AFTER)
    for part in filter(None, (p.strip() for p in text.split(","))):
        state, sep, value = part.partition("=")
        if not sep or state.strip() not in PRE_RUNNING_STATES:
            raise ValueError(
                f"expected STATE=DURATION pairs with STATE in {', '.join(PRE_RUNNING_STATES)}"
            )
        out[state.strip()] = STUCK_AFTER(value)
    return MappingProxyType(out)


def parse_names(text: str) -> tuple[str, ...]:
    return tuple(sorted({n.strip() for n in text.split(",") if n.strip()}))


@dataclass(frozen=True)
class Settings:
    dry_run: bool = False
    scope: str = "opt-in"
    scan_interval: float = 15.0
    scan_jitter: float = 2.0
    stuck_after: Mapping[str, float] = field(default_factory=lambda: DEFAULT_STUCK_AFTER)
    paused_update_action: str = "rollback"
    rejection_threshold: int = 3
    rejection_window: float = 600.0
    verify_timeout: float = 120.0
    verify_hold: float = 10.0
    cooldown: float = 300.0
    budget_per_hour: int = 3
    breaker_failures: int = 1
    breaker_reset: float = 3600.0
    self_services: tuple[str, ...] = ()
    ledger_name: str = "swarm-medic-ledger"
    runbooks_dir: str = ""
    http_addr: str = "0.0.0.0"  # noqa: S104 - scraped by Prometheus from other hosts
    http_port: int = 9324
    log_format: str = "auto"
    log_level: str = "info"
    api_timeout: float = 10.0
    docker_host: str = field(default="", metadata={"env": "DOCKER_HOST"})
    secret: str = field(default="", repr=False)
    probe_interval: float = 15.0
    probe_timeout: float = 1.0
    probe_failures: int = 3
    probe_grace: float = 20.0
    dns_grace: float = 30.0
    netns_dir: str = "/var/run/docker/netns"
    orphan_grace: float = 60.0


@dataclass(frozen=True)
class Spec:
    name: str
    parse: Callable[[str], Any]
    help: str
    metavar: str = "VALUE"
    hidden: bool = False  # never echoed in an error message


SPECS: tuple[Spec, ...] = (
    Spec("dry_run", parse_bool, "observe and say what would be done; change nothing", "BOOL"),
    Spec(
        "scope",
        choice("opt-in", "all"),
        "act on services labelled swarm-medic.enable=true (opt-in) or on every service "
        "not labelled swarm-medic.enable=false (all)",
        "opt-in|all",
    ),
    Spec(
        "scan_interval",
        SCAN_INTERVAL,
        "time between scans (events trigger earlier ones)",
        "DURATION",
    ),
    Spec("scan_jitter", SCAN_JITTER, "random delay added to each scheduled scan", "DURATION"),
    Spec(
        "stuck_after",
        parse_stuck_after,
        "per-state thresholds, e.g. pending=30s,starting=2m (defaults: "
        + ", ".join(f"{k}={int(v)}s" for k, v in DEFAULT_STUCK_AFTER.items())
        + ")",
        "STATE=DURATION,...",
    ),
    Spec(
        "paused_update_action",
        choice("rollback", "retry"),
        "what to do with a paused service update",
        "rollback|retry",
    ),
    Spec(
        "rejection_threshold",
        Count(1000),
        "rejections with the same error that make an incident",
        "N",
    ),
    Spec("rejection_window", REJECTION_WINDOW, "how far back rejections count", "DURATION"),
    Spec("verify_timeout", VERIFY_TIMEOUT, "how long a fix has to take effect", "DURATION"),
    Spec("verify_hold", VERIFY_HOLD, "how long a fix must hold to count as healed", "DURATION"),
    Spec(
        "cooldown",
        COOLDOWN,
        "minimum time between actions of one runbook on one service",
        "DURATION",
    ),
    Spec(
        "budget_per_hour",
        Count(100),
        "actions per service per hour before the circuit breaker opens",
        "N",
    ),
    Spec(
        "breaker_failures",
        Count(100),
        "fixes in a row that did not hold before the circuit breaker opens",
        "N",
    ),
    Spec("breaker_reset", BREAKER_RESET, "how long an open circuit stays open", "DURATION"),
    Spec(
        "self_services",
        parse_names,
        "names of swarm-medic's own services (never acted on; "
        "services labelled swarm-medic.self=true are excluded too)",
        "NAME,...",
    ),
    Spec(
        "ledger_name", str, "name of the swarm config whose labels keep the durable history", "NAME"
    ),
    Spec("runbooks_dir", str, "an extra directory of runbook files to load", "PATH"),
    Spec("http_addr", str, "address of the /metrics and /healthz server", "ADDR"),
    Spec("http_port", parse_port, "port of the /metrics and /healthz server (0: off)", "PORT"),
    Spec(
        "log_format",
        choice("auto", "json", "console"),
        "auto: console on a terminal, JSON lines otherwise",
        "auto|json|console",
    ),
    Spec("log_level", choice("debug", "info", "warning", "error"), "log level", "LEVEL"),
    Spec("api_timeout", API_TIMEOUT, "timeout of one Engine API request", "DURATION"),
    Spec("docker_host", str, "Engine address (default: DOCKER_HOST, else the local socket)", "URL"),
    Spec(
        "secret",
        parse_secret,
        "shared secret of the brain-to-node channel (use SWARM_MEDIC_SECRET_FILE "
        "with a docker secret); without it each instance probes from its own node only",
        "TEXT",
        hidden=True,
    ),
    Spec("probe_interval", PROBE_INTERVAL, "time between overlay probe rounds", "DURATION"),
    Spec("probe_timeout", PROBE_TIMEOUT, "TCP connect / DNS timeout of one probe", "DURATION"),
    Spec(
        "probe_failures",
        Count(100),
        "failed rounds in a row before a task counts as unreachable",
        "N",
    ),
    Spec(
        "probe_grace",
        PROBE_GRACE,
        "how long a task must have run before it is probed",
        "DURATION",
    ),
    Spec(
        "dns_grace",
        DNS_GRACE,
        "how long DNS may disagree with swarm before it counts",
        "DURATION",
    ),
    Spec(
        "orphan_grace",
        ORPHAN_GRACE,
        "how long a task container may outlive its task (desired shutdown) before it "
        "counts as an orphan",
        "DURATION",
    ),
    Spec(
        "netns_dir",
        str,
        "where this node's sandbox namespaces are (the host's "
        "/var/run/docker/netns, mounted into the container)",
        "PATH",
    ),
)


def env_name(spec: Spec) -> str:
    meta = {f.name: f.metadata for f in fields(Settings)}
    return str(meta[spec.name].get("env", ENV_PREFIX + spec.name.upper()))


def flag_name(spec: Spec) -> str:
    return "--" + spec.name.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for spec in SPECS:
        parser.add_argument(
            flag_name(spec),
            dest=spec.name,
            default=None,
            metavar=spec.metavar,
            help=f"{spec.help} [env {env_name(spec)}]",
        )


def _read_file(spec: Spec, file_var: str, path: str) -> str:
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


def _raw_from_env(spec: Spec, env: Mapping[str, str]) -> tuple[str | None, str]:
    """-> (the raw value or None, where it came from)."""
    name = env_name(spec)
    file_var = name + "_FILE"
    if file_var in env:
        if name in env:
            raise SettingsError(f"{name} and {file_var} are both set; set one of them")
        return _read_file(spec, file_var, env[file_var]), file_var
    return env.get(name), name


def load(
    flags: Mapping[str, str | None] | None = None, env: Mapping[str, str] | None = None
) -> Settings:
    """Flags win over environment, environment over defaults. Unknown SWARM_MEDIC_* vars fail."""
    flags = flags or {}
    env = os.environ if env is None else env
    known = {env_name(s) for s in SPECS} | {env_name(s) + "_FILE" for s in SPECS}
    unknown = sorted(k for k in env if k.startswith(ENV_PREFIX) and k not in known)
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
            shown = "<hidden>" if spec.hidden else repr(raw)
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
