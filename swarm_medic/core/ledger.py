"""The durable history the safety policy needs: actions, failed fixes, open circuits. Pure.

It lives in the swarm itself, as labels of one swarm config object (`--ledger-name`), one label
per service that was ever acted on: `swarm-medic.svc.<service id>` = compact JSON (and per node
an action on a node was about, under the node's id: `Action.subject`). So it
survives a restart of swarm-medic, is the same whichever manager leads, and every write is a
compare-and-swap on the config's Version.Index: the write that claims an action is also the
lock that stops a second instance from taking it.

Each claim also records the fix it starts as *pending* (incident, action, the service version
it was decided on, deadline) until its outcome is written. An instance killed between claiming
and acting, or between acting and verifying, loses only its memory: the instance that leads
next reads the pending fix back, releases the claim if the action never reached the engine
(the service is still at the version it was decided on), or resumes the verification under the
same incident id. No fix is done twice and none goes unjudged.

The incidents the leader found, and what became of each, are kept beside it, one label per
incident (`swarm-medic.incident.<id>`, core/records.py): read only when asked for
(`Ledger.records`), since every manager reads the ledger on every scan; written back by every
writer as they were, pruned to their own bounds.

One more label, `swarm-medic.pause` (PAUSE_LABEL), is the swarm-wide pause switch that
`swarm-medic pause` and `resume` write (with the same compare-and-swap): JSON
{"until": time or null, "reason", "by", "at"}. It is read as strictly as the rest, but a pause
label that cannot be read is the opposite of a service entry that cannot be read: it reads as
PAUSED, with no end, until someone resumes or pauses again (an operator meant to stop the
medic; a typo must not switch it back on). A pause past its `until` is over; the next write
drops it.

An approval (`swarm-medic approve INCIDENT`) is one label per incident,
`swarm-medic.approval.<incident id>` (APPROVAL_PREFIX) = JSON {"by", "at", "until"}: who approved
the proposed action, when, and until when it may be applied. It is consumed (removed) in the
same write as the claim of the action it lets through, so it is applied once; the leader drops
one past its `until` and says so once. One that cannot be read approves nothing, is said, and
is kept as it is for an operator to fix or remove.

Why not the service's own labels: a label change is a service update, which would replace the
PreviousSpec a rollback needs and reset UpdateStatus; a rollback request ignores the spec sent
with it, so labels cannot ride along with it either.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property
from types import MappingProxyType

from swarm_medic.core import records as records_mod
from swarm_medic.core.model import LedgerDoc
from swarm_medic.core.records import RECORD_PREFIX, IncidentRecord, Records

PREFIX = "swarm-medic.svc."
PAUSE_LABEL = "swarm-medic.pause"
APPROVAL_PREFIX = "swarm-medic.approval."
WINDOW = 3600.0  # budgets count actions of the last hour

# The labels are input like any other: anyone with access to the swarm can write them. These
# bounds keep a hostile or broken entry from costing more than a glance (size, nesting) and
# from switching a safeguard off (a NaN or infinite time makes every comparison false).
MAX_LABEL_BYTES = 64 * 1024
MAX_ACTIONS = 256  # above the largest --budget-per-hour: an hour's actions always fit
MAX_FAILURES = 1_000_000
MAX_TEXT = 1024  # a runbook name, the reason a circuit opened
LATEST = 4_102_444_800.0  # 2100-01-01: no plausible time of ours is later


class LedgerEntryError(ValueError):
    """One service's entry in the ledger cannot be trusted; the message says why."""


MAX_VERSION = 2**63 - 1
ACTION_KINDS = frozenset(
    {
        "force_update",
        "rollback",
        "retry_update",
        "resume_update",
        "replace_task",
        "remove_orphan",
        "remove_node",
        "prune_node",
    }
)


@dataclass(frozen=True)
class Verifying:
    """A fix claimed (and perhaps carried out) whose outcome is not written yet."""

    incident: str
    runbook: str
    kind: str  # an ActionKind value
    version: int  # the service's Version.Index the decision was made on
    at: float  # when it was claimed: the time of its entry in `actions`
    deadline: float
    task: str = ""
    node: str = ""


