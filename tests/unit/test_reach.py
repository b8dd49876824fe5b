"""swarm_medic.core.reach: probe plans from a snapshot, and the Reachability history."""

from __future__ import annotations

import math
from collections.abc import Mapping

import pytest

from swarm_medic.core.model import Node, Service, Snapshot, Task
from swarm_medic.core.protocol import (
    Container,
    Disk,
    DnsResult,
    DnsTarget,
    ProbeAnswer,
    ProbePlan,
    TcpResult,
    TcpTarget,
    VipTarget,
)
from swarm_medic.core.reach import (
    FULL,
    Budget,
    Cell,
    Clock,
    Health,
    Reachability,
    Suspects,
    measured,
    probe_port,
    refused_at,
)
from swarm_medic.core.reach import plans as make_plans
from swarm_medic.core.settings import ProbeSettings, SafetySettings
from tests import builders as build
from tests.builders import NOW

NET_A = "neta0123456789abcdef"
NET_B = "netb0123456789abcdef"
ENABLE = {"swarm-medic.enable": "true"}
SCOPE = SafetySettings()  # opt-in
GRACE = ProbeSettings().probe_grace  # 20 s


def node(nid: str, state: str = "ready") -> Node:
    return build.node(nid, state=state, addr=f"10.9.0.{nid[-1]}")


def service(
    sid: str = "s1",
    *,
    name: str = "web",
    labels: Mapping[str, str] | None = None,
    ports: tuple[int, ...] = (80,),
    endpoint_mode: str = "vip",
    vips: tuple[tuple[str, str], ...] = (),
) -> Service:
    return build.service(
        sid,
        name=name,
        labels=ENABLE if labels is None else labels,
        endpoint_mode=endpoint_mode,
        ports=ports,
        vips=vips,
        replicas=None,
    )


def task(
    tid: str,
    node_id: str,
    *,
    sid: str = "s1",
    nets: tuple[tuple[str, str], ...] = ((NET_A, "10.0.1.2"),),
    state: str = "running",
    age: float = 100.0,
) -> Task:
    return build.task(
        tid,
        sid=sid,
        node_id=node_id,
        state=state,
        timestamp=NOW - age,
        addresses=tuple((net, f"name-{net[:4]}", ip) for net, ip in nets),
    )


def snap(services: list[Service], tasks: list[Task], nodes: list[Node] | None = None) -> Snapshot:
    return build.snapshot(
        nodes=nodes if nodes is not None else [node("n1"), node("n2"), node("n3")],
        services=services,
        tasks=tasks,
        taken_at=NOW,
        addr="10.9.0.1",
    )


def plans(snapshot: Snapshot, scope: SafetySettings, now: float) -> dict[str, ProbePlan]:
    return make_plans(snapshot, scope, now, grace=GRACE).by_node


def tcp_targets(plan: ProbePlan, me: str = "n1") -> list[tuple[str, str, bool]]:
    return sorted((p.task, p.net, p.node == me) for p in plan.tcp)


# --- probe_port -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "ports", "want"),
    [
        ({}, (8080, 9090), 8080),
        ({"swarm-medic.probe.port": "9000"}, (8080,), 9000),
        ({"swarm-medic.probe.port": "9000"}, (), 9000),
        ({"swarm-medic.probe.port": "http"}, (8080,), None),
        ({"swarm-medic.probe.port": "70000"}, (8080,), None),
        ({}, (), None),
    ],
)
def test_probe_port(labels: dict[str, str], ports: tuple[int, ...], want: int | None) -> None:
    assert probe_port(service(labels={**ENABLE, **labels}, ports=ports)) == want


# --- plans ----------------------------------------------------------------------------------


