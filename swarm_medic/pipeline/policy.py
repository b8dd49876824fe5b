"""decide: findings (+ planned actions) + durable history + safety settings -> decisions. Pure.

The gates are data: `GATES`, small named predicates tried in this order. The first that stops
a finding names its `Reason` (a metric label and a journal field) and the reason's wording
(the journal's decision line, `swarm-medic check`'s output); a finding no gate stops is acted
on. A finding that passes every gate that skips (dry-run included) claims its service: the
`busy` gate holds back any other finding on it in the same scan.

  no_action          the runbook only reports this fault, or its service is gone
  self               swarm-medic's own service
  opted_out          labelled swarm-medic.enable=false
  not_opted_in       scope is opt-in and the service is not labelled swarm-medic.enable=true
  report_label       labelled swarm-medic.action=report: findings are reported, never acted on
  paused             swarm-medic is paused swarm-wide (`swarm-medic pause`) until it is resumed
                     or the pause expires
  not_leader         only the instance on the leader manager acts on services
  storm              too much is failing at once across the swarm (--storm-share): no action
                     anywhere until the share falls back
  ledger_unreadable  the service's history in the ledger could not be read: no acting blind
  circuit_open       the circuit breaker is open (budget spent or fixes did not hold) until it
                     resets
  verifying          an earlier fix on this service is still being verified
  busy               another finding already acts on this service in this scan
  cooldown           the same runbook acted on this service less than --cooldown ago
  budget_spent       --budget-per-hour actions on this service in the last hour
  node_unreachable   the node of this node-local action could not be asked in the last probe
                     round: nothing is claimed or spent until it answers
  alerts_hold        a --hold-while-alerts alert is firing, or Prometheus could not say: no
                     action meanwhile
  max_concurrent     --max-concurrent-actions remediations are already under way in the swarm
                     (being verified, or decided this scan)
  approval_needed    labelled swarm-medic.approve=true, or its runbook is in --approve-runbooks:
                     proposed, acted on once approved with `swarm-medic approve INCIDENT` (never
                     in dry-run)
  dry_run            every gate passed; dry-run only says what would be done
  ok                 every gate passed: act

(The table is `describe()`; a unit test keeps this docstring equal to it.)

The swarm-wide facts are inputs like the rest: the pause is the ledger's (`Ledger.paused`),
the alerts hold is what `pipeline.hold` found this scan (a string: why it holds, "" for no
hold), and the remediations in progress are the services with a fix being verified, by this
instance or any other (`Ledger.in_progress`); findings decided to act earlier in the same scan
count against `--max-concurrent-actions` too. The storm is what the storm guard
(core/storm.py) says this scan (a string: what is failing, "" for no storm); `approved` the
findings (keys) whose incident an operator approved, unexpired (`Ledger.approval`). A finding
that asks first and passes every other gate is proposed (`propose`): it claims nothing, and
once approved it goes through the same gates as any other.

`evaluate` is the one evaluation both the daemon's scan and `swarm-medic check` run, and
`history_wanted` says when it needs the ledger, so `check` shows what the daemon would decide.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterable, Mapping, Set
from dataclasses import dataclass

from swarm_medic.core.ledger import WINDOW, History, Ledger, Pause
from swarm_medic.core.model import (
    HANDS,
    ON_NODE,
    Action,
    ActionKind,
    Decision,
    Finding,
    Reason,
    Service,
    Snapshot,
    Verdict,
)
from swarm_medic.core.scope import asks_first, enabled, is_self, report_only
from swarm_medic.core.settings import SafetySettings


@dataclass(frozen=True, slots=True)
class Candidate:
    """One finding and its planned action, with everything a gate may look at. `subject` is
    what the action's history is kept under (`Action.subject`: its service, or the node an
    action on a node removes); `history` is the subject's."""

    finding: Finding
    action: Action | None
    service: Service | None
    ledger: Ledger
    history: History
    safety: SafetySettings
    now: float
    leader: bool
    verifying: Set[str]  # subjects (services; nodes) whose earlier fix is being verified
    claimed: Set[str]  # subjects an earlier finding of this scan acts on
    hands_down: Mapping[str, str]  # node id -> why its instance cannot be asked now
    pause: Pause | None = None  # the pause in force now
    hold: str = ""  # why the alerts hold holds ("" : no hold)
    in_progress: Set[str] = frozenset()  # services with a fix under way anywhere in the swarm
    subject: str = ""
    storm: str = ""  # what is failing in the storm in force ("" : no storm)
    approved: bool = False  # an operator approved this finding's incident (unexpired)


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


