"""swarm/engine.py without a real engine: error translation, retries, writes attempted once.

Docker SDK errors are built the way the SDK builds them (an HTTP response with the Engine's
JSON `message`, through docker.errors.create_api_error_from_http_exception), and the SDK's
APIClient methods are replaced per test, so nothing here needs dockerd.
"""

from __future__ import annotations

import json
from typing import Any

import docker.errors
import pytest
import requests

from swarm_medic.core.errors import (
    Conflict,
    EngineError,
    EngineUnavailable,
    NotAManager,
    NotFound,
)
from swarm_medic.core.model import LedgerDoc
from swarm_medic.swarm import MalformedEvent
from swarm_medic.swarm.engine import DockerEngine, translate
from tests.pipeline.sdk import NOWHERE, Calls, api_error, negotiated, response

NOT_A_MANAGER = (
    "This node is not a swarm manager. Worker nodes can't be used to view or modify cluster "
    "state. Please run this command on a manager node or promote the current node to a manager."
)
OUT_OF_SEQUENCE = "rpc error: code = Unknown desc = update out of sequence"
# moby daemon/cluster/errors.go: what a manager answers while there is no raft leader
NO_LEADER = (
    "rpc error: code = Unknown desc = The swarm does not have a leader. It's possible that too "
    "few managers are online. Make sure more than half of the managers are online."
)


def ok(obj: object) -> requests.Response:
    """A 200 answer with `obj` as its JSON body: the list and info reads take the raw bytes."""
    r = requests.Response()
    r.status_code = 200
    r.headers["Content-Type"] = "application/json"
    r._content = json.dumps(obj).encode()
    return r


@pytest.fixture
def no_docker_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def engine(
    no_docker_env: None, sleeps: list[float], monkeypatch: pytest.MonkeyPatch
) -> DockerEngine:
    return negotiated(DockerEngine(NOWHERE, attempts=3, sleep=sleeps.append), monkeypatch)


# --- translate ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "kind", "status", "says"),
    [
        (api_error(404, "service svc1 not found"), NotFound, 404, "list services: not found"),
        (
            api_error(409, "config swarm-medic-ledger already exists"),
            EngineError,
            409,
            "list services: engine answered 409: config swarm-medic-ledger already exists",
        ),
        (
            api_error(500, OUT_OF_SEQUENCE),
            Conflict,
            500,
            "list services: the object changed since it was read",
        ),
        (
            api_error(503, NOT_A_MANAGER),
            NotAManager,
            503,
            "run swarm-medic against a manager's socket",
        ),
        (
            api_error(503, "This node is not part of a swarm"),
            NotAManager,
            503,
            "this engine is not a swarm manager",
        ),
        (
            api_error(503, NO_LEADER),
            EngineError,
            503,
            "list services: the swarm has no leader: an election is under way or, if this "
            "lasts, the managers lost their raft quorum (fewer than a majority reachable); see "
            "`swarm-medic runbooks manager-quorum` for the recovery steps (rpc error",
        ),
        (
            api_error(500, "rpc error: code = Unavailable desc = transport is closing"),
            EngineError,
            500,
            "list services: engine answered 500: rpc error",
        ),
        (
            api_error(400, "invalid filter 'nme'"),
            EngineError,
            400,
            "list services: engine answered 400: invalid filter 'nme'",
        ),
        (
            requests.exceptions.ConnectionError("Connection refused"),
            EngineUnavailable,
            None,
            "list services: cannot reach the Docker Engine (ConnectionError); is dockerd "
            "running and is DOCKER_HOST right?",
        ),
        (
            requests.exceptions.ReadTimeout("read timed out"),
            EngineUnavailable,
            None,
            "cannot reach the Docker Engine (ReadTimeout)",
        ),
        (
            docker.errors.DockerException("Error while fetching server API version"),
            EngineUnavailable,
            None,
            "list services: Error while fetching server API version",
        ),
        (
            # the SDK's own json decoding of an answer nested past the recursion limit (issue 16)
            RecursionError("maximum recursion depth exceeded while decoding a JSON array"),
            EngineError,
            None,
            "list services: the Engine's answer is nested too deeply to be read",
        ),
    ],
)
def test_translate(exc: Exception, kind: type[EngineError], status: int | None, says: str) -> None:
    err = translate(exc, "list services")
    assert type(err) is kind
    assert err.status == status
    assert says in str(err)


