"""nodes.agent.NodeAgent on a FakeEngine: the one hand action, and where probes run from.

Namespaces are not joined: `in_netns` is replaced by a direct call that remembers which
namespace path it was given, and the probe primitives answer from a table.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import pytest

from swarm_medic.core.duty import digest_of
from swarm_medic.core.protocol import (
    ActAnswer,
    ActRequest,
    DnsResult,
    DnsTarget,
    Duty,
    Failing,
    NetDuty,
    NetState,
    PortTarget,
    ProbePlan,
    ProtocolError,
    TcpTarget,
    VipTarget,
    Watched,
)
from swarm_medic.nodes import agent as agent_mod
from swarm_medic.nodes.agent import REMOVE_TASK_CONTAINER, AgentError, NodeAgent
from swarm_medic.nodes.probe import EchoResult, TcpResult
from swarm_medic.swarm.fake import FakeEngine
from tests.netkit import closed_port

T = TypeVar("T")
ME = "node-1"
NET = "netaaaaaaaaaaaaaaaaaaaa"
NET2 = "netbbbbbbbbbbbbbbbbbbbb"
DOCKER = "/var/run/docker/netns"


# --- act ------------------------------------------------------------------------------------


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine(node_id=ME)


def remove(task: str, service: str, kind: str = REMOVE_TASK_CONTAINER) -> ActRequest:
    return ActRequest(kind=kind, task=task, service=service)


def inline(fn: Callable[[], None]) -> None:
    fn()


def hand(engine: FakeEngine, node: str = ME, **kw: Any) -> NodeAgent:
    """An agent that retires containers inline, so the test sees the result at once."""
    return NodeAgent(engine, node, spawn=inline, **kw)


def test_act_removes_the_container_of_the_task(engine: FakeEngine) -> None:
    sid = engine.add_service("web")
    tid = engine.add_task(sid, node_id=ME)
    cid = engine.add_container(tid)
    other = engine.add_container(engine.add_task(sid, node_id=ME))
    answer = hand(engine).act(remove(tid, sid))
    assert answer == ActAnswer(ok=True, container=cid, task=tid, node=ME)
    # stopped the way swarm stops a task (its own signal and stop timeout), then removed
    assert engine.stopped == [(cid, 10.0)]
    assert engine.removed == [cid]
    assert [c.id for c in engine.local_containers()] == [other]


def test_act_asks_the_engine_for_its_node_id_when_not_given(engine: FakeEngine) -> None:
    sid = engine.add_service("web")
    tid = engine.add_task(sid, node_id=ME)
    cid = engine.add_container(tid)
    answer = hand(engine, "").act(remove(tid, sid))
    assert answer.node == ME
    assert engine.removed == [cid]


@pytest.mark.parametrize("kind", ["remove_container", "exec", ""])
def test_act_refuses_any_other_kind(engine: FakeEngine, kind: str) -> None:
    sid = engine.add_service("web")
    tid = engine.add_task(sid, node_id=ME)
    engine.add_container(tid)
    allowed = f"is not allowed \\(allowed: {REMOVE_TASK_CONTAINER}, prune_node\\)"
    with pytest.raises(AgentError, match=allowed):
        hand(engine).act(remove(tid, sid, kind))
    assert engine.removed == []


def test_act_refuses_a_container_of_another_service(engine: FakeEngine) -> None:
    web, api = engine.add_service("web"), engine.add_service("api")
    tid = engine.add_task(web, node_id=ME)
    engine.add_container(tid)
    with pytest.raises(AgentError, match=f"belongs to service {web}.*: refusing"):
        hand(engine).act(remove(tid, api))
    assert engine.removed == []
    assert len(engine.local_containers()) == 1


def test_act_refuses_a_container_labelled_with_another_node(engine: FakeEngine) -> None:
    sid = engine.add_service("web")
    tid = engine.add_task(sid, node_id="node-2")
    engine.add_container(tid)
    with pytest.raises(AgentError, match=r"on node node-2, not to service .* on node-1: refusing"):
        hand(engine).act(remove(tid, sid))
    assert engine.removed == []


def test_act_without_a_container_for_the_task(engine: FakeEngine) -> None:
    sid = engine.add_service("web")
    engine.add_container(engine.add_task(sid, node_id=ME))
    with pytest.raises(AgentError, match=f"no container of task other-task on node {ME}"):
        hand(engine).act(remove("other-task", sid))
    assert engine.removed == []


def test_act_stops_with_the_containers_own_stop_timeout(engine: FakeEngine) -> None:
    sid = engine.add_service("db")
    tid = engine.add_task(sid, node_id=ME)
    cid = engine.add_container(tid, stop_timeout=300)
    retired: list[tuple[str, str]] = []
    answer = hand(engine, on_retired=lambda c, e: retired.append((c, e))).act(remove(tid, sid))
    assert answer.stop_timeout == 300
    assert engine.stopped == [(cid, 300.0)]
    assert retired == [(cid, "")]


def test_act_retires_in_the_background_and_only_once(engine: FakeEngine) -> None:
    sid = engine.add_service("db")
    tid = engine.add_task(sid, node_id=ME)
    cid = engine.add_container(tid)
    later: list[Callable[[], None]] = []
    agent = NodeAgent(engine, ME, spawn=later.append)
    for _ in range(3):  # the brain asks again while the container is still stopping
        assert agent.act(remove(tid, sid)).ok
    assert engine.removed == [] and len(later) == 1  # the answer did not wait for the stop
    later[0]()
    assert engine.removed == [cid]


def test_act_refuses_a_container_run_from_a_committed_task_image(engine: FakeEngine) -> None:
    # `docker commit` of a task container copies its swarm labels into the image; a
    # container run from that image carries them too, under a name swarm never gave it
    sid = engine.add_service("web")
    tid = engine.add_task(sid, node_id=ME)
    engine.add_container(tid, name="brave_turing", image_labels={"com.docker.swarm.task.id": tid})
    with pytest.raises(AgentError, match="made by `docker commit`"):
        hand(engine).act(remove(tid, sid))
    assert engine.stopped == [] and engine.removed == []


def test_act_refuses_a_container_swarm_did_not_name(engine: FakeEngine) -> None:
    sid = engine.add_service("web")
    tid = engine.add_task(sid, node_id=ME)
    engine.add_container(tid, name="copy-of-web")
    with pytest.raises(AgentError, match="is not the name swarm gives"):
        hand(engine).act(remove(tid, sid))
    assert engine.stopped == [] and engine.removed == []


def test_a_node_in_dry_run_removes_nothing_and_says_what_it_would_remove(
    engine: FakeEngine,
) -> None:
    sid = engine.add_service("web")
    tid = engine.add_task(sid, node_id=ME)
    cid = engine.add_container(tid)
    answer = NodeAgent(engine, ME, dry_run=True).act(remove(tid, sid))
    assert answer == ActAnswer(ok=False, container=cid, task=tid, node=ME, dry_run=True)
    assert engine.removed == []
    assert [c.id for c in engine.local_containers()] == [cid]


def test_dry_run_still_checks_the_labels_first(engine: FakeEngine) -> None:
    web, api = engine.add_service("web"), engine.add_service("api")
    tid = engine.add_task(web, node_id=ME)
    engine.add_container(tid)
    with pytest.raises(AgentError, match="refusing"):
        NodeAgent(engine, ME, dry_run=True).act(remove(tid, api))


# --- probe ----------------------------------------------------------------------------------


class Netns:
    """Stands in for setns(2) and the probe primitives; remembers what ran where. The joined
    namespace is per thread, as setns(2) is: the published-port connects run in a thread of
    their own while a namespace batch runs."""

    def __init__(self) -> None:
        self._joined = threading.local()
        self.down: set[tuple[str, str]] = set()  # (netns path, ip) whose interface is down
        self.refused: set[str] = set()  # IPs whose TCP connect is refused
        self.interface_checks: list[tuple[str, str]] = []
        self.connects: list[tuple[str, tuple[str, int]]] = []
        self.lookups: list[tuple[str, str]] = []
        self.lossy: set[str] = set()  # IPs whose full-size echo is lost
        self.silent: set[str] = set()  # IPs that answer no echo at all
        self.echoes: list[tuple[str, tuple[str, int]]] = []

    @property
    def current(self) -> str:
        return str(getattr(self._joined, "path", ""))

    @current.setter
    def current(self, path: str) -> None:
        self._joined.path = path

    def in_netns(self, path: str, fn: Callable[[], T], timeout: float = 30.0) -> T:
        self.current = path
        try:
            return fn()
        finally:
            self.current = ""

    def interface_up(self, ip: str) -> bool:
        self.interface_checks.append((self.current, ip))
        return (self.current, ip) not in self.down

    def tcp_connect_all(self, targets: list[tuple[str, int]], timeout: float) -> list[TcpResult]:
        self.connects += [(self.current, t) for t in targets]
        return [
            TcpResult(ip, port, ip not in self.refused, "refused" if ip in self.refused else "", 0)
            for ip, port in targets
        ]

    def resolve_a(self, name: str, timeout: float) -> list[str]:
        self.lookups.append((self.current, name))
        return ["10.0.1.2", "10.0.1.3"]

    def echo_all(self, targets: list[tuple[str, int]], timeout: float) -> list[EchoResult]:
        self.echoes += [(self.current, t) for t in targets]
        return [
            EchoResult(ip, size, ip not in self.silent and (size <= 64 or ip not in self.lossy))
            for ip, size in targets
        ]

    def route_mtu(self, ip: str) -> int:
        return 1450

    def interface_mtu(self, ip: str) -> int | None:
        return 1500 if self.current == "" else None

    def where(self, ip: str) -> list[str]:
        return [path for path, (i, _) in self.connects if i == ip]


@pytest.fixture
def ns(monkeypatch: pytest.MonkeyPatch) -> Iterator[Netns]:
    fake = Netns()
    monkeypatch.setattr(agent_mod, "in_netns", fake.in_netns)
    monkeypatch.setattr(agent_mod, "interface_up", fake.interface_up)
    monkeypatch.setattr(agent_mod, "tcp_connect_all", fake.tcp_connect_all)
    monkeypatch.setattr(agent_mod, "resolve_a", fake.resolve_a)
    monkeypatch.setattr(agent_mod, "echo_all", fake.echo_all)
    monkeypatch.setattr(agent_mod, "route_mtu", fake.route_mtu)
    monkeypatch.setattr(agent_mod, "interface_mtu", fake.interface_mtu)
    yield fake


class World:
    """A FakeEngine node plus a netns folder (tmp_path) holding the namespace files."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.engine = FakeEngine(node_id=ME)
        self.sid = self.engine.add_service("web")
        self.agent = NodeAgent(self.engine, ME, netns_dir=str(tmp) + "/", timeout=0.5)

    def container(self, ip: str, sandbox: str, net: str = NET, state: str = "running") -> str:
        """A container of a new local task of `web`; its namespace file exists."""
        tid = self.engine.add_task(self.sid, node_id=ME)
        self.engine.add_container(
            tid, state=state, networks=((net, ip),), sandbox=f"{DOCKER}/{sandbox}"
        )
        (self.tmp / sandbox).touch()
        return tid

    def local_ns(self, net: str = NET) -> str:
        path = self.tmp / f"1-{net[:10]}"
        path.touch()
        return str(path)

    def sandbox(self, name: str) -> str:
        return str(self.tmp / name)


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def tcp(task: str, ip: str, *, local: bool, net: str = NET) -> TcpTarget:
    node = ME if local else "node-9"
    return TcpTarget(net=net, task=task, service="s", node=node, ip=ip, port=80)


