"""Settings: every setting of `swarm-medic run`, declared once, grouped by what it governs.

As kopf groups its operator settings, each group is a frozen dataclass (`SafetySettings`,
`ProbeSettings`, ...) and `Settings` holds one of each, so a part of the daemon is given the
group it reads, not all of them: the policy and the executor `settings.safety`, the prober
`settings.probes`. Each setting is a field made by `setting(...)`: name, parser, default, help,
metavar and environment variable; its group is the class it is declared in. `SPECS` lists them
in order, each with its group name: the CLI flags, the SWARM_MEDIC_* variables, `--help` and
the README table are generated from it (`swarm_medic.config` reads flags, variables and files;
`swarm_medic.readme` writes the table). Pure: nothing here reads or writes anything.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from swarm_medic.core.parsers import (
    DAY,
    HOUR,
    MINUTE,
    Count,
    Duration,
    Share,
    choice,
    parse_alerts_hold,
    parse_basic_auth,
    parse_bearer,
    parse_bool,
    parse_names,
    parse_port,
    parse_secret,
    parse_share,
    parse_token,
    parse_urls,
    redact_userinfo,
    say_duration,
    show_value,
)

ENV_PREFIX = "SWARM_MEDIC_"
# Runbooks' own settings (core.runbook.configure reads them once the runbooks are loaded).
RUNBOOK_ENV_PREFIX = ENV_PREFIX + "RUNBOOK_"

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
PROBE_COVERAGE = Duration(0.1, DAY)
NOTIFY_REMIND = Duration(1.0, 30 * DAY)
STORM_WINDOW = Duration(1.0, DAY)
STORM_HOLD = Duration(0.0, DAY)

T = TypeVar("T")


@dataclass(frozen=True)
class Spec(Generic[T]):
    """Everything about one setting but its Python type, which is its field's."""

    name: str
    parse: Callable[[str], T]
    default: T
    help: str
    metavar: str
    env: str
    hidden: bool = False  # a secret: never echoed in an error message, its default never shown
    # what an error message may show of a raw value that is not hidden (e.g. a URL's userinfo
    # removed); None: the value as given
    redact: Callable[[str], str] | None = None
    group: str = ""  # the group's name in `Settings`, filled in by `specs_of`


def setting(
    name: str,
    parse: Callable[[str], T],
    default: T,
    help: str,
    metavar: str = "VALUE",
    *,
    env: str = "",
    hidden: bool = False,
    redact: Callable[[str], str] | None = None,
) -> T:
    """The one declaration of a setting: a field of its group that carries its `Spec`.

    Typed as the default, so mypy checks the parser and the default against the field's type.
    The environment variable is SWARM_MEDIC_<NAME> unless `env` names another.
    """
    spec = Spec(
        name, parse, default, help, metavar, env or ENV_PREFIX + name.upper(), hidden, redact
    )
    meta = {"spec": spec}
    if type(default).__hash__ is None:  # a mapping: dataclasses refuse it as a plain default
        return field(default_factory=lambda: default, repr=not hidden, metadata=meta)
    return field(default=default, repr=not hidden, metadata=meta)


def group(cls: Callable[[], T], about: str) -> T:
    """A group of settings in `Settings`: its defaults, and what `--help` says about it."""
    return field(default_factory=cls, metadata={"about": about})


