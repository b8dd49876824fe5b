"""on-alert: an alert from Alertmanager on a service is a finding, acted on as the service's
label for that alert says; and a fix for an alert holds only once the alert is resolved."""

from __future__ import annotations

from typing import Any

import pytest

from swarm_medic.core.alerts import Alert, Alerts
from swarm_medic.core.model import Action, ActionKind, Service, Snapshot, Target, TargetKind, Task
from swarm_medic.core.runbook import ALERTS, Context, context
from swarm_medic.core.settings import Settings
from swarm_medic.pipeline import match, verify
from tests import builders as build
from tests.builders import NOW
from tests.unit.runbooks.kit import REGISTRY

RB = REGISTRY.runbooks["on-alert"]


def svc(labels: dict[str, str], name: str = "web", sid: str = "s1", **kw: Any) -> Service:
    return build.service(sid, name=name, version=7, labels=labels, **kw)


def snap(*services: Service, tasks: tuple[Task, ...] = ()) -> Snapshot:
    manager = build.node("n1", hostname="manager-1", role="manager", leader=True)
    return build.snapshot(nodes=[manager], services=services, tasks=tasks)


def alert(name: str = "HighLatency", service: str = "web", fp: str = "f1", **labels: str) -> Alert:
    return Alert(fp, name, service, labels, {"summary": "slow"}, NOW - 60, None, NOW)


def ctx(s: Snapshot, *alerts: Alert) -> Context:
    return context(s, NOW, Settings(), alerts=Alerts(alerts))


def test_on_alert_needs_alerts_and_is_not_run_without_them() -> None:
    assert RB.needs == frozenset({ALERTS})
    plain = context(snap(svc({})), NOW, Settings())
    assert RB.missing(plain) == (ALERTS,)
    assert match.run([RB], plain).findings == ()


@pytest.mark.parametrize(
    ("label", "kind"),
    [
        ("force-update", ActionKind.FORCE_UPDATE),
        ("rollback", ActionKind.ROLLBACK),
        ("report", None),
        ("reboot-the-world", None),
        (None, None),
    ],
)
def test_one_finding_per_alert_and_service_planned_by_the_service_label(
    label: str | None, kind: ActionKind | None
) -> None:
    labels = {} if label is None else {"swarm-medic.on-alert.HighLatency": label}
    c = ctx(snap(svc(labels)), alert(fp="a"), alert(fp="b", instance="2"), alert("Other"))
    found = [f for f in match.run([RB], c).findings if f.target and f.target.id == "HighLatency"]
    (f,) = found
    assert f.key == "on-alert:HighLatency:s1" and f.service_id == "s1"
    assert f.summary == "alert HighLatency fires for web: slow"
    assert f.target == Target(TargetKind.ALERT, "HighLatency")
    assert f.actionable is (kind is not None)
    planned, failures = match.plan_all(REGISTRY.runbooks, [f], c)
    assert failures == []
    action = planned[0][1]
    assert (action.kind if action else None) is kind


def test_an_alert_naming_no_known_service_gives_nothing() -> None:
    c = ctx(snap(svc({})), alert(service="gone"), alert(service=""), alert(name="", fp="z"))
    assert match.run([RB], c).findings == ()


def test_a_service_may_be_named_by_its_id() -> None:
    c = ctx(snap(svc({"swarm-medic.on-alert.HighLatency": "force-update"})), alert(service="s1"))
    (f,) = match.run([RB], c).findings
    assert f.service_name == "web"


def test_the_label_of_another_alert_does_not_count() -> None:
    c = ctx(snap(svc({"swarm-medic.on-alert.Other": "force-update"})), alert())
    (f,) = match.run([RB], c).findings
    assert not f.actionable


# --- verification ------------------------------------------------------------------------------


def running_snapshot() -> Snapshot:
    t = build.task("t1", sid="s1", timestamp=NOW)
    return snap(svc({}, update="completed"), tasks=(t,))


def pending(alert_name: str = "HighLatency") -> verify.Pending:
    a = Action(ActionKind.FORCE_UPDATE, "s1", "web", 7, "alert")
    return verify.Pending("inc-1", "on-alert", a, NOW - 10, NOW + 100, alert=alert_name)


def test_converged_is_not_healed_while_the_alert_fires() -> None:
    still = verify.judge(pending(), running_snapshot(), NOW, 0, alerts=Alerts((alert(),)))
    assert isinstance(still, verify.Pending)
    late = verify.judge(pending(), running_snapshot(), NOW + 100, 0, alerts=Alerts((alert(),)))
    assert isinstance(late, verify.Outcome) and late.result.value == "not_healed"
    assert "still firing" in late.detail


def test_converged_and_resolved_is_healed() -> None:
    other = alert("Other")  # another alert on the service does not hold this fix
    done = verify.judge(pending(), running_snapshot(), NOW, 0, alerts=Alerts((other,)))
    assert isinstance(done, verify.Outcome) and done.result.value == "healed"
    assert "HighLatency resolved" in done.detail


def test_without_alerts_a_fix_for_an_alert_is_never_healed_by_convergence_alone() -> None:
    out = verify.judge(pending(), running_snapshot(), NOW + 100, 0)
    assert isinstance(out, verify.Outcome) and out.result.value == "not_healed"


def test_a_fix_not_for_an_alert_ignores_alerts() -> None:
    done = verify.judge(pending(""), running_snapshot(), NOW, 0, alerts=Alerts((alert(),)))
    assert isinstance(done, verify.Outcome) and done.result.value == "healed"
