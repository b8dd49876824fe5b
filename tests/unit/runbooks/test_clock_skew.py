"""clock-skew: each node's clock against the brain's, as the probe rounds measured it (and the
brain's own engine's SystemTime); warning beyond `warn`, critical where certificates fail."""

from __future__ import annotations

from dataclasses import replace

import pytest

from swarm_medic.core.model import Finding, Node, Severity
from swarm_medic.core.reach import Clock, Reachability
from swarm_medic.core.runbook import Context, Runbook, Sightings, context
from swarm_medic.core.settings import Settings
from tests import builders as build
from tests.builders import NOW
from tests.unit.runbooks.kit import REGISTRY, detect

SKEW: Runbook = REGISTRY.runbooks["clock-skew"]
HOUR = 3600.0


def nodes(role3: str = "worker") -> list[Node]:
    return [
        build.node("n1", hostname="node1", role="manager", leader=True, addr="10.99.0.11"),
        build.node("n2", hostname="node2", addr="10.99.0.12"),
        build.node("n3", hostname="node3", role=role3, addr="10.99.0.13"),
    ]


def reading(offset: float, error: float = 0.01, age: float = 5.0, refused: bool = False) -> Clock:
    return Clock(offset, error, NOW - age, refused)


def ctx(
    clocks: dict[str, Clock],
    *,
    role3: str = "worker",
    system_time: float = 0.0,
    probes: bool = True,
) -> Context:
    snap = build.snapshot(nodes=nodes(role3), me="n1", addr="10.99.0.11")
    snap = replace(snap, info=replace(snap.info, system_time=system_time))
    reach = Reachability(rounds=3, clocks=dict(clocks)) if probes else None
    return context(snap, NOW, Settings(), reach=reach)


def test_the_node_whose_clock_is_off_is_named_and_the_others_stay_quiet() -> None:
    (f,) = detect(SKEW, ctx({"n2": reading(0.2), "n3": reading(5.0)}))
    assert f.key == "clock-skew:n3"
    assert (f.cause, f.severity, f.node_ids) == ("clock-skew", Severity.WARNING, ("n3",))
    assert f.summary == "node3 (10.99.0.13, worker) is 5.00 s ahead of the brain's clock (±0.01 s)"
    assert f.details["offset_seconds"] == "+5.000"
    assert "timedatectl" in f.advice
    assert not f.actionable and SKEW.plan(f, ctx({})) is None


@pytest.mark.parametrize(
    "clocks",
    [
        pytest.param({}, id="nothing-measured"),
        pytest.param({"n2": reading(0.3), "n3": reading(-0.9)}, id="within-a-second"),
        # 1.2 s, but the measurement can only tell it is more than 0.7 s
        pytest.param({"n3": reading(1.2, error=0.5)}, id="within-the-error-bound"),
        pytest.param({"n3": reading(30.0, age=700)}, id="a-reading-too-old"),
        pytest.param({"n1": reading(9.0)}, id="the-brains-own-node"),
    ],
)
def test_clocks_that_agree_are_quiet(clocks: dict[str, Clock]) -> None:
    assert detect(SKEW, ctx(clocks)) == []


@pytest.mark.parametrize(
    ("offset", "role", "severity", "says"),
    [
        # takes new certificates for not yet valid
        (-2 * HOUR, "worker", Severity.CRITICAL, "is 2.0 h behind"),
        (-50 * 60, "worker", Severity.WARNING, "is 50.0 min behind"),  # within the backdate
        (2 * HOUR, "worker", Severity.WARNING, "is 2.0 h ahead of"),
        (2 * HOUR, "manager", Severity.CRITICAL, "is 2.0 h ahead of"),  # signs them, leading
    ],
)
def test_critical_where_certificates_fail(
    offset: float, role: str, severity: Severity, says: str
) -> None:
    (f,) = detect(SKEW, ctx({"n2": reading(0.0), "n3": reading(offset)}, role3=role))
    assert f.severity is severity
    assert says in f.summary


def test_a_node_refusing_the_channel_is_said_to_be_off() -> None:
    (f,) = detect(SKEW, ctx({"n2": reading(0.1), "n3": reading(45.0, error=0.1, refused=True)}))
    assert f.cause == "refused"
    assert f.summary == (
        "node3 (10.99.0.13, worker) refuses the medic's signed requests as 45.0 s off: its clock "
        "is about 45.0 s ahead of the brain's (±0.10 s, its own word); clock skew is the likely "
        "cause of the refusals"
    )
    assert f.details["measured_by"] == "its refusal of a signed request"


def test_when_every_other_node_disagrees_the_brains_clock_is_the_one_off() -> None:
    (f,) = detect(SKEW, ctx({"n2": reading(3.0), "n3": reading(3.4)}))
    assert (f.key, f.cause, f.node_ids) == ("clock-skew:n1", "brain-clock-skew", ("n1",))
    assert "the brain's own clock on node1 (10.99.0.11, manager) is about 3.20 s behind" in (
        f.summary
    )
    assert f.severity is Severity.WARNING
    # two nodes off in opposite directions: each is named, the brain is not blamed
    split = detect(SKEW, ctx({"n2": reading(3.0), "n3": reading(-3.0)}))
    assert sorted(f.key for f in split) == ["clock-skew:n2", "clock-skew:n3"]


@pytest.mark.parametrize(
    ("off", "found"),
    [(4.0, True), (-4.0, True), (0.01, False), (None, False)],
    ids=["engine-ahead", "engine-behind", "agree", "not-said"],
)
def test_the_engines_own_clock_against_the_brains(off: float | None, found: bool) -> None:
    sightings = Sightings()

    def scan(at: float, engine: float | None = off) -> list[Finding]:
        said = 0.0 if engine is None else at + engine
        c = replace(ctx({}, system_time=said), now=at, sightings=sightings)
        out = detect(SKEW, c)
        sightings.end_scan()
        return out

    assert scan(NOW) == []  # a slow /info lasts one scan: held for a minute first
    assert scan(NOW + 30) == []
    findings = scan(NOW + 60)
    assert [f.key for f in findings] == (["clock-skew:engine:n1"] if found else [])
    if found:
        way = "behind" if off and off > 0 else "ahead of"
        assert f"is 4.00 s {way} its own engine's" in findings[0].summary
        # slow answers with good ones between them never add up to a minute
        sightings = Sightings()
        assert scan(NOW + 100) == [] and scan(NOW + 130, 0.01) == [] and scan(NOW + 160) == []


def test_not_run_where_there_are_no_probe_results() -> None:
    assert detect(SKEW, ctx({"n3": reading(5.0)}, probes=False)) == []


def test_warn_and_critical_are_settings() -> None:
    rb = SKEW.with_settings(warn="100ms", critical="10m")
    c = ctx({"n2": reading(0.0), "n3": reading(-0.5)})
    assert detect(SKEW, c) == []
    (f,) = detect(rb, c)
    assert f.severity is Severity.WARNING
    (g,) = detect(rb, ctx({"n2": reading(0.0), "n3": reading(-900.0)}))
    assert g.severity is Severity.CRITICAL
