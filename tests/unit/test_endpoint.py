"""swarm_medic.nodes.endpoint.NodeEndpoint.handle: authenticate first, decode, then probe or act;
200 answers are sealed for the brain."""

from __future__ import annotations

import json
import logging
from typing import Any

import msgspec
import pytest
import structlog
from prometheus_client import CollectorRegistry
from structlog.testing import LogCapture

from swarm_medic.core.errors import NotFound
from swarm_medic.core.protocol import (
    ACT_PATH,
    PROBE_PATH,
    PROTOCOL,
    ActAnswer,
    ActRequest,
    ProbeAnswer,
    ProbePlan,
    ProtocolError,
    TcpResult,
    decode,
    encode,
)
from swarm_medic.core.prune import LogFile, Pruned
from swarm_medic.nodes.agent import AgentError, NodeAgent
from swarm_medic.nodes.channel import H_NONCE, RequestAuth, open_answer, sign
from swarm_medic.nodes.endpoint import NodeEndpoint
from swarm_medic.swarm.fake import FakeEngine
from swarm_medic.telemetry.journal import Journal
from swarm_medic.telemetry.metrics import Metrics
from tests.builders import NOW as T0

SECRET = b"s3cret"
PEER = "10.9.0.7"
ME = "node-1"
REFUSED = "swarm_medic_channel_refused_total"
PLAN = {
    "tcp": [
        {
            "task": "t1",
            "net": "n",
            "service": "s",
            "node": "node-2",
            "ip": "10.0.0.2",
            "port": 80,
        }
    ]
}
REMOVE = {"kind": "remove_task_container", "task": "t1", "service": "s"}


def said(body: bytes) -> bytes:
    """A JSON object's bytes as this release sends them: its protocol first (one two releases
    back, such as protocol 1's unversioned body, is refused for its version)."""
    return b'{"protocol":%d,' % PROTOCOL + body[1:] if body.startswith(b"{") else body


class FakeAgent(NodeAgent):
    def __init__(self, refuse: Exception | None = None) -> None:
        super().__init__(FakeEngine(), ME)
        self.refuse = refuse
        self.calls: list[tuple[str, ProbePlan | ActRequest]] = []

    def probe(self, plan: ProbePlan) -> ProbeAnswer:
        self.calls.append(("probe", plan))
        return ProbeAnswer(node=ME, tcp=tuple(TcpResult(True) for _ in plan.tcp))

    def act(self, request: ActRequest) -> ActAnswer:
        self.calls.append(("act", request))
        if self.refuse is not None:
            raise self.refuse
        if request.kind == "prune_node":
            return ActAnswer(ok=True, node=ME, detail="pruning from 93.0%")
        return ActAnswer(ok=True, container="ctr1", task=request.task, node=ME)


class Setup:
    def __init__(self, *, secret: bool = True, refuse: Exception | None = None) -> None:
        self.registry = CollectorRegistry()
        self.logs = LogCapture()
        logger = structlog.wrap_logger(
            None,
            processors=[self.logs],
            wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        )
        self.journal = Journal(Metrics(self.registry), logger)
        self.agent = FakeAgent(refuse)
        self.auth = RequestAuth(SECRET, clock=lambda: T0) if secret else None
        self.endpoint = NodeEndpoint(self.agent, self.auth, self.journal)
        self.nonce = ""

    def post(
        self,
        path: str,
        payload: object = None,
        *,
        body: bytes | None = None,
        key: bytes = SECRET,
        node: str = ME,
    ) -> tuple[int, dict[str, Any]]:
        data = said(body if body is not None else json.dumps(payload or {}).encode())
        headers = sign(key, "POST", path, data, T0, node=node)
        self.nonce = headers[H_NONCE]
        return self.endpoint.handle(path, headers, data, PEER)

    def opened(self, path: str, answer: dict[str, Any]) -> bytes:
        """What the brain reads of a 200 answer: the sealed body, once it verifies."""
        return open_answer(SECRET, path, self.nonce, ME, json.dumps(answer).encode())

    def refused(self) -> float:
        value = self.registry.get_sample_value(REFUSED)
        return 0.0 if value is None else value

    def events(self, name: str) -> list[dict[str, Any]]:
        return [dict(e) for e in self.logs.entries if e["event"] == name]


def test_without_request_auth_the_channel_is_disabled() -> None:
    s = Setup(secret=False)
    code, answer = s.post(PROBE_PATH, PLAN)
    assert code == 503
    assert "no shared secret" in answer["error"]
    assert s.agent.calls == []


