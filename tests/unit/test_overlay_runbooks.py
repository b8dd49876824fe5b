"""The overlay runbooks (unreachable-endpoint, stale-dns, dead-vip) on a Reachability filled
directly: the from-node x to-task matrix, DNS answers and VIP cells."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import pytest

from swarm_medic.core.model import (
    ActionKind,
    Finding,
    Node,
    Service,
    Severity,
    Snapshot,
    SwarmInfo,
    Target,
    Task,
)
from swarm_medic.core.protocol import DnsResult, DnsTarget, ProbeAnswer, ProbePlan
from swarm_medic.core.reach import Cell, Reachability
from swarm_medic.core.runbook import Context, Runbook, TaskClock, context
from swarm_medic.core.settings import Settings
from swarm_medic.pipeline import registry

NOW = 1_700_000_000.0
NET = "net0123456789abcdef"
VIP = "10.0.1.100"
ENABLE = {"swarm-medic.enable": "true"}
SETTINGS = Settings()  # probe_failures 3, scope opt-in
DNS_GRACE = 30.0  # stale-dns.grace, by default
K = SETTINGS.probes.probe_failures

REGISTRY = registry.load([registry.builtin_dir()])
UNREACHABLE: Runbook = REGISTRY.runbooks["unreachable-endpoint"]
STALE_DNS: Runbook = REGISTRY.runbooks["stale-dns"]
DEAD_VIP: Runbook = REGISTRY.runbooks["dead-vip"]

NODES = ("n1", "n2", "n3")
# one task of the service on each node: t1 on n1, t2 on n2, t3 on n3
TASK_NODE = {"t1": "n1", "t2": "n2", "t3": "n3"}
TASK_IP = {"t1": "10.0.1.2", "t2": "10.0.1.3", "t3": "10.0.1.4"}


def node(nid: str) -> Node:
    return Node(
        id=nid,
        hostname=f"worker-{nid[-1]}",
        role="worker",
        availability="active",
        state="ready",
        addr=f"192.168.0.{nid[-1]}",
    )


def service(labels: Mapping[str, str] = ENABLE) -> Service:
    return Service(
        id="s1",
        name="web",
        version=7,
        labels=MappingProxyType(dict(labels)),
        target_ports=(80,),
        vips=((NET, VIP),),
    )


def task(tid: str, state: str = "running") -> Task:
    return Task(
        id=tid,
        service_id="s1",
        slot=int(tid[-1]),
        node_id=TASK_NODE[tid],
        state=state,
        desired_state="running",
        timestamp=NOW - 1000,
        addresses=((NET, "app", TASK_IP[tid]),),
    )


def snapshot(svc: Service | None = None, tasks: list[Task] | None = None) -> Snapshot:
    return Snapshot(
        taken_at=NOW,
        info=SwarmInfo("n1", "192.168.0.1", "active", True),
        nodes=tuple(node(n) for n in NODES),
        services=(svc or service(),),
        tasks=tuple(tasks if tasks is not None else [task(t) for t in TASK_NODE]),
    )


def matrix(fails: Mapping[tuple[str, str], int] | None = None) -> Reachability:
    """Every node probes every task; OK unless (from node, task) has a failure count."""
    r = Reachability(round_at=NOW, rounds=5)
    for n in NODES:
        for t in TASK_NODE:
            f = (fails or {}).get((n, t), 0)
            r.tcp[(n, t)] = Cell(f == 0, "timeout" if f else "", f, NOW)
    return r


def ctx(reach: Reachability | None, snap: Snapshot | None = None) -> Context:
    return context(snap or snapshot(), NOW, SETTINGS, TaskClock(), reach=reach)


def detect(rb: Runbook, c: Context) -> list[Finding]:
    """As match.run does: a runbook whose needs are not met is not run."""
    return [] if rb.missing(c) else list(rb.detect(c))


# --- unreachable-endpoint ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fails", "cause", "from_nodes"),
    [
        ({("n2", "t1"): K}, "some-nodes", "n2"),
        ({("n2", "t1"): K, ("n3", "t1"): K}, "task-node", "n2,n3"),
        ({("n1", "t1"): K, ("n2", "t1"): K, ("n3", "t1"): K}, "container", "n1,n2,n3"),
        ({("n1", "t1"): K}, "container", "n1"),
    ],
    ids=["some-nodes", "task-node", "container-everywhere", "container-own-node"],
)
def test_unreachable_endpoint_cause_from_the_matrix(
    fails: dict[tuple[str, str], int], cause: str, from_nodes: str
) -> None:
    (f,) = detect(UNREACHABLE, ctx(matrix(fails)))
    assert f.cause == cause
    assert f.key == "unreachable-endpoint:t1"
    assert f.task_ids == ("t1",)
    assert f.details == {"from": from_nodes}
    assert f.target == Target.for_task("t1", "n1")
    assert set(f.node_ids) == {"n1", *from_nodes.split(",")}
    assert f.actionable
    assert f.severity is Severity.CRITICAL
    assert "10.0.1.2:80" in f.summary


def test_unreachable_endpoint_names_the_bad_nodes_by_hostname() -> None:
    (f,) = detect(UNREACHABLE, ctx(matrix({("n2", "t1"): K})))
    assert "worker-1 is Running but unreachable from worker-2 (timeout)" in f.summary
    assert "worker-2" in f.advice


def test_unreachable_endpoint_below_the_failure_threshold_is_nothing() -> None:
    assert detect(UNREACHABLE, ctx(matrix({("n2", "t1"): K - 1, ("n3", "t1"): K - 1}))) == []


def test_a_vantage_from_which_nothing_of_the_service_answers_does_not_count() -> None:
    # n2 reaches none of the service's tasks (not even its own): its view proves nothing
    everything_from_n2 = {("n2", t): K for t in TASK_NODE}
    assert detect(UNREACHABLE, ctx(matrix(everything_from_n2))) == []


def test_only_the_vantages_that_see_other_tasks_are_counted() -> None:
    # n3 sees nothing of the service; n2 fails only t1: the finding is from n2 only, and
    # as the one other node that counts fails, the cause is the task's node
    fails = {("n2", "t1"): K, **{("n3", t): K for t in TASK_NODE}}
    (f,) = detect(UNREACHABLE, ctx(matrix(fails)))
    assert f.details["from"] == "n2"
    assert f.node_ids == ("n1", "n2")
    assert f.cause == "task-node"


def test_a_single_task_service_is_never_judged() -> None:
    snap = snapshot(tasks=[task("t1")])
    r = Reachability(round_at=NOW, rounds=5)
    r.tcp[("n2", "t1")] = Cell(False, "timeout", K, NOW)
    assert detect(UNREACHABLE, ctx(r, snap)) == []


def test_a_service_out_of_scope_is_not_considered() -> None:
    snap = snapshot(svc=service(labels={}))
    assert detect(UNREACHABLE, ctx(matrix({("n2", "t1"): K}), snap)) == []


def test_tasks_that_are_not_running_are_not_judged() -> None:
    snap = snapshot(tasks=[task("t1", state="shutdown"), task("t2"), task("t3")])
    assert detect(UNREACHABLE, ctx(matrix({("n2", "t1"): K}), snap)) == []


def test_no_rounds_yet_is_nothing() -> None:
    assert detect(UNREACHABLE, ctx(None)) == []
    assert detect(UNREACHABLE, ctx(Reachability())) == []


def test_unreachable_endpoint_plans_to_replace_the_task_on_its_node() -> None:
    c = ctx(matrix({("n2", "t2"): 0, ("n1", "t2"): K, ("n3", "t2"): K}))
    (f,) = detect(UNREACHABLE, c)
    assert f.cause == "task-node"
    action = UNREACHABLE.plan(f, c)
    assert action is not None
    assert action.kind is ActionKind.REPLACE_TASK
    assert (action.service_id, action.service_name, action.service_version) == ("s1", "web", 7)
    assert (action.task_id, action.node_id) == ("t2", "n2")
    assert "task-node" in action.reason


def test_unreachable_endpoint_plans_nothing_for_a_removed_service() -> None:
    (f,) = detect(UNREACHABLE, ctx(matrix({("n2", "t1"): K})))
    gone = Snapshot(NOW, SwarmInfo("n1", "", "active", True), (), (), ())
    assert UNREACHABLE.plan(f, ctx(None, gone)) is None


# --- stale-dns ------------------------------------------------------------------------------


def dns_reach(entries: Mapping[str, tuple[tuple[str, ...], float | None]]) -> Reachability:
    r = Reachability(round_at=NOW, rounds=5)
    for n, value in entries.items():
        r.dns[(n, "s1", NET)] = value
    return r


RIGHT = ("10.0.1.2", "10.0.1.3", "10.0.1.4")


def test_stale_dns_older_than_the_grace_is_one_finding_per_service_and_net() -> None:
    old = NOW - DNS_GRACE - 1
    r = dns_reach(
        {
            "n1": (RIGHT, None),
            "n2": (("10.0.1.2", "10.0.1.3", "10.0.1.4", "10.0.1.9"), old),
            "n3": (("10.0.1.2",), old),
        }
    )
    (f,) = detect(STALE_DNS, ctx(r))
    assert f.key == f"stale-dns:s1:{NET}"
    assert f.cause == "stale-records"
    assert (f.service_id, f.service_name) == ("s1", "web")
    assert "2 node(s)" in f.summary
    assert "worker-2: extra 10.0.1.9" in f.advice
    assert "worker-3: missing 10.0.1.3, 10.0.1.4" in f.advice
    assert "worker-1" not in f.advice
    assert not f.actionable
    assert STALE_DNS.plan(f, ctx(r)) is None


def test_stale_dns_with_both_extra_and_missing_ips() -> None:
    r = dns_reach({"n2": (("10.0.1.2", "10.0.1.8"), NOW - 100)})
    (f,) = detect(STALE_DNS, ctx(r))
    assert "worker-2: extra 10.0.1.8; missing 10.0.1.3, 10.0.1.4" in f.advice


def test_stale_dns_younger_than_the_grace_is_nothing() -> None:
    r = dns_reach({"n2": (("10.0.1.9",), NOW - DNS_GRACE + 1)})
    assert detect(STALE_DNS, ctx(r)) == []


def test_stale_dns_that_now_agrees_with_swarm_is_nothing() -> None:
    # `since` is old but the snapshot moved on: what it answered is what swarm says now
    r = dns_reach({"n2": (RIGHT, NOW - 100)})
    assert detect(STALE_DNS, ctx(r)) == []


def test_stale_dns_forgets_a_removed_service() -> None:
    r = Reachability()
    plan = ProbePlan(dns=(DnsTarget(net=NET, service="s1", name="tasks.web"),))
    said = ProbeAnswer(node="n2", dns=(DnsResult(("10.0.1.2", "10.0.1.9")),))
    r.record(snapshot(), {"n2": (plan, said)}, NOW - 100)  # a disagreement, while s1 existed
    removed = Snapshot(NOW, SwarmInfo("n1", "", "active", True), tuple(map(node, NODES)), (), ())
    nothing = {n: (ProbePlan(), ProbeAnswer(node=n)) for n in NODES}
    r.record(removed, nothing, NOW)  # the next round: nothing asked about s1
    assert detect(STALE_DNS, ctx(r, removed)) == []


# --- dead-vip -------------------------------------------------------------------------------


def vip_reach(fails: int = K, ipvs: bool = True, task_ok: bool = True) -> Reachability:
    r = Reachability(round_at=NOW, rounds=5)
    r.vip[("n2", "s1", NET)] = Cell(fails == 0, "timeout" if fails else "", fails, NOW)
    r.tcp[("n2", "t2")] = Cell(task_ok, "" if task_ok else "timeout", 0 if task_ok else K, NOW)
    r.ipvs["n2"] = ipvs
    return r


def test_dead_vip_without_ipvs_advises_dnsrr() -> None:
    (f,) = detect(DEAD_VIP, ctx(vip_reach(ipvs=False)))
    assert f.cause == "no-ipvs"
    assert "dnsrr" in f.advice
    assert "worker-2" in f.advice
    assert f.key == f"dead-vip:s1:{NET}"
    assert f.summary == f"VIP {VIP} of web does not answer from worker-2 while its tasks do"
    assert f.node_ids == ("n2",)
    assert not f.actionable
    assert DEAD_VIP.plan(f, ctx(vip_reach(ipvs=False))) is None


def test_dead_vip_with_ipvs_is_the_lb_rules() -> None:
    (f,) = detect(DEAD_VIP, ctx(vip_reach(ipvs=True)))
    assert f.cause == "lb-rules"
    assert "dnsrr" not in f.advice
    assert "IPVS rules" in f.advice


def test_dead_vip_needs_a_task_answering_from_the_same_node() -> None:
    assert detect(DEAD_VIP, ctx(vip_reach(task_ok=False))) == []


def test_dead_vip_ignores_a_task_answering_from_another_node() -> None:
    r = vip_reach()
    del r.tcp[("n2", "t2")]
    r.tcp[("n3", "t3")] = Cell(True, "", 0, NOW)
    assert detect(DEAD_VIP, ctx(r)) == []


def test_dead_vip_below_the_failure_threshold_is_nothing() -> None:
    assert detect(DEAD_VIP, ctx(vip_reach(fails=K - 1))) == []
    assert detect(DEAD_VIP, ctx(vip_reach(fails=0))) == []


def test_own_node_bridge_counts_even_without_a_sound_container_vantage() -> None:
    # Seen on the 3-node lab: t3's overlay interface is down and t3 is the only container of
    # the network on n3, so n3 has no container vantage for the other tasks (no cells) and
    # only its bridge probe of t3, failing for one round less than the others. Still
    # "container": it fails even from its own node.
    r = matrix({("n1", "t3"): K, ("n2", "t3"): K, ("n3", "t3"): 1})
    del r.tcp[("n3", "t1")], r.tcp[("n3", "t2")]
    (f,) = detect(UNREACHABLE, ctx(r))
    assert f.cause == "container"
    assert f.details["from"] == "n1,n2,n3"


def test_own_node_alone_does_not_raise_it() -> None:
    # only the task's own bridge fails (every other node reaches it): not raised
    r = matrix({("n3", "t3"): K})
    del r.tcp[("n3", "t1")], r.tcp[("n3", "t2")]
    assert detect(UNREACHABLE, ctx(r)) == []
