"""swarm_medic.nodes.rounds.Prober (own node in-process, another node over the signed channel) and
swarm_medic.pipeline.verify.answers_everywhere (did a replaced task's service answer everywhere?).

The other node is a real HTTP server (swarm_medic.web.http.serve + NodeEndpoint) on 127.0.0.1
port 0, only ever asked from 127.0.0.1.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import msgspec
import pytest
import structlog
from prometheus_client import CollectorRegistry

from swarm_medic.core.model import Action, ActionKind, Node, Snapshot, Task
from swarm_medic.core.protocol import (
    ActAnswer,
    ActRequest,
    Container,
    DnsResult,
    DnsTarget,
    NetState,
    ProbeAnswer,
    ProbePlan,
    TcpResult,
    Watched,
)
from swarm_medic.core.reach import Cell, Reachability
from swarm_medic.core.settings import ProbeSettings, SafetySettings
from swarm_medic.nodes.agent import AgentError, NodeAgent
from swarm_medic.nodes.channel import RequestAuth
from swarm_medic.nodes.endpoint import NodeEndpoint
from swarm_medic.nodes.rounds import Prober
from swarm_medic.pipeline.verify import Pending, answers_everywhere
from swarm_medic.swarm.fake import FakeEngine
from swarm_medic.telemetry.journal import Journal
from swarm_medic.telemetry.metrics import Metrics
from swarm_medic.web.http import serve
from tests import builders as build
from tests.builders import NOW
from tests.netkit import closed_port

OPT_IN = SafetySettings()  # the default scope: services labelled swarm-medic.enable=true

KEY = "s3cret"  # the shared secret of the test swarm
WRONG_KEY = "not-the-key"
NET = "net0123456789abcdef"
NO_DNS = DnsResult(None, "not looked up")


class FakeAgent(NodeAgent):
    """Scripts the probes of a positional plan (`answer`); a duty is the real agent's: it picks
    the targets and hands them to `answer` as a positional plan."""

    def __init__(self, node_id: str, refuse: str = "") -> None:
        super().__init__(FakeEngine(node_id=node_id), node_id)
        self.refuse = refuse
        self.plans: list[ProbePlan] = []
        self.acts: list[ActRequest] = []
        self.short = False  # answer one TCP result less than asked
        self.containers: tuple[Container, ...] = ()  # its task containers
        self.lie = False  # say a digest of its container list that is not its list's

    def answer(self, plan: ProbePlan) -> ProbeAnswer:
        if self.refuse:
            raise AgentError(self.refuse)
        self.plans.append(plan)
        return ProbeAnswer(
            node=self.node_id,
            tcp=(TcpResult(True),) * (len(plan.tcp) - self.short),
            dns=(NO_DNS,) * len(plan.dns),
            vip=(TcpResult(True),) * len(plan.vip),
            ipvs=True,
            containers=self.containers,
        )

    def _listed(self, plan: ProbePlan, answer: ProbeAnswer) -> ProbeAnswer:
        said = super()._listed(plan, answer)
        return msgspec.structs.replace(said, listed="0" * 16) if self.lie else said

    def act(self, request: ActRequest) -> ActAnswer:
        self.acts.append(request)
        return ActAnswer(ok=True, task=request.task, node=self.node_id)


class Remote:
    """Node n2's instance: its agent behind a NodeEndpoint on a loopback HTTP server; `ahead`:
    how far its clock runs ahead of ours (what it says in its answers, and judges requests by)."""

    def __init__(self, ahead: float = 0.0) -> None:
        self.agent = FakeAgent("n2")
        journal = Journal(Metrics(CollectorRegistry()), structlog.get_logger("test"))

        def wall() -> float:
            return time.time() + ahead

        auth = RequestAuth(KEY.encode(), clock=wall)
        endpoint = NodeEndpoint(self.agent, auth, journal, wall=wall)
        self.server = serve(
            "127.0.0.1", 0, CollectorRegistry(), lambda: (True, {}), endpoint.handle
        )
        self.port = int(self.server.server_address[1])


@pytest.fixture(scope="module")
def server() -> Iterator[Remote]:
    remote = Remote()
    yield remote
    remote.server.shutdown()
    remote.server.server_close()


@pytest.fixture
def remote(server: Remote) -> Remote:
    server.agent.plans.clear()
    server.agent.acts.clear()
    server.agent.short = False
    server.agent._watch = None  # each test's brain starts with a node that holds no duty
    server.agent.containers = ()
    server.agent.lie = False
    return server


def node(nid: str, addr: str = "127.0.0.1") -> Node:
    return build.node(nid, role="manager", addr=addr)


def task(tid: str, node_id: str, ip: str, state: str = "running") -> Task:
    return build.task(
        tid,
        sid="s1",
        node_id=node_id,
        state=state,
        timestamp=NOW - 1000,
        addresses=((NET, "app", ip),),
    )


def snapshot(nodes: list[Node] | None = None, tasks: list[Task] | None = None) -> Snapshot:
    svc = build.service(
        "s1", name="web", version=3, labels={"swarm-medic.enable": "true"}, ports=(80,)
    )
    return build.snapshot(
        nodes=nodes if nodes is not None else [node("n1"), node("n2")],
        services=[svc],
        tasks=tasks
        if tasks is not None
        else [task("t1", "n1", "10.0.1.2"), task("t2", "n2", "10.0.1.3")],
        taken_at=NOW,
        addr="127.0.0.1",
    )


# --- Prober ---------------------------------------------------------------------------------


def test_a_round_asks_its_own_node_in_process_and_the_other_over_the_channel(
    remote: Remote,
) -> None:
    mine = FakeAgent("n1")
    prober = Prober(ProbeSettings(secret=KEY), mine, port=remote.port, scope=OPT_IN)
    answers = prober.run(snapshot(), NOW)
    assert prober.failures == {}
    (plan1,) = mine.plans
    assert answers["n1"] == (
        plan1,
        ProbeAnswer(node="n1", tcp=(TcpResult(True),) * 2, dns=(NO_DNS,), ipvs=True),
    )
    # the other node said its clock (ours: the same machine's), and the brain measured it
    assert answers["n2"][1].clock is not None and answers["n1"][1].clock is None
    (clock,) = prober.clocks.values()
    assert set(prober.clocks) == {"n2"} and not clock.refused
    assert abs(clock.offset) <= clock.error + 1e-3 and clock.error < 1.0
    assert prober.me == "n1"
    assert prober.last_round == NOW
    assert sorted((p.task, p.node) for p in plan1.tcp) == [("t1", "n1"), ("t2", "n2")]

    # the other node holds a standing duty for the same targets (protocol 3): in the first
    # round the list is only named (a node may hold it from an earlier brain), and n2, which
    # does not, says so: no opinion yet
    plan2, said = answers["n2"]
    assert plan2.tcp == ()
    assert plan2.dns == (DnsTarget(net=NET, service="s1", name="tasks.web"),)
    assert plan2.duty is not None
    (named,) = plan2.duty.nets
    assert (named.net, named.tcp) == (NET, None)
    assert said.tcp == ()
    assert said.duty == Watched(nets=(NetState(net=NET),), probed=0)

    # the next round sends it the list; n2 probes it (each agent knows which are its own)
    plan2, said = prober.run(snapshot(), NOW + 15)["n2"]
    assert plan2.duty is not None
    (sent,) = plan2.duty.nets
    assert (sent.digest, sent.tcp) == (named.digest, plan1.tcp)
    assert said.duty == Watched(nets=(NetState(NET, named.digest, ok=b"\x03"),), probed=2)
    assert remote.agent.plans[-1].tcp == plan1.tcp

    # and from then on only names it
    plan2, said = prober.run(snapshot(), NOW + 30)["n2"]
    assert plan2.duty is not None
    assert plan2.duty.nets == (named,)
    assert said.duty == Watched(nets=(NetState(NET, named.digest, ok=b"\x03"),), probed=2)
    assert prober.held == {"n2": {NET: named.digest}}


class Kept(Prober):
    """Keeps each answer's bytes as the node sent them."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.bodies: list[bytes] = []

    def _opened(self, node_id: str, nonce: str, envelope: bytes) -> bytes:
        body = super()._opened(node_id, nonce, envelope)
        self.bodies.append(body)
        return body


