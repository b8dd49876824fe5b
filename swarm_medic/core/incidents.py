"""Incidents: one per fault while it lasts, so a fault is reported once, not once per scan.

A finding's `key` names the fault (e.g. stuck-task:<service>:<cause>). The first scan that sees
a key opens an incident with a fresh id; the scan that no longer sees it closes it. Every log
line about the fault carries the incident id. `Recent` keeps the last fixes' ends
(`Remediation`), which the status page lists.

While an incident is open, the leader watches its service for changes made by someone else
(`changed_by_someone`): a person's `docker service update`, `rollback`, `scale` or `rm`, a
`docker stack deploy`. The report counts an incident closed after one as closed by a human.
"""

from __future__ import annotations

import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from swarm_medic.core.model import Finding, Reason, Service, Snapshot, UpdateStatus

REMIND_EVERY = 300.0  # an unchanged skip (e.g. circuit open) is said again this often
RECENT = 50  # fixes' ends remembered for the status page

# What to do with a decision on an incident: "new" (it changed, or it acts: count it and log
# it), "reminder" (unchanged, but not said for REMIND_EVERY: log it again) or None (say nothing)
Telling = Literal["new", "reminder"] | None


@dataclass
class Incident:
    id: str
    finding: Finding
    opened_at: float
    last_decision: tuple[str, str] | None = None  # (verdict, reason) last said
    last_said_at: float = 0.0
    acted: bool = False  # an action was carried out on it (its end is then not "on its own")
    told_at: float | None = None  # when people were last notified of it (None: never)
    # the last log lines of the finding's `logs_of` task, fetched once, when the incident
    # opened; or why they could not be read ("" and "": none asked)
    logs: str = ""
    logs_error: str = ""
    # the incident whose fault explains this one (one cause, one story): said in the log with
    # its id, never notified apart; the leader's own incidents only (see `explained_by`)
    linked_to: str = ""
    # its service as last seen (None: not about a service, or not seen yet), and when, for
    # `changed_by_someone`; what someone else changed, and when it was first seen
    seen: Service | None = None
    seen_at: float = 0.0
    touched: str = ""
    touched_at: float | None = None
    recorded: bool = False  # its record is in the ledger (written, or queued to be)

    def remind_due(self, now: float, every: float) -> bool:
        """Whether to notify people of it again (or at last: opened before this instance led)."""
        return self.told_at is None or now - self.told_at >= every

    def decided(
        self,
        verdict: str,
        reason: str,
        now: float,
        *,
        every_time: bool = False,
        remind_every: float = REMIND_EVERY,
    ) -> Telling:
        """Whether a decision is news. A skip repeats every scan and is said when it changes,
        and again every `remind_every` while it lasts; `every_time` (an act) is always news."""
        key = (verdict, reason)
        again = self.last_decision == key
        if again and not every_time and now - self.last_said_at < remind_every:
            return None
        self.last_decision, self.last_said_at = key, now
        return "reminder" if again and not every_time else "new"


# One cause, one story: (runbook of an effect, runbook of its cause). A crash loop of the tasks
# an update started is why swarm paused that update: the paused-update incident tells it.
EXPLAINED_BY = {("crash-loop", "paused-update")}


def explains(cause: Finding, effect: Finding, snap: Snapshot) -> bool:
    """Whether `cause`'s fault explains `effect`'s: a link of EXPLAINED_BY on one service,
    whose update is paused, and every task of the effect created since that update started
    (its new spec's tasks, not a crash loop that was there before the update)."""
    if (effect.runbook, cause.runbook) not in EXPLAINED_BY:
        return False
    if not effect.service_id or effect.service_id != cause.service_id:
        return False
    svc = snap.service(effect.service_id)
    us = svc.update_status if svc is not None else None
    if us is None or us.state != "paused" or not us.started_at:
        return False
    tasks = [snap.task(t) for t in effect.task_ids]
    return bool(tasks) and all(t is not None and t.created_at >= us.started_at for t in tasks)


