"""The Engine API version, negotiated over a real socket: a stand-in dockerd on a unix socket
answers `/version` and refuses a client below its floor exactly as Engine 29 does, and can be
replaced under the client, as an `apt upgrade` of Docker restarts dockerd at a new version."""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from swarm_medic.core.errors import UnsupportedEngine
from swarm_medic.swarm.engine import DockerEngine
from tests.labkit import ROOT

DEBIAN_12 = {"Version": "20.10.24+dfsg1", "ApiVersion": "1.41", "MinAPIVersion": "1.12"}
DOCKER_28_FLOOR_44 = {"Version": "28.5.2", "ApiVersion": "1.51", "MinAPIVersion": "1.44"}
DOCKER_28 = {"Version": "28.5.2", "ApiVersion": "1.51", "MinAPIVersion": "1.24"}
ENGINE_29 = {"Version": "29.1.2", "ApiVersion": "1.52", "MinAPIVersion": "1.44"}
DOCKER_19 = {"Version": "19.03.15", "ApiVersion": "1.40", "MinAPIVersion": "1.12"}


def _v(text: str) -> tuple[int, int]:
    a, _, b = text.partition(".")
    return int(a), int(b)


@dataclass
class Dockerd:
    """What the engine says of itself, and every path it was asked."""

    version: dict[str, str]
    paths: list[str] = field(default_factory=list)

    def answer(self, path: str) -> tuple[int, Any]:
        self.paths.append(path)
        if path == "/version":
            return 200, self.version
        prefix, _, rest = path.lstrip("/").partition("/")
        asked = prefix.removeprefix("v")
        if _v(asked) < _v(self.version["MinAPIVersion"]):
            floor = self.version["MinAPIVersion"]
            return 400, {
                "message": f"client version {asked} is too old. Minimum supported API version "
                f"is {floor}, please upgrade your client to a newer version"
            }
        if rest == "info":
            return 200, {
                "ServerVersion": self.version["Version"],
                "Swarm": {"NodeID": "n1", "LocalNodeState": "active", "ControlAvailable": True},
            }
        if rest in ("tasks", "nodes", "services"):
            return 200, []
        return 404, {"message": f"page not found: {path}"}


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    open: list[Any]

    def process_request(self, request: Any, client_address: Any) -> None:
        self.open.append(request)
        super().process_request(request, client_address)

    def stop(self) -> None:
        """As dockerd exiting: the listener and every open connection closed."""
        self.shutdown()
        self.server_close()
        for conn in self.open:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()


def serve(sock: Path, dockerd: Dockerd) -> _Server:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            status, doc = dockerd.answer(self.path.split("?")[0])
            body = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

        def address_string(self) -> str:
            return "unix"

    sock.unlink(missing_ok=True)
    server = _Server(str(sock), Handler)
    server.open = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def sock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path / "docker.sock"


@pytest.fixture
def running(sock: Path) -> Iterator[Callable[[dict[str, str]], Dockerd]]:
    servers: list[_Server] = []

    def start(version: dict[str, str]) -> Dockerd:
        for s in servers:  # one dockerd at a time on the socket: the old one goes first
            s.stop()
        servers.clear()
        d = Dockerd(dict(version))
        servers.append(serve(sock, d))
        return d

    yield start
    for s in servers:
        s.stop()


def client(sock: Path, sleep: Callable[[float], None] = lambda s: None) -> DockerEngine:
    return DockerEngine(f"unix://{sock}", timeout=5, attempts=4, sleep=sleep)


def test_engine_29_is_spoken_to_at_our_newest_version_asked_once(
    sock: Path, running: Callable[[dict[str, str]], Dockerd]
) -> None:
    dockerd = running(ENGINE_29)
    engine = client(sock)

    engine.info()
    engine.tasks()

    assert dockerd.paths == ["/version", "/v1.51/info", "/v1.51/tasks"]
    assert engine.speaking is not None
    assert (engine.speaking.engine, engine.speaking.api) == ("29.1.2", "1.51")
    assert engine.api_calls == 3  # the version question counts as a request


def test_debian_12s_engine_is_spoken_to_at_1_41(
    sock: Path, running: Callable[[dict[str, str]], Dockerd]
) -> None:
    dockerd = running(DEBIAN_12)
    client(sock).nodes()
    assert dockerd.paths == ["/version", "/v1.41/nodes"]


def test_an_upgrade_under_the_client_is_followed_without_a_restart(
    sock: Path, running: Callable[[dict[str, str]], Dockerd]
) -> None:
    old = running(DEBIAN_12)
    engine = client(sock)
    engine.tasks()
    assert old.paths[-1] == "/v1.41/tasks"

    new = running(DOCKER_28_FLOOR_44)  # dockerd restarted at 28, with Engine 29's floor
    engine.tasks()

    # Whether the pooled connection broke or a request reached the new engine at 1.41 and
    # was refused, the client asked the version again and carried on at 1.51.
    assert new.paths[-2:] == ["/version", "/v1.51/tasks"]
    assert new.paths.count("/version") == 1
    assert engine.speaking is not None and engine.speaking.engine == "28.5.2"


