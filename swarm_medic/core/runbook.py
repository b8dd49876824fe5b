"""What a runbook is, and what it is given (the machinery behind `swarm_medic.runbook`).

A runbook is a module with a docstring (what the operator reads: symptom, cause, what the
medic does, risks), a NAME, `detect(ctx)`, and optionally `plan(finding, ctx)`, `NEEDS` and
`SETTINGS`; `swarm_medic.runbook` is the public reference. Here: the Context a runbook is
given, the Runbook the registry makes of a module, and how a runbook's own settings are read
(`configure`). Neither detect nor plan may do I/O: everything they need is in the Context.
"""

from __future__ import annotations

import keyword
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from swarm_medic.core.alerts import Alerts
from swarm_medic.core.errors import SettingsError
from swarm_medic.core.learned import Times
from swarm_medic.core.learned import threshold as learned_threshold
from swarm_medic.core.model import (
    Action,
    ActionKind,
    Finding,
    Node,
    Prune,
    Service,
    Snapshot,
    Target,
    Task,
)
from swarm_medic.core.protocol import prune_fits
from swarm_medic.core.reach import Reachability, probed_services
from swarm_medic.core.settings import RUNBOOK_ENV_PREFIX, Settings

EMPTY_SERVICES: Mapping[str, Service] = MappingProxyType({})
NOTHING_LEARNED: Mapping[str, Times] = MappingProxyType({})
Detect = Callable[["Context"], Iterable[Finding]]
Plan = Callable[[Finding, "Context"], Action | None]
# what a runbook holds per subject now, for people: (subject, text) lines
Standing = Callable[["Context"], Iterable[tuple[str, str]]]

# What a runbook may declare in NEEDS. PROBES: the overlay probe results, which exist only on
# the instance that probes (the brain: the leader, with the channel or on a one-node swarm).
PROBES = "probes"
# ALERTS: the alerts Alertmanager says fire (POST /v1/alerts), on an instance that takes them
# (--alerts-token set).
ALERTS = "alerts"
KNOWN_NEEDS = frozenset({PROBES, ALERTS})

RUNBOOK_FLAG = "--runbook-setting"


class TaskClock:
    """Remembers when the medic first saw each task in its current state.

    Status.Timestamp is written by whichever node moved the task; if that node's clock runs
    ahead of ours the age would be negative and the task never "stuck", so the age is taken
    from our own first sighting whenever the engine's stamp is in the future.
    """

    def __init__(self) -> None:
        self._seen: dict[str, tuple[str, float]] = {}
        # task id -> state -> when it entered it, for each state the medic saw it in (the
        # engine's stamp unless it is in the future, else the first sighting): what
        # core/learned.py learns a service's normal times from
        self._path: dict[str, dict[str, float]] = {}

    def observe(self, tasks: Iterable[Task], now: float) -> None:
        fresh: dict[str, tuple[str, float]] = {}
        paths: dict[str, dict[str, float]] = {}
        for t in tasks:
            prev = self._seen.get(t.id)
            fresh[t.id] = prev if prev and prev[0] == t.state else (t.state, now)
            path = paths[t.id] = self._path.get(t.id, {})
            if t.state not in path:
                sane = 0 < t.timestamp <= now
                path[t.state] = t.timestamp if sane else fresh[t.id][1]
        self._seen, self._path = fresh, paths

    def path(self, task_id: str) -> Mapping[str, float]:
        """state -> when the task entered it, for the states the medic saw it in."""
        return MappingProxyType(self._path.get(task_id, {}))

    def paths(self) -> Mapping[str, Mapping[str, float]]:
        return MappingProxyType(self._path)

    def age(self, task: Task, now: float) -> float:
        if task.timestamp and task.timestamp <= now:
            return now - task.timestamp
        seen = self._seen.get(task.id)
        return now - seen[1] if seen and seen[0] == task.state else 0.0


