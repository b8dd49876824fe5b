"""The incidents' record in the ledger: what `swarm-medic report` counts. Pure.

Each incident the leader finds gets one label of the ledger config,
`swarm-medic.incident.<incident id>` = compact JSON, written with the ledger's compare-and-swap:
when it was found (runbook, service, finding key), the actions the medic carried out on it, the
verifier's verdicts, when someone else changed its service, and when it closed. It is written
by the leader in acting mode only (dry-run changes nothing, the ledger included), and it lives
where the rest of the durable history does, so a new leader reads it back: it takes over the
incidents still open under their ids and found times (`Incidents.adopt`), and closes those
whose fault is gone.

Bounded, as every label of the ledger is input and the whole config is read on every scan:
the newest MAX_RECORDS incidents are kept, none closed more than HORIZON ago. When the cap drops
a record younger than the horizon, PRUNED_LABEL keeps the newest found time dropped, so that a
report over a longer span says it is incomplete instead of counting less.

Read as strictly as the service entries, but a record is only an account, never a safeguard:
one that cannot be read is skipped and said (`Records.problems`), and kept as it is until the
cap needs its room. A field missing (a record from a newer or an older writer) means "not known"
and never fails the record; `runbook` and `found` are the only fields it cannot do without.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

RECORD_PREFIX = "swarm-medic.incident."
PRUNED_LABEL = "swarm-medic.incidents-pruned"
MAX_RECORDS = 500  # ~250 bytes each: ~125 KB of labels, read by every manager on every scan
HORIZON = 30 * 86400.0  # how far back a report can look
MAX_RECORD_BYTES = 4096  # a finding key is at most MAX_TEXT; the rest is small
MAX_TEXT = 1024
MAX_COUNT = 1_000_000
LATEST = 4_102_444_800.0  # 2100-01-01: no plausible time of ours is later


class RecordError(ValueError):
    """One incident's record cannot be read; the message says why."""


@dataclass(frozen=True)
class IncidentRecord:
    """One incident as the ledger keeps it. Times are Unix seconds; None: not (yet) known."""

    id: str
    runbook: str
    found: float
    key: str = ""  # the finding's key: how a new leader finds the incident again
    service_id: str = ""  # "" : not about a service (a node, the managers, a network)
    service: str = ""  # its name when found
    closed: float | None = None
    acted: float | None = None  # the first action carried out on it
    last_acted: float | None = None  # the last one: writing an action twice counts it once
    actions: int = 0  # actions carried out (the engine took them)
    not_held: int = 0  # fixes the verifier judged not healed
    healed: float | None = None  # when the verifier judged a fix healed
    touched: float | None = None  # when a change to its service by someone else was first seen
    proposed: str = ""  # the action proposed, waiting for `swarm-medic approve` ("" : none)

    @property
    def fixed(self) -> bool:
        return self.actions > 0 or self.acted is not None


def encode(r: IncidentRecord) -> str:
    obj: dict[str, object] = {"rb": r.runbook, "f": round(r.found, 3)}
    texts = {"k": r.key, "s": r.service_id, "n": r.service, "p": r.proposed}
    obj.update({k: v for k, v in texts.items() if v})
    times = {
        "c": r.closed,
        "a": r.acted,
        "la": r.last_acted,
        "h": r.healed,
        "t": r.touched,
    }
    obj.update({k: round(v, 3) for k, v in times.items() if v is not None})
    counts = {"x": r.actions, "nh": r.not_held}
    obj.update({k: v for k, v in counts.items() if v})
    return json.dumps(obj, separators=(",", ":"), sort_keys=True)