def test_only_services_in_scope_with_a_port_are_probed() -> None:
    services = [
        service("in", name="in"),
        service(
            "label-port", name="lp", labels={**ENABLE, "swarm-medic.probe.port": "81"}, ports=()
        ),
        service("not-opted-in", name="x1", labels={}),
        service("opted-out", name="x2", labels={"swarm-medic.enable": "false"}),
        service("self", name="x3", labels={**ENABLE, "swarm-medic.self": "true"}),
        service("no-port", name="x4", ports=()),
    ]
    tasks = [task(f"t-{s.id}", "n1", sid=s.id) for s in services]
    got = plans(snap(services, tasks), SCOPE, NOW)
    assert {p.service for p in got["n1"].tcp} == {"in", "label-port"}
    ports = {p.service: p.port for p in got["n1"].tcp}
    assert ports == {"in": 80, "label-port": 81}


def test_scope_all_probes_services_without_the_label() -> None:
    s = service(labels={})
    got = plans(snap([s], [task("t1", "n1")]), SafetySettings(scope="all"), NOW)
    assert tcp_targets(got["n1"]) == [("t1", NET_A, True)]


def test_tasks_younger_than_the_grace_and_not_running_are_not_probed() -> None:
    tasks = [
        task("old", "n1", age=GRACE + 1),
        task("young", "n1", age=GRACE - 1),
        task("starting", "n1", state="starting"),
    ]
    got = plans(snap([service()], tasks), SCOPE, NOW)
    assert tcp_targets(got["n1"]) == [("old", NET_A, True)]


def test_each_node_probes_the_networks_it_has_a_task_on() -> None:
    tasks = [
        task("a1", "n1", nets=((NET_A, "10.0.1.2"),)),
        task("a2", "n2", nets=((NET_A, "10.0.1.3"), (NET_B, "10.0.2.3"))),
        task("b3", "n3", nets=((NET_B, "10.0.2.4"),)),
    ]
    got = plans(snap([service()], tasks), SCOPE, NOW)
    assert tcp_targets(got["n1"]) == [("a1", NET_A, True), ("a2", NET_A, False)]
    assert tcp_targets(got["n2"], "n2") == [
        ("a1", NET_A, False),
        ("a2", NET_A, True),
        ("a2", NET_B, True),
        ("b3", NET_B, False),
    ]
    assert tcp_targets(got["n3"], "n3") == [("a2", NET_B, False), ("b3", NET_B, True)]
    probe = next(p for p in got["n1"].tcp if p.task == "a2")
    assert probe == TcpTarget(net=NET_A, task="a2", service="s1", node="n2", ip="10.0.1.3", port=80)


def test_a_node_without_a_task_on_a_probed_network_is_asked_with_an_empty_plan() -> None:
    # every ready node answers each round (its task containers), probes or not
    got = plans(snap([service()], [task("a1", "n1"), task("a2", "n2")]), SCOPE, NOW)
    assert sorted(got) == ["n1", "n2", "n3"]
    assert got["n3"] == ProbePlan()


def test_one_dns_entry_per_service_and_network() -> None:
    web, api = service("s1", name="web"), service("s2", name="api")
    tasks = [
        task("w1", "n1", nets=((NET_A, "10.0.1.2"), (NET_B, "10.0.2.2"))),
        task("w2", "n1", nets=((NET_A, "10.0.1.3"),)),
        task("a1", "n1", sid="s2", nets=((NET_A, "10.0.1.9"),)),
    ]
    got = plans(snap([web, api], tasks), SCOPE, NOW)
    dns = sorted((d.service, d.net, d.name) for d in got["n1"].dns)
    assert dns == [
        ("s1", NET_A, "tasks.web"),
        ("s1", NET_B, "tasks.web"),
        ("s2", NET_A, "tasks.api"),
    ]


def test_vip_entries_only_for_endpoint_mode_vip_on_the_nodes_networks() -> None:
    vip = service("s1", name="web", vips=((NET_A, "10.0.1.100"), (NET_B, "10.0.2.100")))
    rr = service("s2", name="rr", endpoint_mode="dnsrr", vips=((NET_A, "10.0.1.200"),))
    tasks = [task("w1", "n1"), task("r1", "n1", sid="s2", nets=((NET_A, "10.0.1.9"),))]
    got = plans(snap([vip, rr], tasks), SCOPE, NOW)
    assert got["n1"].vip == (VipTarget(net=NET_A, service="s1", ip="10.0.1.100", port=80),)


