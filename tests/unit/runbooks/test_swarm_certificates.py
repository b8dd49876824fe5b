"""swarm-certificates: a Ready node's certificate not renewed in time, a Down node whose
certificate (as last reported) runs out, and the CA's expiry; quiet on a healthy swarm."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from swarm_medic.core.model import Finding, Node, Severity
from swarm_medic.core.reach import Health, Reachability
from swarm_medic.core.runbook import Context, Runbook, context
from swarm_medic.core.settings import Settings
from tests import builders as build
from tests.builders import NOW
from tests.unit.runbooks.kit import REGISTRY, detect

CERTS: Runbook = REGISTRY.runbooks["swarm-certificates"]
DAY, HOUR = 86400.0, 3600.0
LIFETIME = 90 * DAY  # swarm's default NodeCertExpiry
CA = (Path(__file__).parents[2] / "fixtures" / "certs" / "ca-generalized.pem").read_text()
CA_NOT_AFTER = 4_950_265_442.0


def nodes(n2: str = "ready") -> list[Node]:
    return [
        build.node("n1", hostname="node1", role="manager", leader=True, addr="10.99.0.11"),
        build.node("n2", hostname="node2", addr="10.99.0.12", state=n2),
    ]


def said(left: float, age: float = 5.0) -> Health:
    return Health(NOW - age, NOW + left, ())


def ctx(
    health: dict[str, Health],
    *,
    n2: str = "ready",
    lifetime: float = LIFETIME,
    trust_root: str = "",
    now: float = NOW,
) -> Context:
    snap = build.snapshot(nodes=nodes(n2), me="n1", addr="10.99.0.11")
    info = replace(snap.info, node_cert_expiry=lifetime, trust_root=trust_root)
    snap = replace(snap, info=info)
    return context(snap, now, Settings(), reach=Reachability(rounds=3, health=dict(health)))


def run(c: Context, rb: Runbook = CERTS) -> list[Finding]:
    return detect(rb, c)


@pytest.mark.parametrize(
    "health",
    [
        pytest.param({}, id="nothing-said"),
        # swarm renews between 50% and 80% of the lifetime: 18 days left at the latest
        pytest.param({"n1": said(45 * DAY), "n2": said(19 * DAY)}, id="healthy"),
        pytest.param({"n2": Health(NOW, None, ())}, id="not-known"),
        pytest.param({"n2": said(1 * DAY, age=700)}, id="reading-too-old"),
    ],
)
def test_a_healthy_swarm_is_quiet(health: dict[str, Health]) -> None:
    assert run(ctx(health, trust_root=CA)) == []


def test_a_node_certificate_not_renewed_in_time_is_named() -> None:
    (f,) = run(ctx({"n2": said(5 * DAY)}))
    assert (f.key, f.cause, f.severity) == (
        "swarm-certificates:n2:not-renewed",
        "not-renewed",
        Severity.WARNING,
    )
    assert f.node_ids == ("n2",)
    assert f.summary.startswith(
        "the swarm certificate of node2 (10.99.0.12, worker) was not renewed in time: 5.0 days left"
    )
    assert "docker swarm ca --rotate" in f.advice
    assert f.details["not_after"] == "2023-11-19T22:13:20Z"
    assert not f.actionable and CERTS.plan(f, ctx({})) is None


@pytest.mark.parametrize(
    ("left", "severity"),
    [(-HOUR, Severity.CRITICAL), (12 * HOUR, Severity.CRITICAL), (2 * DAY, Severity.WARNING)],
)
def test_critical_when_expired_or_within_a_day(left: float, severity: Severity) -> None:
    (f,) = run(ctx({"n2": said(left)}))
    assert f.severity == severity
    if left < 0:
        assert "expired 1.0 h ago" in f.summary


def test_a_short_lifetime_lowers_the_threshold_to_its_share() -> None:
    # one-hour certificates (the lab's --cert-expiry 1h): 20% is 12 minutes
    assert run(ctx({"n2": said(30 * 60)}, lifetime=HOUR)) == []
    (f,) = run(ctx({"n2": said(10 * 60)}, lifetime=HOUR))
    assert f.severity == Severity.WARNING  # critical only within half the threshold
    (g,) = run(ctx({"n2": said(5 * 60)}, lifetime=HOUR))
    assert g.severity == Severity.CRITICAL
    # the lab's fault: a threshold above the whole lifetime fires on any certificate
    loud = CERTS.with_settings(warn="2h", share="100")
    (h,) = run(ctx({"n2": said(50 * 60)}, lifetime=HOUR), loud)
    assert h.cause == "not-renewed"


def test_without_node_cert_expiry_the_warn_duration_alone_counts() -> None:
    assert run(ctx({"n2": said(8 * DAY)}, lifetime=0.0)) == []
    assert len(run(ctx({"n2": said(6 * DAY)}, lifetime=0.0))) == 1


def test_a_down_node_whose_certificate_runs_out_is_told_what_to_do_before() -> None:
    # said 3 days ago, while it was up; Down since: its last word is what counts
    (f,) = run(ctx({"n2": said(4 * DAY, age=3 * DAY)}, n2="down"))
    assert (f.key, f.cause, f.severity) == (
        "swarm-certificates:n2:down",
        "down-expiring",
        Severity.WARNING,
    )
    assert "is Down and its swarm certificate (as last reported) expires in 4.0 days" in (f.summary)
    assert "bring it back before then" in f.summary
    assert "docker node rm n2" in f.advice and "docker swarm leave" in f.advice


def test_a_down_node_whose_certificate_expired_will_not_rejoin_by_itself() -> None:
    (f,) = run(ctx({"n2": said(-2 * DAY, age=40 * DAY)}, n2="down"))
    assert (f.cause, f.severity) == ("down-expired", Severity.CRITICAL)
    assert "expired 2.0 days ago: it will not rejoin the swarm by itself" in f.summary


def test_a_down_node_with_time_left_is_quiet() -> None:
    assert run(ctx({"n2": said(30 * DAY, age=DAY)}, n2="down")) == []


def test_the_ca_is_reported_within_its_setting() -> None:
    assert run(ctx({}, trust_root=CA)) == []
    (f,) = run(ctx({}, trust_root=CA, now=CA_NOT_AFTER - 10 * DAY))
    assert (f.key, f.cause, f.severity) == ("swarm-certificates:ca", "ca-expiry", Severity.WARNING)
    assert f.summary == "the swarm's CA certificate expires: 10.0 days left"
    assert "docker swarm ca --rotate" in f.advice
    (g,) = run(ctx({}, trust_root=CA, now=CA_NOT_AFTER + HOUR))
    assert g.severity == Severity.CRITICAL and "expired 1.0 h ago" in g.summary


def test_an_unreadable_trust_root_is_not_judged() -> None:
    assert run(ctx({}, trust_root="garbage")) == []