ON_N2 = (
    Container("c" * 64, "t2", "s1", "running", "web.2.t2"),
    Container("d" * 64, "", "", "exited", "old"),
)


def test_a_node_sends_its_container_list_only_when_it_changed(remote: Remote) -> None:
    remote.agent.containers = ON_N2
    prober = Kept(ProbeSettings(secret=KEY), FakeAgent("n1"), port=remote.port, scope=OPT_IN)
    for i in range(3):
        got = prober.run(snapshot(), NOW + 15 * i)["n2"][1]
        assert got.containers == ON_N2  # what the round sees: the list, every round
    first, second, third = prober.bodies
    assert b"web.2.t2" in first
    assert b"web.2.t2" not in second and b"web.2.t2" not in third  # said unchanged
    remote.agent.containers = ON_N2[:1]  # one gone
    got = prober.run(snapshot(), NOW + 45)["n2"][1]
    assert got.containers == ON_N2[:1]
    assert b"web.2.t2" in prober.bodies[-1]


def test_a_container_list_that_is_not_the_one_its_digest_names_is_a_failure(
    remote: Remote,
) -> None:
    remote.agent.containers = ON_N2
    remote.agent.lie = True
    prober = Prober(ProbeSettings(secret=KEY), FakeAgent("n1"), port=remote.port, scope=OPT_IN)
    answers = prober.run(snapshot(), NOW)
    assert sorted(answers) == ["n1"]
    assert prober.failures == {"n2": "node n2: its container list is not the one its digest names"}