def test_down_nodes_get_no_plan_but_their_tasks_are_still_targets() -> None:
    nodes = [node("n1"), node("n2", state="down")]
    got = plans(snap([service()], [task("a1", "n1"), task("a2", "n2")], nodes), SCOPE, NOW)
    assert sorted(got) == ["n1"]
    assert tcp_targets(got["n1"]) == [("a1", NET_A, True), ("a2", NET_A, False)]


def test_nodes_a_new_leader_has_not_heard_from_yet_are_still_asked() -> None:
    # after an election swarm says "unknown" of every node for up to a minute; asking only
    # "ready" nodes left the new brain probing from its own node alone
    nodes = [node("n1", state="unknown"), node("n2", state="unknown"), node("n3", state="down")]
    got = plans(snap([service()], [task("a1", "n1"), task("a2", "n2")], nodes), SCOPE, NOW)
    assert sorted(got) == ["n1", "n2"]
    assert tcp_targets(got["n2"], me="n2") == [("a1", NET_A, False), ("a2", NET_A, True)]


def test_a_task_address_that_is_not_ipv4_is_not_planned_and_fails_nothing_else() -> None:
    # the mapping keeps IPv4 only; a Task built elsewhere with an IPv6 address must not
    # make the whole plan (and so the node's answer) invalid
    t = task("a1", "n1", nets=((NET_A, "fd00::2"), (NET_B, "10.0.2.2")))
    got = plans(snap([service()], [t, task("a2", "n1")]), SCOPE, NOW)
    assert sorted((p.task, p.ip) for p in got["n1"].tcp) == [
        ("a1", "10.0.2.2"),
        ("a2", "10.0.1.2"),
    ]


# --- rotation -------------------------------------------------------------------------------


def big(n_nodes: int, n_tasks: int) -> Snapshot:
    nodes = [node(f"n{i}") for i in range(n_nodes)]
    tasks = [
        task(f"t{i:04d}", f"n{i % n_nodes}", nets=((NET_A, f"10.0.{i // 250}.{i % 250 + 2}"),))
        for i in range(n_tasks)
    ]
    return snap([service()], tasks, nodes)


def test_at_small_scale_every_node_probes_every_target_every_round() -> None:
    s = big(3, 9)
    for r in range(3):
        got = make_plans(s, SCOPE, NOW, grace=GRACE, round_no=r)
        assert got.period == 1
        assert all(len(p.tcp) == 9 for p in got.by_node.values())


def test_the_rotation_covers_every_pair_within_the_period() -> None:
    s, budget = big(7, 100), Budget(tcp=16, dns=1, vip=1, suspects=0)
    period = make_plans(s, SCOPE, NOW, grace=GRACE, budget=budget).period
    assert period == math.ceil(100 / 16) == 7
    for start in (0, 5):  # any `period` consecutive rounds
        seen: dict[str, set[str]] = {}
        for r in range(start, start + period):
            got = make_plans(s, SCOPE, NOW, grace=GRACE, round_no=r, budget=budget)
            for nid, p in got.by_node.items():
                assert len(p.tcp) == 16
                seen.setdefault(nid, set()).update(t.task for t in p.tcp)
        assert all(len(tasks) == 100 for tasks in seen.values())


def test_nodes_start_their_windows_at_different_places() -> None:
    got = make_plans(big(5, 100), SCOPE, NOW, grace=GRACE, budget=Budget(tcp=10)).by_node
    assert len({p.tcp[0].task for p in got.values()}) > 1


def test_suspects_are_probed_every_round_on_top_of_the_window() -> None:
    s, budget = big(4, 100), Budget(tcp=10, dns=5, vip=5, suspects=3)
    sus = Suspects(tcp={"n1": {"t0050", "t0051", "t0099", "not-a-target"}})
    for r in range(5):
        plan = make_plans(
            s, SCOPE, NOW, grace=GRACE, round_no=r, budget=budget, suspects=sus
        ).by_node["n1"]
        tasks = [t.task for t in plan.tcp]
        assert len(tasks) == len(set(tasks)) <= 13
        # 3 real suspects, cap 3: all of them, every round
        assert {"t0050", "t0051", "t0099"} <= set(tasks)


