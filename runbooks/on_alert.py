"""An Alertmanager alert fires for a service: do what the service's own label allows.

Symptom: Alertmanager sent a firing alert to POST /v1/alerts (swarm-medic's --alerts-token
set) whose labels name a swarm service: `swarm_service`, `service_name`, or cAdvisor's
`container_label_com_docker_swarm_service_name` (the first one present), by name or id.

Cause: whatever the alert's rule says; its summary (or description) annotation is quoted.

What the medic does: one finding per alert name and service, for as long as the alert fires.
The service's label `swarm-medic.on-alert.<AlertName>` says what may be done:
  force-update  every task of the service replaced, one at a time by its update config
  rollback      the service rolled back to its previous spec
  report        said, never acted on (also when the label is absent or unknown)
Every gate of the safety policy still applies (opt-in, cooldown, budget, breaker, dry-run,
leader). The fix is healed only when the service converged AND Alertmanager said the alert
resolved (its "resolved" notification: `send_resolved: true`), both within --verify-timeout.

Risks: the alert's rule decides when a restart happens: a rule that fires for a reason a
restart cannot change makes the fix fail verification, and the circuit breaker then stops
further attempts on that service. An alert whose labels name no service, or a service not in
the swarm, is ignored (the receiver logs what it got).
"""

from __future__ import annotations

from collections.abc import Iterator

from swarm_medic.runbook import (
    ALERTS,
    Action,
    Context,
    Finding,
    Service,
    Severity,
    Target,
    force_update,
    rollback,
)

NAME = "on-alert"
NEEDS = (ALERTS,)
LABEL = "swarm-medic.on-alert."
PLANS = ("force-update", "rollback", "report")
_SEVERITY = {"critical": Severity.CRITICAL, "info": Severity.INFO}


def wanted(svc: Service, alert: str) -> str:
    """What the service's label allows for this alert: force-update, rollback or report."""
    value = svc.labels.get(LABEL + alert, "").strip().lower()
    return value if value in PLANS else "report"


def detect(ctx: Context) -> Iterator[Finding]:
    by_name = {s.name: s for s in ctx.snapshot.services}
    seen: set[str] = set()
    for alert in ctx.alerts.firing:
        if not alert.name or not alert.service:
            continue
        svc = by_name.get(alert.service) or ctx.snapshot.service(alert.service)
        if svc is None:
            continue
        key = f"{alert.name}:{svc.id}"
        if key in seen:  # one finding per alert name and service, whatever the instances
            continue
        seen.add(key)
        alike = ctx.alerts.firing_for(alert.name, svc.name, svc.id)
        what = wanted(svc, alert.name)
        label = f"{LABEL}{alert.name}"
        yield Finding.for_service(
            svc,
            key=key,
            summary=f"alert {alert.name} fires for {svc.name}"
            + (f": {alert.summary}" if alert.summary else ""),
            cause="alert",
            severity=_SEVERITY.get(alert.labels.get("severity", ""), Severity.WARNING),
            advice=(
                f"{svc.name}'s label {label}={what}"
                if what != "report"
                else f"report only: label the service {label}=force-update|rollback to act"
            ),
            actionable=what != "report",
            details={"alert": alert.name, "firing": str(len(alike)), "plan": what},
            target=Target.for_alert(alert.name),
        )


def plan(finding: Finding, ctx: Context) -> Action | None:
    svc = ctx.snapshot.service(finding.service_id)
    if svc is None or finding.target is None:
        return None
    what = wanted(svc, finding.target.id)
    why = f"alert {finding.target.id} fires ({LABEL}{finding.target.id}={what})"
    if what == "force-update":
        return force_update(svc, why)
    if what == "rollback":
        return rollback(svc, why)
    return None
