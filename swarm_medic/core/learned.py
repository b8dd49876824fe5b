"""How long each service's tasks normally take to pass each state before running. Pure.

A threshold that fits every service must fit the slowest, so the stuck-task defaults wait five
minutes in `starting`. Each service's own history says better: the leader learns, per service
and per state (LEARNED_STATES), how long its tasks took to pass that state, from the tasks it
sees go on to running, and stuck-task uses

    threshold = min(configured, max(FLOOR[state], p90 of the last SAMPLES durations x MARGIN))

once a state has MIN_SAMPLES durations (before that: the configured value). The configured
value (the setting's default, or a swarm-medic.stuck-after label) is the ceiling; an explicit
label or `--runbook-setting stuck-task.after` for a state overrides (stuck-task decides that).

A task's duration in a state is read from the medic's own sightings (TaskClock.path: when it
first saw the task in each state, the engine's stamp where it is not in the future) and the
engine's stamps at both ends (created, running). A state the medic did not see the task in
(scans are seconds apart; a fast start is over between two) is given the whole span between
the sightings around it: an upper bound, so the threshold errs long, never short. A task is
counted once, when first seen running; `mark` (the newest running time counted) keeps a new
leader from counting again the tasks an earlier one counted.

The choices, and why:
  SAMPLES 20       enough for a p90 to mean something, few enough to follow a service that changed
  MIN_SAMPLES 5    a service that rolled a few times; fewer is too little to trust
  p90 x MARGIN 3   one start in ten may be slow; a hang is not 3x the usual slow one
  FLOOR            starting 20 s: a service that starts in 2-5 s is found hung at 20 s, acted
                   on at the next scan (15 s) and its task replaced within 60 s of the hang;
                   preparing 120 s: pulling a new image is slow the first time on every node,
                   whatever the history says; the scheduler's states 30 s
  a service starting in a steady 40 s: 40 x 3 = 120 s, never reached by a steady start

The leader keeps it in the ledger, one label per service, so a new leader knows it:
`swarm-medic.learned.<service id>` = {"m": mark, "s": {"starting": [seconds, ...], ...}},
bounded (SAMPLES per state, MAX_LABEL_BYTES, MAX_SERVICES labels) and read strictly: an entry
that cannot be read is refused (that service starts from the configured values), said, and
kept as it is until this leader has learned the service afresh.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from swarm_medic.core.model import Snapshot, Task
from swarm_medic.core.records import json_label

LEARNED_PREFIX = "swarm-medic.learned."
# The states learned, in the order a task passes them. The others (allocated, accepted, ready)
# are near instant or not the medic's to judge: they keep the configured values.
LEARNED_STATES = ("new", "pending", "assigned", "preparing", "starting")
# every state a task passes before running, in order: the sightings between learned ones count
PATH = ("new", "allocated", "pending", "assigned", "accepted", "preparing", "ready", "starting")
SAMPLES = 20
MIN_SAMPLES = 5
PERCENTILE = 0.9
MARGIN = 3.0
FLOOR: Mapping[str, float] = MappingProxyType(
    {"new": 30.0, "pending": 30.0, "assigned": 30.0, "preparing": 120.0, "starting": 20.0}
)
WRITE_EVERY = 60.0  # at most one write a minute, unless a threshold changed materially
MATERIAL = 0.2  # a threshold that moved by a fifth or more is written at once
MAX_SECONDS = 30 * 86400.0
MAX_LABEL_BYTES = 2048  # 5 states x 20 samples of "123.4," and the keys: under 1 KB; the image 512
MAX_SERVICES = 1000
MAX_IMAGE = 512  # an image reference with its digest is well under it
LATEST = 4_102_444_800.0  # 2100-01-01


class LearnedError(ValueError):
    """A service's learned entry cannot be read; the message says why."""


