"""A rolling upgrade, in one process (issue 17, section 2; issue 20, section 2): a brain and a
node of different releases talk over the HTTP port on 127.0.0.1, both ways, and keep working.

The previous release (protocol 2, main at 89637ef, before standing probe duties) is played by
its own code, frozen in tests/fixtures/protocol2: its endpoint behind this tree's HTTP port (the
server is not wire format), its `channel.call` and decoder for an older brain; and by the bytes
it sent, replayed as captured. The release before it (protocol 1, tests/fixtures/protocol1) is
two releases back: refused. The newer brain is Medic with its Prober on the fake engine (the
probe world of tests/pipeline/harness.py: n1 is the brain's own node, n2 is on 127.0.0.1).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from swarm_medic.core.protocol import (
    ACT_PATH,
    PROBE_PATH,
    PROTOCOL,
    ActAnswer,
    ActRequest,
    DnsResult,
    ProbeAnswer,
    ProbePlan,
    TcpResult,
    encode,
)
from swarm_medic.core.settings import HttpSettings, ProbeSettings, SafetySettings, Settings
from swarm_medic.nodes.agent import NodeAgent
from swarm_medic.nodes.channel import H_NONCE, RequestAuth, seal, sign
from swarm_medic.nodes.endpoint import Answer, NodeEndpoint
from swarm_medic.nodes.rounds import Prober
from swarm_medic.pipeline import registry
from swarm_medic.pipeline.scan import Medic
from swarm_medic.swarm.fake import FakeEngine
from swarm_medic.telemetry.journal import Journal
from swarm_medic.telemetry.metrics import Metrics
from swarm_medic.web.http import Server, serve
from tests.builders import NOW as T0
from tests.fixtures.protocol1 import channel as channel1
from tests.fixtures.protocol1 import protocol as protocol1
from tests.fixtures.protocol2 import channel as channel2
from tests.fixtures.protocol2 import endpoint as endpoint2
from tests.fixtures.protocol2 import protocol as protocol2
from tests.pipeline.harness import ScriptedAgent, world
from tests.pipeline.support import Logs, sample

KEY = "rolling-s3cret"
OLDER = "peer speaks an older protocol"
REFUSED = "swarm_medic_channel_refused_total"
DOWNGRADED = "swarm_medic_channel_downgraded_total"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "protocol2"

Control = Callable[[str, Mapping[str, str], bytes, str], Answer]


class Instance:
    """One node's instance as its release runs it: an endpoint behind the HTTP port, with its
    own journal and metrics. `control` may be swapped: the node is upgraded or rolled back."""

    def __init__(self, now: list[float]) -> None:
        self.now = now
        self.logs = Logs()
        self.prom = CollectorRegistry()
        self.journal = Journal(Metrics(self.prom), self.logs.logger)
        self.control: Control = lambda *a: (503, {"error": "not started"})
        self.server: Server = serve(
            "127.0.0.1",
            0,
            CollectorRegistry(),
            lambda: (True, {}),
            self._control,
            journal=self.journal,
        )
        self.port = int(self.server.server_address[1])
        self.acted: list[str] = []  # tasks whose container its hand was asked to retire
        self.dead: set[str] = set()  # tasks that do not answer from this node
        self.probed: list[int] = []  # tcp targets probed, request by request

    def speaks(self, protocol: int, node: str = "n2", key: str = KEY) -> None:
        """Runs the release that speaks `protocol` (2: the frozen previous release)."""
        if protocol == 2:
            auth2 = channel2.RequestAuth(key.encode(), clock=lambda: self.now[0])
            self.control = endpoint2.NodeEndpoint(OldAgent(node, self), auth2, self.journal).handle
        else:
            auth = RequestAuth(key.encode(), clock=lambda: self.now[0])
            agent = NewAgent(node, self)
            self.control = NodeEndpoint(agent, auth, self.journal, protocol=protocol).handle

    def _control(self, path: str, headers: Mapping[str, str], body: bytes, peer: str) -> Answer:
        return self.control(path, headers, body, peer)  # the release running now

    def refused(self) -> float:
        return sample(self.prom, REFUSED)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class OldAgent:
    """A node's agent answering in protocol 2's own messages: every target answers."""

    def __init__(self, node: str, instance: Instance) -> None:
        self.node_id = node
        self.instance = instance

    def probe(self, plan: protocol2.ProbePlan) -> protocol2.ProbeAnswer:
        ok = protocol2.TcpResult(True, "", 0.3)
        self.instance.probed.append(len(plan.tcp))
        return protocol2.ProbeAnswer(
            node=self.node_id,
            ipvs=True,
            tcp=tuple(
                protocol2.TcpResult(False, "timeout") if p.task in self.instance.dead else ok
                for p in plan.tcp
            ),
            dns=(protocol2.DnsResult(None, "not asked"),) * len(plan.dns),
            vip=(ok,) * len(plan.vip),
            ports=(ok,) * len(plan.ports),
        )

    def act(self, request: protocol2.ActRequest) -> protocol2.ActAnswer:
        self.instance.acted.append(request.task)
        return protocol2.ActAnswer(ok=True, container="c" * 64, task=request.task, node="n2")


class NewAgent(NodeAgent):
    """This tree's agent with the same answers: it scripts the probes (`answer`), its duty is
    the real agent's."""

    def __init__(self, node: str, instance: Instance) -> None:
        super().__init__(FakeEngine(node_id=node), node)
        self.instance = instance

    def answer(self, plan: ProbePlan) -> ProbeAnswer:
        ok = TcpResult(True, "", 0.3)
        self.instance.probed.append(len(plan.tcp))
        return ProbeAnswer(
            node=self.node_id,
            ipvs=True,
            tcp=tuple(
                TcpResult(False, "timeout") if p.task in self.instance.dead else ok
                for p in plan.tcp
            ),
            dns=(DnsResult(None, "not asked"),) * len(plan.dns),
            vip=(ok,) * len(plan.vip),
            ports=(ok,) * len(plan.ports),
        )

    def act(self, request: ActRequest) -> ActAnswer:
        self.instance.acted.append(request.task)
        return ActAnswer(ok=True, container="c" * 64, task=request.task, node=self.node_id)


