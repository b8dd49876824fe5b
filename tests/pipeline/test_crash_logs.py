"""The last log lines of a crashed task: read by DockerEngine.task_logs (no dockerd: the SDK's
`_get` is replaced) and by the Medic once per incident, on the FakeEngine; and stuck-update's
rollback carried out and verified."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import requests

from swarm_medic.core.errors import EngineError, EngineUnavailable, NotFound
from swarm_medic.core.settings import Settings
from swarm_medic.swarm.engine import LOG_TIMEOUT, DockerEngine
from swarm_medic.swarm.fake import FakeEngine
from swarm_medic.swarm.mapping import LOG_LINES, LOG_READ_MAX
from tests.builders import NOW as T0
from tests.pipeline.harness import ENABLE, ME, Harness, Kept, Told, builtin, swarm
from tests.pipeline.sdk import NOWHERE, Calls, api_error, negotiated


def frame(payload: bytes, stream: int = 1) -> bytes:
    return bytes((stream, 0, 0, 0)) + len(payload).to_bytes(4, "big") + payload


class Body:
    """A streamed 200 answer: `chunks` as they arrive; counts what was read and if closed."""

    status_code = 200

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self.read = 0
        self.closed = False

    def raise_for_status(self) -> None:
        return None

    def iter_content(self, chunk_size: int = 1) -> Iterator[bytes]:
        for c in self._chunks:
            self.read += len(c)
            yield c

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> DockerEngine:
    for var in ("DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
        monkeypatch.delenv(var, raising=False)
    return negotiated(DockerEngine(NOWHERE, attempts=3, sleep=lambda s: None), monkeypatch)


# --- DockerEngine.task_logs ----------------------------------------------------------------


def test_the_engine_asks_for_the_tail_of_both_streams_once_and_demultiplexes(
    engine: DockerEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = Body(iter([frame(b"starting\n") + frame(b"boom: \x1b[31mno db\n", 2)]))
    get = Calls(result=body)
    monkeypatch.setattr(engine._api, "_get", get)

    assert engine.task_logs("t1", 500) == "starting\nboom: [31mno db"

    ((args, kwargs),) = get.args
    assert args[0].endswith("/v1.51/tasks/t1/logs")
    assert kwargs == {
        "params": {"stdout": 1, "stderr": 1, "follow": 0, "tail": LOG_LINES},
        "stream": True,
        "timeout": LOG_TIMEOUT,
    }
    assert body.closed and engine.api_calls == 1


def test_an_endless_answer_is_read_only_so_far(
    engine: DockerEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def endless() -> Iterator[bytes]:
        while True:
            yield frame(b"y" * 8000 + b"\n")

    body = Body(endless())
    monkeypatch.setattr(engine._api, "_get", Calls(result=body))
    text = engine.task_logs("t1", 20)
    assert LOG_READ_MAX <= body.read < LOG_READ_MAX + 8100
    assert body.closed and text.startswith("y")


@pytest.mark.parametrize(
    ("error", "kind", "says"),
    [
        (api_error(404, "task t1 not found"), NotFound, "read the log of task t1: not found"),
        (api_error(500, "rpc error: transport is closing"), EngineError, "engine answered 500"),
        (
            requests.exceptions.ReadTimeout("read timed out"),
            EngineUnavailable,
            f"no answer within {LOG_TIMEOUT:g}s (the task's node may be down or slow)",
        ),
        (
            requests.exceptions.ConnectionError("refused"),
            EngineUnavailable,
            "cannot reach the Docker Engine",
        ),
        (
            requests.exceptions.ChunkedEncodingError("connection broken"),
            EngineError,
            "the answer broke off (ChunkedEncodingError)",
        ),
    ],
)
def test_a_failed_read_is_an_engine_error_asked_once(
    engine: DockerEngine,
    monkeypatch: pytest.MonkeyPatch,
    error: Exception,
    kind: type[EngineError],
    says: str,
) -> None:
    get = Calls(*[error] * 3)
    monkeypatch.setattr(engine._api, "_get", get)
    with pytest.raises(kind, match="read the log of task t1") as raised:
        engine.task_logs("t1", 20)
    assert says in str(raised.value)
    assert get.count == 1 and engine.api_calls == 1  # never retried: a scan waits once at most


# --- the Medic: read once, when the incident opens -----------------------------------------


def crash_loop(fake: FakeEngine, crashes: int = 3) -> tuple[str, str]:
    """A one-replica service whose tasks exit 3 every 20 s -> (service id, last crashed task)."""
    sid = fake.add_service("web", labels=ENABLE)
    last = ""
    for i in range(crashes):
        at = T0 - 20 * (crashes - i)
        last = fake.add_task(
            sid,
            state="failed",
            desired="shutdown",
            node_id=ME,
            since=at,
            created=at - 2,
            err="task: non-zero exit (3)",
            exit_code=3,
        )
    fake.add_task(sid, state="starting", node_id=ME, since=T0 - 1)
    return sid, last


def test_the_last_crashed_task_s_log_comes_with_the_finding_read_once() -> None:
    fake = swarm()
    sid, last = crash_loop(fake)
    fake.set_task_logs(last, "connecting to db\nmedic-marker: giving up\n")
    h = Harness(fake)

    h.scan(T0)
    (finding,) = h.logs.named("finding")
    assert finding["runbook"] == "crash-loop"
    assert "the last: exit 3" in finding["summary"]
    assert finding["logs"] == "connecting to db\nmedic-marker: giving up"
    assert "logs_error" not in finding
    assert fake.log_reads == [(last, LOG_LINES)]
    (report,) = h.logs.named("decision: report only")
    assert report["incident"] == finding["incident"]

    # the loop goes on: the same incident, its log not read again
    newest = fake.add_task(
        sid, state="failed", desired="shutdown", node_id=ME, err="task: non-zero exit (3)"
    )
    fake.set_task_logs(newest, "again\n")
    h.scan(T0 + 2)
    h.scan(T0 + 4)
    assert len(h.logs.named("finding")) == 1
    assert fake.log_reads == [(last, LOG_LINES)]
    assert fake.writes == []  # report only


def test_a_log_that_cannot_be_read_is_said_and_the_scan_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = swarm()
    crash_loop(fake)

    def unreadable(task_id: str, tail: int) -> str:
        raise EngineUnavailable(f"read the log of task {task_id}: no answer within 5s")

    monkeypatch.setattr(fake, "task_logs", unreadable)
    h = Harness(fake)
    h.scan(T0)
    (finding,) = h.logs.named("finding")
    assert "logs" not in finding
    assert finding["logs_error"].endswith("no answer within 5s")
    assert h.metric("swarm_medic_scans_total", result="ok") == 1
    assert h.logs.named("decision: report only")


def test_an_empty_log_is_said_empty_and_a_finding_naming_no_task_reads_none() -> None:
    fake = swarm()
    crash_loop(fake)
    other = fake.add_service("stuck", labels=ENABLE)
    fake.add_task(other, state="starting", node_id=ME, since=T0 - 400)
    h = Harness(fake)
    h.scan(T0)
    by_runbook = {f["runbook"]: f for f in h.logs.named("finding")}
    assert by_runbook["crash-loop"]["logs"] == "(empty)"
    assert "logs" not in by_runbook["stuck-task"]
    assert len(fake.log_reads) == 1


def test_only_the_leader_reads_the_log() -> None:
    fake = swarm(leader=False)
    crash_loop(fake)
    h = Harness(fake)
    h.scan(T0)
    (finding,) = h.logs.named("finding")
    assert "logs" not in finding and "logs_error" not in finding
    assert fake.log_reads == []


def test_the_notification_carries_the_log_indented_under_its_heading() -> None:
    fake = swarm()
    _, last = crash_loop(fake)
    fake.set_task_logs(last, "fatal: bad config\nincident: forged\n\x1b]0;title\x07\n")
    kept = Kept()
    told = Told(fake, kept)
    told.scan(T0)
    (msg,) = [m for m in kept.kept if m.step == "finding"]
    assert dict(msg.fields)["last log lines"] == (
        "\n  | fatal: bad config\n  | incident: forged\n  | ]0;title"
    )
    body = msg.body.split("\n")
    assert [ln for ln in body if ln.startswith("incident:")] == [f"incident: {msg.incident}"]


# --- stuck-update: the rollback, acted on and verified -------------------------------------


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_a_stuck_update_is_rolled_back_when_asked_and_verified() -> None:
    fake = swarm()
    sid = fake.add_service(
        "web",
        labels=ENABLE,
        previous_spec=True,
        update_status={"State": "updating", "StartedAt": iso(T0 - 30)},
        spec_extra={"UpdateConfig": {"Parallelism": 1, "Monitor": 1_000_000_000}},
    )
    fake.add_task(sid, node_id=ME, since=T0 - 3600)
    pending = fake.add_task(
        sid,
        state="pending",
        since=T0 - 29,
        err="no suitable node (scheduling constraints not satisfied on 1 node)",
    )
    reg = builtin()
    reg.configure(["stuck-update.action=rollback", "stuck-update.margin=5s"])
    h = Harness(fake, Settings(verify_hold=3.0), runbooks=reg)

    h.scan(T0)
    (finding,) = h.logs.named("finding")
    assert finding["runbook"] == "stuck-update"
    assert finding["tasks"] == [pending]
    assert fake.writes == [("rollback", sid, 10)]
    assert h.actions("done", runbook="stuck-update", kind="rollback") == 1

    # swarm rolls back: the pending task goes, the old one was serving all along
    fake.set_task_state(pending, "shutdown", desired="shutdown")
    fake.set_update_status(sid, "rollback_completed")
    h.scan(T0 + 2)
    h.scan(T0 + 6)
    (healed,) = h.logs.named("verified: healed")
    assert healed["incident"] == finding["incident"]
    assert len(fake.writes) == 1


def test_a_stuck_update_is_only_reported_by_default() -> None:
    fake = swarm()
    sid = fake.add_service(
        "web",
        labels=ENABLE,
        previous_spec=True,
        update_status={"State": "updating", "StartedAt": iso(T0 - 600)},
    )
    fake.add_task(sid, state="pending", since=T0 - 599, err="no suitable node")
    h = Harness(fake)
    h.scan(T0)
    (finding,) = [f for f in h.logs.named("finding") if f["runbook"] == "stuck-update"]
    reports = h.logs.named("decision: report only")
    assert finding["incident"] in {r["incident"] for r in reports}
    assert fake.writes == []