def prober_of(remote: Remote) -> Prober:
    return Prober(ProbeSettings(secret=KEY), FakeAgent("n1"), port=remote.port, scope=OPT_IN)


def test_a_node_whose_clock_runs_ahead_is_measured_so() -> None:
    ahead = Remote(ahead=5.0)
    try:
        prober = prober_of(ahead)
        prober.run(snapshot(), NOW)
        assert prober.failures == {}
        clock = prober.clocks["n2"]
        assert abs(clock.offset - 5.0) <= clock.error + 1e-3
        assert not clock.refused
    finally:
        ahead.server.shutdown()
        ahead.server.server_close()


@pytest.mark.parametrize("ahead", [120.0, -45.0])
def test_a_node_too_far_off_refuses_and_says_by_how_much(ahead: float) -> None:
    off = Remote(ahead=ahead)
    try:
        prober = prober_of(off)
        answers = prober.run(snapshot(), NOW)
        assert sorted(answers) == ["n1"]  # refused: nothing of n2 is read
        assert "HTTP 401" in prober.failures["n2"]
        clock = prober.clocks["n2"]
        assert clock.refused
        assert abs(clock.offset - ahead) <= clock.error + 1e-3
        assert off.agent.plans == []
    finally:
        off.server.shutdown()
        off.server.server_close()


def test_a_round_is_due_after_the_probe_interval(remote: Remote) -> None:
    prober = Prober(
        ProbeSettings(secret=KEY, probe_interval=15),
        FakeAgent("n1"),
        port=remote.port,
        scope=OPT_IN,
    )
    prober.run(snapshot(), NOW)
    assert not prober.due(NOW + 14)
    assert prober.due(NOW + 15)


def test_without_a_secret_only_the_own_node_is_asked(remote: Remote) -> None:
    prober = Prober(ProbeSettings(secret=""), FakeAgent("n1"), port=remote.port, scope=OPT_IN)
    answers = prober.run(snapshot(), NOW)
    assert sorted(answers) == ["n1"]
    assert set(prober.failures) == {"n2"}
    assert "no shared secret" in prober.failures["n2"]
    assert remote.agent.plans == []


def test_an_unreachable_node_is_a_failure() -> None:
    port = closed_port()
    prober = Prober(ProbeSettings(secret=KEY), FakeAgent("n1"), port=port, scope=OPT_IN)
    answers = prober.run(snapshot(), NOW)
    assert sorted(answers) == ["n1"]
    assert set(prober.failures) == {"n2"}
    assert prober.failures["n2"].startswith(f"http://127.0.0.1:{port}/v1/probe: ")


def test_a_node_that_refuses_our_signature_is_a_failure(remote: Remote) -> None:
    prober = Prober(
        ProbeSettings(secret=WRONG_KEY), FakeAgent("n1"), port=remote.port, scope=OPT_IN
    )
    prober.run(snapshot(), NOW)
    assert "HTTP 401" in prober.failures["n2"]
    assert remote.agent.plans == []