def plan(*targets: TcpTarget) -> ProbePlan:
    return ProbePlan(tcp=targets)


DNS = DnsTarget(net=NET, service="s", name="tasks.web")
VIP = VipTarget(net=NET, service="s", ip="10.0.1.100", port=80)


def test_local_targets_are_probed_from_the_overlay_namespace(world: World, ns: Netns) -> None:
    tid = world.container("10.0.1.2", "sb-local")
    overlay = world.local_ns()
    ans = world.agent.probe(plan(tcp(tid, "10.0.1.2", local=True)))
    assert overlay.endswith(f"/1-{NET[:10]}")
    assert ns.where("10.0.1.2") == [overlay]
    (r,) = ans.tcp
    assert (r.ok, r.error) == (True, "")


def test_remote_targets_are_probed_from_a_container_sandbox_in_netns_dir(
    world: World, ns: Netns
) -> None:
    world.container("10.0.1.2", "0123abcd")
    ans = world.agent.probe(plan(tcp("remote", "10.0.1.9", local=False)))
    # SandboxKey is dockerd's path; the agent reads it under its own netns_dir
    assert ns.where("10.0.1.9") == [world.sandbox("0123abcd")]
    assert ans.tcp[0].ok is True
    assert ans.errors == ()


def test_a_failed_connect_is_reported(world: World, ns: Netns) -> None:
    world.container("10.0.1.2", "sb1")
    ns.refused.add("10.0.1.9")
    ans = world.agent.probe(plan(tcp("remote", "10.0.1.9", local=False)))
    (r,) = ans.tcp
    assert (r.ok, r.error) == (False, "refused")