def test_with_a_coverage_bound_a_window_grows_to_cover_every_pair_in_time() -> None:
    got = make_plans(big(3, 400), SCOPE, NOW, grace=GRACE, cover=4)
    assert got.period == 4
    assert all(len(p.tcp) == 100 for p in got.by_node.values())
    seen: dict[str, set[str]] = {}
    for r in range(4):
        for nid, p in make_plans(
            big(3, 400), SCOPE, NOW, grace=GRACE, cover=4, round_no=r
        ).by_node.items():
            seen.setdefault(nid, set()).update(t.task for t in p.tcp)
    assert all(len(tasks) == 400 for tasks in seen.values())
    # never smaller than the budget: a small swarm is probed as before
    small = make_plans(big(3, 100), SCOPE, NOW, grace=GRACE, cover=4)
    assert all(len(p.tcp) == Budget().tcp for p in small.by_node.values())


def test_a_node_that_holds_a_duty_gets_no_tcp_window_and_the_rest_as_before() -> None:
    s = snap(
        [service(vips=((NET_A, "10.0.1.100"),))],
        [task("a1", "n1"), task("a2", "n2", nets=((NET_A, "10.0.1.3"),))],
    )
    got = make_plans(s, SCOPE, NOW, grace=GRACE, duties={"n2"}).by_node
    assert got["n2"].tcp == ()
    assert len(got["n1"].tcp) == 2
    assert (got["n2"].dns, got["n2"].vip) == (got["n1"].dns, got["n1"].vip) != ((), ())


def test_the_full_budget_is_the_old_every_pair_every_round() -> None:
    got = make_plans(big(4, 100), SCOPE, NOW, grace=GRACE, budget=FULL)
    assert got.period == 1
    assert all(len(p.tcp) == 100 for p in got.by_node.values())


# --- Reachability.record ----------------------------------------------------------------------

A1 = TcpTarget(net=NET_A, task="a1", service="s1", node="n1", ip="10.0.1.2", port=80)
DNS_A = DnsTarget(net=NET_A, service="s1", name="tasks.web")
VIP_A = VipTarget(net=NET_A, service="s1", ip="10.0.1.100", port=80)
Probe = tuple[str, bool | None, str]


def ans(
    node_id: str,
    *tcp: Probe,
    dns: tuple[tuple[str, ...] | None, ...] = (),
    vip: tuple[tuple[bool | None, str], ...] = (),
    ipvs: bool = False,
    containers: tuple[Container, ...] = (),
    errors: tuple[str, ...] = (),
) -> tuple[ProbePlan, ProbeAnswer]:
    """A plan for `node_id` and its answer, entry for entry."""
    plan = ProbePlan(
        tcp=tuple(TcpTarget(NET_A, t, "s1", "n1", "10.0.1.2", 80) for t, _, _ in tcp),
        dns=(DNS_A,) * len(dns),
        vip=(VIP_A,) * len(vip),
    )
    answer = ProbeAnswer(
        node=node_id,
        ipvs=ipvs,
        tcp=tuple(TcpResult(ok, err) for _, ok, err in tcp),
        dns=tuple(DnsResult(ips) for ips in dns),
        vip=tuple(TcpResult(ok, err) for ok, err in vip),
        errors=errors,
        containers=containers,
    )
    return plan, answer


S2 = snap([service()], [task("a1", "n1", nets=((NET_A, "10.0.1.2"),))])


def test_consecutive_failures_count_up_and_reset_on_success() -> None:
    r = Reachability()
    for i, ok in enumerate([False, False, False, True, False]):
        r.record(S2, {"n2": ans("n2", ("a1", ok, "timeout"))}, NOW + i)
        if i == 2:
            assert r.tcp[("n2", "a1")] == Cell(False, "timeout", 3, NOW + 2, 3)
    assert r.tcp[("n2", "a1")].fails == 1
    assert r.rounds == 5
    assert r.round_at == NOW + 4