def test_a_node_without_an_address_is_a_failure(remote: Remote) -> None:
    prober = Prober(ProbeSettings(secret=KEY), FakeAgent("n1"), port=remote.port, scope=OPT_IN)
    prober.run(snapshot(nodes=[node("n1"), node("n2", addr="")]), NOW)
    assert prober.failures == {"n2": "node n2 has no known address"}


def test_the_own_agent_refusing_is_a_failure_of_the_own_node(remote: Remote) -> None:
    prober = Prober(
        ProbeSettings(secret=KEY), FakeAgent("n1", "broken"), port=remote.port, scope=OPT_IN
    )
    answers = prober.run(snapshot(), NOW)
    assert sorted(answers) == ["n2"]
    assert prober.failures == {"n1": "broken"}


def test_an_answer_that_does_not_answer_the_plan_entry_for_entry_is_a_failure(
    remote: Remote,
) -> None:
    remote.agent.short = True
    # a brain of protocol 2 sends positional plans to every node
    prober = Prober(
        ProbeSettings(secret=KEY), FakeAgent("n1"), port=remote.port, scope=OPT_IN, protocol=2
    )
    answers = prober.run(snapshot(), NOW)
    assert sorted(answers) == ["n1"]
    assert prober.failures == {"n2": "ProbeAnswer: 1 tcp results for 2 tcp targets"}


def test_hands_go_to_the_named_node(remote: Remote) -> None:
    prober = Prober(ProbeSettings(secret=KEY), FakeAgent("n1"), port=remote.port, scope=OPT_IN)
    prober.run(snapshot(), NOW)
    request = ActRequest(kind="remove_task_container", task="t2", service="s1")
    assert prober.hands("n2", request) == ActAnswer(ok=True, task="t2", node="n2")
    assert remote.agent.acts == [request]


# --- verify.answers_everywhere --------------------------------------------------------------


def pending() -> Pending:
    action = Action(
        ActionKind.REPLACE_TASK, "s1", "web", 3, "replace t1", task_id="t1", node_id="n1"
    )
    return Pending("inc-1", "unreachable-endpoint", action, started=NOW, deadline=NOW + 120)


AFTER = snapshot(
    tasks=[
        task("t1", "n1", "10.0.1.2", state="shutdown"),
        task("t2", "n2", "10.0.1.3"),
        task("t3", "n1", "10.0.1.4"),
    ]
)


def reach(round_at: float = NOW + 15, failing: tuple[tuple[str, str], ...] = ()) -> Reachability:
    r = Reachability(round_at=round_at, rounds=2)
    for n in ("n1", "n2"):
        for t in ("t2", "t3"):
            bad = (n, t) in failing
            r.tcp[(n, t)] = Cell(not bad, "timeout" if bad else "", 1 if bad else 0, round_at)
    return r


def test_the_old_task_still_running_is_not_ok() -> None:
    still = snapshot(tasks=[task("t1", "n1", "10.0.1.2"), task("t2", "n2", "10.0.1.3")])
    ok, detail = answers_everywhere(pending(), still, reach())
    assert not ok
    assert detail == "the replaced task still runs"


@pytest.mark.parametrize("r", [None, reach(round_at=NOW - 1), reach(round_at=NOW)])
def test_no_round_after_the_action_is_not_ok(r: Reachability | None) -> None:
    ok, detail = answers_everywhere(pending(), AFTER, r)
    assert not ok
    assert detail.startswith("waiting for a probe round")


def test_a_failing_cell_is_not_ok() -> None:
    ok, detail = answers_everywhere(pending(), AFTER, reach(failing=(("n2", "t3"),)))
    assert not ok
    assert detail == "1 probe(s) still failing"


def test_no_cells_at_all_is_not_ok() -> None:
    ok, detail = answers_everywhere(pending(), AFTER, Reachability(round_at=NOW + 15, rounds=2))
    assert not ok
    assert "not been probed" in detail


def test_every_task_answering_from_every_node_is_ok() -> None:
    ok, detail = answers_everywhere(pending(), AFTER, reach())
    assert ok
    assert detail == "2 task(s) answer from every node (4 probes)"


def test_the_new_task_must_have_been_probed() -> None:
    r = reach()
    for key in [k for k in r.tcp if k[1] == "t3"]:
        del r.tcp[key]  # t3, the replacement, is not probed yet; t2 answers everywhere
    ok, _ = answers_everywhere(pending(), AFTER, r)
    assert not ok