class Sightings:
    """When the medic first saw a condition that has held on every scan since.

    A runbook asks `ctx.since(key)` only while its condition holds; the first ask starts the
    clock, and a key not asked during a whole scan is forgotten, so the clock restarts if the
    condition comes back. Engine timestamps say when something happened on its node; this says
    how long *we* have been watching it, which is what a grace period must count from (and it
    errs on the safe side after a restart: the clock starts again).
    """

    def __init__(self) -> None:
        self._first: dict[str, float] = {}
        self._asked: set[str] = set()

    def since(self, key: str, now: float) -> float:
        self._asked.add(key)
        return self._first.setdefault(key, now)

    def seen(self, key: str) -> bool:
        """Whether `key` was held on the last scan (or asked already in this one), without
        asking it: what a hysteresis reads before it decides to hold a condition again."""
        return key in self._first

    def held(self) -> frozenset[str]:
        """The keys asked during this scan: the conditions runbooks still see, reported yet
        or still within their grace (what a fix's verification must see gone)."""
        return frozenset(self._asked)

    def end_scan(self) -> None:
        self._first = {k: v for k, v in self._first.items() if k in self._asked}
        self._asked = set()


class ServiceMemory:
    """Services the medic saw in the last `keep` seconds, removed ones included: what a
    runbook needs to know of a service swarm has already forgotten (its stop grace period)."""

    def __init__(self, keep: float = 3600.0) -> None:
        self._keep = keep
        self._seen: dict[str, tuple[Service, float]] = {}

    def observe(self, services: Iterable[Service], now: float) -> Mapping[str, Service]:
        for s in services:
            self._seen[s.id] = (s, now)
        self._seen = {k: v for k, v in self._seen.items() if now - v[1] <= self._keep}
        return {k: v[0] for k, v in self._seen.items()}


@dataclass(frozen=True)
class Probes:
    """What the overlay probes said, for a runbook that declares NEEDS = (PROBES,).

    `reach` is the matrix (reach.tcp: (from node, task id) -> Cell; reach.vip, reach.dns,
    reach.ports (published ports: (from node, address, port) -> Cell), reach.ipvs,
    reach.containers: see core.reach; reach.failing_tasks(), the tasks some node failed to
    reach, is where a runbook about unreachable tasks starts: at 100 nodes the matrix holds
    100 cells per task); `failures` is --probe-failures, the failed rounds in a row that make
    a fault; `services` the services probed, with their port.
    """

    reach: Reachability
    failures: int
    services: tuple[tuple[Service, int], ...] = ()