def _time(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecordError(f"{what} is not a number: {value!r:.40}")
    if not 0 <= value < LATEST:  # also false for NaN; compared before float() (huge ints)
        raise RecordError(f"{what} is not a plausible time: {value!r:.40}")
    return float(value)


def _maybe_time(obj: Mapping[str, object], key: str, what: str) -> float | None:
    value = obj.get(key)
    return None if value is None else _time(value, what)


def _text(obj: Mapping[str, object], key: str, what: str, *, required: bool = False) -> str:
    value = obj.get(key, None if required else "")
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise RecordError(f"{what} is not a string of at most {MAX_TEXT} characters")
    return value


def _count(obj: Mapping[str, object], key: str, what: str) -> int:
    value = obj.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
        raise RecordError(f"{what} is not a whole number from 0 to {MAX_COUNT}")
    return value


def json_label(text: object, limit: int, error: type[ValueError]) -> dict[str, object]:
    """A ledger label's value -> the JSON object it must hold, at most `limit` bytes; `error`
    (the caller's kind) says why not. The ledger's service entries are read the same way."""
    if not isinstance(text, str):
        raise error(f"the label is not text but {type(text).__name__}")
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > limit:
        raise error(f"the label is {size} bytes long (at most {limit})")
    try:
        obj = json.loads(text)
    except RecursionError:
        raise error("the label's JSON is nested too deeply") from None
    except ValueError as exc:
        raise error(f"the label is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise error(f"the label is not a JSON object but {type(obj).__name__}")
    return obj


def decode(incident_id: str, text: object) -> IncidentRecord:
    """One label's value -> IncidentRecord. Raises RecordError, and nothing else."""
    obj = json_label(text, MAX_RECORD_BYTES, RecordError)
    if "f" not in obj:
        raise RecordError("the record says no time found ('f')")
    runbook = _text(obj, "rb", "the runbook ('rb')", required=True)
    if not runbook:
        raise RecordError("the record names no runbook ('rb')")
    return IncidentRecord(
        id=incident_id,
        runbook=runbook,
        found=_time(obj["f"], "the time found ('f')"),
        key=_text(obj, "k", "the finding key ('k')"),
        service_id=_text(obj, "s", "the service id ('s')"),
        service=_text(obj, "n", "the service name ('n')"),
        closed=_maybe_time(obj, "c", "the time closed ('c')"),
        acted=_maybe_time(obj, "a", "the first action's time ('a')"),
        last_acted=_maybe_time(obj, "la", "the last action's time ('la')"),
        actions=_count(obj, "x", "the action count ('x')"),
        not_held=_count(obj, "nh", "the count of fixes not healed ('nh')"),
        healed=_maybe_time(obj, "h", "the time healed ('h')"),
        touched=_maybe_time(obj, "t", "the time someone else changed the service ('t')"),
        proposed=_text(obj, "p", "the action proposed ('p')"),
    )


# --- what the leader writes: changes applied to the record as read, inside a compare-and-swap --


@dataclass(frozen=True)
class Opened:
    """A new incident: its record, unless the ledger has one by that id already."""

    record: IncidentRecord

    @property
    def id(self) -> str:
        return self.record.id


@dataclass(frozen=True)
class Closed:
    id: str
    at: float


@dataclass(frozen=True)
class Touched:
    """Someone else changed the incident's service (or removed it), first seen `at`."""

    id: str
    at: float


@dataclass(frozen=True)
class Acted:
    """An action carried out at `at` (the time the medic claimed it)."""

    id: str
    at: float


@dataclass(frozen=True)
class Judged:
    """The verifier's verdict on a fix of this incident, at `at`."""

    id: str
    healed: bool
    at: float
    acted: float | None = None  # the fix's claim, in case its Acted was never written


@dataclass(frozen=True)
class Proposed:
    """The action the medic proposes for this incident, waiting for an approval."""

    id: str
    what: str


Change = Opened | Closed | Touched | Acted | Judged | Proposed


def apply(record: IncidentRecord | None, change: Change) -> IncidentRecord | None:
    """The record after `change`. Each change can be applied twice without counting twice (a
    compare-and-swap may be tried again; a write may be retried at the next scan), and a change
    to a record that is not there (pruned, or written before records existed) is dropped."""
    if isinstance(change, Opened):
        return record if record is not None else change.record
    if record is None:
        return None
    if isinstance(change, Closed):
        first = record.closed is None
        return replace(record, closed=change.at) if first else record
    if isinstance(change, Touched):
        first = record.touched is None
        return replace(record, touched=change.at) if first else record
    if isinstance(change, Proposed):
        return replace(record, proposed=change.what[:MAX_TEXT])
    return _acted(record, change.at) if isinstance(change, Acted) else _judged(record, change)


def _judged(record: IncidentRecord, change: Judged) -> IncidentRecord:
    if change.acted is not None:
        record = _acted(record, change.acted)
    if not change.healed:
        return replace(record, not_held=record.not_held + 1)
    return record if record.healed is not None else replace(record, healed=change.at)


def _acted(record: IncidentRecord, at: float) -> IncidentRecord:
    if record.last_acted is not None and at <= record.last_acted:
        return record  # written already
    return replace(
        record,
        acted=at if record.acted is None else min(record.acted, at),
        last_acted=at,
        actions=record.actions + 1,
    )


# --- the records as read, and as written back ---------------------------------------------------


@dataclass(frozen=True)
class Records:
    """The incident records of a ledger: readable ones by id, unreadable ones and why."""

    by_id: Mapping[str, IncidentRecord] = field(default_factory=lambda: MappingProxyType({}))
    problems: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # found time of the newest record the cap dropped (None: none dropped within the horizon)
    pruned_before: float | None = None
    pruned_problem: str = ""  # PRUNED_LABEL could not be read (then: how far back is not known)

    @classmethod
    def from_labels(cls, labels: Mapping[str, str]) -> Records:
        good: dict[str, IncidentRecord] = {}
        bad: dict[str, str] = {}
        for key, value in labels.items():
            if not key.startswith(RECORD_PREFIX):
                continue
            rid = key[len(RECORD_PREFIX) :]
            try:
                good[rid] = decode(rid, value)
            except RecordError as exc:
                bad[rid] = str(exc)
        pruned, problem = None, ""
        if PRUNED_LABEL in labels:
            try:
                pruned = _time(_number(labels[PRUNED_LABEL]), "the pruned mark")
            except RecordError as exc:
                problem = str(exc)
        return cls(MappingProxyType(good), MappingProxyType(bad), pruned, problem)

    def open(self) -> tuple[IncidentRecord, ...]:
        return tuple(r for r in self.by_id.values() if r.closed is None)


def _number(text: object) -> object:
    if not isinstance(text, str) or len(text) > 40:
        raise RecordError("the pruned mark is not a short number")
    try:
        return json.loads(text)
    except ValueError:
        raise RecordError(f"the pruned mark is not a number: {text!r:.40}") from None


def changed(records: Records, changes: Iterable[Change]) -> dict[str, IncidentRecord]:
    """The records `changes` touch, as they are after them (those dropped left out)."""
    out: dict[str, IncidentRecord] = {}
    for c in changes:
        before = out.get(c.id, records.by_id.get(c.id))
        after = apply(before, c)
        if after is not None and after != before:
            out[c.id] = after
    return out


def labels(
    before: Mapping[str, str], changes: Mapping[str, IncidentRecord], now: float
) -> dict[str, str]:
    """The record labels (and PRUNED_LABEL) to write: `before`'s as they were (their text
    kept, unreadable ones too), `changes` encoded, then pruned to the horizon and the cap.

    A write that changes no record (a claim, an outcome without a record, the pause) passes
    them through undecoded: 500 records take ~9 ms to decode, the claim's write ~0.4 ms
    (benchmarks/ledger_bench.py). They are pruned at the next write of a record."""
    if not changes:
        return {k: v for k, v in before.items() if k.startswith(RECORD_PREFIX) or k == PRUNED_LABEL}
    current = Records.from_labels(before)
    texts = {k[len(RECORD_PREFIX) :]: v for k, v in before.items() if k.startswith(RECORD_PREFIX)}
    kept = dict(current.by_id)
    for rid, r in changes.items():
        kept[rid] = r
        texts[rid] = encode(r)
    # closed before the horizon: a report cannot look that far back
    for rid, r in list(kept.items()):
        if r.closed is not None and r.closed < now - HORIZON:
            del kept[rid], texts[rid]
    pruned = current.pruned_before
    over = len(texts) - MAX_RECORDS
    if over > 0:
        # unreadable ones first (undatable), then the oldest found, closed before open
        unreadable = sorted(set(texts) - set(kept))
        for rid in unreadable[:over]:
            del texts[rid]
        over -= min(over, len(unreadable))
        oldest = sorted(kept.values(), key=lambda r: (r.closed is None, r.found, r.id))[:over]
        for r in oldest:
            del kept[r.id], texts[r.id]
            pruned = r.found if pruned is None else max(pruned, r.found)
    out = {RECORD_PREFIX + rid: text for rid, text in texts.items()}
    if pruned is not None and pruned >= now - HORIZON:
        out[PRUNED_LABEL] = json.dumps(round(pruned, 3))
    elif current.pruned_problem and PRUNED_LABEL in before:
        out[PRUNED_LABEL] = before[PRUNED_LABEL]  # kept as it is: said by every report
    return out