def test_failures_count_probes_of_the_pair_not_rounds() -> None:
    # probed every 3rd round (the rotation): 3 failed probes in a row are 3 failures
    r = Reachability()
    for i in range(9):
        probed = i % 3 == 0
        answer = ans("n2", ("a1", False, "timeout")) if probed else ans("n2")
        r.record(S2, {"n2": answer}, NOW + i, period=3)
    assert r.tcp[("n2", "a1")].fails == 3


def test_a_success_clears_the_error() -> None:
    r = Reachability()
    r.record(S2, {"n2": ans("n2", ("a1", False, "refused"))}, NOW)
    r.record(S2, {"n2": ans("n2", ("a1", True, ""))}, NOW + 1)
    assert r.tcp[("n2", "a1")] == Cell(True, "", 0, NOW + 1, 2)


def test_from_nodes_lists_each_vantage_of_a_task() -> None:
    r = Reachability()
    r.record(
        S2,
        {"n1": ans("n1", ("a1", True, "")), "n2": ans("n2", ("a1", False, "timeout"))},
        NOW,
    )
    assert {n: c.ok for n, c in r.from_nodes("a1").items()} == {"n1": True, "n2": False}
    assert r.probes_last_round == 2


def test_an_answer_without_a_vantage_point_is_no_opinion() -> None:
    r = Reachability()
    r.record(S2, {"n2": ans("n2", ("a1", None, "no vantage point"))}, NOW)
    assert r.tcp == {}
    assert r.probes_last_round == 0


def test_cells_of_tasks_no_longer_running_are_dropped_at_once() -> None:
    r = Reachability()
    r.record(S2, {"n2": ans("n2", ("a1", False, ""), ("gone", False, ""))}, NOW)
    assert set(r.tcp) == {("n2", "a1")}  # "gone" is not a running task of the snapshot
    assert r.from_nodes("gone") == {}


def test_cells_not_probed_again_expire_after_the_period_plus_one_round() -> None:
    r = Reachability()
    r.record(S2, {"n2": ans("n2", ("a1", False, "")), "n3": ans("n3", ("a1", True, ""))}, NOW)
    r.record(S2, {"n3": ans("n3", ("a1", True, ""))}, NOW + 1)  # n2 missed one round
    assert set(r.tcp) == {("n2", "a1"), ("n3", "a1")}
    r.record(S2, {"n3": ans("n3", ("a1", True, ""))}, NOW + 2)  # and another
    assert set(r.tcp) == {("n3", "a1")}
    assert set(r.from_nodes("a1")) == {"n3"}
    assert r.suspects().tcp == {}


def test_with_a_longer_period_cells_live_longer() -> None:
    r = Reachability()
    r.record(S2, {"n2": ans("n2", ("a1", False, ""))}, NOW, period=4)
    for i in range(1, 5):
        r.record(S2, {}, NOW + i, period=4)
        assert (("n2", "a1") in r.tcp) == (i <= 4)
    r.record(S2, {}, NOW + 5, period=4)
    assert r.tcp == {}


def test_suspects_are_the_pairs_whose_last_probe_failed() -> None:
    r = Reachability()
    r.record(
        S2,
        {
            "n2": ans("n2", ("a1", False, "timeout"), vip=((False, "timeout"),)),
            "n3": ans("n3", ("a1", True, ""), dns=(("10.0.1.9",),)),
        },
        NOW,
    )
    sus = r.suspects()
    assert sus.tcp == {"n2": {"a1"}}
    assert sus.vip == {"n2": {("s1", NET_A)}}
    assert sus.dns == {"n3": {("s1", NET_A)}}


CTR = Container(id="c" * 64, task="a1", service="s1", state="running", name="web.1.a1")