def explained_by(effect: Finding, others: Iterable[Incident], snap: Snapshot) -> Incident | None:
    """The open incident (not itself linked) whose fault explains `effect`'s, if any."""
    for inc in others:
        if (
            not inc.linked_to
            and inc.finding.key != effect.key
            and explains(inc.finding, effect, snap)
        ):
            return inc
    return None


# The medic's stance on an open incident, from its last decision: a metric label, so a person
# can tell a fault the medic is fixing from one it gave up on or was never asked to fix.
#   acting      it acts, verifies, or waits its turn (cooldown, another fix first)
#   gave_up     its fixes did not hold or its budget is spent (circuit open): a person must fix it
#   held        not allowed to act (dry-run, not opted in, paused, alerts hold, not the leader)
#   report_only the runbook only reports this fault (or a label says so): nothing to fix by act
STANCES = ("acting", "gave_up", "held", "report_only")
_REPORT_ONLY = frozenset({Reason.NO_ACTION, Reason.REPORT_LABEL})
_GAVE_UP = frozenset({Reason.CIRCUIT_OPEN, Reason.BUDGET_SPENT})
_ACTING = frozenset(
    {
        Reason.OK,
        Reason.VERIFYING,
        Reason.BUSY,
        Reason.COOLDOWN,
        Reason.MAX_CONCURRENT,
        Reason.NODE_UNREACHABLE,
    }
)


def stance(inc: Incident) -> str:
    """One of STANCES, from what the incident's last decision said (before any: acting)."""
    if not inc.finding.actionable:
        return "report_only"
    if inc.last_decision is None:
        return "acting"
    reason = inc.last_decision[1]
    if reason in _REPORT_ONLY:
        return "report_only"
    if reason in _GAVE_UP:
        return "gave_up"
    return "acting" if reason in _ACTING else "held"


@dataclass
class Changes:
    opened: list[Incident] = field(default_factory=list)
    closed: list[Incident] = field(default_factory=list)


def new_id() -> str:
    return uuid.uuid4().hex[:12]


@dataclass(frozen=True)
class Known:
    """An incident another instance opened and left open (the ledger's record of it)."""

    id: str
    found: float
    acted: bool = False