@dataclass(frozen=True)
class History:
    actions: tuple[tuple[float, str], ...] = ()  # (when, runbook)
    failures_in_row: int = 0
    open_until: float = 0.0
    open_reason: str = ""
    pending: Verifying | None = None

    def circuit_open(self, now: float) -> bool:
        return now < self.open_until

    def actions_since(self, since: float) -> int:
        return sum(1 for t, _ in self.actions if t >= since)

    def last_action(self, runbook: str) -> float | None:
        times = [t for t, rb in self.actions if rb == runbook]
        return max(times) if times else None


@dataclass(frozen=True)
class Pause:
    """The swarm-wide pause switch: no action anywhere while it is on."""

    reason: str
    at: float  # when it was written
    by: str = ""  # who wrote it (user@host of `swarm-medic pause`)
    until: float | None = None  # None: until `swarm-medic resume`
    problem: str = ""  # the label could not be read: paused all the same, with no end

    def active(self, now: float) -> bool:
        return self.until is None or now < self.until

    def fields(self) -> dict[str, object]:
        """For JSON answers (/healthz, `check --json`): the same names everywhere."""
        return {
            "since": self.at,
            "until": self.until,
            "reason": self.reason,
            "by": self.by,
            "problem": self.problem,
        }

    def describe(self) -> str:
        """One line for a person: since when, until when, why, by whom."""
        if self.problem:
            return f"paused: the pause label is unreadable ({self.problem}); treated as paused"
        until = "resume" if self.until is None else _iso(self.until)
        by = f", by {self.by}" if self.by else ""
        return f"paused since {_iso(self.at)} until {until}{by}, reason: {self.reason}"


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


PAUSE_KEYS = frozenset({"until", "reason", "by", "at"})


def encode_pause(p: Pause) -> str:
    obj = {
        "until": None if p.until is None else round(p.until, 3),
        "reason": p.reason,
        "by": p.by,
        "at": round(p.at, 3),
    }
    return json.dumps(obj, separators=(",", ":"), sort_keys=True)


def decode_pause(text: object) -> Pause:
    """The pause label -> Pause. Raises LedgerEntryError, and nothing else, for a bad one."""
    obj = _json_object(text)
    if extra := sorted(set(obj) - PAUSE_KEYS):
        raise LedgerEntryError(f"unknown key(s) in the pause: {', '.join(extra)[:80]}")
    until = obj.get("until")
    return Pause(
        reason=_text(obj.get("reason"), "the pause's reason"),
        at=_time(obj.get("at"), "the pause's time ('at')"),
        by=_text(obj.get("by", ""), "who paused ('by')"),
        until=None if until is None else _time(until, "the pause's end ('until')"),
    )


@dataclass(frozen=True)
class Approval:
    """An operator's go-ahead for the action proposed on one incident, until `until`."""

    incident: str
    by: str
    at: float
    until: float

    def active(self, now: float) -> bool:
        return now < self.until

    def describe(self) -> str:
        by = f" by {self.by}" if self.by else ""
        return f"approved{by} at {_iso(self.at)}, until {_iso(self.until)}"


APPROVAL_KEYS = frozenset({"by", "at", "until"})


def encode_approval(a: Approval) -> str:
    obj = {"by": a.by, "at": round(a.at, 3), "until": round(a.until, 3)}
    return json.dumps(obj, separators=(",", ":"), sort_keys=True)


def decode_approval(incident: str, text: object) -> Approval:
    """An approval label -> Approval. Raises LedgerEntryError, and nothing else, for a bad one."""
    obj = _json_object(text)
    if extra := sorted(set(obj) - APPROVAL_KEYS):
        raise LedgerEntryError(f"unknown key(s) in the approval: {', '.join(extra)[:80]}")
    return Approval(
        incident=incident,
        by=_text(obj.get("by", ""), "who approved ('by')"),
        at=_time(obj.get("at"), "the approval's time ('at')"),
        until=_time(obj.get("until"), "the approval's end ('until')"),
    )


def _approvals_of(labels: Mapping[str, str]) -> tuple[dict[str, Approval], dict[str, str]]:
    good: dict[str, Approval] = {}
    bad: dict[str, str] = {}
    for key, value in labels.items():
        if not isinstance(key, str) or not key.startswith(APPROVAL_PREFIX):
            continue
        iid = key[len(APPROVAL_PREFIX) :]
        try:
            good[iid] = decode_approval(iid, value)
        except LedgerEntryError as exc:
            bad[iid] = str(exc)
    return good, bad