def test_containers_and_errors_come_from_this_rounds_answers_only() -> None:
    r = Reachability()
    r.record(
        S2,
        {
            "n1": ans("n1", ipvs=True, containers=(CTR,), errors=("vantage c1: gone",)),
            "n2": ans("n2"),
        },
        NOW,
    )
    assert r.ipvs == {"n1": True, "n2": False}
    assert r.containers == {"n1": (CTR,), "n2": ()}
    assert r.errors == {"n1": ("vantage c1: gone",), "n2": ()}
    # n1 stops answering: no container list of its is kept, so no orphan is seen (or
    # removed) on the strength of what a dead node said rounds ago
    r.record(S2, {"n2": ans("n2")}, NOW + 1)
    assert r.containers == {"n2": ()}
    assert r.errors == {"n2": ()}
    assert r.ipvs == {"n1": True, "n2": False}  # a kernel fact: kept while its cells are
    r.record(S2, {"n2": ans("n2")}, NOW + 2)
    assert r.ipvs == {"n2": False}


def dns_ans(ips: tuple[str, ...] | None) -> dict[str, tuple[ProbePlan, ProbeAnswer]]:
    return {"n1": ans("n1", dns=(ips,))}


DNS_SNAP = snap(
    [service()],
    [
        task("a1", "n1", nets=((NET_A, "10.0.1.2"),)),
        task("a2", "n2", nets=((NET_A, "10.0.1.3"),)),
        task("old", "n2", nets=((NET_A, "10.0.1.4"),), state="shutdown"),
    ],
)


def test_dns_that_agrees_with_the_running_tasks_has_no_since() -> None:
    r = Reachability()
    r.record(DNS_SNAP, dns_ans(("10.0.1.3", "10.0.1.2")), NOW)
    assert r.dns[("n1", "s1", NET_A)] == (("10.0.1.2", "10.0.1.3"), None)


def test_dns_disagreement_since_is_set_kept_and_cleared() -> None:
    r = Reachability()
    stale = dns_ans(("10.0.1.2", "10.0.1.4"))  # 10.0.1.4 is a shut-down task
    r.record(DNS_SNAP, stale, NOW)
    assert r.dns[("n1", "s1", NET_A)] == (("10.0.1.2", "10.0.1.4"), NOW)
    r.record(DNS_SNAP, dns_ans(("10.0.1.2",)), NOW + 15)  # another disagreement
    assert r.dns[("n1", "s1", NET_A)] == (("10.0.1.2",), NOW)  # since the first one
    r.record(DNS_SNAP, dns_ans(("10.0.1.2", "10.0.1.3")), NOW + 30)
    assert r.dns[("n1", "s1", NET_A)] == (("10.0.1.2", "10.0.1.3"), None)
    r.record(DNS_SNAP, stale, NOW + 45)
    assert r.dns[("n1", "s1", NET_A)][1] == NOW + 45  # a new disagreement starts afresh


def test_a_failed_dns_lookup_changes_nothing() -> None:
    r = Reachability()
    r.record(DNS_SNAP, dns_ans(("10.0.1.9",)), NOW)
    r.record(DNS_SNAP, dns_ans(None), NOW + 15)
    assert r.dns[("n1", "s1", NET_A)] == (("10.0.1.9",), NOW)
    assert r.probes_last_round == 0


def test_vip_cells_count_failures() -> None:
    r = Reachability()
    for i in range(3):
        r.record(S2, {"n1": ans("n1", vip=((False, "timeout"),))}, NOW + i)
    assert r.vip[("n1", "s1", NET_A)] == Cell(False, "timeout", 3, NOW + 2, 3)
    r.record(S2, {"n1": ans("n1", vip=((True, ""),))}, NOW + 3)
    assert r.vip[("n1", "s1", NET_A)].fails == 0


def test_dns_and_vip_entries_no_longer_probed_are_forgotten() -> None:
    r = Reachability()
    r.record(DNS_SNAP, {"n2": ans("n2", dns=(("10.0.1.2",),), vip=((False, "x"),))}, NOW)
    assert ("n2", "s1", NET_A) in r.dns
    for i in (1, 2):
        r.record(DNS_SNAP, dns_ans(("10.0.1.2", "10.0.1.3")), NOW + i)
    assert ("n2", "s1", NET_A) not in r.dns
    assert ("n2", "s1", NET_A) not in r.vip