def test_results_are_positional_whatever_namespace_ran_them(world: World, ns: Netns) -> None:
    tid = world.container("10.0.1.2", "sb1")
    world.local_ns()
    ns.refused.add("10.0.1.8")
    ans = world.agent.probe(
        plan(
            tcp("r1", "10.0.1.8", local=False),
            tcp(tid, "10.0.1.2", local=True),
            tcp("r2", "10.0.1.9", local=False),
        )
    )
    assert [r.ok for r in ans.tcp] == [False, True, True]


def test_a_vantage_whose_interface_is_down_is_skipped(world: World, ns: Netns) -> None:
    world.container("10.0.1.2", "sb-down")
    world.container("10.0.1.3", "sb-up")
    ns.down.add((world.sandbox("sb-down"), "10.0.1.2"))
    world.agent.probe(plan(tcp("remote", "10.0.1.9", local=False)))
    assert ns.interface_checks == [
        (world.sandbox("sb-down"), "10.0.1.2"),
        (world.sandbox("sb-up"), "10.0.1.3"),
    ]
    assert ns.where("10.0.1.9") == [world.sandbox("sb-up")]


def test_only_running_containers_on_the_network_are_vantages(world: World, ns: Netns) -> None:
    world.container("10.0.1.2", "sb-exited", state="exited")
    world.container("10.0.2.2", "sb-other-net", net=NET2)
    world.container("10.0.1.3", "sb-good")
    world.agent.probe(plan(tcp("remote", "10.0.1.9", local=False)))
    assert ns.where("10.0.1.9") == [world.sandbox("sb-good")]