@pytest.fixture
def node() -> Iterator[Instance]:
    inst = Instance([T0])
    yield inst
    inst.close()


class Brain:
    """This tree's brain: Medic on the fake swarm, its Prober wired to its journal as App does."""

    def __init__(self, node: Instance) -> None:
        self.fake, self.sid, self.tids = world()
        self.fake.add_container(self.tids[2])  # t3's, on n2
        self.agent = ScriptedAgent(self.fake)
        self.logs, self.prom = Logs(), CollectorRegistry()
        self.now = node.now
        settings = Settings(
            safety=SafetySettings(verify_hold=0.0),
            probes=ProbeSettings(probe_interval=1.0, probe_failures=2, probe_grace=0.0, secret=KEY),
            http=HttpSettings(http_port=node.port),
        )
        journal = Journal(Metrics(self.prom), self.logs.logger)
        clock = lambda: self.now[0]  # noqa: E731 - one clock for the brain and the nodes
        self.prober = Prober(
            settings.probes,
            self.agent,
            port=settings.http.http_port,
            scope=settings.safety,
            clock=clock,
            journal=journal,
        )
        self.medic = Medic(
            self.fake,
            settings,
            registry.load([registry.builtin_dir()]),
            journal,
            clock=clock,
            prober=self.prober,
        )

    def scans(self, n: int) -> None:
        for _ in range(n):
            self.now[0] += 2
            self.medic.scan()


# --- a newer brain and a node of the previous release ------------------------------------------


def test_a_newer_brain_probes_and_heals_through_a_node_of_the_previous_release(
    node: Instance,
) -> None:
    node.speaks(2)
    brain = Brain(node)
    brain.scans(3)
    assert brain.prober.failures == {}
    assert "n2" in brain.prober.answered
    assert brain.prober.speaks.get("n2") == 2
    # n2, not heard yet, was sent a duty, which protocol 2 reads past: no tcp target, no tcp
    # result, no opinion; once heard speaking 2 it gets positional plans
    assert node.probed == [0, 3, 3]
    t3 = brain.tids[2]
    assert brain.medic.reach.tcp[("n2", t3)].ok  # n2's answers are data

    # a task on n2 stops answering: found, and retired by the old node's hand, once
    brain.agent.dead.add(t3)
    brain.scans(6)
    assert node.acted == [t3]
    assert len(brain.logs.named("action: replace_task done")) == 1
    assert [f["tasks"] for f in brain.logs.named("finding")] == [[t3]]

    # the older node was said once, over nine rounds; every exchange with it counted
    (older,) = brain.logs.named(OLDER)
    assert (older["node"], older["node_id"], older["role"]) == ("node2", "n2", "node")
    assert (older["theirs"], older["ours"], older["before"]) == (2, PROTOCOL, None)
    assert sample(brain.prom, DOWNGRADED) == 9 + 1  # nine rounds and one hand
    # and the old node refused nothing, and served every plan
    assert node.refused() == 0
    assert not node.logs.named("refused brain-to-node request")
    assert sample(node.prom, "swarm_medic_probe_plans_served_total") == 9