class Incidents:
    """The open incidents by finding key: turns each scan's findings into opened and closed
    incidents, so a fault seen on every scan is reported once, with one id, while it lasts."""

    def __init__(self, make_id: Callable[[], str] = new_id) -> None:
        self._open: dict[str, Incident] = {}
        self._make_id = make_id
        self._known: dict[str, Known] = {}  # finding key -> an earlier leader's open incident

    def adopt(self, known: dict[str, Known]) -> None:
        """The incidents an earlier leader left open, by finding key: one open here takes their
        id and found time now, one not seen yet when it is (at the next `update` only): the
        same fault keeps one id and one age whichever instance leads."""
        for key, k in known.items():
            inc = self._open.get(key)
            if inc is not None:
                inc.id, inc.opened_at = k.id, min(inc.opened_at, k.found)
                inc.acted = inc.acted or k.acted
        self._known = {k: v for k, v in known.items() if k not in self._open}

    def update(self, findings: Iterable[Finding], now: float) -> Changes:
        changes = Changes()
        seen: set[str] = set()
        known, self._known = self._known, {}
        for f in findings:
            seen.add(f.key)
            inc = self._open.get(f.key)
            if inc is None:
                k = known.get(f.key)
                inc = (
                    Incident(k.id, f, min(now, k.found), acted=k.acted, recorded=True)
                    if k is not None
                    else Incident(self._make_id(), f, now)
                )
                self._open[f.key] = inc
                changes.opened.append(inc)
            else:
                inc.finding = f
        for key in [k for k in self._open if k not in seen]:
            changes.closed.append(self._open.pop(key))
        return changes

    def all(self) -> tuple[Incident, ...]:
        return tuple(self._open.values())

    def get(self, key: str) -> Incident | None:
        return self._open.get(key)

    def open_count(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for inc in self._open.values():
            counts[inc.finding.runbook] = counts.get(inc.finding.runbook, 0) + 1
        return counts

    def oldest_open_age(self, now: float) -> dict[str, float]:
        """Per runbook, how long its oldest open incident has been open (absent: none open)."""
        ages: dict[str, float] = {}
        for inc in self._open.values():
            rb = inc.finding.runbook
            ages[rb] = max(ages.get(rb, 0.0), now - inc.opened_at)
        return ages

    def open_since(self) -> dict[tuple[str, str, str], float]:
        """(runbook, service name, stance) -> when the oldest such incident opened."""
        out: dict[tuple[str, str, str], float] = {}
        for inc in self._open.values():
            key = (inc.finding.runbook, inc.finding.service_name, stance(inc))
            out[key] = min(out.get(key, inc.opened_at), inc.opened_at)
        return out


# --- someone else's hand on a service ----------------------------------------------------------

MANUAL_ROLLBACK = "manually requested rollback"  # swarmkit's message for an API rollback
NEW_UPDATE = "a new update was started"


def _spec(s: Service) -> tuple[object, ...]:
    """What the model reads of a service's spec: a person's update changes some of it."""
    return (
        s.name,
        tuple(sorted(s.labels.items())),
        s.mode,
        s.replicas,
        s.image,
        s.constraints,
        s.max_replicas_per_node,
        s.reservations,
        s.force_update,
        s.endpoint_mode,
        s.target_ports,
        s.stop_grace_period,
        s.memory_limit,
        s.update_config,
        s.networks,
        s.configs,
        s.secrets,
    )


_SPEC_NAMES = (
    "name",
    "labels",
    "mode",
    "replicas",
    "image",
    "constraints",
    "max replicas per node",
    "reservations",
    "force update",
    "endpoint mode",
    "ports",
    "stop grace period",
    "memory limit",
    "update config",
    "networks",
    "configs",
    "secrets",
)


def _swarms_rollback(status: UpdateStatus | None) -> bool:
    """Swarm's own rollback of a failed update (its update config's failure action): it swaps
    the spec back by itself, which is no one's hand."""
    return (
        status is not None
        and status.state.startswith("rollback")
        and status.message != MANUAL_ROLLBACK
    )


def changed_by_someone(before: Service, after: Service | None) -> str:
    """What an update through the API changed between two sightings of a service ("" : none
    seen). The caller rules out the medic's own actions.

    Version.Index alone cannot tell: swarm's updater moves it (and UpdatedAt) each time it writes
    an update's progress (updating, paused, completed). A person's update shows as a change of
    the spec as the model reads it, or as a new update started (UpdateStatus reset, or a later
    StartedAt: `--env-add` and the rest the model does not read), and a removal as the service
    gone. Swarm's own rollback of a failed update is not one."""
    if after is None:
        return "the service was removed"
    a, b = after.update_status, before.update_status
    # an API update resets UpdateStatus: none came since swarm's own rollback began
    if after.version == before.version or _swarms_rollback(a):
        return ""
    fields = [
        name for name, x, y in zip(_SPEC_NAMES, _spec(before), _spec(after), strict=True) if x != y
    ]
    if fields:
        return f"its spec changed: {', '.join(fields)}"
    if b is not None and a is None:
        return "an update was requested (its update status was reset)"
    new_start = a is not None and a.started_at is not None
    if new_start and (b is None or a is None or a.started_at != b.started_at):
        return NEW_UPDATE
    return ""


@dataclass(frozen=True)
class Remediation:
    """One fix's end: verified (healed / not_healed, with the time it took) or an action
    that did not go through (failed, conflict, unreachable: no time to heal)."""

    at: float
    incident: str
    runbook: str
    service: str
    action: str
    result: str
    seconds: float | None = None
    detail: str = ""


class Recent:
    """The last `size` remediation outcomes, newest last. Written by the scan thread, read by
    the HTTP thread: a lock around the deque, never held for more than a copy."""

    def __init__(self, size: int = RECENT) -> None:
        self._items: deque[Remediation] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, item: Remediation) -> None:
        with self._lock:
            self._items.append(item)

    def newest_first(self) -> tuple[Remediation, ...]:
        with self._lock:
            return tuple(reversed(self._items))