@dataclass(frozen=True)
class Times:
    """One service's learned durations: state -> the last SAMPLES, oldest first."""

    mark: float = 0.0  # the running time of the newest task counted
    samples: Mapping[str, tuple[float, ...]] = field(default_factory=lambda: MappingProxyType({}))
    # the image the durations were learned under: a new image's tasks may start slower (a
    # bigger image, a longer migration), so a service that changed its image starts over
    image: str = ""

    def count(self, state: str) -> int:
        return len(self.samples.get(state, ()))

    def learned(self, state: str) -> float | None:
        """max(floor, p90 x margin) once the state has MIN_SAMPLES durations; else None."""
        got = self.samples.get(state, ())
        if len(got) < MIN_SAMPLES or state not in FLOOR:
            return None
        return max(FLOOR[state], percentile(got, PERCENTILE) * MARGIN)


def percentile(values: Iterable[float], q: float) -> float:
    """Nearest rank: the smallest value with at least q of them at or below it."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def threshold(
    times: Times | None, state: str, ceiling: float, image: str = ""
) -> tuple[float, int] | None:
    """(the learned threshold capped by `ceiling`, the durations it is learned from), or None
    while the state has too little history, or the history is of another image than the
    service's `image` now (then the configured value stands)."""
    if times is not None and times.image and image and times.image != image:
        return None
    value = None if times is None else times.learned(state)
    if value is None or times is None:
        return None
    return min(ceiling, value), times.count(state)


def durations(task: Task, path: Mapping[str, float]) -> dict[str, float]:
    """The durations a task that is running now spent in each learned state (upper bounds
    where the medic did not see it there). `path`: state -> when first seen in it."""
    ends = [(PATH.index(s), t) for s, t in path.items() if s in PATH]
    start = task.created_at
    out: dict[str, float] = {}
    for state in LEARNED_STATES:
        i = PATH.index(state)
        before = [t for j, t in ends if j <= i]
        after = [t for j, t in ends if j > i]
        lo = max(before) if before else start
        hi = min(after) if after else task.timestamp
        if lo <= 0 or hi <= 0 or hi < lo or hi - lo > MAX_SECONDS:
            continue
        out[state] = round(hi - lo, 1)
    return out


def add(times: Times, task: Task, path: Mapping[str, float]) -> Times:
    """`times` with a task that went on to running counted (once: its running time is after
    the mark). A task of another image than the one learned starts the history over."""
    if task.image and task.image != times.image:
        times = Times(image=task.image)
    if task.timestamp <= times.mark:
        return times
    samples = dict(times.samples)
    for state, seconds in durations(task, path).items():
        samples[state] = (*samples.get(state, ()), seconds)[-SAMPLES:]
    return Times(task.timestamp, MappingProxyType(samples), times.image)


def observe(
    learned: Mapping[str, Times],
    snapshot: Snapshot,
    paths: Mapping[str, Mapping[str, float]],
    counted: frozenset[str],
) -> tuple[dict[str, Times], frozenset[str]]:
    """The tasks seen running for the first time counted -> (learned, the task ids counted:
    given back next scan). A task is counted the first scan it is seen running, if the medic
    saw it before running (`paths`) or if the engine says when it was created."""
    out = dict(learned)
    now_running = set()
    for t in sorted(snapshot.tasks, key=lambda t: t.timestamp):
        if t.state != "running" or t.desired_state != "running":
            continue
        if t.timestamp > snapshot.taken_at:
            continue  # its node's clock is ahead: counted once ours has passed the stamp
        now_running.add(t.id)
        svc = snapshot.service(t.service_id)
        if t.id in counted or svc is None:
            continue
        if t.image and svc.image and t.image != svc.image:
            continue  # a task of the spec before (an update or rollback in flight): not counted
        out[t.service_id] = add(out.get(t.service_id, Times()), t, paths.get(t.id, {}))
    return out, frozenset(now_running)


def material(before: Times | None, after: Times) -> bool:
    """A learned threshold appeared, went, or moved by MATERIAL or more."""
    for state in LEARNED_STATES:
        a = None if before is None else before.learned(state)
        b = after.learned(state)
        if (a is None) != (b is None):
            return True
        if a is not None and b is not None and abs(b - a) >= MATERIAL * a:
            return True
    return False


# --- the ledger's labels ------------------------------------------------------------------------


def encode(times: Times) -> str:
    obj: dict[str, object] = {
        "m": round(times.mark, 3),
        "s": {s: list(times.samples[s]) for s in LEARNED_STATES if times.samples.get(s)},
    }
    if times.image:
        obj["i"] = times.image
    return json.dumps(obj, separators=(",", ":"), sort_keys=True)