def test_a_node_upgraded_and_rolled_back_under_the_brain_is_said_once_each_way(
    node: Instance,
) -> None:
    node.speaks(2)
    brain = Brain(node)
    brain.scans(4)
    node.speaks(PROTOCOL)  # the update reached n2
    brain.scans(4)
    node.speaks(2)  # docker service rollback
    brain.scans(4)
    assert brain.prober.failures == {}
    said = [
        (e["event"], e["before"], e["theirs"])
        for e in brain.logs.entries
        if str(e["event"]).startswith("peer speaks")
    ]
    assert said == [
        (OLDER, None, 2),
        ("peer speaks our protocol", 2, PROTOCOL),
        (OLDER, PROTOCOL, 2),
    ]
    assert sample(brain.prom, DOWNGRADED) == 8
    assert node.refused() == 0
    # positional while it spoke 2, a duty once heard speaking 3 (its list named first, then
    # sent, as it held none), positional again once heard speaking 2 after a duty it read past
    spoke_2, spoke_3, spoke_2_again = node.probed[:4], node.probed[4:8], node.probed[8:]
    assert (spoke_2, spoke_3, spoke_2_again) == ([0, 3, 3, 3], [3, 0, 3, 3], [0, 3, 3, 3])
    assert all(brain.medic.reach.tcp[("n2", t)].ok for t in brain.tids)


def test_a_brain_and_a_node_of_this_tree_keep_a_standing_duty(node: Instance) -> None:
    node.speaks(PROTOCOL)
    brain = Brain(node)
    brain.scans(3)
    assert brain.prober.failures == {}
    assert node.probed == [0, 3, 3]  # named, then sent, then named: the node kept it
    assert all(brain.medic.reach.tcp[("n2", t)].ok for t in brain.tids)
    # the round's line says the lists' targets it sent, and within how many rounds every
    # pair is probed: 60 s of --probe-interval (1 s) at first, then of the rounds' spacing (2 s)
    said = [(r["sent"], r["cover"]) for r in brain.logs.named("probe round")]
    assert said == [(0, 60), (3, 30), (0, 30)]

    # t1, on the brain's own node, stops answering from n2 alone: n2's own history counts
    # its failures in a row, and its state says so until the finding
    t1 = brain.tids[0]
    node.dead.add(t1)
    brain.scans(2)
    cell = brain.medic.reach.tcp[("n2", t1)]
    assert (cell.ok, cell.fails, cell.error) == (False, 2, "timeout")
    (finding,) = [f for f in brain.logs.named("finding") if f["runbook"] == "unreachable-endpoint"]
    assert finding["tasks"] == [t1]
    assert "unreachable from node2" in finding["summary"]
    assert sample(brain.prom, DOWNGRADED) == 0


# --- an older brain and a node of this tree ---------------------------------------------------


def old_brain_probe(port: int, plan: protocol2.ProbePlan) -> protocol2.ProbeAnswer:
    """What the previous release does to ask a node (its rounds._ask and _probe): call, decode,
    check the node and the alignment, with its own frozen code."""
    raw = channel2.call(
        f"http://127.0.0.1:{port}",
        PROBE_PATH,
        protocol2.encode(plan),
        KEY.encode(),
        node="n2",
        timeout=5,
        clock=lambda: T0,
    )
    theirs, answer = protocol2.spoken(raw, protocol2.ProbeAnswer, limit=protocol2.MAX_ANSWER)
    assert theirs == PROTOCOL
    assert answer.node == "n2"
    protocol2.check_aligned(plan, answer)
    return answer


PLAN2 = protocol2.ProbePlan(
    tcp=(protocol2.TcpTarget(net="net", task="t", service="s", node="n2", ip="10.0.1.2", port=80),),
    vip=(protocol2.VipTarget(net="net", service="s", ip="10.0.1.100", port=80),),
    ports=(protocol2.PortTarget(ip="192.168.0.2", port=8080),),
)
PLAN1 = protocol1.ProbePlan(
    tcp=(protocol1.TcpTarget(net="net", task="t", service="s", node="n2", ip="10.0.1.2", port=80),),
)


