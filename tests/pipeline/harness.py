"""The pipeline tests' harness: a real Medic on the FakeEngine, seen as an operator sees it.

`Harness` drives Medic.scan() with built-in runbooks, real policy, executor, verifier and
journal, an injected clock, a fresh Prometheus registry and the log events captured. `Told` is
the same with a notifier; `ScriptedAgent` and `world` give the probe rounds a node to ask.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

from prometheus_client import CollectorRegistry

from swarm_medic.core.ledger import History, Ledger
from swarm_medic.core.protocol import DnsResult, ProbeAnswer, ProbePlan, TcpResult
from swarm_medic.core.settings import Settings
from swarm_medic.nodes.agent import NodeAgent
from swarm_medic.pipeline import registry as registry_mod
from swarm_medic.pipeline.registry import Registry
from swarm_medic.pipeline.scan import Medic
from swarm_medic.swarm.fake import FakeEngine
from swarm_medic.telemetry.journal import Journal
from swarm_medic.telemetry.metrics import Metrics
from swarm_medic.telemetry.notify import Message, Notifier
from tests.builders import NOW as T0
from tests.pipeline.support import Logs, sample

ME = "mgr1"
ENABLE = {"swarm-medic.enable": "true"}
LEDGER = Settings().ledger_name
STUCK_FOR = 400.0  # past the default 300 s threshold of "starting"


# --- a medic on a fake swarm ------------------------------------------------------------------


def swarm(*, leader: bool = True) -> FakeEngine:
    """A one-node swarm seen from its manager `ME` (the leader unless told otherwise)."""
    fake = FakeEngine(node_id=ME, now=T0)
    fake.add_node("manager-1", node_id=ME, leader=leader)
    return fake


def builtin() -> Registry:
    reg = registry_mod.load([registry_mod.builtin_dir()])
    assert reg.errors == []
    return reg


class Harness:
    """A real Medic on `fake`: the built-in runbooks unless told, a fresh metrics registry,
    captured logs, a clock the test moves (`scan(at)`) and incident ids inc-1, inc-2, ..."""

    def __init__(
        self,
        fake: FakeEngine,
        settings: Settings | None = None,
        *,
        runbooks: Registry | None = None,
        journal: Journal | None = None,
    ) -> None:
        self.fake = fake
        self.settings = settings or Settings()
        self.prom = CollectorRegistry()
        self.logs = Logs()
        self.now = [T0]
        ids = itertools.count(1)
        self.medic = Medic(
            fake,
            self.settings,
            runbooks or builtin(),
            journal or Journal(Metrics(self.prom), self.logs.logger),
            clock=lambda: self.now[0],
            make_id=lambda: f"inc-{next(ids)}",
        )
        self.wakes: list[float] = []
        self.medic.wake = self.wakes.append

    def scan(self, at: float) -> int:
        """One scan at time `at`; returns the Engine API calls it made."""
        self.now[0] = at
        before = self.fake.api_calls
        self.medic.scan()
        return self.fake.api_calls - before

    def metric(self, name: str, **labels: str) -> float:
        return sample(self.prom, name, **labels)

    def actions(
        self, result: str, runbook: str = "stuck-task", kind: str = "force_update"
    ) -> float:
        return self.metric("swarm_medic_actions_total", runbook=runbook, action=kind, result=result)

    def decisions(self, verdict: str, reason: str, runbook: str = "stuck-task") -> float:
        return self.metric(
            "swarm_medic_decisions_total", runbook=runbook, verdict=verdict, reason=reason
        )


def stuck_service(
    fake: FakeEngine, name: str = "web", labels: Mapping[str, str] | None = None
) -> tuple[str, str]:
    """A replicated service whose only task hangs in `starting` (no error) for 400 s."""
    sid = fake.add_service(name, labels=ENABLE if labels is None else labels)
    tid = fake.add_task(sid, state="starting", node_id=ME, since=T0 - STUCK_FOR)
    return sid, tid


def fix(fake: FakeEngine, sid: str, tid: str) -> None:
    """What swarm does after a successful force update: the stuck task replaced and running."""
    fake.set_task_state(tid, "shutdown", desired="shutdown")
    fake.add_task(sid, state="running", node_id=ME)
    fake.set_update_status(sid, "completed")


def ledger(fake: FakeEngine) -> Ledger:
    return Ledger.from_doc(fake.read_ledger(LEDGER))


def history(fake: FakeEngine, sid: str) -> History:
    return ledger(fake).history(sid)


# --- notifications ----------------------------------------------------------------------------


class Kept(Notifier):
    """A notifier that keeps what it is offered (no thread, no network)."""

    def __init__(self) -> None:
        super().__init__([], lambda receiver, error, attempts: None)
        self.kept: list[Message] = []

    def offer(self, msg: Message) -> bool:
        self.kept.append(msg)
        return True

    def steps(self) -> list[tuple[str, str]]:
        return [(m.step, m.incident) for m in self.kept]


class Told:
    """A Harness whose journal notifies through `notifier`, with its own metrics and logs."""

    def __init__(self, fake: FakeEngine, notifier: Notifier, **settings: object) -> None:
        self.prom = CollectorRegistry()
        self.logs = Logs()
        metrics = Metrics(self.prom)
        metrics.preinitialise()
        self.journal = Journal(metrics, self.logs.logger, notifier)
        s = Settings(notify=("json://127.0.0.1:9/unused",), **settings)  # type: ignore[arg-type]
        self.h = Harness(fake, s, journal=self.journal)

    def scan(self, at: float) -> None:
        self.h.scan(at)

    def notifications(self, result: str) -> float:
        return sample(self.prom, "swarm_medic_notifications_total", result=result)


# --- probe rounds -----------------------------------------------------------------------------

NET = "net0123456789abcdef"


class ScriptedAgent(NodeAgent):
    """Answers for the brain's own node: every task answers but `dead`."""

    def __init__(self, fake: FakeEngine) -> None:
        super().__init__(fake, "n1")
        self.dead: set[str] = set()
        self.plans: list[ProbePlan] = []

    def probe(self, plan: ProbePlan) -> ProbeAnswer:
        self.plans.append(plan)
        return ProbeAnswer(
            node="n1",
            ipvs=True,
            tcp=tuple(
                TcpResult(False, "timeout") if p.task in self.dead else TcpResult(True)
                for p in plan.tcp
            ),
            dns=(DnsResult(None, "not asked"),) * len(plan.dns),
            vip=(TcpResult(True),) * len(plan.vip),
        )


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