def _pause_of(labels: Mapping[str, str]) -> Pause | None:
    if PAUSE_LABEL not in labels:
        return None
    try:
        return decode_pause(labels[PAUSE_LABEL])
    except LedgerEntryError as exc:
        return Pause(reason="", at=0.0, problem=str(exc))


def _gated(h: History, now: float) -> History:
    return replace(h, actions=tuple(a for a in h.actions if a[0] >= now - WINDOW))


def encode(h: History) -> str:
    obj: dict[str, object] = {
        "a": [[round(t, 3), rb] for t, rb in h.actions],
        "f": h.failures_in_row,
        "u": round(h.open_until, 3),
        "r": h.open_reason,
    }
    if (p := h.pending) is not None:
        obj["p"] = {
            "i": p.incident,
            "rb": p.runbook,
            "k": p.kind,
            "v": p.version,
            "t": round(p.at, 3),
            "d": round(p.deadline, 3),
            "task": p.task,
            "node": p.node,
        }
    return json.dumps(obj, separators=(",", ":"), sort_keys=True)


def _pending(value: object) -> Verifying | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise LedgerEntryError("the pending fix ('p') is not an object")
    kind = _text(value.get("k"), "the pending fix's action")
    if kind not in ACTION_KINDS:
        raise LedgerEntryError(f"the pending fix's action is unknown: {kind[:40]!r}")
    version = value.get("v")
    if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version <= MAX_VERSION:
        raise LedgerEntryError("the pending fix's service version is not a whole number")
    return Verifying(
        incident=_text(value.get("i"), "the pending fix's incident"),
        runbook=_text(value.get("rb"), "the pending fix's runbook"),
        kind=kind,
        version=version,
        at=_time(value.get("t"), "the pending fix's time"),
        deadline=_time(value.get("d"), "the pending fix's deadline"),
        task=_text(value.get("task", ""), "the pending fix's task"),
        node=_text(value.get("node", ""), "the pending fix's node"),
    )