def test_an_older_brain_probes_and_acts_through_a_node_of_this_tree(node: Instance) -> None:
    node.speaks(PROTOCOL)
    for _ in range(5):
        answer = old_brain_probe(node.port, PLAN2)
        assert [r.ok for r in answer.tcp + answer.vip + answer.ports] == [True] * 3
    act = protocol2.ActRequest(kind="remove_task_container", task="t", service="s")
    raw = channel2.call(
        f"http://127.0.0.1:{node.port}",
        ACT_PATH,
        protocol2.encode(act),
        KEY.encode(),
        node="n2",
        timeout=5,
        clock=lambda: T0,
    )
    done = protocol2.decode(raw, protocol2.ActAnswer, limit=protocol2.MAX_ANSWER)
    assert done.ok and done.task == "t"
    assert node.acted == ["t"]

    # the node said the older brain once, counted every exchange, refused none
    (older,) = node.logs.named(OLDER)
    assert (older["peer"], older["role"], older["theirs"], older["ours"]) == (
        "127.0.0.1",
        "brain",
        2,
        PROTOCOL,
    )
    assert sample(node.prom, DOWNGRADED) == 6
    assert node.refused() == 0


def http_exchange(port: int, request: bytes) -> tuple[int, bytes]:
    """Sends raw request bytes; the status and body of the answer."""
    chunks = []
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        try:
            s.sendall(request)
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:  # refused and closed while the request was still sent
            pass
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    return (int(head.split()[1]) if head else 0), body


@pytest.mark.parametrize("name", ["probe", "act"])
def test_the_captured_requests_of_the_previous_release_are_answered_as_it_reads_them(
    name: str, node: Instance
) -> None:
    meta = json.loads((FIXTURES / "exchanges.json").read_text())
    node.now[0] = meta["signed_at"]
    node.speaks(PROTOCOL, node=meta["node"], key=meta["secret"])
    request = (FIXTURES / f"{name}.request").read_bytes()
    nonce = request.split(b"X-Medic-Nonce: ")[1].split(b"\r\n")[0].decode()
    status, body = http_exchange(node.port, request)
    assert status == 200, body
    path = PROBE_PATH if name == "probe" else ACT_PATH
    # the older brain opens the seal and decodes the answer with its own code
    opened = channel2.open_answer(meta["secret"].encode(), path, nonce, meta["node"], body)
    if name == "probe":
        plan = protocol2.decode(request.partition(b"\r\n\r\n")[2], protocol2.ProbePlan, limit=10**6)
        answer = protocol2.decode(opened, protocol2.ProbeAnswer, limit=protocol2.MAX_ANSWER)
        protocol2.check_aligned(plan, answer)
    else:
        done = protocol2.decode(opened, protocol2.ActAnswer, limit=protocol2.MAX_ANSWER)
        assert done.ok
    assert json.loads(opened)["protocol"] == PROTOCOL  # said, and skipped by the older brain

    # the same bytes again are a replay, refused as protocol 1 refused them
    status, body = http_exchange(node.port, request)
    assert (status, body) == (401, b'{"error": "refused"}')
    assert node.refused() == 1


# --- one release further: refused with both versions named ------------------------------------


def test_a_node_two_releases_ahead_refuses_the_brain_naming_both(node: Instance) -> None:
    node.speaks(PROTOCOL + 2)
    brain = Brain(node)
    brain.scans(5)
    why = brain.prober.failures["n2"]
    assert "HTTP 400" in why
    assert f"speaks protocol {PROTOCOL};" in why
    assert f"this instance speaks {PROTOCOL + 2} and reads {PROTOCOL + 1} to" in why
    # said once on each side, not every round
    assert len(brain.logs.named("node not probed this round")) == 1
    (refused,) = node.logs.named("refused a peer's protocol")
    assert (refused["theirs"], refused["ours"], refused["peer"]) == (
        PROTOCOL,
        PROTOCOL + 2,
        "127.0.0.1",
    )
    assert sample(node.prom, "swarm_medic_probe_plans_served_total") == 0


def test_a_node_one_release_ahead_is_read(node: Instance) -> None:
    node.speaks(PROTOCOL + 1)
    brain = Brain(node)
    brain.scans(5)
    assert brain.prober.failures == {}
    (newer,) = brain.logs.named("peer speaks a newer protocol")
    assert (newer["theirs"], newer["ours"]) == (PROTOCOL + 1, PROTOCOL)
    assert sample(brain.prom, DOWNGRADED) == 0
    # to the newer node, this brain is the older peer: said once there, counted there
    (older,) = node.logs.named(OLDER)
    assert (older["theirs"], older["ours"], older["role"]) == (PROTOCOL, PROTOCOL + 1, "brain")
    assert sample(node.prom, DOWNGRADED) == 5