@dataclass(frozen=True)
class SafetySettings:
    """What may be touched, and how much: the policy's gates and the ledger they read (the
    policy, the executor, the alerts hold and the scope take this group)."""

    dry_run: bool = setting(
        "dry_run",
        parse_bool,
        False,
        "observe and say what would be done; change nothing",
        "BOOL",
    )
    scope: str = setting(
        "scope",
        choice("opt-in", "all"),
        "opt-in",
        "act on services labelled swarm-medic.enable=true (opt-in) or on every service "
        "not labelled swarm-medic.enable=false (all)",
        "opt-in|all",
    )
    self_services: tuple[str, ...] = setting(
        "self_services",
        parse_names,
        (),
        "names of swarm-medic's own services (never acted on; "
        "services labelled swarm-medic.self=true are excluded too)",
        "NAME,...",
    )
    verify_timeout: float = setting(
        "verify_timeout",
        VERIFY_TIMEOUT,
        120.0,
        "how long a fix has to take effect",
        "DURATION",
    )
    verify_hold: float = setting(
        "verify_hold",
        VERIFY_HOLD,
        10.0,
        "how long a fix must hold to count as healed",
        "DURATION",
    )
    cooldown: float = setting(
        "cooldown",
        COOLDOWN,
        300.0,
        "minimum time between actions of one runbook on one service",
        "DURATION",
    )
    budget_per_hour: int = setting(
        "budget_per_hour",
        Count(100),
        3,
        "actions per service per hour before the circuit breaker opens",
        "N",
    )
    breaker_failures: int = setting(
        "breaker_failures",
        Count(100),
        1,
        "fixes in a row that did not hold before the circuit breaker opens",
        "N",
    )
    breaker_reset: float = setting(
        "breaker_reset",
        BREAKER_RESET,
        3600.0,
        "how long an open circuit stays open",
        "DURATION",
    )
    max_concurrent_actions: int = setting(
        "max_concurrent_actions",
        Count(1000, low=0),
        0,
        "remediations under way at once across the swarm, those still being verified "
        "included (0: no limit)",
        "N",
    )
    hold_while_alerts: tuple[str, ...] = setting(
        "hold_while_alerts",
        parse_alerts_hold,
        (),
        "no action while any of these Prometheus alerts fires; Prometheus unreachable also "
        "holds (e.g. http://prometheus:9090,NodeDown,HighErrorRate)",
        "URL,NAME,...",
        redact=redact_userinfo,
    )
    hold_basic_auth: str = setting(
        "hold_basic_auth",
        parse_basic_auth,
        "",
        "USER:PASSWORD for the Prometheus of --hold-while-alerts, sent as basic auth (use "
        "SWARM_MEDIC_HOLD_BASIC_AUTH_FILE with a docker secret; never shown)",
        "USER:PASSWORD",
        hidden=True,
    )
    hold_bearer_token: str = setting(
        "hold_bearer_token",
        parse_bearer,
        "",
        "bearer token for the Prometheus of --hold-while-alerts (use "
        "SWARM_MEDIC_HOLD_BEARER_TOKEN_FILE with a docker secret; never shown)",
        "TOKEN",
        hidden=True,
    )
    storm_share: float = setting(
        "storm_share",
        parse_share,
        Share(0.3),
        "stand still (no action anywhere, one storm incident) while more than this share of "
        "the services, or of the nodes, had warning or critical findings within --storm-window",
        "SHARE",
    )
    storm_min: int = setting(
        "storm_min",
        Count(10_000),
        3,
        "the fewest services (or nodes) failing at once that make a storm, whatever the share",
        "N",
    )
    storm_window: float = setting(
        "storm_window",
        STORM_WINDOW,
        300.0,
        "how far back a finding counts towards a storm",
        "DURATION",
    )
    storm_hold: float = setting(
        "storm_hold",
        STORM_HOLD,
        60.0,
        "how long the share must stay below --storm-share (and for 2 scans) before a storm "
        "ends and acting resumes",
        "DURATION",
    )
    approve_runbooks: tuple[str, ...] = setting(
        "approve_runbooks",
        parse_names,
        (),
        "runbooks whose actions are proposed, not taken, until approved with `swarm-medic "
        "approve INCIDENT` (services labelled swarm-medic.approve=true too)",
        "NAME,...",
    )
    ledger_name: str = setting(
        "ledger_name",
        str,
        "swarm-medic-ledger",
        "name of the swarm config whose labels keep the durable history",
        "NAME",
    )


@dataclass(frozen=True)
class ScanSettings:
    """How often the swarm is looked at."""

    scan_interval: float = setting(
        "scan_interval",
        SCAN_INTERVAL,
        15.0,
        "time between scans (events trigger earlier ones)",
        "DURATION",
    )
    scan_jitter: float = setting(
        "scan_jitter",
        SCAN_JITTER,
        2.0,
        "random delay added to each scheduled scan",
        "DURATION",
    )


@dataclass(frozen=True)
class RunbooksSettings:
    """Where the runbooks come from."""

    runbooks_dir: str = setting(
        "runbooks_dir",
        str,
        "",
        "an extra directory of runbook files to load",
        "PATH",
    )