def _time(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise LedgerEntryError(f"{what} is not a number: {value!r:.40}")
    # compared before float(): a 400-digit JSON integer overflows float() but compares fine
    if not 0 <= value < LATEST:  # also false for NaN
        raise LedgerEntryError(f"{what} is not a plausible time: {value!r:.40}")
    return float(value)


def _text(value: object, what: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise LedgerEntryError(f"{what} is not a string of at most {MAX_TEXT} characters")
    return value


def as_written(h: History) -> History:
    """`h` as it reads back from the labels: times keep 3 decimals there, so a history just
    built compares equal to its own write only in this form."""
    return decode(encode(h))


def _json_object(text: object) -> dict[str, object]:
    return records_mod.json_label(text, MAX_LABEL_BYTES, LedgerEntryError)


def decode(text: object) -> History:
    """One label value -> History. Raises LedgerEntryError, and nothing else, for a bad one."""
    obj = _json_object(text)
    raw_actions = obj.get("a", [])
    if not isinstance(raw_actions, list):
        raise LedgerEntryError("the actions ('a') are not a list")
    if len(raw_actions) > MAX_ACTIONS:
        raise LedgerEntryError(f"{len(raw_actions)} actions (at most {MAX_ACTIONS})")
    actions = []
    for i, item in enumerate(raw_actions):
        if not isinstance(item, list) or len(item) != 2:
            raise LedgerEntryError(f"action {i} is not a [time, runbook] pair")
        actions.append(
            (_time(item[0], f"action {i}'s time"), _text(item[1], f"action {i}'s runbook"))
        )
    failures = obj.get("f", 0)
    if isinstance(failures, bool) or not isinstance(failures, int):
        raise LedgerEntryError("the failure count ('f') is not a whole number")
    if not 0 <= failures <= MAX_FAILURES:
        raise LedgerEntryError(f"the failure count ('f') is out of range: {failures}")
    return History(
        tuple(actions),
        failures,
        _time(obj.get("u", 0.0), "the circuit's end ('u')"),
        _text(obj.get("r", ""), "the circuit's reason ('r')"),
        _pending(obj.get("p")),
    )


@dataclass(frozen=True)
class Ledger:
    doc: LedgerDoc | None = None
    services: Mapping[str, History] = field(default_factory=lambda: MappingProxyType({}))
    unreadable: frozenset[str] = frozenset()  # a corrupt entry: never act on that service
    problems: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))  # sid -> why
    pause: Pause | None = None  # the pause switch as written (perhaps over: see `paused`)
    # incident records changed since the read (core/records.py); the others are written back
    # as they were read
    record_changes: Mapping[str, IncidentRecord] = field(
        default_factory=lambda: MappingProxyType({})
    )
    # approvals (`swarm-medic approve`) by incident id, readable ones; the unreadable and why
    approvals: Mapping[str, Approval] = field(default_factory=lambda: MappingProxyType({}))
    approval_problems: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    approvals_dropped: frozenset[str] = frozenset()  # consumed or expired: not written back

    @classmethod
    def from_doc(cls, doc: LedgerDoc | None) -> Ledger:
        services: dict[str, History] = {}
        bad: dict[str, str] = {}
        for key, value in (doc.labels if doc else {}).items():
            if not isinstance(key, str) or not key.startswith(PREFIX):
                continue
            sid = key[len(PREFIX) :]
            try:
                services[sid] = decode(value)
            except LedgerEntryError as exc:
                bad[sid] = str(exc)
        pause = _pause_of(doc.labels) if doc else None
        approvals, approval_problems = _approvals_of(doc.labels if doc else {})
        return cls(
            doc,
            MappingProxyType(services),
            frozenset(bad),
            MappingProxyType(bad),
            pause,
            approvals=MappingProxyType(approvals),
            approval_problems=MappingProxyType(approval_problems),
        )

    def approval(self, incident: str, now: float) -> Approval | None:
        """The approval in force for `incident` at `now`, or None."""
        a = self.approvals.get(incident)
        return a if a is not None and a.active(now) else None

    def with_approval(self, a: Approval) -> Ledger:
        """This ledger with `a` written (replacing one for the same incident)."""
        return replace(
            self,
            approvals=MappingProxyType({**self.approvals, a.incident: a}),
            approval_problems=MappingProxyType(
                {k: v for k, v in self.approval_problems.items() if k != a.incident}
            ),
            approvals_dropped=self.approvals_dropped - {a.incident},
        )

    def without_approvals(self, incidents: Iterable[str]) -> Ledger:
        """This ledger with these approvals removed (consumed, or expired)."""
        gone = frozenset(incidents)
        return replace(
            self,
            approvals=MappingProxyType({k: v for k, v in self.approvals.items() if k not in gone}),
            approvals_dropped=self.approvals_dropped | gone,
        )

    @cached_property
    def _records_read(self) -> Records:
        return Records.from_labels(self.doc.labels if self.doc else {})

    def records(self) -> Records:
        """The incident records as read, with this ledger's changes; decoded on first use."""
        read = self._records_read
        if not self.record_changes:
            return read
        return replace(read, by_id=MappingProxyType({**read.by_id, **self.record_changes}))

    def with_records(self, changes: Iterable[records_mod.Change]) -> Ledger:
        """This ledger with `changes` applied to its incident records; `labels` writes them."""
        done = records_mod.changed(self.records(), changes)
        if not done:
            return self
        return replace(self, record_changes=MappingProxyType({**self.record_changes, **done}))

    def paused(self, now: float) -> Pause | None:
        """The pause in force at `now` (an unreadable pause label is in force), or None."""
        return self.pause if self.pause is not None and self.pause.active(now) else None

    def with_pause(self, pause: Pause | None) -> Ledger:
        """This ledger with the switch set (None: resumed); `labels` writes it."""
        return replace(self, pause=pause)

    def in_progress(self, now: float) -> frozenset[str]:
        """Services with a fix claimed and not judged yet, its deadline not passed: the
        remediations under way in the swarm, whichever instance claimed them."""
        return frozenset(
            sid for sid, h in self.services.items() if h.pending and now <= h.pending.deadline
        )

    def history(self, service_id: str) -> History:
        return self.services.get(service_id, History())

    def labels(self, now: float) -> dict[str, str]:
        """Labels to write back: untouched entries of others kept, stale ones pruned."""
        before = self.doc.labels if self.doc else {}
        out = {
            k: v
            for k, v in before.items()
            if k != PAUSE_LABEL
            and not k.startswith(RECORD_PREFIX)
            and k != records_mod.PRUNED_LABEL
            and (not k.startswith(PREFIX) or k[len(PREFIX) :] in self.unreadable)
            # approvals: the unreadable ones kept as they are, the others written below
            and (
                not k.startswith(APPROVAL_PREFIX)
                or k[len(APPROVAL_PREFIX) :] in self.approval_problems
            )
        }
        for iid, a in self.approvals.items():
            if iid not in self.approvals_dropped:
                out[APPROVAL_PREFIX + iid] = encode_approval(a)
        out.update(records_mod.labels(before, self.record_changes, now))
        if (p := self.paused(now)) is not None:
            # an unreadable pause is kept as it is: only resume or a new pause replaces it
            out[PAUSE_LABEL] = before.get(PAUSE_LABEL, "") if p.problem else encode_pause(p)
        for sid, h in self.services.items():
            recent = tuple(a for a in h.actions if a[0] >= now - WINDOW)
            kept = replace(h, actions=recent[-MAX_ACTIONS:])
            if kept.actions or kept.circuit_open(now) or kept.failures_in_row or kept.pending:
                out[PREFIX + sid] = encode(kept)
        return out

    def same_history(self, other: Ledger, service_id: str, now: float) -> bool:
        """Would the policy's gates judge `service_id` the same on both ledgers?

        Entries pruned since (actions older than the budget window) do not count: another
        instance's write prunes them without acting."""
        a, b = self.history(service_id), other.history(service_id)
        unreadable = (service_id in self.unreadable, service_id in other.unreadable)
        return unreadable[0] == unreadable[1] and _gated(a, now) == _gated(b, now)

    def with_history(self, service_id: str, h: History) -> Ledger:
        return self._with(service_id, h)

    def _with(self, service_id: str, h: History) -> Ledger:
        services = dict(self.services)
        services[service_id] = h
        return replace(self, services=MappingProxyType(services))

    def record_action(
        self,
        service_id: str,
        runbook: str,
        now: float,
        budget: int,
        reset: float,
        *,
        pending: Verifying | None = None,
    ) -> tuple[Ledger, bool]:
        """Adds an action (and the fix it starts, to verify); opens the circuit if it spends
        the budget. -> (ledger, opened)."""
        h = self.history(service_id)
        h = replace(h, actions=(*h.actions, (now, runbook)), pending=pending)
        opened = h.actions_since(now - WINDOW) >= budget and not h.circuit_open(now)
        if opened:
            h = replace(
                h,
                open_until=now + reset,
                open_reason=f"action budget spent: {budget} in the last hour",
            )
        return self._with(service_id, h), opened

    def record_outcome(
        self, service_id: str, healed: bool, now: float, failures: int, reset: float
    ) -> tuple[Ledger, bool]:
        """A verified outcome; opens the circuit after `failures` fixes in a row did not hold."""
        h = replace(self.history(service_id), pending=None)
        if healed:
            return self._with(service_id, replace(h, failures_in_row=0)), False
        h = replace(h, failures_in_row=h.failures_in_row + 1)
        opened = h.failures_in_row >= failures and not h.circuit_open(now)
        if opened:
            h = replace(
                h,
                open_until=now + reset,
                open_reason=f"{h.failures_in_row} fix(es) in a row did not hold",
            )
        return self._with(service_id, h), opened

    def release(self, service_id: str) -> Ledger:
        """Undo the claim of the pending fix: it never reached the engine."""
        h = self.history(service_id)
        p = h.pending
        if p is None:
            return self
        actions = list(h.actions)
        if (p.at, p.runbook) in actions:
            actions.remove((p.at, p.runbook))
        opened_by_it = h.open_reason.startswith("action budget spent") and h.open_until > p.at
        h = replace(h, actions=tuple(actions), pending=None)
        if opened_by_it:
            h = replace(h, open_until=0.0, open_reason="")
        return self._with(service_id, h)

    def forget_pending(self, service_id: str) -> Ledger:
        return self._with(service_id, replace(self.history(service_id), pending=None))
