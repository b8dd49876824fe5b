"""Tasks stuck before running (new, allocated, pending, assigned, ... preparing, starting).

Symptom: a task whose desired state is running sits in a pre-running state longer than its
threshold. The threshold of each service and state, most specific first: the label
`swarm-medic.stuck-after.<state>=DURATION`, the label `swarm-medic.stuck-after=DURATION`, the
setting `after` where the operator gave that state; else what the service's own history says
(new, pending, assigned, preparing, starting: p90 of its last 20 tasks' times x 3, at least
20 s in starting, 120 s in preparing, 30 s in the others, learned once 5 tasks were seen)
capped by the setting's default; else the default. The finding says which, and
`swarm-medic check` lists them per service.

Cause, read from the task's Status.Err / Status.Message:
  constraints   no node satisfies the placement constraints (says which, and what each node lacks)
  resources     no node has the reserved CPU / memory free
  max-replicas  the max-replicas-per-node limit is reached on every node
  image         the image is missing or its pull failed
  network       IP / network allocation failed (e.g. an exhausted overlay subnet)
  hang          no error at all: the task just does not move (hung pull, agent, health start)

What the medic does: a force update (every task of the service is replaced, one at a time by
the service's update config) only where a restart can help: an unexplained hang in
assigned / accepted / preparing / starting, and a pending task that some node could now take
(swarm sometimes leaves those pending until another scheduling event, moby#32999). Everything
else is reported in plain words, with no action: restarting does not add a node label, free
memory or fix an image name.

Risks: a force update restarts every replica of the service, not just the stuck one; a hang
that comes back is caught by the verifier and opens the circuit breaker for the service.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import NamedTuple

from swarm_medic.runbook import (
    DAY,
    PRE_RUNNING_STATES,
    Action,
    Context,
    Duration,
    Finding,
    Service,
    Setting,
    Severity,
    TaskState,
    force_update,
)
from swarm_medic.runbook.helpers import Miss, fitting_nodes, placement_misses, summarise

NAME = "stuck-task"
RESTARTABLE = frozenset(
    {TaskState.ASSIGNED, TaskState.ACCEPTED, TaskState.PREPARING, TaskState.STARTING}
)
SCHEDULING = {"constraints", "resources", "max-replicas"}

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
STUCK_AFTER = Duration(1.0, 30 * DAY)  # also bounds the swarm-medic.stuck-after labels
DEFAULT_TEXT = ",".join(f"{k}={v:.0f}s" for k, v in DEFAULT_STUCK_AFTER.items())


class StuckAfter(dict[str, float]):
    """The `after` setting: per-state thresholds, and the states the operator gave (those
    override what a service's history says; the others are its ceiling)."""

    given: frozenset[str] = frozenset()


def parse_stuck_after(text: str) -> Mapping[str, float]:
    """ "pending=30s,starting=2m" -> overrides of DEFAULT_STUCK_AFTER. The default's own text
    gives no state: the defaults are a ceiling for what is learned, not an override."""
    out = StuckAfter(DEFAULT_STUCK_AFTER)
    given: set[str] = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        state, sep, value = part.partition("=")
        if not sep or state.strip() not in PRE_RUNNING_STATES:
            raise ValueError(
                f"expected STATE=DURATION pairs with STATE in {', '.join(PRE_RUNNING_STATES)}"
            )
        out[state.strip()] = STUCK_AFTER(value)
        given.add(state.strip())
    out.given = frozenset() if text.strip() == DEFAULT_TEXT else frozenset(given)
    return out


SETTINGS = (
    Setting(
        "after",
        parse_stuck_after,
        DEFAULT_TEXT,
        "per-state thresholds; the ceiling of what each service's history teaches, and a state "
        "given here overrides it; give only those to change, e.g. pending=30s,starting=2m",
        "STATE=DURATION,...",
    ),
)


def classify(err: str, message: str) -> str:
    text = f"{err} {message}".lower()
    if "constraints not satisfied" in text:
        return "constraints"
    if "insufficient resources" in text:
        return "resources"
    if "max replicas per node" in text:
        return "max-replicas"
    if "no such image" in text or "pull" in text or "manifest" in text:
        return "image"
    if "allocat" in text or "address" in text or "network" in text:
        return "network"
    return "hang"


def _label_seconds(service: Service, key: str) -> float | None:
    try:
        return STUCK_AFTER(service.labels[key]) if key in service.labels else None
    except ValueError:
        return None  # a bad or out-of-range label keeps the default


class Limit(NamedTuple):
    """A threshold in force, and where it came from (said in the finding and by `check`)."""

    seconds: float
    source: str

    def describe(self) -> str:
        return f"{self.seconds:.0f}s ({self.source})"


def thresholds(
    service: Service, defaults: Mapping[str, float], ctx: Context | None = None
) -> dict[str, Limit]:
    """Per state, most specific first: the per-state label, `swarm-medic.stuck-after`, the
    setting where the operator gave the state, what the service's history says (capped by the
    configured value), the default."""
    given: frozenset[str] = getattr(defaults, "given", frozenset())
    every = _label_seconds(service, "swarm-medic.stuck-after")
    out: dict[str, Limit] = {}
    for state, limit in defaults.items():
        specific = _label_seconds(service, f"swarm-medic.stuck-after.{state}")
        if specific is not None:
            out[state] = Limit(specific, f"label swarm-medic.stuck-after.{state}")
        elif every is not None:
            out[state] = Limit(every, "label swarm-medic.stuck-after")
        elif state in given:
            out[state] = Limit(limit, "setting stuck-task.after")
        elif ctx is not None and (
            got := ctx.learned_threshold(service.id, state, limit, service.image)
        ):
            seconds, n = got
            capped = " (capped by the default)" if seconds >= limit else ""
            out[state] = Limit(seconds, f"learned from {n} tasks{capped}")
        else:
            out[state] = Limit(limit, "default")
    return out


def standing(ctx: Context) -> Iterator[tuple[str, str]]:
    """(service, its thresholds in force and where each came from), for `check` and
    `swarm-medic runbooks stuck-task`."""
    for svc in sorted(ctx.snapshot.services, key=lambda s: s.name):
        limits = thresholds(svc, ctx.settings.after, ctx)
        yield (
            svc.name,
            ", ".join(f"{state}={limits[state].describe()}" for state in SHOWN if state in limits),
        )


SHOWN = ("new", "pending", "assigned", "preparing", "starting")


def _explain(
    cause: str, states: set[str], misses: list[Miss], svc: Service, sample_err: str
) -> str:
    if cause in SCHEDULING:
        lines = summarise(misses)
        head = f"scheduler says {sample_err!r}" if sample_err else "scheduler cannot place it"
        return f"{head}. {lines}" if lines else f"{head}, but a node fits now"
    if cause == "image":
        return f"the image {svc.image!r} cannot be used: {sample_err}"
    if cause == "network":
        return f"network allocation failed: {sample_err}"
    return f"no error reported; the task has not moved out of {', '.join(sorted(states))}"


def detect(ctx: Context) -> Iterator[Finding]:
    defaults = ctx.settings.after
    for svc in ctx.snapshot.services:
        limits: dict[str, Limit] | None = None
        groups: dict[str, list[tuple[str, str, str, float]]] = {}
        first_err: dict[str, str] = {}  # cause -> the first stuck task's error, for the words
        for t in ctx.snapshot.tasks_of(svc.id):
            if t.desired_state != "running" or t.state not in PRE_RUNNING_STATES:
                continue
            limits = limits or thresholds(svc, defaults, ctx)
            age = ctx.age(t)
            if age < limits[t.state].seconds:
                continue
            cause = classify(t.err, t.message)
            groups.setdefault(cause, []).append((t.id, t.state, t.node_id, age))
            first_err.setdefault(cause, t.err)
        for cause, stuck in sorted(groups.items()):
            states = {s for _, s, _, _ in stuck}
            err = first_err[cause]
            misses = placement_misses(ctx.snapshot, svc) if cause in SCHEDULING else []
            fits = cause in SCHEDULING and bool(fitting_nodes(ctx.snapshot, svc, misses))
            restartable = cause == "hang" and states <= RESTARTABLE
            actionable = restartable or (cause in SCHEDULING and fits)
            oldest = max(a for _, _, _, a in stuck)
            shown = limits or {}  # set by the first stuck task
            over = "; ".join(
                f"{s} after {shown[s].describe()}" for s in sorted(states) if s in shown
            )
            yield Finding.for_service(
                svc,
                key=f"{svc.id}:{cause}",
                summary=(
                    f"{len(stuck)} task(s) of {svc.name} stuck in "
                    f"{'/'.join(sorted(states))} for up to {oldest:.0f}s (stuck {over})"
                ),
                cause=cause,
                severity=Severity.CRITICAL if cause != "hang" else Severity.WARNING,
                task_ids=tuple(sorted(i for i, _, _, _ in stuck)),
                node_ids=tuple(sorted({n for _, _, n, _ in stuck if n})),
                advice=_explain(cause, states, misses, svc, err),
                actionable=actionable,
                details={
                    "states": ",".join(sorted(states)),
                    "oldest_seconds": f"{oldest:.0f}",
                    "threshold": over,
                },
            )


def _states(finding: Finding, ctx: Context) -> str:
    ids = set(finding.task_ids)
    return ",".join(
        sorted({t.state for t in ctx.snapshot.tasks_of(finding.service_id) if t.id in ids})
    )


def plan(finding: Finding, ctx: Context) -> Action | None:
    svc = ctx.snapshot.service(finding.service_id)
    if svc is None or not finding.actionable:
        return None
    why = (
        "a node can take the pending task now: nudge the scheduler"
        if finding.cause in SCHEDULING
        else f"tasks hang in {_states(finding, ctx)} with no error: replace them"
    )
    return force_update(svc, why)
