"""The port is not a public page (issue 16, section 7): the read-only pages on their own listener,
the channel's listener serving only the channel, /v1/alerts and a bare /healthz, and a token
for the status page. Servers on 127.0.0.1 port 0, asked from loopback only."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from prometheus_client import CollectorRegistry

from swarm_medic.app import App
from swarm_medic.core.errors import SettingsError
from swarm_medic.core.settings import Settings
from swarm_medic.core.settings import load as load_settings
from swarm_medic.telemetry.http import Server, serve
from tests.netkit import closed_port
from tests.pipeline.harness import swarm
from tests.pipeline.rawhttp import Recorder, exchange, post, status

TOKEN = "st4tus-t0ken-for-people"  # noqa: S105 - a test value


def get(port: int, path: str, *headers: str) -> bytes:
    head = [f"GET {path} HTTP/1.1", "Host: t", *headers]
    return exchange(port, ("\r\n".join(head) + "\r\n\r\n").encode())


def body_of(answer: bytes) -> bytes:
    return answer.partition(b"\r\n\r\n")[2]


@contextmanager
def serving(control: Recorder, *, pages: bool, token: str = "") -> Iterator[Server]:
    server = serve(
        "127.0.0.1",
        0,
        CollectorRegistry(),
        lambda: (True, {"role": "brain", "last_error": "inside detail"}),
        control,
        status=lambda: b"<html>services, nodes, incidents</html>",
        pages=("127.0.0.1", 0) if pages else None,
        status_token=token,
    )
    try:
        yield server
    finally:
        server.shutdown()


def test_with_pages_apart_the_channel_port_serves_no_page() -> None:
    # before: every node served /, /metrics and /healthz with its details on 0.0.0.0:9324
    control = Recorder()
    with serving(control, pages=True) as server:
        channel, pages = server.server_address[1], server.pages_address[1]
        assert channel != pages
        on_channel = {p: get(channel, p) for p in ("/", "/metrics", "/healthz")}
        signed = exchange(channel, post("/v1/probe", b"{}"))
        on_pages = {p: get(pages, p) for p in ("/", "/metrics", "/healthz")}
        post_to_pages = exchange(pages, post("/v1/probe", b"{}"))

    assert status(on_channel["/"]) == 404 and status(on_channel["/metrics"]) == 404
    assert status(on_channel["/healthz"]) == 200
    assert body_of(on_channel["/healthz"]) == b"ok\n"  # the HEALTHCHECK's answer, no detail
    assert status(signed) == 200 and len(control.calls) == 1
    assert status(on_pages["/"]) == 200 and b"incidents" in on_pages["/"]
    assert status(on_pages["/metrics"]) == 200
    assert json.loads(body_of(on_pages["/healthz"]))["last_error"] == "inside detail"
    assert status(post_to_pages) == 404 and len(control.calls) == 1  # no channel there


def test_by_default_one_port_serves_everything_as_before() -> None:
    control = Recorder()
    with serving(control, pages=False) as server:
        port = server.server_address[1]
        assert server.pages_address == server.server_address
        assert status(get(port, "/")) == 200
        assert b"last_error" in get(port, "/healthz")
        assert status(exchange(port, post("/v1/probe", b"{}"))) == 200


def test_the_status_page_asks_for_its_token() -> None:
    basic = base64.b64encode(f"anyone:{TOKEN}".encode()).decode()
    wrong = base64.b64encode(b"anyone:guess").decode()
    with serving(Recorder(), pages=False, token=TOKEN) as server:
        port = server.server_address[1]
        none = get(port, "/")
        bearer = get(port, "/", f"Authorization: Bearer {TOKEN}")
        as_basic = get(port, "/", f"Authorization: Basic {basic}")
        bad = [
            get(port, "/", "Authorization: Bearer guess"),
            get(port, "/", f"Authorization: Basic {wrong}"),
            get(port, "/", "Authorization: Basic !!!not-base64"),
            get(port, "/", f"Authorization: Bearer {TOKEN}x"),
        ]
        others = [get(port, p) for p in ("/healthz", "/metrics")]

    assert status(none) == 401
    assert b'WWW-Authenticate: Basic realm="swarm-medic status"' in none
    assert b"incidents" not in none
    assert status(bearer) == 200 and b"incidents" in bearer
    assert status(as_basic) == 200
    assert [status(a) for a in bad] == [401] * 4
    assert [status(a) for a in others] == [200, 200]  # the token is the status page's


def test_the_daemon_wires_the_pages_listener_and_the_token() -> None:
    settings = Settings(
        http_addr="127.0.0.1",
        http_port=closed_port(),
        pages_addr="127.0.0.1",
        pages_port=closed_port(),
        status_token=TOKEN,
    )
    fake = swarm()
    server = App(settings, lambda: fake, CollectorRegistry()).serve_http()
    try:
        channel, pages = server.server_address[1], server.pages_address[1]
        assert (channel, pages) == (settings.http_port, settings.pages_port)
        assert status(get(channel, "/")) == 404
        assert status(get(pages, "/")) == 401
        assert status(get(pages, "/", f"Authorization: Bearer {TOKEN}")) == 200
    finally:
        server.shutdown()


def test_the_status_token_is_a_hidden_setting() -> None:
    got = load_settings({}, {"SWARM_MEDIC_STATUS_TOKEN": TOKEN, "SWARM_MEDIC_PAGES_PORT": "9325"})
    assert got.status_token == TOKEN and got.pages_port == 9325
    assert TOKEN not in repr(got)
    with pytest.raises(SettingsError) as err:
        load_settings({}, {"SWARM_MEDIC_STATUS_TOKEN": "has space"})
    assert "has space" not in str(err.value)