def test_a_container_that_is_a_probe_target_is_a_last_resort_vantage(
    world: World, ns: Netns
) -> None:
    target = world.container("10.0.1.2", "sb-target")  # listed first by the engine
    world.container("10.0.1.3", "sb-bystander")
    world.local_ns()
    world.agent.probe(
        plan(tcp(target, "10.0.1.2", local=True), tcp("remote", "10.0.1.9", local=False))
    )
    assert ns.where("10.0.1.9") == [world.sandbox("sb-bystander")]


def test_a_target_container_is_used_when_it_is_the_only_candidate(world: World, ns: Netns) -> None:
    target = world.container("10.0.1.2", "sb-target")
    world.local_ns()
    world.agent.probe(
        plan(tcp(target, "10.0.1.2", local=True), tcp("remote", "10.0.1.9", local=False))
    )
    assert ns.where("10.0.1.9") == [world.sandbox("sb-target")]
    assert ns.where("10.0.1.2") == [str(world.tmp / f"1-{NET[:10]}")]


def test_no_vantage_point_is_no_opinion(world: World, ns: Netns) -> None:
    ans = world.agent.probe(  # no container on NET, no 1-<net> file
        ProbePlan(
            tcp=(tcp("remote", "10.0.1.9", local=False), tcp("mine", "10.0.1.2", local=True)),
            dns=(DNS,),
            vip=(VIP,),
        )
    )
    assert [(r.ok, r.error) for r in ans.tcp] == [(None, "no vantage point")] * 2
    assert ans.dns == (DnsResult(None, "no vantage point"),)
    assert [(r.ok, r.error) for r in ans.vip] == [(None, "no vantage point")]
    assert ns.connects == []


