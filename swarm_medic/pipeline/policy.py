"""decide: findings (+ planned actions) + durable history + settings -> decisions. Pure.

The gates are data: `GATES`, small named predicates tried in this order. The first that stops
a finding names its `Reason` (a metric label and a journal field) and the reason's wording
(the journal's decision line, `swarm-medic check`'s output); a finding no gate stops is acted
on. A finding that passes every gate that skips (dry-run included) claims its service: the
`busy` gate holds back any other finding on it in the same scan.

  no_action          the runbook only reports this fault, or its service is gone
  self               swarm-medic's own service
  opted_out          labelled swarm-medic.enable=false
  not_opted_in       scope is opt-in and the service is not labelled swarm-medic.enable=true
  not_leader         only the instance on the leader manager acts on services
  ledger_unreadable  the service's history in the ledger could not be read: no acting blind
  circuit_open       the circuit breaker is open (budget spent or fixes did not hold) until it
                     resets
  verifying          an earlier fix on this service is still being verified
  busy               another finding already acts on this service in this scan
  cooldown           the same runbook acted on this service less than --cooldown ago
  budget_spent       --budget-per-hour actions on this service in the last hour
  node_unreachable   the node of this node-local action could not be asked in the last probe
                     round: nothing is claimed or spent until it answers
  dry_run            every gate passed; dry-run only says what would be done
  ok                 every gate passed: act

(The table is `describe()`; a unit test keeps this docstring equal to it.)

`evaluate` is the one evaluation both the daemon's scan and `swarm-medic check` run, and
`history_wanted` says when it needs the ledger, so `check` shows what the daemon would decide.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterable, Mapping, Set
from dataclasses import dataclass

from swarm_medic.core.ledger import WINDOW, History, Ledger
from swarm_medic.core.model import (
    Action,
    ActionKind,
    Decision,
    Finding,
    Reason,
    Service,
    Snapshot,
    Verdict,
)
from swarm_medic.core.scope import enabled, is_self
from swarm_medic.core.settings import Settings


@dataclass(frozen=True, slots=True)
class Candidate:
    """One finding and its planned action, with everything a gate may look at."""

    finding: Finding
    action: Action | None
    service: Service | None
    ledger: Ledger
    history: History
    settings: Settings
    now: float
    leader: bool
    verifying: Set[str]  # services whose earlier fix is being verified
    claimed: Set[str]  # services an earlier finding of this scan acts on
    hands_down: Mapping[str, str]  # node id -> why its instance cannot be asked now


def _nothing(c: Candidate) -> str:
    return ""


@dataclass(frozen=True, slots=True)
class Gate:
    """One rule: `stops` says whether it holds the finding back, `explain` what this case adds
    to the reason's wording (times, causes)."""

    reason: Reason
    stops: Callable[[Candidate], bool]
    explain: Callable[[Candidate], str] = _nothing

    @property
    def wording(self) -> str:
        return self.reason.wording


def _no_action(c: Candidate) -> bool:
    if c.action is None:
        return True
    # a removed service leaves nothing to act on, except the orphan containers it left behind
    return c.service is None and c.action.kind is not ActionKind.REMOVE_ORPHAN


def _not_opted_in(c: Candidate) -> bool:
    if c.service is None:  # an orphan's service is gone: nobody can opt it in; only scope=all
        return c.settings.scope != "all"
    return c.settings.scope == "opt-in" and not enabled(c.service)


def _circuit(c: Candidate) -> str:
    h = c.history
    return f"{h.open_reason}; resets in {h.open_until - c.now:.0f}s"


def _last_action(c: Candidate) -> float | None:
    return c.history.last_action(c.finding.runbook)


def _cooling(c: Candidate) -> bool:
    last = _last_action(c)
    return last is not None and c.now - last < c.settings.cooldown


def _cooldown(c: Candidate) -> str:
    last = _last_action(c) or c.now
    return f"acted {c.now - last:.0f}s ago; cooldown {c.settings.cooldown:.0f}s"


def _hands_down(c: Candidate) -> str:
    return c.hands_down.get(c.action.node_id, "") if c.action is not None else ""


