"""The brain's probe rounds inside Medic.scan, on the fake engine with a scripted agent."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry

from swarm_medic import registry
from swarm_medic.agent import NodeAgent
from swarm_medic.daemon import Medic
from swarm_medic.journal import Journal
from swarm_medic.metrics import Metrics
from swarm_medic.rounds import Prober
from swarm_medic.settings import Settings
from swarm_medic.swarm.fake import FakeEngine
from tests.pipeline.support import Logs

T0 = 1_700_000_000.0
NET = "net0123456789abcdef"
SETTINGS = Settings(probe_interval=1.0, probe_failures=2, probe_grace=0.0, verify_hold=0.0)


class ScriptedAgent(NodeAgent):
    """Answers for the brain's own node: every task answers but `dead`."""

    def __init__(self, fake: FakeEngine) -> None:
        super().__init__(fake, "n1")
        self.dead: set[str] = set()
        self.plans: list[Mapping[str, Any]] = []

    def probe(self, plan: Mapping[str, Any]) -> dict[str, Any]:
        self.plans.append(plan)
        tcp = [
            {
                **p,
                "ok": p["task"] not in self.dead,
                "error": "timeout" if p["task"] in self.dead else "",
            }
            for p in plan["tcp"]
        ]
        return {
            "node": "n1",
            "ipvs": True,
            "tcp": tcp,
            "dns": [],
            "vip": [],
            "errors": [],
            "containers": [],
        }


def world() -> tuple[FakeEngine, str, list[str]]:
    fake = FakeEngine(node_id="n1", now=T0)
    fake.add_node("node1", node_id="n1", leader=True)
    fake.add_node("node2", node_id="n2", role="worker")
    fake._nodes["n2"]["Status"]["Addr"] = "127.0.0.1"
    sid = fake.add_service(
        "web", replicas=3, labels={"swarm-medic.enable": "true", "swarm-medic.probe.port": "80"}
    )
    tids = []
    for i, node in enumerate(("n1", "n1", "n2"), start=2):
        tid = fake.add_task(sid, node_id=node, slot=i - 1, since=T0 - 100)
        fake._tasks[tid]["NetworksAttachments"] = [
            {"Network": {"ID": NET, "Spec": {"Name": "ov"}}, "Addresses": [f"10.0.1.{i}/24"]}
        ]
        tids.append(tid)
    return fake, sid, tids


def medic(fake: FakeEngine) -> tuple[Medic, ScriptedAgent, Logs, CollectorRegistry]:
    agent = ScriptedAgent(fake)
    logs, prom = Logs(), CollectorRegistry()
    now = [T0]
    m = Medic(
        fake,
        SETTINGS,
        registry.load([registry.builtin_dir()]),
        Journal(Metrics(prom), logs.logger),
        clock=lambda: now[0],
        prober=Prober(SETTINGS, agent, clock=lambda: now[0]),
    )
    m.clock = lambda: now[0]
    m.now = now  # type: ignore[attr-defined]
    return m, agent, logs, prom


def scan(m: Medic, at: float) -> None:
    m.now[0] = at  # type: ignore[attr-defined]
    m.scan()


def test_rounds_feed_the_matrix_and_a_dead_task_is_replaced_through_its_node() -> None:
    fake, _, (t1, t2, t3) = world()
    m, agent, logs, prom = medic(fake)
    agent.dead.add(t3)  # the task on n2, seen failing from n1
    for i in range(3):
        scan(m, T0 + 2 * i)

    # n1 probed every task; n2 could not be asked (no secret) and says so once, not per round
    assert {p["task"] for p in agent.plans[0]["tcp"]} == {t1, t2, t3}
    assert [e["node"] for e in logs.named("node not probed this round")] == ["node2"]
    assert "no shared secret" in logs.named("node not probed this round")[0]["error"]
    assert m.reach.tcp[("n1", t3)].fails == 3

    (finding,) = logs.named("finding")
    assert finding["runbook"] == "unreachable-endpoint" and finding["tasks"] == [t3]
    # the hand is on n2, which cannot be asked without the secret: a skip that names why,
    # said once (not every scan), and nothing claimed in the ledger
    assert logs.starting("action: replace_task") == []
    (skip,) = logs.named("decision: skip (node_unreachable)")
    assert "no shared secret" in skip["explanation"]
    assert fake.read_ledger(Settings().ledger_name) is None
    assert (
        prom.get_sample_value(
            "swarm_medic_decisions_total",
            {"runbook": "unreachable-endpoint", "verdict": "skip", "reason": "node_unreachable"},
        )
        == 1
    )
    assert prom.get_sample_value("swarm_medic_probe_rounds_total") == 3


def test_a_task_on_the_brains_own_node_is_replaced_and_verified() -> None:
    fake, sid, (_, t2, _) = world()
    m, agent, logs, _ = medic(fake)
    cid = fake.add_container(t2)
    agent.dead.add(t2)
    for i in range(2):
        scan(m, T0 + 2 * i)
    assert logs.named("action: replace_task done")
    assert fake.removed == [cid]  # the own node's hand removed the task's container

    # swarm replaces it: the old task shuts down, a new one runs and answers
    fake.set_task_state(t2, "shutdown", desired="shutdown")
    new = fake.add_task(sid, node_id="n1", slot=2, since=T0 + 3)
    fake._tasks[new]["NetworksAttachments"] = [
        {"Network": {"ID": NET, "Spec": {"Name": "ov"}}, "Addresses": ["10.0.1.9/24"]}
    ]
    agent.dead.clear()
    fake._services[sid]["UpdateStatus"] = {"State": "completed"}
    for i in range(2, 5):
        scan(m, T0 + 2 * i)
    (healed,) = logs.named("verified: healed")
    assert "answer from every node" in healed["detail"]
