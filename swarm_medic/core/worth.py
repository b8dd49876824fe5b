"""What the healing was worth: figures per runbook from the ledger's incident records. Pure.

`compute(records, now, since)` counts the incidents found in the window [now - since, now]
(the time is given, never read here), per runbook and in all:

- found: incidents found in the window (open ones included);
- fixed: of those, incidents the medic carried out at least one action on;
- healed: of those, incidents a fix of which the verifier judged healed;
- did not hold: fixes the verifier judged not healed, plus heals undone (below);
- time to heal p50 / p95: from the finding to the verified heal, over the healed incidents,
  by the nearest rank (a time that happened, never one interpolated between two);
- closed with no human action: incidents closed while nobody but the medic changed their
  service (closed by the medic's fix, or by swarm itself), as a share of those found: an
  incident still open is not one closed without a person;
- harm rate: heals undone, over heals. A heal is undone when the same service has another
  incident found between the medic's first action on it and HARM_WINDOW after the heal (the
  same fault again, or one the fix caused). A heal younger than HARM_WINDOW may still be undone:
  `watching` counts those.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from swarm_medic.core.records import IncidentRecord, Records

HARM_WINDOW = 600.0


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank percentile (0 < q <= 1): the smallest value with at least q of the
    values at or below it. None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Harm:
    """A heal undone: `healed`'s service had incident `by` soon after its fix."""

    healed: IncidentRecord
    by: IncidentRecord


def undone_by(healed: IncidentRecord, others: Iterable[IncidentRecord]) -> IncidentRecord | None:
    """The first other incident of `healed`'s service found between its first action and
    HARM_WINDOW after its heal, if any."""
    if healed.healed is None or not healed.service_id:
        return None
    start = healed.acted if healed.acted is not None else healed.healed
    end = healed.healed + HARM_WINDOW
    hits = [
        o
        for o in others
        if o.id != healed.id and o.service_id == healed.service_id and start <= o.found <= end
    ]
    return min(hits, key=lambda o: (o.found, o.id)) if hits else None


@dataclass(frozen=True)
class Figures:
    runbook: str  # "" : every runbook
    found: int = 0
    open: int = 0
    fixed: int = 0
    healed: int = 0
    not_held: int = 0  # fixes judged not healed
    undone: int = 0  # heals undone (harm)
    watching: int = 0  # heals younger than HARM_WINDOW: may still be undone
    no_human: int = 0  # closed while nobody but the medic changed the service
    human: int = 0  # closed after someone else changed (or removed) the service
    heal_times: tuple[float, ...] = ()  # seconds from finding to verified heal

    @property
    def did_not_hold(self) -> int:
        return self.not_held + self.undone

    @property
    def heal_p50(self) -> float | None:
        return percentile(self.heal_times, 0.5)

    @property
    def heal_p95(self) -> float | None:
        return percentile(self.heal_times, 0.95)

    @property
    def no_human_share(self) -> float | None:
        return self.no_human / self.found if self.found else None

    @property
    def harm_rate(self) -> float | None:
        return self.undone / self.healed if self.healed else None

    def fields(self) -> dict[str, object]:
        """For JSON: the counts and the figures derived from them, under stable names."""
        return {
            "runbook": self.runbook or None,
            "found": self.found,
            "open": self.open,
            "fixed": self.fixed,
            "healed": self.healed,
            "fixes_not_healed": self.not_held,
            "heals_undone": self.undone,
            "did_not_hold": self.did_not_hold,
            "heals_watched": self.watching,
            "closed_no_human": self.no_human,
            "closed_by_someone": self.human,
            "no_human_share": _round(self.no_human_share),
            "harm_rate": _round(self.harm_rate),
            "time_to_heal_p50_seconds": _round(self.heal_p50),
            "time_to_heal_p95_seconds": _round(self.heal_p95),
        }


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


@dataclass(frozen=True)
class Worth:
    now: float
    since: float  # seconds back from now
    total: Figures
    runbooks: tuple[Figures, ...]  # by name
    harms: tuple[Harm, ...]  # the heals undone, oldest first
    # the newest found time of a record the cap dropped (Records.pruned_before): incidents
    # found until then may be missing
    pruned_before: float | None = None
    problems: tuple[str, ...] = ()  # records that could not be read: not counted

    @property
    def start(self) -> float:
        return self.now - self.since

    @property
    def complete_from(self) -> float:
        """From when on the window's incidents are all counted."""
        if self.pruned_before is None or self.pruned_before < self.start:
            return self.start
        return self.pruned_before

    @property
    def complete(self) -> bool:
        return self.complete_from == self.start and not self.problems


@dataclass
class _Count:
    found: int = 0
    open: int = 0
    fixed: int = 0
    healed: int = 0
    not_held: int = 0
    undone: int = 0
    watching: int = 0
    no_human: int = 0
    human: int = 0
    heal_times: list[float] | None = None

    def add(self, r: IncidentRecord, undone: bool, now: float) -> None:
        self.found += 1
        self.open += r.closed is None
        self.fixed += r.fixed
        self.not_held += r.not_held
        if r.closed is not None:
            if r.touched is None:
                self.no_human += 1
            else:
                self.human += 1
        if r.healed is None:
            return
        self.healed += 1
        self.undone += undone
        self.watching += not undone and now < r.healed + HARM_WINDOW
        if self.heal_times is None:
            self.heal_times = []
        self.heal_times.append(max(0.0, r.healed - r.found))

    def figures(self, runbook: str) -> Figures:
        return Figures(
            runbook,
            self.found,
            self.open,
            self.fixed,
            self.healed,
            self.not_held,
            self.undone,
            self.watching,
            self.no_human,
            self.human,
            tuple(self.heal_times or ()),
        )


def compute(records: Records, now: float, since: float) -> Worth:
    """The figures of the incidents found in [now - since, now]."""
    start = now - since
    everything = tuple(records.by_id.values())
    total = _Count()
    per: defaultdict[str, _Count] = defaultdict(_Count)
    harms = []
    for r in sorted(everything, key=lambda r: (r.found, r.id)):
        if not start <= r.found <= now:
            continue
        by = undone_by(r, everything)
        if by is not None:
            harms.append(Harm(r, by))
        total.add(r, by is not None, now)
        per[r.runbook].add(r, by is not None, now)
    problems = [f"incident record {rid}: {why}" for rid, why in sorted(records.problems.items())]
    if records.pruned_problem:
        problems.append(f"the mark of pruned records: {records.pruned_problem}")
    return Worth(
        now,
        since,
        total.figures(""),
        tuple(per[rb].figures(rb) for rb in sorted(per)),
        tuple(harms),
        records.pruned_before,
        tuple(problems),
    )
