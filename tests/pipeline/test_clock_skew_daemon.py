"""clock-skew inside Medic.scan: the brain measures node2's clock on the signed channel (a real
NodeEndpoint behind the HTTP port on 127.0.0.1, whose clock runs ahead), and names it; a node
far enough off to refuse the channel is named too, with clock skew as the cause of the
refusals. Real clocks here: what is measured is real exchanges."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import structlog
from prometheus_client import CollectorRegistry

from swarm_medic.core.protocol import DnsResult, ProbeAnswer, ProbePlan, TcpResult
from swarm_medic.core.settings import HttpSettings, ProbeSettings, Settings
from swarm_medic.nodes.agent import NodeAgent
from swarm_medic.nodes.channel import RequestAuth
from swarm_medic.nodes.endpoint import NodeEndpoint
from swarm_medic.nodes.rounds import Prober
from swarm_medic.pipeline import registry
from swarm_medic.pipeline.scan import Medic
from swarm_medic.swarm.fake import FakeEngine
from swarm_medic.telemetry.journal import Journal
from swarm_medic.telemetry.metrics import Metrics
from swarm_medic.web.http import Server, serve
from tests.pipeline.harness import ScriptedAgent, world
from tests.pipeline.support import Logs

KEY = "a-shared-secret-of-the-test-swarm-0123456789"


class Answering(NodeAgent):
    """node2's agent: every target answers."""

    def __init__(self) -> None:
        super().__init__(FakeEngine(node_id="n2"), "n2")

    def probe(self, plan: ProbePlan) -> ProbeAnswer:
        return ProbeAnswer(
            node="n2",
            tcp=(TcpResult(True),) * len(plan.tcp),
            dns=(DnsResult(None, "not asked"),) * len(plan.dns),
            vip=(TcpResult(True),) * len(plan.vip),
        )


@pytest.fixture
def node2(request: pytest.FixtureRequest) -> Iterator[int]:
    """node2's instance on 127.0.0.1, its clock `request.param` seconds ahead of ours (what it
    says in its answers, and judges requests by). -> its port."""
    ahead: float = request.param

    def wall() -> float:
        return time.time() + ahead

    journal = Journal(Metrics(CollectorRegistry()), structlog.get_logger("node2"))
    endpoint = NodeEndpoint(Answering(), RequestAuth(KEY.encode(), clock=wall), journal, wall=wall)
    server: Server = serve("127.0.0.1", 0, CollectorRegistry(), lambda: (True, {}), endpoint.handle)
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def brain(fake: FakeEngine, port: int) -> tuple[Medic, Logs]:
    settings = Settings(
        probes=ProbeSettings(secret=KEY, probe_interval=1.0, probe_grace=0.0),
        http=HttpSettings(http_port=port),
    )
    logs = Logs()
    medic = Medic(
        fake,
        settings,
        registry.load([registry.builtin_dir()]),
        Journal(Metrics(CollectorRegistry()), logs.logger),
        prober=Prober(settings.probes, ScriptedAgent(fake), port=port, scope=settings.safety),
    )
    return medic, logs


def clock_findings(logs: Logs) -> list[dict[str, object]]:
    return [f for f in logs.named("finding") if f["runbook"] == "clock-skew"]


@pytest.mark.parametrize("node2", [5.0], indirect=True)
def test_a_node_whose_clock_runs_ahead_is_found_and_named(node2: int) -> None:
    fake, _, _ = world()
    medic, logs = brain(fake, node2)
    medic.scan()  # the round measures; the runbooks read it in the same scan
    (found,) = clock_findings(logs)
    assert found["nodes"] == ["n2"]
    assert str(found["summary"]).startswith("node2 (127.0.0.1, worker) is 5.0")
    assert "ahead of the brain's clock" in str(found["summary"])
    clock = medic.reach.clocks["n2"]
    assert abs(clock.offset - 5.0) <= clock.error + 1e-3


@pytest.mark.parametrize("node2", [0.0], indirect=True)
def test_clocks_that_agree_say_nothing(node2: int) -> None:
    fake, _, _ = world()
    medic, logs = brain(fake, node2)
    medic.scan()
    assert "n2" in medic.reach.clocks  # measured, and quiet
    assert clock_findings(logs) == []


@pytest.mark.parametrize("node2", [-90.0], indirect=True)
def test_a_node_that_refuses_the_channel_for_its_clock_is_named_with_the_cause(node2: int) -> None:
    fake, _, _ = world()
    medic, logs = brain(fake, node2)
    medic.scan()
    (unprobed,) = logs.named("node not probed this round")
    assert "HTTP 401" in str(unprobed["error"])
    (found,) = clock_findings(logs)
    assert found["cause"] == "refused"
    assert (
        "refuses the medic's signed requests as 90.0 s off: its clock is about 90.0 s behind"
        in str(found["summary"])
    )
    assert "clock skew is the likely cause of the refusals" in str(found["summary"])