def test_all_vantages_down_is_no_opinion_and_an_error(world: World, ns: Netns) -> None:
    world.container("10.0.1.2", "sb1")
    ns.down.add((world.sandbox("sb1"), "10.0.1.2"))
    ans = world.agent.probe(plan(tcp("remote", "10.0.1.9", local=False)))
    assert ans.tcp[0].ok is None
    assert ans.errors == (f"no sound vantage point on network {NET[:12]}",)


def test_a_container_without_a_sandbox_is_skipped_with_an_error(world: World, ns: Netns) -> None:
    tid = world.engine.add_task(world.sid, node_id=ME)
    bad = world.engine.add_container(tid, networks=((NET, "10.0.1.5"),), sandbox="")
    world.container("10.0.1.3", "sb-good")
    ans = world.agent.probe(plan(tcp("remote", "10.0.1.9", local=False)))
    assert ns.where("10.0.1.9") == [world.sandbox("sb-good")]
    assert len(ans.errors) == 1
    assert ans.errors[0].startswith(f"vantage {bad[:12]}: ")


def test_dns_and_vip_run_from_the_vantage(world: World, ns: Netns) -> None:
    world.container("10.0.1.2", "sb1")
    ans = world.agent.probe(ProbePlan(dns=(DNS,), vip=(VIP,)))
    assert ns.lookups == [(world.sandbox("sb1"), "tasks.web")]
    assert ns.where("10.0.1.100") == [world.sandbox("sb1")]
    assert ans.dns == (DnsResult(("10.0.1.2", "10.0.1.3"), ""),)
    assert [v.ok for v in ans.vip] == [True]


def test_a_namespace_that_cannot_be_joined_is_no_opinion_for_its_probes_only(
    world: World, ns: Netns, monkeypatch: pytest.MonkeyPatch
) -> None:
    tid = world.container("10.0.1.2", "sb1")
    overlay = world.local_ns()

    def in_netns(path: str, fn: Callable[[], T], timeout: float = 30.0) -> T:
        if path == overlay:
            raise OSError(22, "cannot join netns")
        return ns.in_netns(path, fn, timeout)

    monkeypatch.setattr(agent_mod, "in_netns", in_netns)
    ans = world.agent.probe(
        plan(tcp(tid, "10.0.1.2", local=True), tcp("remote", "10.0.1.9", local=False))
    )
    assert [r.ok for r in ans.tcp] == [None, True]
    assert any("cannot join netns" in e for e in ans.errors)