def test_a_forged_request_is_refused_logged_and_counted() -> None:
    s = Setup()
    code, answer = s.post(ACT_PATH, REMOVE, key=b"guessed")
    assert (code, answer) == (401, {"error": "refused"})
    assert s.agent.calls == []
    (entry,) = s.events("refused brain-to-node request")
    assert entry["log_level"] == "error"
    assert (entry["peer"], entry["path"]) == (PEER, ACT_PATH)
    assert entry["why"].startswith("bad signature")
    assert s.refused() == 1.0


def test_forged_requests_are_counted_each_and_logged_once_a_minute() -> None:
    # before: one ERROR line per forged request (500 lines in 0.5 s from one loop)
    s = Setup()
    now = [100.0]
    s.endpoint.clock = lambda: now[0]
    for _ in range(500):
        assert s.post(ACT_PATH, REMOVE, key=b"guessed")[0] == 401
    now[0] += 60.0
    assert s.post(ACT_PATH, REMOVE, key=b"guessed")[0] == 401

    lines = s.events("refused brain-to-node request")
    assert [e["suppressed"] for e in lines] == [0, 499]
    assert s.refused() == 501.0


@pytest.mark.parametrize("sig", ["é" * 64, "\u0100" + "0" * 63, "0" * 63 + "\xff"])
def test_a_non_ascii_signature_is_a_bad_signature_not_a_crash(sig: str) -> None:
    # before: hmac.compare_digest raised TypeError, the port answered 500 with its text
    s = Setup()
    body = said(json.dumps(REMOVE).encode())
    headers = {**sign(SECRET, "POST", ACT_PATH, body, T0, node=ME), "X-Medic-Signature": sig}
    assert s.endpoint.handle(ACT_PATH, headers, body, PEER) == (401, {"error": "refused"})
    (entry,) = s.events("refused brain-to-node request")
    assert entry["why"].startswith("bad signature")
    assert s.refused() == 1.0
    assert s.agent.calls == []


def test_an_unsigned_request_is_refused() -> None:
    s = Setup()
    code, _ = s.endpoint.handle(PROBE_PATH, {}, b"{}", PEER)
    assert code == 401
    assert s.events("refused brain-to-node request")[0]["why"] == "unsigned request"
    assert s.agent.calls == []


@pytest.mark.parametrize("ahead", [45.5, -3600.0])
def test_a_genuine_request_refused_as_stale_says_how_far_off(ahead: float) -> None:
    s = Setup()
    body = b'{"tcp":[]}'
    headers = sign(SECRET, "POST", PROBE_PATH, body, T0 - ahead, node=ME)
    assert s.endpoint.handle(PROBE_PATH, headers, body, PEER) == (
        401,
        {"error": "refused", "skew": ahead},
    )
    assert s.events("refused brain-to-node request")[0]["why"].startswith("timestamp")
    # a forged one is refused for its signature first: it learns nothing of our clock
    forged = sign(b"guessed", "POST", PROBE_PATH, body, T0 - ahead, node=ME)
    assert s.endpoint.handle(PROBE_PATH, forged, body, PEER) == (401, {"error": "refused"})
    assert s.agent.calls == []


def test_a_probe_answer_says_the_nodes_clock_and_how_long_it_held_the_request() -> None:
    s = Setup()
    ticks = iter([10.0, 10.25])
    s.endpoint.clock = lambda: next(ticks)
    s.endpoint.wall = lambda: T0 + 7.5
    code, answer = s.post(PROBE_PATH, {"protocol": PROTOCOL, "tcp": []})
    assert code == 200
    said = json.loads(s.opened(PROBE_PATH, answer))
    assert (said["clock"], said["held"]) == (T0 + 7.5, 0.25)
    # a brain of protocol 2 is not sent what it does not know
    ticks = iter([20.0, 20.5])
    code, answer = s.post(PROBE_PATH, {"protocol": 2, "tcp": []})
    assert code == 200
    assert not {"clock", "held"} & set(json.loads(s.opened(PROBE_PATH, answer)))


def test_a_replayed_request_is_refused_the_second_time() -> None:
    s = Setup()
    body = said(b'{"tcp":[]}')
    headers = sign(SECRET, "POST", PROBE_PATH, body, T0, node=ME)
    assert s.endpoint.handle(PROBE_PATH, headers, body, PEER)[0] == 200
    assert s.endpoint.handle(PROBE_PATH, headers, body, PEER) == (401, {"error": "refused"})
    assert len(s.agent.calls) == 1
    assert s.events("refused brain-to-node request")[0]["why"].startswith("replayed")
    assert s.refused() == 1.0


