"""Which services the medic may act on: opt-in or all, minus its own and the opted out.

Pure and shared: the policy's scope gates are built from `is_self` and `enabled`, and the probe
planner (reach) uses `scope_reason` to probe only services an action could follow.
"""

from __future__ import annotations

from collections.abc import Mapping

from swarm_medic.core.model import Finding, Reason, Service, Severity
from swarm_medic.core.settings import SafetySettings

ENABLE_LABEL = "swarm-medic.enable"
SELF_LABEL = "swarm-medic.self"
ACTION_LABEL = "swarm-medic.action"  # "report": findings, never actions
APPROVE_LABEL = "swarm-medic.approve"  # true: its actions wait for `swarm-medic approve`
NOTIFY_LABEL = "swarm-medic.notify"  # false: the service's incidents are never notified


def _label_true(labels: Mapping[str, str], key: str) -> bool | None:
    value = labels.get(key)
    if value is None:
        return None
    return value.strip().lower() in ("1", "true", "yes", "on")


def is_self(service: Service, settings: SafetySettings) -> bool:
    """swarm-medic's own service: named by --self-services (name or id) or labelled self."""
    return (
        service.name in settings.self_services
        or service.id in settings.self_services
        or _label_true(service.labels, SELF_LABEL) is True
    )


def enabled(service: Service) -> bool | None:
    """The service's swarm-medic.enable label: True, False, or None when it has none."""
    return _label_true(service.labels, ENABLE_LABEL)


def scope_reason(service: Service | None, settings: SafetySettings) -> Reason | None:
    """Why this service is out of scope for actions, or None if it is in scope (the policy's
    scope gates, in their order, for a service that exists)."""
    if service is None:
        return Reason.NO_ACTION
    if is_self(service, settings):
        return Reason.SELF
    on = enabled(service)
    if on is False:
        return Reason.OPTED_OUT
    if settings.scope == "opt-in" and not on:
        return Reason.NOT_OPTED_IN
    return None


def report_only(service: Service) -> bool:
    """Labelled swarm-medic.action=report: its findings are reported, never acted on."""
    return service.labels.get(ACTION_LABEL, "").strip().lower() == "report"


def notify_wanted(finding: Finding, service: Service | None, min_severity: str) -> bool:
    """Whether people are told of this finding's incident: severe enough, and its service not
    labelled swarm-medic.notify=false. (Who tells, the leader only, is the caller's part.)"""
    order = list(Severity)
    if order.index(finding.severity) < order.index(Severity(min_severity)):
        return False
    return service is None or not notify_muted(service)


def notify_muted(service: Service) -> bool:
    """The service is labelled swarm-medic.notify=false."""
    return _label_true(service.labels, NOTIFY_LABEL) is False


def asks_first(service: Service | None, runbook: str, approve_runbooks: tuple[str, ...]) -> bool:
    """Whether an action waits for an approval: its service is labelled
    swarm-medic.approve=true, or its runbook is one of --approve-runbooks."""
    if runbook in approve_runbooks:
        return True
    return service is not None and _label_true(service.labels, APPROVE_LABEL) is True