def test_the_answer_names_the_node_ipvs_and_its_containers(world: World, ns: Netns) -> None:
    tid = world.container("10.0.1.2", "sb1")
    ans = world.agent.probe(ProbePlan())
    assert ans.node == ME
    assert isinstance(ans.ipvs, bool)
    (c,) = world.engine.local_containers()
    ((listed),) = ans.containers
    assert (listed.id, listed.task, listed.service, listed.state) == (
        c.id,
        tid,
        world.sid,
        "running",
    )
    assert listed.name == f"web.{c.name.split('.')[1]}.{tid}" == c.name
    assert (ans.tcp, ans.dns, ans.vip, ans.errors) == ((), (), (), ())


# --- published ports ----------------------------------------------------------------------------


def test_published_ports_are_probed_from_the_agents_own_namespace(world: World, ns: Netns) -> None:
    world.container("10.0.1.2", "sb1")
    ns.refused.add("192.168.0.3")
    ans = world.agent.probe(
        ProbePlan(
            tcp=(tcp("remote", "10.0.1.9", local=False),),
            ports=(PortTarget(ip="192.168.0.2", port=8080), PortTarget(ip="192.168.0.3", port=80)),
        )
    )
    assert ns.where("192.168.0.2") == [""] and ns.where("192.168.0.3") == [""]  # joined none
    assert ns.where("10.0.1.9") == [world.sandbox("sb1")]  # the overlay probe still from its own
    assert [(r.ok, r.error) for r in ans.ports] == [(True, ""), (False, "refused")]
    assert ans.tcp[0].ok is True


def test_published_ports_need_no_container_and_no_namespace(world: World, ns: Netns) -> None:
    ans = world.agent.probe(ProbePlan(ports=(PortTarget(ip="192.168.0.2", port=8080),)))
    assert [r.ok for r in ans.ports] == [True]
    assert ans.errors == ()


def test_published_ports_that_cannot_be_probed_are_no_opinion_and_an_error(
    world: World, ns: Netns, monkeypatch: pytest.MonkeyPatch
) -> None:
    tid = world.container("10.0.1.2", "sb1")
    world.local_ns()

    def broken(targets: list[tuple[str, int]], timeout: float) -> list[TcpResult]:
        if targets == [("192.168.0.2", 8080)]:
            raise OSError(24, "Too many open files")
        return ns.tcp_connect_all(targets, timeout)

    monkeypatch.setattr(agent_mod, "tcp_connect_all", broken)
    ans = world.agent.probe(
        ProbePlan(
            tcp=(tcp(tid, "10.0.1.2", local=True),),
            ports=(PortTarget(ip="192.168.0.2", port=8080),),
        )
    )
    assert [(r.ok, r.error) for r in ans.ports] == [(None, "not probed")]
    assert ans.errors == ("published ports: OSError: [Errno 24] Too many open files",)
    assert [r.ok for r in ans.tcp] == [True]  # the overlay probes are not touched


def test_published_ports_on_loopback_for_real() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    try:
        open_port, shut = server.getsockname()[1], closed_port()
        agent = NodeAgent(FakeEngine(node_id=ME), ME, timeout=1.0)
        ans = agent.probe(
            ProbePlan(
                ports=(
                    PortTarget(ip="127.0.0.1", port=shut),
                    PortTarget(ip="127.0.0.1", port=open_port),
                )
            )
        )
    finally:
        server.close()
    assert [(r.ok, r.error) for r in ans.ports] == [(False, "refused"), (True, "")]
    assert ans.tcp == () and ans.errors == ()


# --- a standing duty (protocol 3) -------------------------------------------------------------


def watching(targets: tuple[TcpTarget, ...], *, sent: bool = True, take: int = 10) -> ProbePlan:
    named = NetDuty(net=NET, digest=digest_of(targets), tcp=targets if sent else None)
    return ProbePlan(dns=(DNS,), duty=Duty(nets=(named,), take=take, suspects=take))


