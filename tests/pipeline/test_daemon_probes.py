"""The brain's probe rounds inside Medic.scan, on the fake engine with a scripted agent; and
a hostile "node" on 127.0.0.1 that the brain must survive and never believe."""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from swarm_medic.core.ledger import Ledger
from swarm_medic.core.protocol import DnsResult, ProbeAnswer, TcpResult, encode
from swarm_medic.core.settings import HttpSettings, ProbeSettings, SafetySettings, Settings
from swarm_medic.nodes.channel import seal
from swarm_medic.nodes.rounds import Prober
from swarm_medic.pipeline import registry
from swarm_medic.pipeline.scan import Medic
from swarm_medic.swarm.fake import FakeEngine
from swarm_medic.telemetry.journal import Journal
from swarm_medic.telemetry.metrics import Metrics
from tests.builders import NOW as T0
from tests.pipeline.harness import NET, ScriptedAgent, world
from tests.pipeline.support import Logs

SETTINGS = Settings(
    safety=SafetySettings(verify_hold=0.0),
    probes=ProbeSettings(probe_interval=1.0, probe_failures=2, probe_grace=0.0),
)


def medic(
    fake: FakeEngine, settings: Settings = SETTINGS
) -> tuple[Medic, ScriptedAgent, Logs, CollectorRegistry]:
    agent = ScriptedAgent(fake)
    logs, prom = Logs(), CollectorRegistry()
    now = [T0]
    m = Medic(
        fake,
        settings,
        registry.load([registry.builtin_dir()]),
        Journal(Metrics(prom), logs.logger),
        clock=lambda: now[0],
        prober=Prober(
            settings.probes,
            agent,
            port=settings.http.http_port,
            scope=settings.safety,
            clock=lambda: now[0],
        ),
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
    assert {p.task for p in agent.plans[0].tcp} == {t1, t2, t3}
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
    claims = Ledger.from_doc(fake.read_ledger(Settings().safety.ledger_name)).services
    assert dict(claims) == {}  # the incident is recorded, nothing claimed
    assert (
        prom.get_sample_value(
            "swarm_medic_decisions_total",
            {"runbook": "unreachable-endpoint", "verdict": "skip", "reason": "node_unreachable"},
        )
        == 1
    )
    assert prom.get_sample_value("swarm_medic_probe_rounds_total") == 3
    # per vantage node: n1 probed the three tasks, one of them (t3) failing
    pairs = {"node": "node1"}
    assert prom.get_sample_value("swarm_medic_probe_pairs", {**pairs, "state": "ok"}) == 2
    assert prom.get_sample_value("swarm_medic_probe_pairs", {**pairs, "state": "failing"}) == 1


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


# --- a hostile node ---------------------------------------------------------------------------

KEY = "s3cret"


class _Server(ThreadingHTTPServer):
    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)  # no getfqdn(): no DNS query from a test


class Hostile:
    """Whatever answers on n2's port: never a genuine node. `victim` is the task it claims
    is unreachable from n2 while everything else answers."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.victim = ""
        self.asked = 0
        hostile = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hostile.asked += 1
                if hostile.mode == "garbage":
                    self.wfile.write(b"\x00\xff\x13 not HTTP at all\r\n\r\n")
                    return
                if hostile.mode == "bad-dns":
                    self._send(json.dumps({"dns": [{"ips": 1}]}).encode())
                    return
                plan = json.loads(body)
                targets = plan.get("tcp") or []
                if hostile.mode == "forged-plain":  # the old dict answer, not sealed
                    tcp = [
                        {**p, "ok": p["task"] != hostile.victim, "error": "timeout"}
                        for p in targets
                    ]
                    forged = {"node": "n2", "ipvs": True, "tcp": tcp, "containers": []}
                    self._send(json.dumps(forged).encode())
                    return
                # forged-sealed: the protocol's own answer, sealed with a guessed secret
                answer = ProbeAnswer(
                    node="n2",
                    tcp=tuple(TcpResult(p["task"] != hostile.victim, "timeout") for p in targets),
                    dns=(DnsResult(None),) * len(plan.get("dns") or []),
                    vip=(TcpResult(True),) * len(plan.get("vip") or []),
                )
                nonce = self.headers.get("X-Medic-Nonce") or ""
                env = seal(b"guessed", self.path, nonce, "n2", encode(answer))
                self._send(json.dumps(env).encode())

            def _send(self, body: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        ).start()


@pytest.fixture(params=["garbage", "bad-dns", "forged-plain", "forged-sealed"])
def hostile(request: pytest.FixtureRequest) -> Iterator[Hostile]:
    h = Hostile(str(request.param))
    yield h
    h.server.shutdown()
    h.server.server_close()


def test_a_hostile_node_is_that_nodes_failure_and_the_scan_goes_on(hostile: Hostile) -> None:
    fake, _, (t1, _, _) = world()
    hostile.victim = t1  # on n1: believed, the forgery would get it replaced by n1's hand
    fake.add_container(t1)
    paused = fake.add_service("api", labels={"swarm-medic.enable": "true"}, previous_spec=True)
    fake.pause_update(paused)  # the new spec failed by itself: a rollback is due
    settings = Settings(
        safety=SafetySettings(verify_hold=0.0),
        probes=ProbeSettings(probe_interval=1.0, probe_failures=2, probe_grace=0.0, secret=KEY),
        http=HttpSettings(http_port=hostile.port),
    )
    m, _, logs, _ = medic(fake, settings)
    for i in range(4):
        scan(m, T0 + 2 * i)

    assert hostile.asked == 4  # asked every round, never believed
    assert not logs.named("scan crashed; the next scan runs as scheduled")
    assert m.state.last_error == ""
    # the paused update elsewhere is still rolled back
    assert [(verb, sid) for verb, sid, _ in fake.writes] == [("rollback", paused)]
    # the hostile node is reported (once) as failing, its answer is no data
    assert m.prober is not None
    assert set(m.prober.failures) == {"n2"}
    (failed,) = logs.named("node not probed this round")
    assert failed["node"] == "node2"
    assert "n2" not in m.reach.containers
    assert not any(node == "n2" for node, _ in m.reach.tcp)
    # and no task is replaced on the strength of its forgery
    assert fake.removed == []
    assert not logs.starting("action: replace_task")
    assert not [f for f in logs.named("finding") if f["runbook"] == "unreachable-endpoint"]
