"""swarm_medic.endpoint.NodeEndpoint.handle: authenticate first, then probe or act."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import pytest
import structlog
from prometheus_client import CollectorRegistry
from structlog.testing import LogCapture

from swarm_medic.agent import AgentError, NodeAgent
from swarm_medic.channel import Verifier, sign
from swarm_medic.endpoint import NodeEndpoint
from swarm_medic.errors import NotFound
from swarm_medic.journal import Journal
from swarm_medic.metrics import Metrics
from swarm_medic.rounds import ACT_PATH, PROBE_PATH
from swarm_medic.swarm.fake import FakeEngine

SECRET = b"s3cret"
T0 = 1_700_000_000.0
PEER = "10.9.0.7"
REFUSED = "swarm_medic_channel_refused_total"


class FakeAgent(NodeAgent):
    def __init__(self, refuse: Exception | None = None) -> None:
        super().__init__(FakeEngine(), "node-1")
        self.refuse = refuse
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def probe(self, plan: Mapping[str, Any]) -> dict[str, Any]:
        self.calls.append(("probe", dict(plan)))
        return {"node": "node-1", "tcp": [{"task": "t1", "ok": True}], "seen": dict(plan)}

    def act(self, request: Mapping[str, Any]) -> dict[str, Any]:
        self.calls.append(("act", dict(request)))
        if self.refuse is not None:
            raise self.refuse
        return {"ok": True, "container": "ctr1", "task": request.get("task"), "node": "node-1"}


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
        self.verifier = Verifier(SECRET, clock=lambda: T0) if secret else None
        self.endpoint = NodeEndpoint(self.agent, self.verifier, self.journal)

    def post(
        self, path: str, payload: object = None, *, body: bytes | None = None, key: bytes = SECRET
    ) -> tuple[int, dict[str, Any]]:
        data = body if body is not None else json.dumps(payload or {}).encode()
        headers = sign(key, "POST", path, data, T0)
        return self.endpoint.handle(path, headers, data, PEER)

    def refused(self) -> float:
        value = self.registry.get_sample_value(REFUSED)
        return 0.0 if value is None else value

    def events(self, name: str) -> list[dict[str, Any]]:
        return [dict(e) for e in self.logs.entries if e["event"] == name]


def test_without_a_verifier_the_channel_is_disabled() -> None:
    s = Setup(secret=False)
    code, answer = s.post(PROBE_PATH, {"tcp": []})
    assert code == 503
    assert "no shared secret" in answer["error"]
    assert s.agent.calls == []


def test_a_forged_request_is_refused_logged_and_counted() -> None:
    s = Setup()
    code, answer = s.post(ACT_PATH, {"kind": "remove_task_container"}, key=b"guessed")
    assert (code, answer) == (401, {"error": "refused"})
    assert s.agent.calls == []
    (entry,) = s.events("refused brain-to-node request")
    assert entry["log_level"] == "error"
    assert (entry["peer"], entry["path"]) == (PEER, ACT_PATH)
    assert entry["why"].startswith("bad signature")
    assert s.refused() == 1.0


def test_an_unsigned_request_is_refused() -> None:
    s = Setup()
    code, _ = s.endpoint.handle(PROBE_PATH, {}, b"{}", PEER)
    assert code == 401
    assert s.events("refused brain-to-node request")[0]["why"] == "unsigned request"
    assert s.agent.calls == []


def test_a_replayed_request_is_refused_the_second_time() -> None:
    s = Setup()
    body = b'{"tcp":[]}'
    headers = sign(SECRET, "POST", PROBE_PATH, body, T0)
    assert s.endpoint.handle(PROBE_PATH, headers, body, PEER)[0] == 200
    assert s.endpoint.handle(PROBE_PATH, headers, body, PEER) == (401, {"error": "refused"})
    assert len(s.agent.calls) == 1
    assert s.events("refused brain-to-node request")[0]["why"].startswith("replayed")
    assert s.refused() == 1.0


def test_a_request_signed_for_another_path_is_refused() -> None:
    s = Setup()
    body = b"{}"
    headers = sign(SECRET, "POST", PROBE_PATH, body, T0)
    assert s.endpoint.handle(ACT_PATH, headers, body, PEER)[0] == 401
    assert s.agent.calls == []


def test_a_valid_probe_gets_the_agents_answer() -> None:
    s = Setup()
    plan = {"tcp": [{"task": "t1", "net": "n", "ip": "10.0.0.2", "port": 80}]}
    code, answer = s.post(PROBE_PATH, plan)
    assert code == 200
    assert answer == {"node": "node-1", "tcp": [{"task": "t1", "ok": True}], "seen": plan}
    assert s.agent.calls == [("probe", plan)]
    assert s.refused() == 0.0


def test_a_valid_act_is_carried_out_and_logged() -> None:
    s = Setup()
    code, answer = s.post(ACT_PATH, {"kind": "remove_task_container", "task": "t1"})
    assert code == 200
    assert answer["ok"] is True
    (entry,) = s.events(
        "hand: retiring a task container at the brain's request (stop, then remove)"
    )
    assert (entry["peer"], entry["task"], entry["container"]) == (PEER, "t1", "ctr1")


def test_an_act_the_agent_refuses_is_409() -> None:
    s = Setup(refuse=AgentError("action 'exec' is not allowed"))
    code, answer = s.post(ACT_PATH, {"kind": "exec"})
    assert (code, answer) == (409, {"ok": False, "error": "action 'exec' is not allowed"})
    (entry,) = s.events("hand: refused")
    assert entry["error"] == "action 'exec' is not allowed"
    assert s.refused() == 0.0


def test_an_engine_error_during_an_act_is_502() -> None:
    s = Setup(refuse=NotFound("remove container c: no such container", status=404))
    code, answer = s.post(ACT_PATH, {"kind": "remove_task_container"})
    assert code == 502
    assert answer["ok"] is False


@pytest.mark.parametrize(
    ("body", "why"),
    [(b"{not json", "bad request: "), (b"[1, 2]", "bad request: not a JSON object")],
    ids=["not-json", "not-an-object"],
)
def test_a_bad_body_is_400(body: bytes, why: str) -> None:
    s = Setup()
    code, answer = s.post(PROBE_PATH, body=body)
    assert code == 400
    assert answer["error"].startswith(why)
    assert s.agent.calls == []


def test_an_unknown_path_is_404() -> None:
    s = Setup()
    code, answer = s.post("/v1/shell", {"cmd": "id"})
    assert code == 404
    assert "/v1/shell" in answer["error"]
    assert s.agent.calls == []