GATES: tuple[Gate, ...] = (
    Gate(Reason.NO_ACTION, _no_action),
    Gate(Reason.SELF, lambda c: c.service is not None and is_self(c.service, c.settings)),
    Gate(Reason.OPTED_OUT, lambda c: c.service is not None and enabled(c.service) is False),
    Gate(Reason.NOT_OPTED_IN, _not_opted_in),
    Gate(Reason.NOT_LEADER, lambda c: not c.leader),
    Gate(
        Reason.LEDGER_UNREADABLE,
        lambda c: c.finding.service_id in c.ledger.unreadable,
        lambda c: "its history in the ledger is corrupt",
    ),
    Gate(Reason.CIRCUIT_OPEN, lambda c: c.history.circuit_open(c.now), _circuit),
    Gate(Reason.VERIFYING, lambda c: c.finding.service_id in c.verifying),
    Gate(Reason.BUSY, lambda c: c.finding.service_id in c.claimed),
    Gate(Reason.COOLDOWN, _cooling, _cooldown),
    Gate(
        Reason.BUDGET_SPENT,
        lambda c: c.history.actions_since(c.now - WINDOW) >= c.settings.budget_per_hour,
    ),
    Gate(Reason.NODE_UNREACHABLE, lambda c: bool(_hands_down(c)), _hands_down),
    # the last gate does not skip: it says what would be done instead of doing it
    Gate(Reason.DRY_RUN, lambda c: c.settings.dry_run),
)
PASSED = Reason.OK  # no gate stopped the finding


def first_stop(c: Candidate) -> Gate | None:
    """The first gate that stops this finding, or None: act."""
    return next((g for g in GATES if g.stops(c)), None)


def describe(width: int = 96) -> str:
    """The gates in order with their wording, and what passing them all means: the table of
    this module's docstring."""
    reasons = [g.reason for g in GATES] + [PASSED]
    column = max(len(r) for r in reasons) + 2
    return "\n".join(
        textwrap.fill(
            r.wording,
            width=width,
            initial_indent=f"  {r:<{column}}",
            subsequent_indent=" " * (column + 2),
        )
        for r in reasons
    )


def decide(
    planned: Iterable[tuple[Finding, Action | None]],
    *,
    services: Mapping[str, Service],
    ledger: Ledger,
    settings: Settings,
    now: float,
    leader: bool,
    verifying: Set[str] = frozenset(),
    hands_down: Mapping[str, str] | None = None,
) -> list[Decision]:
    """`hands_down`: node id -> why its instance cannot be asked now (node-local actions)."""
    hands_down = hands_down or {}
    decisions: list[Decision] = []
    claimed: set[str] = set()
    for finding, action in planned:
        c = Candidate(
            finding,
            action,
            services.get(finding.service_id),
            ledger,
            ledger.history(finding.service_id),
            settings,
            now,
            leader,
            verifying,
            claimed,
            hands_down,
        )
        gate = first_stop(c)
        reason = gate.reason if gate is not None else PASSED
        if reason.verdict is not Verdict.SKIP:
            claimed.add(finding.service_id)
        explanation = gate.explain(c) if gate is not None else ""
        decisions.append(Decision(finding, reason.verdict, reason, action, explanation))
    return decisions


def history_wanted(
    planned: Iterable[tuple[object, Action | None]], snap: Snapshot
) -> frozenset[str]:
    """The services whose history in the ledger the decision needs; empty: read no ledger.

    Only an actionable finding on the leader needs it (no extra API call otherwise): a follower
    is stopped by `not_leader` before any gate that reads the history. A ledger that cannot be
    read stands for `Ledger(unreadable=history_wanted(...))`: no action on those services."""
    if not snap.is_leader:
        return frozenset()
    return frozenset(a.service_id for _, a in planned if a is not None)


def evaluate(
    planned: Iterable[tuple[Finding, Action | None]],
    snap: Snapshot,
    *,
    ledger: Ledger,
    settings: Settings,
    now: float,
    verifying: Set[str] = frozenset(),
    hands_down: Mapping[str, str] | None = None,
) -> list[Decision]:
    """The decisions on one scan's planned actions: what the daemon's scan and `check` both run.

    The leader and the services are the snapshot's; `ledger` is what was read as
    `history_wanted` says (or everything unreadable when it could not be read)."""
    return decide(
        planned,
        services={s.id: s for s in snap.services},
        ledger=ledger,
        settings=settings,
        now=now,
        leader=snap.is_leader,
        verifying=verifying,
        hands_down=hands_down,
    )
