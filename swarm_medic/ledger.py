"""The durable history the safety policy needs: actions, failed fixes, open circuits. Pure.

It lives in the swarm itself, as labels of one swarm config object (`--ledger-name`), one label
per service that was ever acted on: `swarm-medic.svc.<service id>` = compact JSON. So it
survives a restart of swarm-medic, is the same whichever manager leads, and every write is a
compare-and-swap on the config's Version.Index: the write that claims an action is also the
lock that stops a second instance from taking it.

Why not the service's own labels: a label change is a service update, which would replace the
PreviousSpec a rollback needs and reset UpdateStatus; a rollback request ignores the spec sent
with it, so labels cannot ride along with it either.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from swarm_medic.model import LedgerDoc

PREFIX = "swarm-medic.svc."
WINDOW = 3600.0  # budgets count actions of the last hour


@dataclass(frozen=True)
class History:
    actions: tuple[tuple[float, str], ...] = ()  # (when, runbook)
    failures_in_row: int = 0
    open_until: float = 0.0
    open_reason: str = ""

    def circuit_open(self, now: float) -> bool:
        return now < self.open_until

    def actions_since(self, since: float) -> int:
        return sum(1 for t, _ in self.actions if t >= since)

    def last_action(self, runbook: str) -> float | None:
        times = [t for t, rb in self.actions if rb == runbook]
        return max(times) if times else None


def _gated(h: History, now: float) -> History:
    return replace(h, actions=tuple(a for a in h.actions if a[0] >= now - WINDOW))


def encode(h: History) -> str:
    return json.dumps(
        {
            "a": [[round(t, 3), rb] for t, rb in h.actions],
            "f": h.failures_in_row,
            "u": round(h.open_until, 3),
            "r": h.open_reason,
        },
        separators=(",", ":"),
        sort_keys=True,
    )


def decode(text: str) -> History:
    obj = json.loads(text)
    if not isinstance(obj, dict):
        raise ValueError("not an object")
    actions = tuple((float(t), str(rb)) for t, rb in obj.get("a", []))
    return History(actions, int(obj.get("f", 0)), float(obj.get("u", 0.0)), str(obj.get("r", "")))


@dataclass(frozen=True)
class Ledger:
    doc: LedgerDoc | None = None
    services: Mapping[str, History] = field(default_factory=lambda: MappingProxyType({}))
    unreadable: frozenset[str] = frozenset()  # a corrupt entry: never act on that service

    @classmethod
    def from_doc(cls, doc: LedgerDoc | None) -> Ledger:
        services: dict[str, History] = {}
        bad: set[str] = set()
        for key, value in (doc.labels if doc else {}).items():
            if not key.startswith(PREFIX):
                continue
            sid = key[len(PREFIX) :]
            try:
                services[sid] = decode(value)
            except (ValueError, TypeError):
                bad.add(sid)
        return cls(doc, MappingProxyType(services), frozenset(bad))

    def history(self, service_id: str) -> History:
        return self.services.get(service_id, History())

    def labels(self, now: float) -> dict[str, str]:
        """Labels to write back: untouched entries of others kept, stale ones pruned."""
        out = {
            k: v
            for k, v in (self.doc.labels if self.doc else {}).items()
            if not k.startswith(PREFIX) or k[len(PREFIX) :] in self.unreadable
        }
        for sid, h in self.services.items():
            kept = replace(h, actions=tuple(a for a in h.actions if a[0] >= now - WINDOW))
            if kept.actions or kept.circuit_open(now) or kept.failures_in_row:
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
        self, service_id: str, runbook: str, now: float, budget: int, reset: float
    ) -> tuple[Ledger, bool]:
        """Adds an action; opens the circuit if it spends the budget. -> (ledger, opened)."""
        h = self.history(service_id)
        h = replace(h, actions=(*h.actions, (now, runbook)))
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
        h = self.history(service_id)
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
