"""Published ports through the whole daemon on the fake engine, with the real agent of the
brain's own node connecting for real to loopback ports (the fake node's address is 127.0.0.1):
a port nobody answers on becomes one published-port incident; one that answers, none."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from swarm_medic.core.settings import Settings
from swarm_medic.nodes.agent import NodeAgent
from swarm_medic.nodes.rounds import Prober
from swarm_medic.pipeline import registry
from swarm_medic.pipeline.scan import Medic
from swarm_medic.swarm.fake import FakeEngine
from swarm_medic.telemetry.journal import Journal
from swarm_medic.telemetry.metrics import Metrics
from tests.builders import NOW as T0
from tests.netkit import closed_port
from tests.pipeline.support import Logs

SETTINGS = Settings(probe_interval=1.0, probe_failures=2, probe_grace=0.0, probe_timeout=1.0)


@pytest.fixture
def listening() -> Iterator[int]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    yield s.getsockname()[1]
    s.close()


def run(port: int, mode: str, scans: int) -> tuple[Logs, Medic]:
    fake = FakeEngine(node_id="n1", now=T0)
    fake.add_node("node1", node_id="n1", leader=True)  # Status.Addr 127.0.0.1
    sid = fake.add_service(
        "web",
        replicas=1,
        labels={"swarm-medic.enable": "true"},
        spec_extra={"EndpointSpec": {"Ports": [{"TargetPort": 80, "PublishedPort": port}]}},
        endpoint={
            "Ports": [
                {"Protocol": "tcp", "TargetPort": 80, "PublishedPort": port, "PublishMode": mode}
            ]
        },
    )
    fake.add_task(sid, node_id="n1", since=T0 - 100)
    logs, now = Logs(), [T0]
    m = Medic(
        fake,
        SETTINGS,
        registry.load([registry.builtin_dir()]),
        Journal(Metrics(CollectorRegistry()), logs.logger),
        clock=lambda: now[0],
        prober=Prober(SETTINGS, NodeAgent(fake, "n1", timeout=1.0), clock=lambda: now[0]),
    )
    for i in range(scans):
        now[0] = T0 + 2 * i
        m.scan()
    return logs, m


def test_a_host_port_that_refuses_on_the_nodes_address_is_one_incident() -> None:
    port = closed_port()
    logs, m = run(port, "host", 3)
    assert m.reach.ports[("n1", "127.0.0.1", port)].fails == 3
    (finding,) = logs.named("finding")
    assert finding["runbook"] == "published-port"
    assert finding["cause"] == "host-mapping"
    assert f"published port {port}/tcp (host mode) of web" in finding["summary"]
    assert "at 127.0.0.1 (node1) from node1 (refused)" in finding["summary"]
    assert logs.starting("action:") == []


def test_a_port_that_answers_is_no_incident(listening: int) -> None:
    logs, m = run(listening, "host", 3)
    assert m.reach.ports[("n1", "127.0.0.1", listening)].ok
    assert logs.named("finding") == []


def test_ingress_on_this_machine_names_the_missing_ipvs_when_there_is_none() -> None:
    port = closed_port()
    logs, m = run(port, "ingress", 3)
    (finding,) = logs.named("finding")
    if m.reach.ipvs["n1"]:  # a kernel with IPVS: the mesh's rules, not the kernel
        assert finding["cause"] == "ingress-rules"
    else:
        assert finding["cause"] == "no-ipvs"
        assert finding["diagnosis"].startswith("node node1 has no IPVS (no /proc/net/ip_vs)")