class Values(Mapping[str, Any]):
    """A runbook's own settings, parsed: `ctx.settings.grace`. Read-only."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        object.__setattr__(self, "_values", MappingProxyType(dict(values or {})))

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            declared = ", ".join(sorted(self._values)) or "none"
            raise AttributeError(
                f"no runbook setting {name!r} (declared in SETTINGS: {declared})"
            ) from None

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("a runbook's settings are read-only")

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Values({dict(self._values)!r})"


@dataclass(frozen=True)
class Context:
    """What one runbook is given for one scan.

    `settings` holds that runbook's own settings only (never the daemon's, so never the
    secret); `probes` are there for a runbook that declared NEEDS = (PROBES,): a runbook whose
    needs this instance does not meet is not run at all.
    """

    snapshot: Snapshot
    now: float
    clock: TaskClock = field(default_factory=TaskClock)
    probe_results: Probes | None = None
    sightings: Sightings = field(default_factory=Sightings)
    # every service seen in the last hour, by id, removed ones included
    services_seen: Mapping[str, Service] = field(default_factory=lambda: EMPTY_SERVICES)
    settings: Values = field(default_factory=Values)
    alert_state: Alerts | None = None
    runbook: str = ""  # whose context this is (Runbook.bind): the name in front of its keys
    # how long each service's tasks normally take to pass each state (core/learned.py)
    learned: Mapping[str, Times] = field(default_factory=lambda: NOTHING_LEARNED)

    def age(self, task: Task) -> float:
        return self.clock.age(task, self.now)

    def learned_threshold(
        self, service_id: str, state: str, ceiling: float, image: str = ""
    ) -> tuple[float, int] | None:
        """How long a task of this service may sit in `state`, learned from its own history
        (at most `ceiling`), and how many of its tasks it is learned from; None while the
        service has too little history there, or its history is of another image than
        `image` (the service's now: a new image has not shown how long it takes)."""
        return learned_threshold(self.learned.get(service_id), state, ceiling, image)

    def since(self, key: str) -> float:
        """When the medic first saw the condition `key` names (now, the first time asked).
        The key is the runbook's own, as a finding's: its name goes in front of it, so that
        the condition held here and the finding reported later are one incident."""
        return self.sightings.since(incident_key(self.runbook, key), self.now)

    def held(self, key: str) -> bool:
        """Whether the condition `key` was held on the last scan (asked with `since`), without
        asking it now: a runbook with a hysteresis keeps a condition held between its two
        thresholds only if it held already."""
        return self.sightings.seen(incident_key(self.runbook, key))

    @property
    def probes(self) -> Probes:
        """The probe results; only a runbook that declares NEEDS = (PROBES,) may ask."""
        if self.probe_results is None:
            raise LookupError("no probe results here: a runbook that reads them declares NEEDS")
        return self.probe_results

    @property
    def alerts(self) -> Alerts:
        """The alerts firing; only a runbook that declares NEEDS = (ALERTS,) may ask."""
        if self.alert_state is None:
            raise LookupError("no alerts here: a runbook that reads them declares NEEDS")
        return self.alert_state

    def has(self, need: str) -> bool:
        if need == ALERTS:
            return self.alert_state is not None
        return need == PROBES and self.probe_results is not None


def incident_key(runbook: str, key: str) -> str:
    """`key` with the runbook's name in front: "stuck-task" and "svc1:hang" make
    "stuck-task:svc1:hang". A key that starts with it already is left as it is: runbooks
    written before the framework did this put the name there themselves, and their incidents
    keep their keys."""
    prefix = f"{runbook}:"
    return key if not runbook or key.startswith(prefix) else prefix + key


def context(
    snapshot: Snapshot,
    now: float,
    settings: Settings,
    clock: TaskClock | None = None,
    *,
    reach: Reachability | None = None,
    sightings: Sightings | None = None,
    services_seen: Mapping[str, Service] | None = None,
    alerts: Alerts | None = None,
    learned: Mapping[str, Times] | None = None,
) -> Context:
    """The scan's Context, before each runbook gets its own settings (Runbook.bind): the
    daemon's settings are read here, and go no further."""
    probes = (
        None
        if reach is None
        else Probes(
            reach,
            settings.probes.probe_failures,
            tuple(probed_services(snapshot, settings.safety)),
        )
    )
    return Context(
        snapshot,
        now,
        clock or TaskClock(),
        probes,
        sightings or Sightings(),
        EMPTY_SERVICES if services_seen is None else services_seen,
        alert_state=alerts,
        learned=NOTHING_LEARNED if learned is None else learned,
    )


@dataclass(frozen=True)
class Setting:
    """One setting a runbook declares in SETTINGS.

    `name` is a Python identifier (read as ctx.settings.<name>); `parse` turns the text into
    the value and raises ValueError with a message for a bad one (Duration(low, high),
    Count(high), choice(...) are ready-made); `default` is text, parsed like an operator's.
    """

    name: str
    parse: Callable[[str], Any]
    default: str
    help: str
    metavar: str = "VALUE"


def env_name(runbook: str, key: str) -> str:
    """SWARM_MEDIC_RUNBOOK_<NAME>_<KEY>, upper case, dashes as underscores."""
    return (RUNBOOK_ENV_PREFIX + f"{runbook}_{key}").upper().replace("-", "_")


def flag_form(runbook: str, key: str, value: str = "VALUE") -> str:
    return f"{RUNBOOK_FLAG} {runbook}.{key}={value}"


def check_settings(settings: Sequence[Setting]) -> Values:
    """A runbook's declared settings are sound -> their defaults, parsed. ValueError if not."""
    values: dict[str, Any] = {}
    for s in settings:
        if not isinstance(s, Setting):
            raise TypeError(f"SETTINGS holds {type(s).__name__}, not Setting")
        if not s.name.isidentifier() or keyword.iskeyword(s.name) or s.name.startswith("_"):
            raise ValueError(f"setting name {s.name!r} is not a plain Python identifier")
        if hasattr(Values, s.name):
            raise ValueError(f"setting name {s.name!r} is taken (a method of the settings)")
        if s.name in values:
            raise ValueError(f"setting {s.name!r} is declared twice")
        try:
            values[s.name] = s.parse(s.default)
        except ValueError as exc:
            raise ValueError(
                f"setting {s.name!r}: default {s.default!r} is not valid: {exc}"
            ) from None
    return Values(values)


@dataclass(frozen=True)
class Runbook:
    """A loaded runbook. Call `detect` and `plan` on it (not on the module's functions): they
    give the module's functions the Context with this runbook's own settings."""

    name: str
    doc: str
    detect_fn: Detect
    plan_fn: Plan | None = None  # None: report only
    source: str = ""
    needs: frozenset[str] = frozenset()
    settings: tuple[Setting, ...] = ()
    # the settings' values: defaults, then the operator's
    values: Values = field(default_factory=Values)
    # the operator's values as given: key -> (where from, text)
    given: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    # optional `standing(ctx)`: what it holds per subject now (stuck-task: each service's
    # thresholds and where they came from), shown by `check` and `swarm-medic runbooks NAME`
    standing_fn: Standing | None = None

    @property
    def summary(self) -> str:
        return self.doc.strip().splitlines()[0] if self.doc.strip() else self.name

    def missing(self, ctx: Context) -> tuple[str, ...]:
        """What this runbook needs that this scan does not have (then it is not run)."""
        return tuple(sorted(n for n in self.needs if not ctx.has(n)))

    def bind(self, ctx: Context) -> Context:
        return replace(ctx, settings=self.values, runbook=self.name)

    def detect(self, ctx: Context) -> Iterator[Finding]:
        for finding in self.detect_fn(self.bind(ctx)):
            yield self.claim(finding)

    def claim(self, finding: Finding) -> Finding:
        """The finding as this runbook's: its name filled in, and put in front of the key.
        A finding that names its runbook already is taken as it is."""
        if not isinstance(finding, Finding):
            raise TypeError(f"detect yielded {type(finding).__name__}, not a Finding")
        if finding.runbook:
            return finding
        return replace(finding, runbook=self.name, key=incident_key(self.name, finding.key))

    def plan(self, finding: Finding, ctx: Context) -> Action | None:
        return None if self.plan_fn is None else self.plan_fn(finding, self.bind(ctx))

    def standing(self, ctx: Context) -> list[tuple[str, str]]:
        return [] if self.standing_fn is None else list(self.standing_fn(self.bind(ctx)))

    def configure(self, raw: Mapping[str, tuple[str, str]]) -> Runbook:
        """-> this runbook with the operator's values: key -> (where it came from, text)."""
        values = dict(self.values)
        by_name = {s.name: s for s in self.settings}
        for key, (source, text) in raw.items():
            spec = by_name[key]
            try:
                values[key] = spec.parse(text)
            except ValueError as exc:
                raise SettingsError(
                    f"{source}={text!r} is not valid for runbook {self.name!r}, setting "
                    f"{key!r} ({flag_form(self.name, key, spec.metavar)} / "
                    f"{env_name(self.name, key)}): {exc}"
                ) from None
        given = MappingProxyType({**self.given, **raw})
        return replace(self, values=Values(values), given=given)

    def with_settings(self, **texts: str) -> Runbook:
        """This runbook with some settings given as text, as an operator would (tests)."""
        unknown = sorted(set(texts) - {s.name for s in self.settings})
        if unknown:
            raise SettingsError(_unknown_key(self, unknown[0]))
        return self.configure({k: ("test", v) for k, v in texts.items()})


def _unknown_key(rb: Runbook, key: str) -> str:
    has = ", ".join(s.name for s in rb.settings)
    return f"runbook {rb.name!r} has no setting {key!r} " + (
        f"(its settings: {has})" if has else "(it declares no settings)"
    )


def configure(
    runbooks: Mapping[str, Runbook],
    flags: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> dict[str, Runbook]:
    """The runbooks with the operator's settings, from `--runbook-setting NAME.KEY=VALUE`
    (repeatable; the last one wins) and SWARM_MEDIC_RUNBOOK_<NAME>_<KEY>; a flag wins over
    the environment, the environment over the default. An unknown runbook or key, or a value
    that does not parse, is a SettingsError that names the runbook and the key."""
    env = env or {}
    by_env = {
        env_name(rb.name, s.name): (rb.name, s.name)
        for rb in runbooks.values()
        for s in rb.settings
    }
    raw: dict[str, dict[str, tuple[str, str]]] = {}
    for var in sorted(env):
        if not var.startswith(RUNBOOK_ENV_PREFIX):
            continue
        if var not in by_env:
            known = ", ".join(sorted(by_env)) or "none"
            raise SettingsError(f"unknown runbook setting {var} (known: {known})")
        name, key = by_env[var]
        raw.setdefault(name, {})[key] = (var, env[var])
    for item in flags:
        where, sep, text = item.partition("=")
        name, dot, key = where.strip().partition(".")
        if not sep or not dot or not name or not key:
            raise SettingsError(
                f"{RUNBOOK_FLAG} {item!r}: expected NAME.KEY=VALUE, e.g. orphan-container.grace=2m"
            )
        rb = runbooks.get(name)
        if rb is None:
            raise SettingsError(
                f"{RUNBOOK_FLAG} {item!r}: no runbook named {name!r} "
                f"(known: {', '.join(sorted(runbooks))})"
            )
        if key not in {s.name for s in rb.settings}:
            raise SettingsError(f"{RUNBOOK_FLAG} {item!r}: {_unknown_key(rb, key)}")
        raw.setdefault(name, {})[key] = (f"{RUNBOOK_FLAG} {name}.{key}", text)
    return {n: rb.configure(raw.get(n, {})) if n in raw else rb for n, rb in runbooks.items()}


# --- the action constructors: what a plan returns ---------------------------------------------


def force_update(service: Service, why: str) -> Action:
    """Replace every task of the service, one at a time by its update config."""
    return Action(ActionKind.FORCE_UPDATE, service.id, service.name, service.version, why)


def rollback(service: Service, why: str) -> Action:
    """Roll the service back to its previous spec (as `docker service rollback`)."""
    return Action(ActionKind.ROLLBACK, service.id, service.name, service.version, why)


def retry_update(service: Service, why: str) -> Action:
    """Run the paused update of the new spec again (a force update)."""
    return Action(ActionKind.RETRY_UPDATE, service.id, service.name, service.version, why)


def resume_update(service: Service, why: str) -> Action:
    """Post the same spec again: swarm resumes a paused update."""
    return Action(ActionKind.RESUME_UPDATE, service.id, service.name, service.version, why)


def replace_task(service: Service, target: Target, why: str) -> Action:
    """The task's node removes its container; swarm schedules a new task."""
    return Action(
        ActionKind.REPLACE_TASK,
        service.id,
        service.name,
        service.version,
        why,
        task_id=target.task,
        node_id=target.node,
    )


def remove_orphan(service_id: str, service: Service | None, target: Target, why: str) -> Action:
    """The node retires a task container swarm no longer knows (target: a container)."""
    return Action(
        ActionKind.REMOVE_ORPHAN,
        service_id,
        service.name if service else service_id,
        service.version if service else 0,
        why,
        task_id=target.task,
        node_id=target.node,
    )


def remove_node(node: Node, why: str) -> Action:
    """The brain removes the node's entry (`docker node rm`, never forced), decided on its
    version: a worker's only (a manager's is refused), and only a Down one (the engine refuses
    a node that is up). Its finding must be about that node (Finding.for_node). No service
    is named, so no service's scope or labels apply: the runbook's own setting is the opt-in."""
    return Action(ActionKind.REMOVE_NODE, "", "", node.version, why, node_id=node.id)


def prune_node(
    node: Node, keep: Iterable[str], wanted: Iterable[str], target: int, why: str
) -> Action:
    """The node's own instance frees its Docker data root down to `target` percent used at
    most: build cache, stopped containers, dangling and unused images; never an image a `keep`
    reference names (give every image a service's Spec or PreviousSpec names: a rollback needs
    it on any node), never a container of a task in `wanted` (the node's tasks still meant to
    run), never a running container, never forced, never a log. Its finding must be about that
    node (Finding.for_node); no service is named, so the runbook's own setting is the opt-in.
    ValueError when `keep` is more than one request carries: no prune rather than one that
    would not keep them all."""
    prune = Prune(tuple(sorted({k for k in keep if k})), tuple(sorted(set(wanted))), target)
    if why_not := prune_fits(prune.keep, prune.wanted, prune.target):
        raise ValueError(f"no prune of node {node.id}: {why_not}")
    return Action(ActionKind.PRUNE_NODE, "", "", node.version, why, node_id=node.id, prune=prune)


@dataclass(frozen=True)
class RunbookFailure:
    """A runbook that raised while detecting or planning: the others still run."""

    runbook: str
    error: str


@dataclass(frozen=True)
class LoadError:
    """A runbook file that could not be loaded, and why."""

    path: str
    message: str