def test_failing_tasks_are_those_a_node_last_failed_to_reach() -> None:
    r = Reachability()
    r.tcp[("n1", "a1")] = Cell(False, "timeout", 1, NOW)
    r.tcp[("n2", "a1")] = Cell(True, "", 0, NOW)
    r.tcp[("n1", "a2")] = Cell(True, "", 0, NOW)
    assert r.failing_tasks() == {"a1"}
    r.tcp[("n1", "a1")] = Cell(True, "", 0, NOW)
    assert r.failing_tasks() == set()
    r.tcp[("n2", "a2")] = Cell(False, "refused", 2, NOW)
    del r.tcp[("n2", "a2")]
    assert r.failing_tasks() == set()


# --- clocks -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("there", "back", "held", "offset"),
    [
        (0.010, 0.010, 0.0, 5.0),  # symmetric trip: exact
        (0.010, 0.010, 2.5, -3.0),  # the node probed 2.5 s: taken out of the trip
        (0.090, 0.010, 0.0, 0.0),  # lopsided: off by half the difference, within the bound
    ],
)
def test_a_clock_is_measured_by_the_round_trip_the_node_did_not_spend(
    there: float, back: float, held: float, offset: float
) -> None:
    sent = NOW
    node_clock = sent + there + offset + held  # the node's clock as it answered
    received = sent + there + held + back
    c = measured(node_clock, held, sent, received)
    assert c.error == pytest.approx((there + back) / 2)
    assert abs(c.offset - offset) <= c.error + 1e-9
    assert c.offset == pytest.approx(offset + (there - back) / 2)
    assert (c.at, c.refused) == (received, False)


def test_a_refusal_is_the_nodes_word_less_half_the_exchange() -> None:
    # signed at NOW, reached the node 0.1 s later, whose clock runs 60 s ahead: it says +60.1
    c = refused_at(60.1, NOW, NOW + 0.2)
    assert c.offset == pytest.approx(60.0)
    assert c.error == pytest.approx(0.1)
    assert c.refused


def test_each_nodes_last_clock_is_kept_until_the_node_leaves() -> None:
    nodes = [build.node("n1"), build.node("n2"), build.node("n3")]
    r = Reachability()
    first = {"n2": Clock(1.5, 0.01, NOW), "n3": Clock(-0.2, 0.01, NOW)}
    r.record(snap([], [], nodes), {}, NOW, clocks=first)
    r.record(snap([], [], nodes), {}, NOW + 15, clocks={"n2": Clock(1.6, 0.02, NOW + 15)})
    assert r.clocks == {"n2": Clock(1.6, 0.02, NOW + 15), "n3": first["n3"]}
    r.record(snap([], [], nodes[:2]), {}, NOW + 30)  # n3 left the swarm
    assert set(r.clocks) == {"n2"}


def test_each_nodes_health_is_kept_while_it_is_in_the_swarm_even_down() -> None:
    nodes = [build.node("n1"), build.node("n2", state="down"), build.node("n3")]
    disks = (Disk("data-root", "/var/lib/docker", 100, 40),)
    said = ProbeAnswer(node="n2", cert_not_after=NOW + 86400, disks=disks)
    r = Reachability()
    r.record(snap([], [], nodes), {"n2": (ProbePlan(), said)}, NOW)
    assert r.health == {"n2": Health(NOW, NOW + 86400, disks)}
    r.record(snap([], [], nodes), {"n3": (ProbePlan(), ProbeAnswer(node="n3"))}, NOW + 15)
    assert set(r.health) == {"n2"}  # n2 went quiet: its last word stands; n3 said nothing
    r.record(snap([], [], [nodes[0], nodes[2]]), {}, NOW + 30)  # n2 left the swarm
    assert r.health == {}