@dataclass(frozen=True)
class ProbeSettings:
    """The overlay probes and the brain-to-node channel (the prober takes this group)."""

    secret: str = setting(
        "secret",
        parse_secret,
        "",
        "shared secret of the brain-to-node channel (use SWARM_MEDIC_SECRET_FILE "
        "with a docker secret); without it each instance probes from its own node only",
        "TEXT",
        hidden=True,
    )
    probe_interval: float = setting(
        "probe_interval",
        PROBE_INTERVAL,
        15.0,
        "time between overlay probe rounds",
        "DURATION",
    )
    probe_coverage: float = setting(
        "probe_coverage",
        PROBE_COVERAGE,
        60.0,
        "every (node, task) pair is probed at least once in this time: each round a node "
        "probes as many of its tasks as that takes (all of them if the rounds are further apart)",
        "DURATION",
    )
    probe_timeout: float = setting(
        "probe_timeout",
        PROBE_TIMEOUT,
        1.0,
        "TCP connect / DNS timeout of one probe",
        "DURATION",
    )
    probe_failures: int = setting(
        "probe_failures",
        Count(100),
        3,
        "failed rounds in a row before a task counts as unreachable",
        "N",
    )
    probe_grace: float = setting(
        "probe_grace",
        PROBE_GRACE,
        20.0,
        "how long a task must have run before it is probed",
        "DURATION",
    )
    netns_dir: str = setting(
        "netns_dir",
        str,
        "/var/run/docker/netns",
        "where this node's sandbox namespaces are (the host's "
        "/var/run/docker/netns, mounted into the container)",
        "PATH",
    )


@dataclass(frozen=True)
class HttpSettings:
    """The HTTP port(s): what listens where, and the tokens its pages and endpoints ask for."""

    http_addr: str = setting(
        "http_addr",
        str,
        "0.0.0.0",  # noqa: S104 - scraped by Prometheus from other hosts
        "address of the /metrics and /healthz server",
        "ADDR",
    )
    http_port: int = setting(
        "http_port",
        parse_port,
        9324,
        "port of the /metrics and /healthz server (0: off)",
        "PORT",
    )
    pages_addr: str = setting(
        "pages_addr",
        str,
        "",
        "address of the read-only pages' own listener (/, /metrics, /healthz) when "
        "--pages-port is set; empty: --http-addr",
        "ADDR",
    )
    pages_port: int = setting(
        "pages_port",
        parse_port,
        0,
        "port of the read-only pages' own listener; then --http-port serves only the signed "
        "channel, /v1/alerts and a bare /healthz (0: the pages are on --http-port too)",
        "PORT",
    )
    status_token: str = setting(
        "status_token",
        parse_bearer,
        "",
        "token the status page (GET /) asks for: Authorization: Bearer TOKEN, or basic auth "
        "with it as the password (use SWARM_MEDIC_STATUS_TOKEN_FILE); unset: no token",
        "TEXT",
        hidden=True,
    )
    alerts_token: str = setting(
        "alerts_token",
        parse_token,
        "",
        "bearer token Alertmanager must send to POST /v1/alerts (its http_config."
        "authorization.credentials_file; use SWARM_MEDIC_ALERTS_TOKEN_FILE); unset: alerts off",
        "TEXT",
        hidden=True,
    )
    alerts_max_age: float = setting(
        "alerts_max_age",
        Duration(MINUTE, 7 * DAY),
        5 * HOUR,
        "a firing alert not heard of again for this long is forgotten (longer than "
        "Alertmanager's repeat_interval)",
        "DURATION",
    )


@dataclass(frozen=True)
class NotifySettings:
    """Notifications of each step of an incident."""

    notify: tuple[str, ...] = setting(
        "notify",
        parse_urls,
        (),
        "where to send notifications: Apprise URLs separated by commas (they carry tokens: "
        "use SWARM_MEDIC_NOTIFY_FILE with a docker secret); sent only by the leader",
        "URL,...",
        hidden=True,
    )
    notify_min_severity: str = setting(
        "notify_min_severity",
        choice("info", "warning", "critical"),
        "info",
        "incidents below this severity are not notified (services labelled "
        "swarm-medic.notify=false never are)",
        "info|warning|critical",
    )
    notify_remind: float = setting(
        "notify_remind",
        NOTIFY_REMIND,
        3600.0,
        "how often an incident still open is notified again",
        "DURATION",
    )


@dataclass(frozen=True)
class LogSettings:
    """Logging."""

    log_format: str = setting(
        "log_format",
        choice("auto", "json", "console"),
        "auto",
        "auto: console on a terminal, JSON lines otherwise",
        "auto|json|console",
    )
    log_level: str = setting(
        "log_level",
        choice("debug", "info", "warning", "error"),
        "info",
        "log level",
        "LEVEL",
    )


@dataclass(frozen=True)
class EngineSettings:
    """The Docker Engine API."""

    docker_host: str = setting(
        "docker_host",
        str,
        "",
        "Engine address (unset: the local socket)",
        "URL",
        env="DOCKER_HOST",
    )
    api_timeout: float = setting(
        "api_timeout",
        API_TIMEOUT,
        10.0,
        "timeout of one Engine API request",
        "DURATION",
    )