def test_a_request_meant_for_another_node_is_refused() -> None:
    # node A's genuine request, captured and replayed to node B (this one)
    s = Setup()
    code, answer = s.post(ACT_PATH, REMOVE, node="node-2")
    assert (code, answer) == (401, {"error": "refused"})
    assert s.agent.calls == []
    (entry,) = s.events("refused brain-to-node request")
    assert entry["why"] == "request meant for node node-2, not for this node"


def test_the_target_node_cannot_be_changed_in_a_signed_request() -> None:
    s = Setup()
    body = json.dumps(REMOVE).encode()
    headers = sign(SECRET, "POST", ACT_PATH, body, T0, node="node-2")
    headers["X-Medic-Node"] = ME
    assert s.endpoint.handle(ACT_PATH, headers, body, PEER)[0] == 401
    assert s.events("refused brain-to-node request")[0]["why"].startswith("bad signature")
    assert s.agent.calls == []


def test_a_request_signed_for_another_path_is_refused() -> None:
    s = Setup()
    body = b"{}"
    headers = sign(SECRET, "POST", PROBE_PATH, body, T0, node=ME)
    assert s.endpoint.handle(ACT_PATH, headers, body, PEER)[0] == 401
    assert s.agent.calls == []


def test_a_valid_probe_gets_the_agents_answer_sealed() -> None:
    s = Setup()
    code, answer = s.post(PROBE_PATH, PLAN)
    assert code == 200
    assert set(answer) == {"sig", "body"}
    got = decode(s.opened(PROBE_PATH, answer), ProbeAnswer, limit=1 << 20)
    assert got.clock is not None and got.held is not None  # stamped by the endpoint
    assert msgspec.structs.replace(got, clock=None, held=None) == ProbeAnswer(
        node=ME, tcp=(TcpResult(True),)
    )
    assert s.agent.calls == [("probe", decode(json.dumps(PLAN), ProbePlan, limit=1 << 20))]
    assert s.refused() == 0.0
    assert s.registry.get_sample_value("swarm_medic_probe_plans_served_total") == 1.0


def test_a_sealed_answer_does_not_open_for_another_request() -> None:
    s = Setup()
    _, answer = s.post(PROBE_PATH, PLAN)
    raw = json.dumps(answer).encode()
    with pytest.raises(ProtocolError, match="does not verify"):
        open_answer(SECRET, PROBE_PATH, "0" * 32, ME, raw)  # another nonce
    with pytest.raises(ProtocolError, match="does not verify"):
        open_answer(SECRET, PROBE_PATH, s.nonce, "node-2", raw)  # another node
    with pytest.raises(ProtocolError, match="does not verify"):
        open_answer(SECRET, ACT_PATH, s.nonce, ME, raw)  # another path
    altered = {**answer, "body": answer["body"].replace("true", "false")}
    with pytest.raises(ProtocolError, match="does not verify"):
        open_answer(SECRET, PROBE_PATH, s.nonce, ME, json.dumps(altered).encode())


def test_a_valid_act_is_carried_out_and_logged() -> None:
    s = Setup()
    code, answer = s.post(ACT_PATH, REMOVE)
    assert code == 200
    assert decode(s.opened(ACT_PATH, answer), ActAnswer, limit=1 << 20).ok is True
    (entry,) = s.events(
        "hand: retiring a task container at the brain's request (stop, then remove)"
    )
    assert (entry["peer"], entry["task"], entry["container"]) == (PEER, "t1", "ctr1")


def test_an_act_the_agent_refuses_is_409() -> None:
    s = Setup(refuse=AgentError("action 'exec' is not allowed"))
    code, answer = s.post(ACT_PATH, {**REMOVE, "kind": "exec"})
    assert (code, answer) == (409, {"ok": False, "error": "action 'exec' is not allowed"})
    (entry,) = s.events("hand: refused")
    assert entry["error"] == "action 'exec' is not allowed"
    assert s.refused() == 0.0


def test_a_node_in_dry_run_answers_what_it_would_remove_and_removes_nothing() -> None:
    engine = FakeEngine(node_id=ME)
    sid = engine.add_service("web")
    tid = engine.add_task(sid, node_id=ME)
    cid = engine.add_container(tid)
    s = Setup()
    s.endpoint = NodeEndpoint(NodeAgent(engine, ME, dry_run=True), s.auth, s.journal)
    code, answer = s.post(ACT_PATH, {**REMOVE, "task": tid, "service": sid})
    # a signed answer, not a refusal: the brain may trust it and ask again later
    assert code == 200
    got = decode(s.opened(ACT_PATH, answer), ActAnswer, limit=1 << 20)
    assert got == ActAnswer(ok=False, container=cid, task=tid, node=ME, dry_run=True)
    assert engine.removed == []
    assert [c.id for c in engine.local_containers()] == [cid]