def _number(value: object, what: str, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise LearnedError(f"{what} is not a number: {value!r:.40}")
    if not 0 <= value <= high:  # also false for NaN; compared before float() (huge ints)
        raise LearnedError(f"{what} is out of range: {value!r:.40}")
    return float(value)


def decode(text: object) -> Times:
    """One label's value -> Times. Raises LearnedError, and nothing else."""
    obj = json_label(text, MAX_LABEL_BYTES, LearnedError)
    if extra := sorted(set(obj) - {"m", "s", "i"}):
        raise LearnedError(f"unknown key(s): {', '.join(extra)[:80]}")
    mark = _number(obj.get("m"), "the mark ('m')", LATEST)
    raw = obj.get("s", {})
    if not isinstance(raw, dict):
        raise LearnedError("the samples ('s') are not an object")
    samples: dict[str, tuple[float, ...]] = {}
    for state, values in raw.items():
        if state not in LEARNED_STATES:
            raise LearnedError(f"unknown state {str(state)[:40]!r} in the samples")
        if not isinstance(values, list) or len(values) > SAMPLES:
            raise LearnedError(f"the {state} samples are not a list of at most {SAMPLES}")
        samples[state] = tuple(_number(v, f"a {state} sample", MAX_SECONDS) for v in values)
    image = obj.get("i", "")
    if not isinstance(image, str) or len(image) > MAX_IMAGE:
        raise LearnedError(f"the image ('i') is not text of at most {MAX_IMAGE} characters")
    return Times(mark, MappingProxyType(samples), image)


@dataclass(frozen=True)
class Book:
    """The learned entries of a ledger: readable ones by service id, unreadable ones and why."""

    by_service: Mapping[str, Times] = field(default_factory=lambda: MappingProxyType({}))
    problems: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def from_labels(cls, labels: Mapping[str, str]) -> Book:
        good: dict[str, Times] = {}
        bad: dict[str, str] = {}
        for key, value in labels.items():
            if not key.startswith(LEARNED_PREFIX):
                continue
            sid = key[len(LEARNED_PREFIX) :]
            try:
                good[sid] = decode(value)
            except LearnedError as exc:
                bad[sid] = str(exc)
        return cls(MappingProxyType(good), MappingProxyType(bad))


def labels(
    before: Mapping[str, str], learned: Mapping[str, Times], services: frozenset[str]
) -> dict[str, str]:
    """The ledger's labels with the learned entries written: one per service in `services`
    (the swarm's now; a removed service's entry goes) that has durations, an unreadable one
    kept as it is unless `learned` has the service afresh, at most MAX_SERVICES (the ones
    counted most recently kept). The other labels pass through as they were."""
    out = {k: v for k, v in before.items() if not k.startswith(LEARNED_PREFIX)}
    entries: dict[str, tuple[float, str]] = {}
    for key, value in before.items():
        sid = key[len(LEARNED_PREFIX) :]
        if key.startswith(LEARNED_PREFIX) and sid in services:
            entries[sid] = (LATEST, value)  # kept as it was, unless learned below
    for sid, times in learned.items():
        fresh = any(times.count(s) >= MIN_SAMPLES for s in LEARNED_STATES)
        if sid not in services or not times.samples:
            continue
        if fresh or sid not in entries or _readable(entries[sid][1]):
            entries[sid] = (times.mark, encode(times))
    newest = sorted(entries.items(), key=lambda kv: kv[1][0], reverse=True)[:MAX_SERVICES]
    out.update({LEARNED_PREFIX + sid: text for sid, (_, text) in newest})
    return out


def _readable(text: str) -> bool:
    try:
        decode(text)
    except LearnedError:
        return False
    return True


def seeded(book: Book, mine: Mapping[str, Times]) -> dict[str, Times]:
    """What a new leader starts from: the ledger's entries, and what it learned itself where
    it has counted more recently."""
    out = dict(book.by_service)
    for sid, times in mine.items():
        if sid not in out or times.mark > out[sid].mark:
            out[sid] = times
    return out