def test_an_answer_two_releases_ahead_is_refused_naming_both(node: Instance) -> None:
    """A node that holds the secret and seals its answer, but speaks a far protocol."""
    auth = RequestAuth(KEY.encode(), clock=lambda: node.now[0])

    def far(path: str, headers: Mapping[str, str], body: bytes, peer: str) -> Answer:
        nonce = auth.authenticate("POST", path, headers, body, node="n2")
        answer = ProbeAnswer(node="n2", tcp=(TcpResult(True),), vip=(TcpResult(True),))
        return 200, seal(KEY.encode(), path, nonce, "n2", encode(answer, speaks=PROTOCOL + 2))

    node.control = far
    brain = Brain(node)
    brain.scans(3)
    why = brain.prober.failures["n2"]
    assert f"ProbeAnswer speaks protocol {PROTOCOL + 2}; this instance speaks {PROTOCOL}" in why
    assert "n2" not in brain.prober.answered
    assert brain.prober.speaks.get("n2") is None  # a refused answer teaches nothing
    assert not any(vantage == "n2" for vantage, _ in brain.medic.reach.tcp)


def test_an_older_brain_is_refused_by_a_node_two_releases_ahead(node: Instance) -> None:
    node.speaks(PROTOCOL)  # reads 2 to 4: protocol 1, the release before versions, is too far
    with pytest.raises(channel1.ChannelError, match="speaks protocol 1; this instance speaks 3"):
        channel1.call(
            f"http://127.0.0.1:{node.port}",
            PROBE_PATH,
            protocol1.encode(PLAN1),
            KEY.encode(),
            node="n2",
            timeout=5,
            clock=lambda: T0,
        )
    assert node.refused() == 0  # a version, not a forgery: no refusal of the signature


# --- hostile input, in both formats, over the port ---------------------------------------------


def signed(body: bytes, *, path: str = PROBE_PATH, key: str = KEY) -> bytes:
    headers = sign(key.encode(), "POST", path, body, T0, node="n2")
    lines = [f"POST {path} HTTP/1.1", "Host: n2", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    assert H_NONCE in headers
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


FORMATS = {2: protocol2.encode(PLAN2), 3: b'{"protocol":3,' + protocol2.encode(PLAN2, speaks=1)[1:]}


@pytest.mark.parametrize("speaks", [2, 3])
def test_a_tampered_request_is_refused_in_both_formats(speaks: int, node: Instance) -> None:
    node.speaks(PROTOCOL)
    good = signed(FORMATS[speaks])
    status, _ = http_exchange(node.port, good.replace(b"10.0.1.2", b"10.0.1.3"))
    assert status == 401
    status, _ = http_exchange(node.port, signed(FORMATS[speaks], key="guessed"))
    assert status == 401
    # the version is signed like the rest: changing it breaks the signature
    other = b'"protocol":%d' % (5 - speaks)
    status, _ = http_exchange(node.port, good.replace(b'"protocol":%d' % speaks, other))
    assert status == 401
    assert node.refused() == 3
    assert node.acted == []
    assert sample(node.prom, "swarm_medic_probe_plans_served_total") == 0


@pytest.mark.parametrize("speaks", [2, 3])
def test_deep_nesting_is_refused_in_both_formats(speaks: int, node: Instance) -> None:
    node.speaks(PROTOCOL)
    deep = b"[" * 50_000 + b"]" * 50_000
    for body in (
        b'{"x-unknown":' + deep + b"," + FORMATS[speaks][1:],
        b'{"protocol":' + deep + b"," + protocol2.encode(PLAN2, speaks=1)[1:],
    ):
        status, answer = http_exchange(node.port, signed(body))
        assert status == 400, answer
        assert b"bad request" in answer
    assert sample(node.prom, "swarm_medic_probe_plans_served_total") == 0


def test_an_oversize_request_is_refused_whatever_it_says(node: Instance) -> None:
    node.speaks(PROTOCOL)
    for body in (FORMATS[2], FORMATS[3]):
        big = body[:-1] + b',"pad":"' + b"x" * (1 << 20) + b'"}'
        status, _ = http_exchange(node.port, signed(big))
        assert status in (0, 413)  # the port's own cap, before any handler (0: cut off)
    assert sample(node.prom, "swarm_medic_probe_plans_served_total") == 0
