"""swarm_medic.core.storm: when too much fails at once, the medic stands still."""

from __future__ import annotations

from swarm_medic.core.model import Finding, Severity, Target
from swarm_medic.core.storm import Change, Guard

SERVICES = {f"s{i}": f"svc{i}" for i in range(10)}
NODES = {f"n{i}": f"host{i}" for i in range(5)}


def broken(sid: str, severity: Severity = Severity.WARNING, tasks: tuple[str, ...] = ()) -> Finding:
    return Finding(
        "stuck-task",
        f"stuck-task:{sid}",
        "stuck",
        "hang",
        severity=severity,
        service_id=sid,
        service_name=SERVICES.get(sid, sid),
        task_ids=tasks,
    )


def node_down(nid: str) -> Finding:
    return Finding(
        "node-down",
        f"node-down:{nid}",
        "down",
        "gone",
        node_ids=(nid,),
        target=Target.for_node(nid),
    )


def guard(**kw: float) -> Guard:
    return Guard(
        share=kw.get("share", 0.3),
        minimum=int(kw.get("minimum", 3)),
        window=kw.get("window", 300.0),
        hold=kw.get("hold", 60.0),
    )


def see(
    g: Guard, findings: list[Finding], now: float, task_nodes: dict[str, str] | None = None
) -> Change:
    return g.observe(findings, services=SERVICES, nodes=NODES, task_nodes=task_nodes or {}, now=now)


def test_above_the_share_and_the_minimum_is_a_storm() -> None:
    g = guard()
    change = see(g, [broken(f"s{i}") for i in range(4)], 0.0)  # 4 of 10 > 0.3
    assert change.started is not None and g.storm is not None
    assert change.started.services == ("svc0", "svc1", "svc2", "svc3")
    assert change.started.runbooks == ("stuck-task",)
    assert "4 of 10 services failing (svc0, svc1, svc2, svc3)" in g.why()


def test_at_the_share_is_no_storm() -> None:
    g = guard()
    assert see(g, [broken(f"s{i}") for i in range(3)], 0.0).started is None  # 3 of 10 = 0.3
    assert g.why() == ""


def test_the_minimum_holds_in_a_small_swarm() -> None:
    g = guard()
    small = {"s0": "a", "s1": "b"}
    change = g.observe([broken("s0"), broken("s1")], services=small, nodes={}, task_nodes={}, now=0)
    assert change.started is None  # 2 of 2, but fewer than 3


def test_info_findings_do_not_count() -> None:
    g = guard()
    see(g, [broken(f"s{i}", Severity.INFO) for i in range(8)], 0.0)
    assert g.storm is None


def test_findings_within_the_window_add_up_across_scans() -> None:
    g = guard()
    see(g, [broken("s0"), broken("s1")], 0.0)
    assert see(g, [broken("s2"), broken("s3")], 100.0).started is not None
    g2 = guard()
    see(g2, [broken("s0"), broken("s1")], 0.0)
    assert see(g2, [broken("s2"), broken("s3")], 400.0).started is None  # the first are too old


def test_hysteresis_two_scans_and_the_hold_below_the_share() -> None:
    g = guard(window=10.0, hold=60.0)
    four = [broken(f"s{i}") for i in range(4)]
    see(g, four, 0.0)
    assert see(g, [], 20.0).ended is None  # below: first scan
    assert see(g, [], 40.0).ended is None  # second scan, 20 s below only
    assert see(g, four, 50.0).started is None and g.storm is not None  # back above: the same storm
    assert see(g, [], 70.0).ended is None
    assert see(g, [], 100.0).ended is None  # 30 s below
    ended = see(g, [], 131.0).ended  # 61 s below, 3 scans
    assert ended is not None and g.storm is None and ended.since == 0.0


def test_nodes_with_node_scoped_findings() -> None:
    g = guard()
    change = see(g, [node_down("n0"), node_down("n1")], 0.0)
    assert change.started is None  # 2 nodes: below the minimum
    change = see(g, [node_down("n0"), node_down("n1"), node_down("n2")], 1.0)
    assert change.started is not None and change.started.nodes == ("host0", "host1", "host2")


def test_a_finding_about_the_managers_together_counts_for_no_node() -> None:
    """manager-quorum's "one more loss and no leader" names every manager: that is one fact
    about the swarm, not three failing nodes (it once made a storm of the 3-node lab as soon
    as its leader was killed, and the failover test's fault was never healed)."""
    g = guard()
    quorum = Finding(
        "manager-quorum",
        "manager-quorum:no-margin",
        "no margin",
        "no-margin",
        severity=Severity.CRITICAL,
        node_ids=("n0", "n1", "n2"),
    )
    see(g, [quorum, node_down("n0")], 0.0)
    assert g.storm is None
    see(g, [quorum, node_down("n0"), node_down("n1"), node_down("n2")], 1.0)
    assert g.storm is not None  # each node's own finding still counts


def test_one_service_on_every_node_is_not_a_node_storm() -> None:
    g = guard()
    tasks = {"t0": "n0", "t1": "n1", "t2": "n2", "t3": "n3"}
    see(g, [broken("s0", tasks=("t0", "t1", "t2", "t3"))], 0.0, tasks)
    assert g.storm is None


def test_two_services_failing_on_the_same_nodes_count_those_nodes() -> None:
    g = guard(minimum=2)
    tasks = {"a0": "n0", "a1": "n1", "b0": "n0", "b1": "n1"}
    big = {f"x{i}": f"x{i}" for i in range(20)} | {"s0": "svc0", "s1": "svc1"}
    change = g.observe(
        [broken("s0", tasks=("a0", "a1")), broken("s1", tasks=("b0", "b1"))],
        services=big,
        nodes=NODES,
        task_nodes=tasks,
        now=0.0,
    )
    assert change.started is not None  # 2 of 5 nodes > 0.3; 2 of 22 services is not
    assert change.started.nodes == ("host0", "host1")


def test_a_removed_service_stops_counting() -> None:
    g = guard()
    see(g, [broken(f"s{i}") for i in range(4)], 0.0)
    fewer = {k: v for k, v in SERVICES.items() if k not in ("s0", "s1")}
    g.observe([], services=fewer, nodes=NODES, task_nodes={}, now=1.0)
    assert g.storm is not None  # below now, but the hold has not passed
    g.observe([], services=fewer, nodes=NODES, task_nodes={}, now=70.0)
    assert g.storm is None