def test_a_duty_is_probed_like_a_plan_and_answered_as_its_state(world: World, ns: Netns) -> None:
    tid = world.container("10.0.1.2", "sb1")
    world.local_ns()
    ns.refused.add("10.0.1.8")
    targets = (tcp("r1", "10.0.1.8", local=False), tcp(tid, "10.0.1.2", local=True))
    ans = world.agent.probe(watching(targets))
    # the same namespaces as a positional plan's targets: its own from the overlay's
    assert ns.where("10.0.1.2") == [world.local_ns()]
    assert ns.where("10.0.1.8") == [world.sandbox("sb1")]
    assert ans.tcp == ()
    assert len(ans.dns) == 1  # the rest of the plan is positional as ever
    assert ans.duty == Watched(
        nets=(
            NetState(
                net=NET, digest=digest_of(targets), ok=b"\x02", failing=(Failing(0, 1, "refused"),)
            ),
        ),
        probed=2,
    )
    # the next brain, or round, only names the list: the node keeps it and its history
    ans = world.agent.probe(watching(targets, sent=False))
    assert ans.duty is not None
    assert ans.duty.nets[0].failing == (Failing(0, 2, "refused"),)


def test_a_duty_whose_list_the_node_does_not_hold_is_said_so(world: World, ns: Netns) -> None:
    targets = (tcp("r1", "10.0.1.8", local=False),)
    ans = world.agent.probe(watching(targets, sent=False))
    assert ans.duty == Watched(nets=(NetState(net=NET),), probed=0)
    assert ns.connects == []


def test_a_duty_larger_than_a_node_holds_is_a_bad_request(world: World, ns: Netns) -> None:
    many = tuple(tcp(f"t{i}", f"10.0.{i // 250}.{i % 250 + 2}", local=False) for i in range(8192))
    nets = tuple(
        NetDuty(
            net=f"net{k}",
            digest="0" * 16,
            tcp=tuple(msgspec.structs.replace(t, net=f"net{k}") for t in many),
        )
        for k in range(5)
    )
    with pytest.raises(ProtocolError, match="more than 32768"):
        world.agent.probe(ProbePlan(duty=Duty(nets=nets, take=1)))
    assert ns.connects == []


def test_a_duty_answer_leaves_out_a_container_list_the_brain_holds(world: World, ns: Netns) -> None:
    world.container("10.0.1.2", "sb1")
    first = world.agent.probe(watching(()))
    assert len(first.containers) == 1
    assert first.listed == digest_of(first.containers)
    again = world.agent.probe(msgspec.structs.replace(watching(()), listed=first.listed))
    assert (again.containers, again.listed) == ((), first.listed)
    world.container("10.0.1.3", "sb2")  # a new one: the list is sent again
    changed = world.agent.probe(msgspec.structs.replace(watching(()), listed=first.listed))
    assert len(changed.containers) == 2
    assert changed.listed == digest_of(changed.containers) != first.listed


# --- overlay-mtu: a small and a full-size echo to one task per peer node --------------------


def remote(world: World, ip: str, node: str, net: str = NET) -> TcpTarget:
    return TcpTarget(net=net, task=f"t-{ip}", service="s", node=node, ip=ip, port=80)


def test_one_task_per_peer_node_gets_a_small_and_a_full_size_echo(world: World, ns: Netns) -> None:
    world.container("10.0.1.2", "sb-anchor")
    targets = [
        remote(world, "10.0.1.5", "node-2"),
        remote(world, "10.0.1.6", "node-2"),
        remote(world, "10.0.1.7", "node-3"),
    ]
    ans = world.agent.probe(plan(*targets))
    sent = sorted(t for _, t in ns.echoes)
    assert sent == [("10.0.1.5", 64), ("10.0.1.5", 1450), ("10.0.1.7", 64), ("10.0.1.7", 1450)]
    assert {path for path, _ in ns.echoes} == {world.sandbox("sb-anchor")}
    assert ans.lossy == () and ans.paths_checked == 2
    assert ans.underlay_mtu == 1500  # the instance's own namespace: the host's link


