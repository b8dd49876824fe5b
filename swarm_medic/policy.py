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
  dry_run        all gates passed; dry-run says what it would do (verdict would_act)
  ok             act
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from swarm_medic.ledger import WINDOW, Ledger
from swarm_medic.model import Action, ActionKind, Decision, Finding, Service, Verdict
from swarm_medic.settings import Settings

ENABLE_LABEL = "swarm-medic.enable"
SELF_LABEL = "swarm-medic.self"
REASONS = (
    "no_action",
    "self",
    "opted_out",
    "not_opted_in",
    "not_leader",
    "ledger_unreadable",
    "circuit_open",
    "verifying",
    "busy",
    "cooldown",
    "budget_spent",
    "dry_run",
    "ok",
)


def _label_true(labels: Mapping[str, str], key: str) -> bool | None:
    value = labels.get(key)
    if value is None:
        return None
    return value.strip().lower() in ("1", "true", "yes", "on")


def scope_reason(service: Service | None, settings: Settings) -> str | None:
    """Why this service is out of scope for actions, or None if it is in scope."""
    if service is None:
        return "no_action"
    if (
        service.name in settings.self_services
        or service.id in settings.self_services
        or _label_true(service.labels, SELF_LABEL)
    ):
        return "self"
    enabled = _label_true(service.labels, ENABLE_LABEL)
    if enabled is False:
        return "opted_out"
    if settings.scope == "opt-in" and not enabled:
        return "not_opted_in"
    return None


def decide(
    planned: Iterable[tuple[Finding, Action | None]],
    *,
    services: Mapping[str, Service],
    ledger: Ledger,
    settings: Settings,
    now: float,
    leader: bool,
    verifying: frozenset[str] = frozenset(),
) -> list[Decision]:
    decisions: list[Decision] = []
    claimed: set[str] = set()
    for finding, action in planned:
        svc = services.get(finding.service_id)
        h = ledger.history(finding.service_id)
        last = h.last_action(finding.runbook)
        explanation = ""
        if action is not None and svc is None and action.kind is ActionKind.REMOVE_ORPHAN:
            # the orphan's service is gone: nobody can opt it in; only scope=all reaches it
            reason = None if settings.scope == "all" else "not_opted_in"
        else:
            reason = "no_action" if action is None else scope_reason(svc, settings)
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
        if reason is None:
            claimed.add(finding.service_id)
            verdict = Verdict.WOULD_ACT if settings.dry_run else Verdict.ACT
            reason = "dry_run" if settings.dry_run else "ok"
            decisions.append(Decision(finding, verdict, reason, action, explanation))
        else:
            decisions.append(Decision(finding, Verdict.SKIP, reason, action, explanation))
    return decisions
