"""swarm-certificates and disk-pressure inside Medic.scan: node2's instance (a real
NodeEndpoint behind the HTTP port on 127.0.0.1) reads its certificate and measures its data
root for real (a folder of this test: the certificate a PEM made with openssl, the filesystem
the test's own), says them in its signed answer, and the brain names what is wrong; the
same node with time and space left is quiet."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from prometheus_client import CollectorRegistry

from swarm_medic.core.protocol import DnsResult, ProbeAnswer, ProbePlan, TcpResult
from swarm_medic.core.settings import HttpSettings, ProbeSettings, Settings
from swarm_medic.nodes.agent import NodeAgent
from swarm_medic.nodes.channel import RequestAuth
from swarm_medic.nodes.endpoint import NodeEndpoint
from swarm_medic.nodes.health import Health
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
PEM = Path(__file__).parents[1] / "fixtures" / "certs" / "node-utc.pem"
NOT_AFTER = 1_804_441_442.0  # the fixture's notAfter


class Answering(NodeAgent):
    """node2's agent: every target answers; its health is measured as a real node's is."""

    def __init__(self, root: Path) -> None:
        super().__init__(FakeEngine(node_id="n2"), "n2", health=Health(lambda: str(root)))

    def probe(self, plan: ProbePlan) -> ProbeAnswer:
        errors: list[str] = []
        return ProbeAnswer(
            node="n2",
            tcp=(TcpResult(True),) * len(plan.tcp),
            dns=(DnsResult(None, "not asked"),) * len(plan.dns),
            vip=(TcpResult(True),) * len(plan.vip),
            errors=tuple(errors),
            cert_not_after=self.health.cert_not_after(errors),
            disks=self.health.disks(errors),
        )


@pytest.fixture
def node2(tmp_path: Path) -> Iterator[int]:
    """node2's instance on 127.0.0.1, its data root a folder holding its certificate."""
    certs = tmp_path / "swarm" / "certificates"
    certs.mkdir(parents=True)
    shutil.copy(PEM, certs / "swarm-node.crt")
    journal = Journal(Metrics(CollectorRegistry()), structlog.get_logger("node2"))
    endpoint = NodeEndpoint(Answering(tmp_path), RequestAuth(KEY.encode()), journal)
    server: Server = serve("127.0.0.1", 0, CollectorRegistry(), lambda: (True, {}), endpoint.handle)
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def brain(fake: FakeEngine, port: int, *flags: str) -> tuple[Medic, Logs]:
    settings = Settings(
        probes=ProbeSettings(secret=KEY, probe_interval=1.0, probe_grace=0.0),
        http=HttpSettings(http_port=port),
    )
    reg = registry.load([registry.builtin_dir()])
    reg.configure(list(flags))
    logs = Logs()
    medic = Medic(
        fake,
        settings,
        reg,
        Journal(Metrics(CollectorRegistry()), logs.logger),
        prober=Prober(settings.probes, ScriptedAgent(fake), port=port, scope=settings.safety),
    )
    return medic, logs


def found(logs: Logs, runbook: str) -> list[dict[str, object]]:
    return [f for f in logs.named("finding") if f["runbook"] == runbook]


def test_a_node_says_its_certificate_and_disk_and_the_brain_keeps_them(node2: int) -> None:
    fake, _, _ = world()
    medic, logs = brain(fake, node2)
    medic.scan()
    said = medic.reach.health["n2"]
    assert said.cert_not_after == NOT_AFTER
    (root,) = said.disks
    assert root.what == "data-root" and root.total > 0
    # the fixture has months left, and the disk is the test machine's: quiet by default
    # (unless this machine's disk is itself over 90%)
    assert found(logs, "swarm-certificates") == []


def test_a_certificate_with_less_than_the_threshold_left_is_named(node2: int) -> None:
    fake, _, _ = world()
    left = NOT_AFTER - time.time()
    medic, logs = brain(fake, node2, f"swarm-certificates.warn={int(left // 86400) + 2}d")
    medic.scan()
    (f,) = found(logs, "swarm-certificates")
    assert f["nodes"] == ["n2"] and f["cause"] == "not-renewed"
    assert "the swarm certificate of node2 (127.0.0.1, worker) was not renewed in time" in str(
        f["summary"]
    )


def test_a_data_root_over_the_high_watermark_is_named(node2: int) -> None:
    fake, _, _ = world()
    medic, logs = brain(fake, node2, "disk-pressure.high=1", "disk-pressure.low=0")
    medic.scan()
    (f,) = found(logs, "disk-pressure")
    assert f["nodes"] == ["n2"] and f["cause"] == "disk-pressure"
    assert "the Docker data root " in str(f["summary"]) and "node2" in str(f["summary"])