def test_translate_keeps_the_engine_explanation() -> None:
    err = translate(api_error(404, "service svc1 not found"), "inspect service svc1")
    assert str(err) == "inspect service svc1: not found (service svc1 not found)"
    err = translate(api_error(503, NOT_A_MANAGER), "list nodes")
    assert str(err).endswith(f"({NOT_A_MANAGER})")


def test_translate_lets_a_programming_error_through() -> None:
    with pytest.raises(KeyError, match="Spec"):
        translate(KeyError("Spec"), "inspect service")


# --- retries -----------------------------------------------------------------------------


def test_an_unreachable_engine_is_retried_then_reported(
    no_docker_env: None, sleeps: list[float]
) -> None:
    engine = DockerEngine(NOWHERE, attempts=3, sleep=sleeps.append)

    with pytest.raises(EngineUnavailable, match=r"^docker info: cannot reach the Docker Engine"):
        engine.info()

    assert engine.api_calls == 3
    assert len(sleeps) == 2
    # exponential (0.2 s, 0.4 s) plus up to 0.2 s of jitter
    assert 0.2 <= sleeps[0] <= 0.4
    assert 0.4 <= sleeps[1] <= 0.6


def test_a_transient_failure_that_recovers_is_invisible(
    engine: DockerEngine, sleeps: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    info = {"Swarm": {"NodeID": "n1", "LocalNodeState": "active", "ControlAvailable": True}}
    calls = Calls(api_error(502, "bad gateway"), result=ok(info))
    monkeypatch.setattr(engine._api, "_get", calls)

    got = engine.info()

    assert (got.node_id, got.control_available) == ("n1", True)
    assert calls.count == 2
    assert engine.api_calls == 2
    assert len(sleeps) == 1


def test_lists_are_read_from_the_raw_body(
    engine: DockerEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = {"ID": "t1", "ServiceID": "s1", "Status": {"State": "running"}, "Spec": {"x": 1}}
    get = Calls(result=ok([task, {"ID": ""}]))
    monkeypatch.setattr(engine._api, "_get", get)

    got = engine.tasks()

    assert [(t.id, t.service_id, t.state) for t in got] == [("t1", "s1", "running")]
    assert get.args[0][0][0].endswith("/v1.51/tasks")  # the version negotiated with Docker 28
    assert engine.malformed == ["task skipped: ValueError: task object without an ID: keys ['ID']"]


def test_a_body_that_is_not_json_is_an_engine_error(
    engine: DockerEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    garbage = ok([])
    garbage._content = b"<html>bad gateway</html>"
    monkeypatch.setattr(engine._api, "_get", Calls(result=garbage))

    with pytest.raises(EngineError, match="list services: the service list is not JSON"):
        engine.services()


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (api_error(400, "invalid filter"), EngineError),
        (api_error(404, "no such thing"), NotFound),
        (api_error(409, "name conflicts"), EngineError),
        (api_error(500, OUT_OF_SEQUENCE), Conflict),
        (api_error(503, NOT_A_MANAGER), NotAManager),
    ],
)
def test_answers_that_a_retry_cannot_change_are_not_retried(
    engine: DockerEngine,
    sleeps: list[float],
    monkeypatch: pytest.MonkeyPatch,
    error: Exception,
    kind: type[EngineError],
) -> None:
    calls = Calls(*[error] * 3)
    monkeypatch.setattr(engine._api, "_get", calls)

    with pytest.raises(kind) as raised:
        engine.services()

    assert type(raised.value) is kind
    assert calls.count == 1
    assert engine.api_calls == 1
    assert sleeps == []


@pytest.mark.parametrize(
    "error",
    [
        api_error(500, "rpc error: code = DeadlineExceeded desc = context deadline exceeded"),
        api_error(503, "service unavailable"),
        api_error(503, NO_LEADER),  # an election ends in seconds: worth the retries
        requests.exceptions.ConnectionError("Connection aborted."),
    ],
)
def test_transient_answers_are_retried_up_to_attempts(
    engine: DockerEngine,
    sleeps: list[float],
    monkeypatch: pytest.MonkeyPatch,
    error: Exception,
) -> None:
    calls = Calls(*[error] * 5)
    monkeypatch.setattr(engine._api, "_get", calls)

    with pytest.raises(EngineError):
        engine.tasks()

    assert calls.count == 3
    # After a lost connection the engine may be another (restarted by an upgrade): its
    # version is asked again before each retry.
    lost = isinstance(error, requests.exceptions.ConnectionError)
    assert engine.api_calls == (5 if lost else 3)
    assert len(sleeps) == 2


def test_a_sub_second_api_timeout_works(no_docker_env: None, sleeps: list[float]) -> None:
    engine = DockerEngine(NOWHERE, timeout=0.5, attempts=1, sleep=sleeps.append)
    with pytest.raises(EngineUnavailable):
        engine.info()


# --- writes: compare-and-swap, attempted once ----------------------------------------------


SPEC: dict[str, Any] = {"Name": "web", "TaskTemplate": {"ForceUpdate": 2}, "Labels": {}}


def ok_response() -> requests.Response:
    r = response(200, "")
    r._content = b'{"Warnings": null}'
    return r


def test_force_update_sends_the_spec_with_forceupdate_bumped_at_the_version_read(
    engine: DockerEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    inspect = Calls(result={"ID": "svc1", "Version": {"Index": 7}, "Spec": SPEC})
    post = Calls(result=ok_response())
    monkeypatch.setattr(engine._api, "inspect_service", inspect)
    monkeypatch.setattr(engine._api, "_post_json", post)

    engine.force_update("svc1", 7)

    assert post.count == 1
    (url,), kwargs = post.args[0]
    assert url.endswith("/services/svc1/update")
    assert kwargs["params"] == {"version": 7}
    assert kwargs["data"]["TaskTemplate"]["ForceUpdate"] == 3
    assert SPEC["TaskTemplate"]["ForceUpdate"] == 2  # the inspected spec is not mutated
    assert engine.api_calls == 2


def test_rollback_asks_for_the_previous_spec(
    engine: DockerEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        engine._api, "inspect_service", Calls(result={"Version": {"Index": 7}, "Spec": SPEC})
    )
    post = Calls(result=ok_response())
    monkeypatch.setattr(engine._api, "_post_json", post)

    engine.rollback("svc1", 7)

    (_url,), kwargs = post.args[0]
    assert kwargs["params"] == {"version": 7, "rollback": "previous"}
    assert kwargs["data"]["TaskTemplate"]["ForceUpdate"] == 2


def test_resume_posts_the_same_spec_again(
    engine: DockerEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        engine._api, "inspect_service", Calls(result={"Version": {"Index": 7}, "Spec": SPEC})
    )
    post = Calls(result=ok_response())
    monkeypatch.setattr(engine._api, "_post_json", post)

    engine.resume_update("svc1", 7)

    (url,), kwargs = post.args[0]
    assert url.endswith("/services/svc1/update")
    assert kwargs["params"] == {"version": 7}  # no rollback, no ForceUpdate bump
    assert kwargs["data"] == SPEC


def test_a_service_changed_since_the_decision_is_a_conflict_without_a_write(
    engine: DockerEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        engine._api, "inspect_service", Calls(result={"Version": {"Index": 8}, "Spec": SPEC})
    )
    post = Calls(result=ok_response())
    monkeypatch.setattr(engine._api, "_post_json", post)

    with pytest.raises(Conflict, match="the service is at version 8, the decision was made at 7"):
        engine.force_update("svc1", 7)

    assert post.count == 0


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (requests.exceptions.ReadTimeout("read timed out"), EngineUnavailable),
        (api_error(500, "rpc error: code = Unavailable"), EngineError),
        (api_error(500, OUT_OF_SEQUENCE), Conflict),
    ],
)
def test_a_service_update_is_attempted_once_whatever_the_error(
    engine: DockerEngine,
    sleeps: list[float],
    monkeypatch: pytest.MonkeyPatch,
    error: Exception,
    kind: type[EngineError],
) -> None:
    monkeypatch.setattr(
        engine._api, "inspect_service", Calls(result={"Version": {"Index": 7}, "Spec": SPEC})
    )
    post = Calls(error, error, result=ok_response())
    monkeypatch.setattr(engine._api, "_post_json", post)

    with pytest.raises(kind) as raised:
        engine.force_update("svc1", 7)

    assert type(raised.value) is kind
    assert str(raised.value).startswith("force update service svc1:")
    assert post.count == 1  # a timeout may hide a success: never replayed
    assert sleeps == []


