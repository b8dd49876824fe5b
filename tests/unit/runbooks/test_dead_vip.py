"""dead-vip: a service's virtual IP that does not answer from a node while its tasks do, with or
without IPVS on that node; never acts."""

from __future__ import annotations

from swarm_medic.core.reach import Cell, Reachability
from swarm_medic.core.runbook import Runbook
from tests.builders import NOW
from tests.unit.runbooks.kit import REGISTRY, detect
from tests.unit.runbooks.overlay import NET, VIP, K, ctx

DEAD_VIP: Runbook = REGISTRY.runbooks["dead-vip"]


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