def test_a_restart_seen_only_in_info_renegotiates_before_the_next_request(
    sock: Path, running: Callable[[dict[str, str]], Dockerd]
) -> None:
    dockerd = running(DEBIAN_12)
    engine = client(sock)
    engine.info()
    # replaced between two requests, none failed, and 1.41 still accepted: only /info's
    # ServerVersion tells
    dockerd.version = dict(DOCKER_28)

    assert engine.info().engine_version == "28.5.2"
    engine.services()

    assert dockerd.paths == [
        "/version",
        "/v1.41/info",
        "/v1.41/info",
        "/version",
        "/v1.51/services",
    ]


def test_an_engine_older_than_ours_is_refused_in_one_line_and_not_retried(
    sock: Path, running: Callable[[dict[str, str]], Dockerd]
) -> None:
    dockerd = running(DOCKER_19)
    sleeps: list[float] = []
    engine = client(sock, sleep=sleeps.append)

    with pytest.raises(
        UnsupportedEngine, match=r"runs Docker 19\.03\.15, whose newest API is 1\.40"
    ):
        engine.info()

    assert dockerd.paths == ["/version"]  # nothing asked at a version it does not speak
    assert sleeps == []


def test_check_says_an_unsupported_engine_in_one_line_and_exits_3(
    sock: Path, running: Callable[[dict[str, str]], Dockerd]
) -> None:
    running(DOCKER_19)
    done = subprocess.run(
        [sys.executable, "-m", "swarm_medic.cli", "check"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={"DOCKER_HOST": f"unix://{sock}", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert done.returncode == 3  # could not check (the CLI's code for any such failure)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "needs API 1.41 (Docker 20.10) or newer" in lines[0]
    assert "whose newest API is 1.40" in lines[0]
    assert done.stdout == ""


def test_the_medic_can_start_before_its_engine(sock: Path, running: Callable[..., Dockerd]) -> None:
    started: list[Dockerd] = []

    def sleep(_: float) -> None:  # dockerd comes up while the client waits to retry
        if not started:
            started.append(running(DOCKER_28_FLOOR_44))

    engine = client(sock, sleep=sleep)
    assert engine.speaks().api == "1.51"
    assert started[0].paths == ["/version"]


# --- the daemon: what it says of the engine it speaks to ---------------------------------


def test_the_daemon_says_the_engine_it_speaks_and_follows_an_upgrade() -> None:
    from prometheus_client import CollectorRegistry

    from swarm_medic.app import App
    from swarm_medic.core.settings import HttpSettings, Settings
    from swarm_medic.swarm.fake import FakeEngine
    from swarm_medic.web.status import render
    from tests.pipeline.support import Logs

    fake = FakeEngine(node_id="mgr1")
    fake.add_node("manager-1", node_id="mgr1", leader=True)
    fake.version_answer = dict(DEBIAN_12)
    reg = CollectorRegistry()
    app = App(Settings(http=HttpSettings(http_port=0)), lambda: fake, reg)
    logs = Logs()
    app.journal._log = logs.logger

    def info() -> dict[str, str]:
        return {
            s.labels["version"]: s.labels
            for m in reg.collect()
            if m.name == "swarm_medic"
            for s in m.samples
        }.popitem()[1]

    app.banner()
    app.medic.scan()
    start = logs.starting("swarm-medic")[0]
    assert str(start["engine_version"]).startswith("Docker 20.10.24+dfsg1, API 1.41 (engine")
    (first,) = logs.starting("engine: ")
    assert (first["engine_version"], first["api_version"]) == ("20.10.24+dfsg1", "1.41")
    assert (info()["engine_version"], info()["api_version"]) == ("20.10.24+dfsg1", "1.41")
    assert app.health()[1]["engine"]["api_version"] == "1.41"

    fake.upgrade(DOCKER_28_FLOOR_44)  # dockerd restarted at 28 under the running medic
    app.medic.scan()
    app.medic.scan()

    (changed,) = logs.starting("engine changed")
    assert "Docker 20.10.24+dfsg1 API 1.41 -> Docker 28.5.2, API 1.51" in changed["event"]
    assert changed["log_level"] == "warning"
    assert (info()["engine_version"], info()["api_version"]) == ("28.5.2", "1.51")
    assert app.health()[1]["engine"] == {
        "engine_version": "28.5.2",
        "api_version": "1.51",
        "engine_api_min": "1.44",
        "engine_api_max": "1.51",
    }
    assert "engine <b>Docker 28.5.2, API 1.51</b>" in render(app.status())
    assert app.medic.state.last_error == ""  # scanning at the new version