def test_creating_the_ledger_concurrently_is_a_conflict(
    engine: DockerEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    create = Calls(api_error(409, "rpc error: code = AlreadyExists desc = config exists"))
    monkeypatch.setattr(engine._api, "create_config", create)

    with pytest.raises(Conflict, match="write ledger swarm-medic-ledger: created concurrently"):
        engine.write_ledger("swarm-medic-ledger", None, {"swarm-medic.svc.s1": "{}"})

    assert create.count == 1


def test_a_stale_ledger_write_is_a_conflict(
    engine: DockerEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    current = {"ID": "cfg1", "Spec": {"Name": "swarm-medic-ledger", "Data": "eA==", "Labels": {}}}
    monkeypatch.setattr(engine._api, "inspect_config", Calls(result=current))
    post = Calls(result=response(500, OUT_OF_SEQUENCE))
    monkeypatch.setattr(engine._api, "_post_json", post)
    doc = LedgerDoc(id="cfg1", version=4)

    with pytest.raises(Conflict, match="write ledger swarm-medic-ledger: the object changed"):
        engine.write_ledger("swarm-medic-ledger", doc, {"swarm-medic.svc.s1": "{}"})

    (url,), kwargs = post.args[0]
    assert url.endswith("/configs/cfg1/update")
    assert kwargs["params"] == {"version": 4}
    assert kwargs["data"]["Labels"] == {"swarm-medic.svc.s1": "{}"}
    assert kwargs["data"]["Data"] == "eA=="
    assert post.count == 1


def test_the_ledger_is_found_by_exact_name_not_prefix(
    engine: DockerEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    configs = Calls(
        result=[
            {"ID": "c2", "Version": {"Index": 3}, "Spec": {"Name": "swarm-medic-ledger-old"}},
            {
                "ID": "c1",
                "Version": {"Index": 9},
                "Spec": {"Name": "swarm-medic-ledger", "Labels": {"k": "v"}},
            },
        ]
    )
    monkeypatch.setattr(engine._api, "configs", configs)

    doc = engine.read_ledger("swarm-medic-ledger")

    assert doc is not None
    assert (doc.id, doc.version, dict(doc.labels)) == ("c1", 9, {"k": "v"})
    assert configs.args[0][1] == {"filters": {"name": "swarm-medic-ledger"}}


def test_the_event_stream_resumes_at_the_nanosecond(
    engine: DockerEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = Calls(result=iter([]))
    monkeypatch.setattr(engine._api, "events", events)

    engine.events(1_700_000_000_000_000_042)
    engine.events(None)

    first, second = (kwargs for _args, kwargs in events.args)
    assert first["since"] == "1700000000.000000042"
    # raw lines, decoded by wire.EventLines: the SDK's decoder let a RecursionError end the
    # stream on every reconnect (issue 16)
    assert first["decode"] is False
    assert first["filters"] == {"type": ["service", "node", "container"]}
    assert second["since"] is None


def test_an_event_nested_too_deeply_is_a_malformed_line_not_the_end_of_the_stream(
    engine: DockerEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = b'{"Type":"service","Action":"update","timeNano":5,"Actor":{"ID":"s1"}}'
    deep = b'{"Type":"service","x":' + b"[" * 100_000 + b"]" * 100_000 + b"}"

    class Raw:
        closed = False

        def __iter__(self) -> Any:
            yield good + b"\n" + deep[:100]
            yield deep[100:] + b"\n" + good + b"\n"

        def close(self) -> None:
            self.closed = True

    raw = Raw()
    monkeypatch.setattr(engine._api, "events", Calls(result=raw))

    stream = engine.events(None)
    got = list(stream)
    stream.close()

    assert [g.error if isinstance(g, MalformedEvent) else g.actor_id for g in got] == [
        "s1",
        "event nested too deeply",
        "s1",
    ]
    assert raw.closed