def test_a_prune_is_logged_as_one_and_its_summary_as_one_line() -> None:
    s = Setup()
    code, answer = s.post(ACT_PATH, {"kind": "prune_node", "task": ME, "service": ME, "target": 85})
    assert code == 200
    assert (
        decode(s.opened(ACT_PATH, answer), ActAnswer, limit=1 << 20).detail == "pruning from 93.0%"
    )
    (entry,) = s.events("hand: pruning at the brain's request")
    assert (entry["peer"], entry["detail"]) == (PEER, "pruning from 93.0%")
    assert (
        s.events("hand: retiring a task container at the brain's request (stop, then remove)") == []
    )

    s.journal.hand_pruned(
        Pruned(
            ME,
            85,
            93.0,
            84.5,
            freed=9 << 30,
            build_cache=None,
            images=3,
            reached=True,
            largest_logs=(LogFile("/l/a-json.log", 7 << 30),),
            notes=("no builder",),
        )
    )
    (line,) = s.events("hand: pruned")
    assert (line["node"], line["freed_bytes"], line["images"], line["reached"]) == (
        ME,
        9 << 30,
        3,
        True,
    )
    assert line["largest_logs"] == [{"path": "/l/a-json.log", "bytes": 7 << 30}]
    assert line["notes"] == ["no builder"] and "errors" not in line
    assert s.registry.get_sample_value("swarm_medic_pruned_bytes_total") == 9 << 30


def test_an_engine_error_during_an_act_is_502() -> None:
    s = Setup(refuse=NotFound("remove container c: no such container", status=404))
    code, answer = s.post(ACT_PATH, REMOVE)
    assert code == 502
    assert answer["ok"] is False


@pytest.mark.parametrize(
    ("path", "body", "why"),
    [
        (PROBE_PATH, b"{not json", "bad request: ProbePlan: "),
        (PROBE_PATH, b"[1, 2]", "bad request: ProbePlan: Expected `object`"),
        (PROBE_PATH, b'{"tcp":[{"ip":1}]}', "bad request: ProbePlan: "),
        (
            PROBE_PATH,
            json.dumps({"tcp": [{**PLAN["tcp"][0], "ip": "fd00::2"}]}).encode(),
            "bad request: ProbePlan: Expected `str` matching regex",
        ),
        (PROBE_PATH, json.dumps({"tcp": [{**PLAN["tcp"][0], "port": 0}]}).encode(), "bad request"),
        (
            PROBE_PATH,
            b'{"ports":[{"ip":"metadata.internal","port":80}]}',
            "bad request: ProbePlan: Expected `str` matching regex",
        ),
        (PROBE_PATH, b'{"ports":[{"ip":"10.0.0.2","port":65536}]}', "bad request: ProbePlan: "),
        (PROBE_PATH, b'{"ports":[{"ip":"10.0.0.2"}]}', "bad request: ProbePlan: Object missing"),
        (ACT_PATH, b'{"kind":"remove_task_container","task":"","service":"s"}', "bad request"),
        (ACT_PATH, b'{"kind":"remove_task_container"}', "bad request: ActRequest: Object missing"),
    ],
    ids=[
        "not-json",
        "not-an-object",
        "wrong-type",
        "ipv6",
        "port-0",
        "published-port-name",
        "published-port-too-high",
        "published-port-no-port",
        "empty-task",
        "no-task",
    ],
)
def test_a_bad_body_is_400(path: str, body: bytes, why: str) -> None:
    s = Setup()
    code, answer = s.post(path, body=body)
    assert code == 400
    assert answer["error"].startswith(why)
    assert s.agent.calls == []


def test_an_unknown_path_is_404() -> None:
    s = Setup()
    code, answer = s.post("/v1/shell", {"cmd": "id"})
    assert code == 404
    assert "/v1/shell" in answer["error"]
    assert s.agent.calls == []


def test_answers_encode_what_the_agent_said() -> None:
    done = ActAnswer(ok=True, container="c", task="t", node=ME)
    fields = (
        b'"ok":true,"container":"c","task":"t","node":"node-1","stop_timeout":null,"dry_run":false}'
    )
    assert encode(done) == b'{"protocol":%d,' % PROTOCOL + fields  # what it speaks, first
    assert encode(done, speaks=1) == b"{" + fields  # protocol 1 said nothing of it
