"""Published ports: which addresses are probed (reach.published_targets and the plans), how
the answers are kept (Reachability.ports), and the published-port runbook on top of them.

The runbook tests go through the whole pure path: plans from a snapshot, answers made up per
(vantage, address, port), Reachability.record, then detect.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable
from dataclasses import replace

import pytest

from swarm_medic.core.model import (
    Finding,
    Node,
    PublishedPort,
    Service,
    Snapshot,
    Task,
    UpdateStatus,
)
from swarm_medic.core.protocol import MAX_PORTS, PortTarget, ProbeAnswer, ProbePlan, TcpResult
from swarm_medic.core.reach import (
    Budget,
    Published,
    Reachability,
    Suspects,
    node_address,
    published_targets,
)
from swarm_medic.core.reach import plans as make_plans
from swarm_medic.core.runbook import Runbook, TaskClock, context
from swarm_medic.core.settings import Settings
from tests import builders as build
from tests.builders import NOW
from tests.unit.runbooks.kit import REGISTRY

ENABLE = {"swarm-medic.enable": "true"}
SETTINGS = Settings()  # scope opt-in, probe_grace 20 s, probe_failures 3
K = SETTINGS.probe_failures
RUNBOOK: Runbook = REGISTRY.runbooks["published-port"]

ADDR = {"n1": "192.168.0.1", "n2": "192.168.0.2", "n3": "192.168.0.3"}
HOST = PublishedPort(target=80, published=8080, mode="host")
INGRESS = PublishedPort(target=80, published=8080, mode="ingress")


def node(nid: str, *, state: str = "ready", addr: str | None = None) -> Node:
    return build.node(
        nid, hostname=f"worker-{nid[-1]}", state=state, addr=ADDR[nid] if addr is None else addr
    )


NODES = [node("n1"), node("n2"), node("n3")]


def service(
    *ports: PublishedPort,
    sid: str = "s1",
    name: str = "web",
    labels: dict[str, str] | None = None,
    update: str | None = None,
) -> Service:
    svc = build.service(
        sid,
        name=name,
        labels=ENABLE if labels is None else labels,
        replicas=2,
        ports=tuple(p.target for p in ports),
        update=UpdateStatus(update) if update else None,
    )
    return replace(svc, published=ports)


def task(
    tid: str, node_id: str, *, sid: str = "s1", state: str = "running", age: float = 100.0
) -> Task:
    return build.task(tid, sid=sid, node_id=node_id, state=state, timestamp=NOW - age)


def snap(
    services: Iterable[Service],
    tasks: Iterable[Task],
    nodes: Iterable[Node] = NODES,
) -> Snapshot:
    return build.snapshot(nodes=nodes, services=services, tasks=tasks, addr=ADDR["n1"])


def addresses(targets: Iterable[Published]) -> list[tuple[str, int, str]]:
    return sorted((p.ip, p.port, p.mode) for p in targets)


def port_plans(s: Snapshot, **kw: object) -> dict[str, list[tuple[str, int]]]:
    got = make_plans(s, SETTINGS, NOW, **kw).by_node  # type: ignore[arg-type]
    return {n: [(p.ip, p.port) for p in plan.ports] for n, plan in got.items()}


# --- which addresses ----------------------------------------------------------------------------


def test_ingress_mode_is_probed_at_every_ready_nodes_address() -> None:
    s = snap([service(INGRESS)], [task("t1", "n1"), task("t2", "n1")])
    assert addresses(published_targets(s)) == [
        ("192.168.0.1", 8080, "ingress"),
        ("192.168.0.2", 8080, "ingress"),
        ("192.168.0.3", 8080, "ingress"),
    ]


def test_host_mode_is_probed_only_where_a_task_runs() -> None:
    s = snap([service(HOST)], [task("t1", "n1"), task("t2", "n3")])
    assert addresses(published_targets(s)) == [
        ("192.168.0.1", 8080, "host"),
        ("192.168.0.3", 8080, "host"),
    ]
    (on_n3,) = [p for p in published_targets(s) if p.node == "n3"]
    assert on_n3 == Published("s1", 8080, 80, "host", "n3", "192.168.0.3")


def test_udp_and_sctp_ports_are_not_probed() -> None:
    udp = PublishedPort(target=53, published=5353, protocol="udp", mode="ingress")
    sctp = PublishedPort(target=9, published=9999, protocol="sctp", mode="host")
    s = snap([service(udp, sctp, INGRESS)], [task("t1", "n1")])
    assert {p.port for p in published_targets(s)} == {8080}
    assert published_targets(snap([service(udp, sctp)], [task("t1", "n1")])) == []


@pytest.mark.parametrize(
    "bad",
    ["", "0.0.0.0", "fd00::1", "192.168.0.256", "node-2.example", "192.168.0.2\n"],  # noqa: S104 - an address to refuse, not to bind
)
def test_a_node_address_that_is_not_a_usable_ipv4_is_never_probed(bad: str) -> None:
    nodes = [node("n1"), node("n2", addr=bad), node("n3")]
    assert node_address(nodes[1]) is None
    s = snap([service(INGRESS)], [task("t1", "n2")], nodes)
    assert {p.node for p in published_targets(s)} == {"n1", "n3"}
    assert all(
        ("192.168.0.2", 8080) not in ports and all(ip != bad for ip, _ in ports)
        for ports in port_plans(s).values()
    )


def test_nodes_that_are_not_ready_are_not_probed_nor_probe() -> None:
    nodes = [node("n1"), node("n2", state="down"), node("n3")]
    s = snap([service(INGRESS)], [task("t1", "n1")], nodes)
    assert {p.node for p in published_targets(s)} == {"n1", "n3"}
    assert set(port_plans(s)) == {"n1", "n3"}
    host = snap([service(HOST)], [task("t1", "n2"), task("t2", "n3")], nodes)
    assert {p.node for p in published_targets(host)} == {"n3"}


@pytest.mark.parametrize(
    ("tasks", "update"),
    [
        ([task("t1", "n1"), task("t2", "n2", state="starting")], None),
        ([task("t1", "n1"), task("t2", "n2", state="pending")], None),
        ([task("t1", "n1"), task("t2", "n2")], "updating"),
        ([task("t1", "n1"), task("t2", "n2")], "rollback_started"),
        ([task("t1", "n1", state="failed")], None),
        ([], None),
    ],
    ids=["a-task-starting", "a-task-pending", "updating", "rolling-back", "failed", "no-task"],
)
def test_a_service_whose_tasks_are_not_all_running_or_that_updates_is_not_probed(
    tasks: list[Task], update: str | None
) -> None:
    s = snap([service(HOST, INGRESS, update=update)], tasks)
    assert published_targets(s) == []
    assert all(ports == [] for ports in port_plans(s).values())


def test_tasks_shutting_down_do_not_hold_the_service_back() -> None:
    # a task desired shutdown (a scale-down, the old task of a finished update) still running
    shutting = build.task("old", node_id="n2", desired="shutdown", timestamp=NOW - 5)
    s = snap([service(HOST, update="completed")], [task("t1", "n1"), shutting])
    assert addresses(published_targets(s)) == [("192.168.0.1", 8080, "host")]


def test_every_ready_node_probes_every_target_from_its_own_plan() -> None:
    s = snap([service(HOST)], [task("t1", "n1"), task("t2", "n3")])
    want = [("192.168.0.1", 8080), ("192.168.0.3", 8080)]
    assert port_plans(s) == {"n1": want, "n2": want, "n3": want}


def test_tasks_younger_than_the_probe_grace_do_not_count_yet() -> None:
    young = [task("t1", "n1", age=5), task("t2", "n3", age=100)]
    assert port_plans(snap([service(HOST)], young))["n1"] == [("192.168.0.3", 8080)]
    all_young = [task("t1", "n1", age=5)]
    assert port_plans(snap([service(INGRESS)], all_young))["n1"] == []


def test_services_out_of_scope_are_not_probed() -> None:
    tasks = [task("t1", "n1")]
    assert port_plans(snap([service(INGRESS, labels={})], tasks))["n1"] == []
    selfish = {**ENABLE, "swarm-medic.self": "true"}
    assert port_plans(snap([service(INGRESS, labels=selfish)], tasks))["n1"] == []
    everything = make_plans(snap([service(INGRESS, labels={})], tasks), Settings(scope="all"), NOW)
    assert len(everything.by_node["n1"].ports) == 3


def test_one_address_and_port_is_probed_once() -> None:
    # two services on the same port in host mode, on different nodes: distinct targets; the
    # same ip:port twice (which swarm would not allow) is asked once
    a, b = service(HOST, sid="s1"), service(HOST, sid="s2", name="api")
    s = snap([a, b], [task("t1", "n1"), task("t2", "n2", sid="s2"), task("t3", "n2")])
    assert port_plans(s)["n3"] == [("192.168.0.1", 8080), ("192.168.0.2", 8080)]


# --- the cap per round --------------------------------------------------------------------------


def many_ports(count: int) -> Snapshot:
    ports = tuple(PublishedPort(target=80, published=10000 + i) for i in range(count))
    return snap([service(*ports)], [task("t1", "n1")])


def test_beyond_the_cap_each_node_probes_a_window_and_covers_all_within_the_period() -> None:
    s, budget = many_ports(20), Budget(ports=10, suspects=0)  # 60 targets: 20 ports x 3 nodes
    got = make_plans(s, SETTINGS, NOW, budget=budget)
    assert got.period == math.ceil(60 / 10) == 6
    seen: dict[str, set[tuple[str, int]]] = {}
    for r in range(got.period):
        for nid, plan in make_plans(s, SETTINGS, NOW, round_no=r, budget=budget).by_node.items():
            assert len(plan.ports) == 10
            seen.setdefault(nid, set()).update((p.ip, p.port) for p in plan.ports)
    assert all(len(targets) == 60 for targets in seen.values())


def test_failing_ports_are_probed_again_every_round_on_top_of_the_window() -> None:
    s, budget = many_ports(20), Budget(ports=10, suspects=3)
    bad = {("192.168.0.2", 10005), ("192.168.0.3", 10019), ("10.1.1.1", 1)}  # one not a target
    sus = Suspects(ports={"n2": bad})
    for r in range(6):
        plan = make_plans(s, SETTINGS, NOW, round_no=r, budget=budget, suspects=sus).by_node
        mine = [(p.ip, p.port) for p in plan["n2"].ports]
        assert len(mine) == len(set(mine)) <= 13
        assert bad - {("10.1.1.1", 1)} <= set(mine)
        assert ("10.1.1.1", 1) not in mine  # a suspect no longer published is not asked
        assert len(plan["n1"].ports) == 10


def test_the_default_budget_keeps_a_plan_within_the_protocols_bound() -> None:
    s = many_ports(1000)  # 3,000 targets
    got = make_plans(s, SETTINGS, NOW)
    assert all(len(p.ports) == Budget().ports <= MAX_PORTS for p in got.by_node.values())


# --- the history --------------------------------------------------------------------------------

Dead = Collection[tuple[str, str, int]]  # (vantage, address, port) that do not answer


def answer(node_id: str, plan: ProbePlan, dead: Dead, *, ipvs: bool) -> ProbeAnswer:
    return ProbeAnswer(
        node=node_id,
        ipvs=ipvs,
        ports=tuple(
            TcpResult(False, "refused") if (node_id, p.ip, p.port) in dead else TcpResult(True)
            for p in plan.ports
        ),
    )


def run_rounds(
    s: Snapshot,
    rounds: int,
    dead: Dead = (),
    *,
    reach: Reachability | None = None,
    ipvs: Collection[str] = ("n1", "n2", "n3"),
    start: float = NOW,
) -> Reachability:
    r = reach or Reachability()
    for i in range(rounds):
        got = make_plans(s, SETTINGS, start + i, round_no=r.rounds, suspects=r.suspects())
        r.record(
            s,
            {n: (p, answer(n, p, dead, ipvs=n in ipvs)) for n, p in got.by_node.items()},
            start + i,
            period=got.period,
        )
    return r


HOST_SNAP = snap([service(HOST)], [task("t1", "n1"), task("t2", "n2")])
N2_DEAD = {(v, "192.168.0.2", 8080) for v in ("n1", "n2", "n3")}


def test_port_cells_count_failures_per_vantage_and_reset_on_success() -> None:
    r = run_rounds(HOST_SNAP, 2, N2_DEAD)
    assert r.ports[("n3", "192.168.0.2", 8080)].fails == 2
    assert r.ports[("n3", "192.168.0.2", 8080)].error == "refused"
    assert r.ports[("n3", "192.168.0.1", 8080)].ok
    assert r.suspects().ports == {n: {("192.168.0.2", 8080)} for n in ("n1", "n2", "n3")}
    run_rounds(HOST_SNAP, 1, reach=r, start=NOW + 10)
    assert r.ports[("n3", "192.168.0.2", 8080)].fails == 0
    assert r.suspects().ports == {}
    assert r.probes_last_round == 6  # 3 vantages x 2 addresses


def test_an_older_node_that_answers_no_ports_leaves_no_cells() -> None:
    r = Reachability()
    plan = ProbePlan(ports=(PortTarget(ip="192.168.0.2", port=8080),))
    r.record(HOST_SNAP, {"n2": (plan, ProbeAnswer(node="n2"))}, NOW)
    assert r.ports == {} and r.probes_last_round == 0


def test_no_opinion_on_a_port_changes_nothing() -> None:
    r = run_rounds(HOST_SNAP, 2, N2_DEAD)
    plan = ProbePlan(ports=(PortTarget(ip="192.168.0.2", port=8080),))
    none = ProbeAnswer(node="n3", ports=(TcpResult(None, "not probed"),))
    r.record(HOST_SNAP, {"n3": (plan, none)}, NOW + 5)
    assert r.ports[("n3", "192.168.0.2", 8080)].fails == 2


def test_the_history_goes_when_the_service_stops_being_settled() -> None:
    r = run_rounds(HOST_SNAP, 2, N2_DEAD)
    updating = snap([service(HOST, update="updating")], [task("t1", "n1"), task("t2", "n2")])
    r.record(updating, {}, NOW + 5)
    assert r.ports == {}


def test_cells_of_an_address_no_longer_published_go_at_once() -> None:
    r = run_rounds(HOST_SNAP, 2, N2_DEAD)
    moved = snap([service(HOST)], [task("t1", "n1"), task("t3", "n3")])  # t2 went to n3
    r.record(moved, {}, NOW + 5)
    assert {k[1] for k in r.ports} == {"192.168.0.1"}


def test_port_cells_not_probed_again_expire_after_the_period_plus_one_round() -> None:
    r = run_rounds(HOST_SNAP, 1, N2_DEAD)
    r.record(HOST_SNAP, {}, NOW + 5)
    assert r.ports  # one round missed: kept
    r.record(HOST_SNAP, {}, NOW + 6)
    assert r.ports == {}


# --- the runbook --------------------------------------------------------------------------------


def detect(s: Snapshot, r: Reachability | None) -> list[Finding]:
    c = context(s, NOW + 100, SETTINGS, TaskClock(), reach=r)
    return [] if RUNBOOK.missing(c) else list(RUNBOOK.detect(c))


def test_a_host_mode_port_dead_on_one_node_is_one_finding() -> None:
    r = run_rounds(HOST_SNAP, K, N2_DEAD)
    (f,) = detect(HOST_SNAP, r)
    assert f.key == "published-port:s1:8080:192.168.0.2"
    assert f.cause == "host-mapping"
    assert (f.service_id, f.service_name) == ("s1", "web")
    assert f.node_ids == ("n1", "n2", "n3")
    assert f.details == {
        "mode": "host",
        "address": "192.168.0.2",
        "port": "8080",
        "node": "n2",
        "from": "n1,n2,n3",
        "answers_at": "192.168.0.1",
    }
    assert f.summary == (
        "published port 8080/tcp (host mode) of web does not answer at 192.168.0.2 "
        "(worker-2) from worker-1, worker-2, worker-3 (refused) for 3+ probes while its "
        "tasks run; it answers at 192.168.0.1"
    )
    assert "port mapping on worker-2 (docker-proxy / iptables DNAT) is gone" in f.advice
    assert "`docker service update --force web` re-creates the mapping" in f.advice
    assert not f.actionable
    assert RUNBOOK.plan(f, context(HOST_SNAP, NOW, SETTINGS, reach=r)) is None


def test_the_key_is_the_same_on_every_scan_of_the_incident() -> None:
    r = run_rounds(HOST_SNAP, K, N2_DEAD)
    first = [f.key for f in detect(HOST_SNAP, r)]
    run_rounds(HOST_SNAP, 4, N2_DEAD, reach=r, start=NOW + 10)
    assert [f.key for f in detect(HOST_SNAP, r)] == first == ["published-port:s1:8080:192.168.0.2"]


def test_below_the_failure_threshold_is_nothing() -> None:
    assert detect(HOST_SNAP, run_rounds(HOST_SNAP, K - 1, N2_DEAD)) == []


def test_a_port_that_answers_is_nothing() -> None:
    assert detect(HOST_SNAP, run_rounds(HOST_SNAP, K + 2)) == []


def test_a_port_that_comes_back_is_nothing() -> None:
    r = run_rounds(HOST_SNAP, K, N2_DEAD)
    run_rounds(HOST_SNAP, 1, reach=r, start=NOW + 10)
    assert detect(HOST_SNAP, r) == []


@pytest.mark.parametrize(
    "later",
    [
        snap([service(HOST)], [task("t1", "n1"), task("t2", "n2", state="starting")]),
        snap([service(HOST, update="updating")], [task("t1", "n1"), task("t2", "n2")]),
        snap([service(HOST)], [task("t1", "n1"), task("t2", "n2", state="failed")]),
    ],
    ids=["a-task-restarting", "update-in-progress", "task-failed"],
)
def test_nothing_while_the_tasks_are_not_all_running_or_an_update_is_under_way(
    later: Snapshot,
) -> None:
    # failing for K rounds, then the next snapshot shows churn: not this runbook's fault
    r = run_rounds(HOST_SNAP, K, N2_DEAD)
    assert detect(later, r) == []  # judged on the scan's own snapshot, before any new round
    r.record(later, {}, NOW + 50)
    assert detect(later, r) == [] and r.ports == {}


def test_the_failures_count_again_from_zero_after_an_update() -> None:
    r = run_rounds(HOST_SNAP, K - 1, N2_DEAD)
    updating = snap([service(HOST, update="updating")], [task("t1", "n1"), task("t2", "n2")])
    run_rounds(updating, 2, N2_DEAD, reach=r, start=NOW + 10)
    done = snap([service(HOST, update="completed")], [task("t1", "n1"), task("t2", "n2")])
    run_rounds(done, 1, N2_DEAD, reach=r, start=NOW + 20)
    assert detect(done, r) == []  # 1 failure since the update, not K - 1 + 1


def test_ingress_on_a_node_without_ipvs_says_so() -> None:
    s = snap([service(INGRESS)], [task("t1", "n1"), task("t2", "n3")])
    dead = {(v, "192.168.0.2", 8080) for v in ("n1", "n2", "n3")}
    (f,) = detect(s, run_rounds(s, K, dead, ipvs=("n1", "n3")))
    assert f.cause == "no-ipvs"
    assert f.key == "published-port:s1:8080:192.168.0.2"
    assert f.details["mode"] == "ingress"
    assert f.details["answers_at"] == "192.168.0.1,192.168.0.3"
    assert f.advice.startswith(
        "node worker-2 has no IPVS (no /proc/net/ip_vs): the routing mesh cannot work there; "
        "publish with mode=host or load the ip_vs module"
    )


def test_ingress_dead_everywhere_on_a_kernel_without_ipvs_is_one_finding_per_address() -> None:
    s = snap([service(INGRESS)], [task("t1", "n1"), task("t2", "n3")])
    dead = {(v, a, 8080) for v in ADDR for a in ADDR.values()}
    found = detect(s, run_rounds(s, K, dead, ipvs=()))
    assert [f.key for f in found] == [
        f"published-port:s1:8080:{a}" for a in ("192.168.0.1", "192.168.0.2", "192.168.0.3")
    ]
    assert {f.cause for f in found} == {"no-ipvs"}
    assert all(f.summary.endswith("no address answers") for f in found)


def test_ingress_dead_on_a_node_with_ipvs_is_its_mesh_rules() -> None:
    s = snap([service(INGRESS)], [task("t1", "n1"), task("t2", "n3")])
    dead = {(v, "192.168.0.2", 8080) for v in ("n1", "n2", "n3")}
    (f,) = detect(s, run_rounds(s, K, dead))
    assert f.cause == "ingress-rules"
    assert "DOCKER-INGRESS" in f.advice
    assert "no IPVS" not in f.advice


def test_dead_from_some_nodes_only_is_the_path_not_the_service() -> None:
    r = run_rounds(HOST_SNAP, K, {("n3", "192.168.0.2", 8080)})
    (f,) = detect(HOST_SNAP, r)
    assert f.cause == "some-nodes"
    assert f.details["from"] == "n3"
    assert f.node_ids == ("n2", "n3")
    assert "it answers from worker-1, worker-2 but not from worker-3" in f.advice


def test_a_udp_port_is_never_judged() -> None:
    udp = PublishedPort(target=53, published=8080, protocol="udp", mode="host")
    s = snap([service(udp)], [task("t1", "n1"), task("t2", "n2")])
    r = run_rounds(HOST_SNAP, K, N2_DEAD)  # cells for 8080 from a tcp port seen before
    assert detect(s, r) == []


def test_without_probe_results_the_runbook_does_not_run() -> None:
    assert RUNBOOK.missing(context(HOST_SNAP, NOW, SETTINGS)) == ("probes",)
    assert detect(HOST_SNAP, Reachability(rounds=3)) == []
