"""Incidents: one per fault while it lasts, so a fault is reported once, not once per scan.

A finding's `key` names the fault (e.g. stuck-task:<service>:<cause>). The first scan that sees
a key opens an incident with a fresh id; the scan that no longer sees it closes it. Every log
line about the fault carries the incident id.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from swarm_medic.core.model import Finding


@dataclass
class Incident:
    id: str
    finding: Finding
    opened_at: float
    last_decision: tuple[str, str] | None = None  # (verdict, reason) last logged
    last_logged_at: float = 0.0


@dataclass
class Changes:
    opened: list[Incident] = field(default_factory=list)
    ongoing: list[Incident] = field(default_factory=list)
    closed: list[Incident] = field(default_factory=list)


def new_id() -> str:
    return uuid.uuid4().hex[:12]


class Incidents:
    def __init__(self, make_id: Callable[[], str] = new_id) -> None:
        self._open: dict[str, Incident] = {}
        self._make_id = make_id

    def update(self, findings: Iterable[Finding], now: float) -> Changes:
        changes = Changes()
        seen: set[str] = set()
        for f in findings:
            seen.add(f.key)
            inc = self._open.get(f.key)
            if inc is None:
                inc = Incident(self._make_id(), f, now)
                self._open[f.key] = inc
                changes.opened.append(inc)
            else:
                inc.finding = f
                changes.ongoing.append(inc)
        for key in [k for k in self._open if k not in seen]:
            changes.closed.append(self._open.pop(key))
        return changes

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