@dataclass(frozen=True)
class Settings:
    """Every setting, one group each; the groups in the order of `--help` and the README table.

    `Settings()` is every default; `Settings(safety=SafetySettings(dry_run=True))` one changed.
    """

    safety: SafetySettings = group(
        SafetySettings,
        "what may be touched, and how much: dry run, scope, cooldowns, budgets, breakers",
    )
    scan: ScanSettings = group(ScanSettings, "how often the swarm is looked at")
    runbooks: RunbooksSettings = group(
        RunbooksSettings,
        "where the runbooks come from (each declares its own settings: "
        "--runbook-setting NAME.KEY=VALUE, `swarm-medic runbooks NAME`)",
    )
    probes: ProbeSettings = group(ProbeSettings, "overlay probes and the brain-to-node channel")
    http: HttpSettings = group(HttpSettings, "the /metrics and /healthz server")
    notify: NotifySettings = group(
        NotifySettings,
        "notifications of each step of an incident (Apprise URLs: Slack, Teams, "
        "Matrix, Discord, email, JSON webhooks, ...)",
    )
    log: LogSettings = group(LogSettings, "logging")
    engine: EngineSettings = group(EngineSettings, "the Docker Engine API")


def specs_of(cls: type[Any], in_group: str = "") -> tuple[Spec[Any], ...]:
    """The specs of a group of settings, in declaration order, each with its group's name;
    TypeError if one is declared wrong: a field without `setting(...)`, or a name that is not
    the field's."""
    out: list[Spec[Any]] = []
    for f in fields(cls):
        spec = f.metadata.get("spec")
        if not isinstance(spec, Spec):
            raise TypeError(f"{cls.__name__}.{f.name} is not declared with setting(...)")
        if spec.name != f.name:
            raise TypeError(f"{cls.__name__}.{f.name} is declared as setting({spec.name!r}, ...)")
        out.append(replace(spec, group=in_group))
    return tuple(out)


def groups_of(cls: type[Any]) -> Mapping[str, tuple[str, type[Any]]]:
    """Group name -> (what it is about, its class), in declaration order; TypeError for a field
    not declared with `group(...)`."""
    out: dict[str, tuple[str, type[Any]]] = {}
    for f in fields(cls):
        about = f.metadata.get("about")
        if not isinstance(about, str) or not isinstance(f.default_factory, type):
            raise TypeError(f"{cls.__name__}.{f.name} is not declared with group(...)")
        out[f.name] = (about, f.default_factory)
    return MappingProxyType(out)


_GROUPS = groups_of(Settings)
# The groups, in the order of `--help` and of the README table: name -> what it is about.
GROUPS: Mapping[str, str] = MappingProxyType({name: about for name, (about, _) in _GROUPS.items()})
SPECS: tuple[Spec[Any], ...] = tuple(
    spec for name, (_, cls) in _GROUPS.items() for spec in specs_of(cls, name)
)
_GROUP_OF = {spec.name: spec.group for spec in SPECS}


def from_values(values: Mapping[str, Any]) -> Settings:
    """Settings with these values by setting name (`Spec.name`), the others at their defaults:
    what flags, variables and files gave. KeyError for a name that is no setting."""
    by_group: dict[str, dict[str, Any]] = {}
    for name, value in values.items():
        by_group.setdefault(_GROUP_OF[name], {})[name] = value
    return Settings(**{g: _GROUPS[g][1](**v) for g, v in by_group.items()})


def value_of(settings: Settings, spec: Spec[Any]) -> Any:
    """The value of the setting `spec` declares, as `settings` has it."""
    return getattr(getattr(settings, spec.group), spec.name)


def env_name(spec: Spec[Any]) -> str:
    return spec.env


def flag_name(spec: Spec[Any]) -> str:
    return "--" + spec.name.replace("_", "-")


def show_default(spec: Spec[Any]) -> str:
    """The default as it would be written; "" for none, and always "" for a hidden setting."""
    return "" if spec.hidden else show_value(spec.default)


def show_range(spec: Spec[Any]) -> str:
    """ "100ms to 1d" for a bounded duration or count, else ""."""
    if isinstance(spec.parse, Duration):
        return f"{say_duration(spec.parse.low)} to {say_duration(spec.parse.high)}"
    if isinstance(spec.parse, Count):
        return f"{spec.parse.low} to {spec.parse.high}"
    return ""


def describe(settings: Settings) -> str:
    """One line for the start-up banner: mode and scope first, the rest after."""
    safety = settings.safety
    mode = "DRY-RUN (observe only, changes nothing)" if safety.dry_run else "ACT"
    scope = (
        "services labelled swarm-medic.enable=true"
        if safety.scope == "opt-in"
        else "all services except those labelled swarm-medic.enable=false"
    )
    return f"mode={mode}; scope={scope}"