# Actions that need no service: an orphan's is gone, and an action on a node names none.
SERVICELESS = frozenset({ActionKind.REMOVE_ORPHAN}) | ON_NODE


def _no_action(c: Candidate) -> bool:
    if c.action is None:
        return True
    # a removed service leaves nothing to act on, except the orphan containers it left behind
    return c.service is None and c.action.kind not in SERVICELESS


def _not_opted_in(c: Candidate) -> bool:
    if c.action is not None and c.action.kind in ON_NODE:
        # the scope opts services in; an action on a node is opted in by its runbook's setting
        return False
    if c.service is None:  # an orphan's service is gone: nobody can opt it in; only scope=all
        return c.safety.scope != "all"
    return c.safety.scope == "opt-in" and not enabled(c.service)


def _circuit(c: Candidate) -> str:
    h = c.history
    return f"{h.open_reason}; resets in {h.open_until - c.now:.0f}s"


def _last_action(c: Candidate) -> float | None:
    return c.history.last_action(c.finding.runbook)


def _cooling(c: Candidate) -> bool:
    last = _last_action(c)
    return last is not None and c.now - last < c.safety.cooldown


def _cooldown(c: Candidate) -> str:
    last = _last_action(c) or c.now
    return f"acted {c.now - last:.0f}s ago; cooldown {c.safety.cooldown:.0f}s"


def _hands_down(c: Candidate) -> str:
    if c.action is None or c.action.kind not in HANDS:
        return ""  # only an action a node's instance carries out needs it
    return c.hands_down.get(c.action.node_id, "")


def _pause(c: Candidate) -> str:
    return c.pause.describe() if c.pause is not None else ""


def _under_way(c: Candidate) -> int:
    return len(c.in_progress | c.claimed)


def _at_limit(c: Candidate) -> bool:
    limit = c.safety.max_concurrent_actions
    return limit > 0 and _under_way(c) >= limit


def _limit(c: Candidate) -> str:
    n, limit = _under_way(c), c.safety.max_concurrent_actions
    return f"{n} under way or decided this scan; limit {limit}"


def _asks(c: Candidate) -> bool:
    """Waits for an approval: asks first and has none (in dry-run approvals never apply)."""
    asks = asks_first(c.service, c.finding.runbook, c.safety.approve_runbooks)
    return asks and (c.safety.dry_run or not c.approved)


