"""stale-dns: a node whose DNS answer for a service (tasks.<name>) has disagreed with swarm for
longer than the grace; never acts."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from swarm_medic.core.model import Snapshot, SwarmInfo
from swarm_medic.core.protocol import DnsResult, DnsTarget, ProbeAnswer, ProbePlan
from swarm_medic.core.reach import Reachability
from swarm_medic.core.runbook import Runbook
from tests.builders import NOW
from tests.unit.runbooks.kit import REGISTRY, detect
from tests.unit.runbooks.overlay import NET, NODES, ctx, node, snapshot, task

STALE_DNS: Runbook = REGISTRY.runbooks["stale-dns"]
DNS_GRACE = 45.0  # stale-dns.grace, by default


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


def test_a_node_with_no_task_meant_to_run_on_the_overlay_is_not_judged() -> None:
    # n2 was drained: its task is shutting down (its stop grace), and its records lag
    r = dns_reach({"n2": (("10.0.1.2", "10.0.1.9"), NOW - 100)})
    leaving = dataclasses.replace(task("t2"), desired_state="shutdown")
    snap = snapshot(tasks=[task("t1"), leaving, task("t3")])
    assert detect(STALE_DNS, ctx(r, snap)) == []
    # the same answer from a node still running a task there is stale records
    assert len(detect(STALE_DNS, ctx(r))) == 1