def test_a_path_that_loses_large_echoes_counts_its_checks_in_a_row(world: World, ns: Netns) -> None:
    world.container("10.0.1.2", "sb-anchor")
    targets = plan(remote(world, "10.0.1.5", "node-2"), remote(world, "10.0.1.7", "node-3"))
    ns.lossy.add("10.0.1.5")
    for n in (1, 2, 3):
        ans = world.agent.probe(targets)
        assert [(p.node, p.ip, p.size, p.fails) for p in ans.lossy or ()] == [
            ("node-2", "10.0.1.5", 1450, n)
        ]
    ns.lossy.clear()  # the path carries large packets again: forgotten at once
    assert world.agent.probe(targets).lossy == ()


def test_a_failing_path_is_checked_again_even_when_its_task_is_not_probed(
    world: World, ns: Netns
) -> None:
    world.container("10.0.1.2", "sb-anchor")
    ns.lossy.add("10.0.1.5")
    world.agent.probe(plan(remote(world, "10.0.1.5", "node-2")))
    ns.echoes.clear()
    # this round's pick holds another node's task only, on the same overlay
    ans = world.agent.probe(plan(remote(world, "10.0.1.7", "node-3")))
    assert ("10.0.1.5", 1450) in [t for _, t in ns.echoes]
    assert [p.fails for p in ans.lossy or ()] == [2]


def test_no_small_echo_is_no_opinion_and_the_path_starts_again(world: World, ns: Netns) -> None:
    world.container("10.0.1.2", "sb-anchor")
    targets = plan(remote(world, "10.0.1.5", "node-2"))
    ns.lossy.add("10.0.1.5")
    world.agent.probe(targets)
    ns.silent.add("10.0.1.5")  # the task went, or drops ICMP: neither a pass nor a loss
    assert world.agent.probe(targets).lossy == ()
    ns.silent.clear()
    assert [p.fails for p in world.agent.probe(targets).lossy or ()] == [1]


def test_a_failed_connect_local_targets_and_other_kinds_get_no_echo(
    world: World, ns: Netns
) -> None:
    world.container("10.0.1.2", "sb-anchor")
    local = world.container("10.0.1.3", "sb-local")
    world.local_ns()
    ns.refused.add("10.0.1.5")
    world.agent.probe(
        ProbePlan(
            tcp=(remote(world, "10.0.1.5", "node-2"), tcp(local, "10.0.1.3", local=True)),
            vip=(VIP,),
        )
    )
    assert ns.echoes == []


def test_at_most_sixteen_paths_per_overlay_a_round_oldest_first(world: World, ns: Netns) -> None:
    world.container("10.0.1.2", "sb-anchor")
    targets = plan(*[remote(world, f"10.0.2.{i}", f"node-{i}") for i in range(1, 21)])
    first = world.agent.probe(targets)
    assert first.paths_checked == agent_mod.MTU_PATHS == 16
    ns.echoes.clear()
    world.agent.probe(targets)
    again = {ip for _, (ip, _) in ns.echoes}
    # the four not checked in the first round come first in the second
    assert {f"10.0.2.{i}" for i in range(17, 21)} <= again


def test_no_raw_socket_is_no_opinion_and_said_in_the_errors(
    world: World, ns: Netns, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.container("10.0.1.2", "sb-anchor")

    def no_raw(targets: list[tuple[str, int]], timeout: float) -> list[EchoResult]:
        return [
            EchoResult(ip, size, None, "no raw socket: Operation not permitted")
            for ip, size in targets
        ]

    monkeypatch.setattr(agent_mod, "echo_all", no_raw)
    ans = world.agent.probe(plan(remote(world, "10.0.1.5", "node-2")))
    assert ans.lossy == ()
    assert "overlay-mtu: no raw socket: Operation not permitted" in ans.errors