GATES: tuple[Gate, ...] = (
    Gate(Reason.NO_ACTION, _no_action),
    Gate(Reason.SELF, lambda c: c.service is not None and is_self(c.service, c.safety)),
    Gate(Reason.OPTED_OUT, lambda c: c.service is not None and enabled(c.service) is False),
    Gate(Reason.NOT_OPTED_IN, _not_opted_in),
    Gate(Reason.REPORT_LABEL, lambda c: c.service is not None and report_only(c.service)),
    # the switch an operator pulls: before any gate that could let an action through
    Gate(Reason.PAUSED, lambda c: c.pause is not None, _pause),
    Gate(Reason.NOT_LEADER, lambda c: not c.leader),
    # swarm-wide, as the pause: when the cause is not in any one service, none is touched
    Gate(Reason.STORM, lambda c: bool(c.storm), lambda c: c.storm),
    Gate(
        Reason.LEDGER_UNREADABLE,
        lambda c: c.subject in c.ledger.unreadable,
        lambda c: "its history in the ledger is corrupt",
    ),
    Gate(Reason.CIRCUIT_OPEN, lambda c: c.history.circuit_open(c.now), _circuit),
    Gate(Reason.VERIFYING, lambda c: c.subject in c.verifying),
    Gate(Reason.BUSY, lambda c: c.subject in c.claimed),
    Gate(Reason.COOLDOWN, _cooling, _cooldown),
    Gate(
        Reason.BUDGET_SPENT,
        lambda c: c.history.actions_since(c.now - WINDOW) >= c.safety.budget_per_hour,
    ),
    Gate(Reason.NODE_UNREACHABLE, lambda c: bool(_hands_down(c)), _hands_down),
    Gate(Reason.ALERTS_HOLD, lambda c: bool(c.hold), lambda c: c.hold),
    # last of the gates that skip: only an action every other gate lets through takes a slot
    Gate(Reason.MAX_CONCURRENT, _at_limit, _limit),
    # proposes what every other gate would let through; approved, it is acted on as any other
    Gate(Reason.APPROVAL_NEEDED, _asks, lambda c: "dry-run" if c.safety.dry_run else ""),
    # the last gate does not skip: it says what would be done instead of doing it
    Gate(Reason.DRY_RUN, lambda c: c.safety.dry_run),
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
    safety: SafetySettings,
    now: float,
    leader: bool,
    verifying: Set[str] = frozenset(),
    hands_down: Mapping[str, str] | None = None,
    hold: str = "",
    in_progress: Set[str] = frozenset(),
    storm: str = "",
    approved: Set[str] = frozenset(),
) -> list[Decision]:
    """`hands_down`: node id -> why its instance cannot be asked now (node-local actions).
    `hold`: why the alerts hold holds ("" none); `in_progress`: services with a fix under way
    (this instance's `verifying` are added); the pause is the ledger's. `storm`: what is
    failing in a storm ("" none); `approved`: finding keys an operator approved."""
    hands_down = hands_down or {}
    decisions: list[Decision] = []
    claimed: set[str] = set()
    pause = ledger.paused(now)
    under_way = frozenset(in_progress) | frozenset(verifying)
    for finding, action in planned:
        subject = action.subject if action is not None else finding.service_id
        c = Candidate(
            finding,
            action,
            services.get(finding.service_id),
            ledger,
            ledger.history(subject),
            safety,
            now,
            leader,
            verifying,
            claimed,
            hands_down,
            pause,
            hold,
            under_way,
            subject,
            storm,
            finding.key in approved,
        )
        gate = first_stop(c)
        reason = gate.reason if gate is not None else PASSED
        if reason.verdict not in (Verdict.SKIP, Verdict.PROPOSE):
            claimed.add(subject)
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
    return frozenset(a.subject for _, a in planned if a is not None)


def evaluate(
    planned: Iterable[tuple[Finding, Action | None]],
    snap: Snapshot,
    *,
    ledger: Ledger,
    safety: SafetySettings,
    now: float,
    verifying: Set[str] = frozenset(),
    hands_down: Mapping[str, str] | None = None,
    hold: str = "",
    storm: str = "",
    approved: Set[str] = frozenset(),
) -> list[Decision]:
    """The decisions on one scan's planned actions: what the daemon's scan and `check` both run.

    The leader and the services are the snapshot's; `ledger` is what was read as
    `history_wanted` says (or everything unreadable when it could not be read)."""
    return decide(
        planned,
        services={s.id: s for s in snap.services},
        ledger=ledger,
        safety=safety,
        now=now,
        leader=snap.is_leader,
        verifying=verifying,
        hands_down=hands_down,
        hold=hold,
        in_progress=ledger.in_progress(now),
        storm=storm,
        approved=approved,
    )
