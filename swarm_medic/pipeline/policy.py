"""decide: findings (+ planned actions) + durable history + settings -> decisions. Pure.

Gates run in a fixed order and the first that says no names the reason (a metric label):

  no_action      the runbook only reports this fault
  self           swarm-medic's own service
  opted_out      labelled swarm-medic.enable=false
  not_opted_in   scope is opt-in and the service is not labelled swarm-medic.enable=true
  not_leader     only the instance on the leader manager acts on services
  ledger_unreadable  the service's history could not be read: act blind? no.
  circuit_open   the breaker is open (budget spent or fixes did not hold) until it resets
  verifying      an earlier fix on this service is still being verified
  busy           another finding already acts on this service in this scan
  cooldown       the same runbook acted on this service less than --cooldown ago
  budget_spent   --budget-per-hour actions in the last hour
  node_unreachable  a node-local action whose node's instance could not be asked in the last
                 probe round: nothing is claimed or spent until it answers again
  dry_run        all gates passed; dry-run says what it would do (verdict would_act)
  ok             act
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from swarm_medic.core.ledger import WINDOW, Ledger
from swarm_medic.core.model import Action, ActionKind, Decision, Finding, Service, Verdict
from swarm_medic.core.scope import scope_reason
from swarm_medic.core.settings import Settings


def _action_scope(action: Action | None, svc: Service | None, settings: Settings) -> str | None:
    if action is None:
        return "no_action"
    if svc is None and action.kind is ActionKind.REMOVE_ORPHAN:
        # the orphan's service is gone: nobody can opt it in; only scope=all reaches it
        return None if settings.scope == "all" else "not_opted_in"
    return scope_reason(svc, settings)


def decide(
    planned: Iterable[tuple[Finding, Action | None]],
    *,
    services: Mapping[str, Service],
    ledger: Ledger,
    settings: Settings,
    now: float,
    leader: bool,
    verifying: frozenset[str] = frozenset(),
    hands_down: Mapping[str, str] | None = None,
) -> list[Decision]:
    """`hands_down`: node id -> why its instance cannot be asked now (node-local actions)."""
    hands_down = hands_down or {}
    decisions: list[Decision] = []
    claimed: set[str] = set()
    for finding, action in planned:
        svc = services.get(finding.service_id)
        h = ledger.history(finding.service_id)
        last = h.last_action(finding.runbook)
        explanation = ""
        reason = _action_scope(action, svc, settings)
        if reason is None and not leader:
            reason = "not_leader"
        if reason is None and finding.service_id in ledger.unreadable:
            reason, explanation = "ledger_unreadable", "its history in the ledger is corrupt"
        if reason is None and h.circuit_open(now):
            reason = "circuit_open"
            explanation = f"{h.open_reason}; resets in {h.open_until - now:.0f}s"
        if reason is None and finding.service_id in verifying:
            reason = "verifying"
        if reason is None and finding.service_id in claimed:
            reason = "busy"
        if reason is None and last is not None and now - last < settings.cooldown:
            reason = "cooldown"
            explanation = f"acted {now - last:.0f}s ago; cooldown {settings.cooldown:.0f}s"
        if reason is None and h.actions_since(now - WINDOW) >= settings.budget_per_hour:
            reason = "budget_spent"
        if reason is None and action is not None and hands_down.get(action.node_id):
            reason = "node_unreachable"
            explanation = f"its node cannot be asked: {hands_down[action.node_id]}"
        if reason is None:
            claimed.add(finding.service_id)
            verdict = Verdict.WOULD_ACT if settings.dry_run else Verdict.ACT
            reason = "dry_run" if settings.dry_run else "ok"
            decisions.append(Decision(finding, verdict, reason, action, explanation))
        else:
            decisions.append(Decision(finding, Verdict.SKIP, reason, action, explanation))
    return decisions
