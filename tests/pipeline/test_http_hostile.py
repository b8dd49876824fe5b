"""The HTTP port against hostile and broken clients (issue 6, section 3).

Servers listen on 127.0.0.1 port 0 and are only ever asked from loopback addresses. Most
tests run the server in-process with small limits; the memory and thread tests run it alone in
a subprocess (tests/pipeline/hostile_server.py) and read its figures from /proc. Every client
socket has a timeout and every loop a fixed count, so a server that hangs fails a test instead
of stalling the run. The figures are printed: run with -s to see them.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from swarm_medic.telemetry.http import serve
from swarm_medic.telemetry.httphead import (
    METHODS,
    Limits,
    Reason,
    Refusal,
    Request,
    parse_head,
    split_head,
)
from swarm_medic.telemetry.journal import Journal
from swarm_medic.telemetry.metrics import Metrics
from tests.pipeline.rawhttp import (
    CLIENT_TIMEOUT,
    Recorder,
    connect,
    exchange,
    post,
    post_head,
    proc_figures,
    read_all,
    read_line,
    server_process,
    status,
)
from tests.pipeline.support import Logs, sample

MiB = 1 << 20
REFUSED = "swarm_medic_http_refused_total"


# --- helpers ----------------------------------------------------------------------------------


@contextmanager
def serving(
    journal: Journal | None = None,
    control: Recorder | None = None,
    limits: Limits | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[int]:
    server = serve(
        "127.0.0.1",
        0,
        CollectorRegistry(),
        lambda: (True, {"role": "test"}),
        control,
        journal=journal,
        limits=limits,
        clock=clock,
    )
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


GET_HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"


@pytest.fixture
def counted(prom: CollectorRegistry, logs: Logs) -> Journal:
    metrics = Metrics(prom)
    metrics.preinitialise()
    return Journal(metrics, logs.logger)


# --- requests refused before anything past the limit is read ---------------------------------


def head_of(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# Only heads are sent, never a body, and the connection stays open: an answer proves the server
# decided on the head alone (the old server read a negative length to EOF and never answered).
@pytest.mark.parametrize(
    ("raw", "code", "reason"),
    [
        (head_of("POST /v1/probe HTTP/1.1", "Content-Length: -1"), 400, "bad_content_length"),
        (head_of("POST /v1/probe HTTP/1.1", "Host: t"), 411, "length_required"),
        (head_of("POST /v1/probe HTTP/1.1", "Content-Length: abc"), 400, "bad_content_length"),
        (head_of("POST /v1/probe HTTP/1.1", "Content-Length: +10"), 400, "bad_content_length"),
        (head_of("POST /v1/probe HTTP/1.1", "Content-Length: 1_0"), 400, "bad_content_length"),
        (head_of("POST /v1/probe HTTP/1.1", "Content-Length: 314572800"), 413, "body_too_large"),
        (
            head_of("POST /v1/probe HTTP/1.1", "Content-Length: " + "9" * 5000),
            413,
            "body_too_large",
        ),
        (
            head_of("POST /v1/probe HTTP/1.1", "Content-Length: 4", "Content-Length: 40"),
            400,
            "bad_content_length",
        ),
        (
            head_of("POST /v1/probe HTTP/1.1", "Transfer-Encoding: chunked"),
            501,
            "transfer_encoding",
        ),
        (
            head_of("POST /v1/probe HTTP/1.1", "Content-Length: 4", "Transfer-Encoding: chunked"),
            501,
            "transfer_encoding",
        ),
        # 20 KiB of headers and no blank line: answered at 16 KiB without waiting for the end
        (
            b"GET /healthz HTTP/1.1\r\n"
            + b"".join(b"X-Pad-%d: %s\r\n" % (i, b"a" * 1000) for i in range(20)),
            431,
            "headers_too_large",
        ),
        (
            head_of("GET /healthz HTTP/1.1", *(f"X-{i}: {i}" for i in range(65))),
            431,
            "headers_too_large",
        ),
        (b"GET /" + b"a" * 5000, 414, "request_line_too_long"),
        (
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)) + b"\r\n\r\n",
            400,
            "bad_request",
        ),
        (head_of("GET /healthz HTTP/2.0"), 505, "http_version"),
        (head_of("DELETE /v1/act HTTP/1.1"), 405, "method_not_allowed"),
        (head_of("GET /healthz HTTP/1.1", "Host : t"), 400, "bad_request"),
        (head_of("GET /healthz HTTP/1.1", "X-A: 1", " folded"), 400, "bad_request"),
        (head_of("GET http://evil/ HTTP/1.1"), 400, "bad_request"),
    ],
    ids=[
        "negative-length",
        "missing-length",
        "non-numeric-length",
        "signed-length",
        "underscore-length",
        "300MiB-length",
        "5000-digit-length",
        "two-lengths",
        "chunked",
        "length-and-chunked",
        "20KiB-headers-unfinished",
        "65-headers",
        "5000-byte-request-line",
        "tls-hello",
        "http2",
        "delete",
        "space-before-colon",
        "folded-header",
        "absolute-target",
    ],
)
def test_a_bad_head_is_refused_on_the_head_alone(
    counted: Journal, prom: CollectorRegistry, raw: bytes, code: int, reason: str
) -> None:
    control = Recorder()
    with serving(counted, control) as port:
        answer = exchange(port, raw)

    assert status(answer) == code
    assert b"Connection: close" in answer
    assert control.calls == []
    assert sample(prom, REFUSED, reason=reason) == 1


def test_a_body_is_read_to_its_length_and_no_further(counted: Journal) -> None:
    control = Recorder()
    with serving(counted, control) as port:
        answer = exchange(port, post("/v1/probe", b"0123456789") + b"and then some more bytes")

    assert status(answer) == 200
    assert [(c[0], c[2]) for c in control.calls] == [("/v1/probe", b"0123456789")]
    assert control.calls[0][1]["Content-Length"] == "10"


def test_a_body_of_exactly_the_limit_is_served(counted: Journal) -> None:
    control = Recorder()
    with serving(counted, control) as port:
        answer = exchange(port, post("/v1/probe", b"b" * MiB))

    assert status(answer) == 200
    assert control.calls[0][2] == b"b" * MiB


def test_expect_100_continue_gets_its_interim_answer(counted: Journal) -> None:
    control = Recorder()
    with serving(counted, control) as port, connect(port) as s:
        s.sendall(post_head("/v1/probe", 5, "Expect: 100-continue"))
        interim = read_line(s)
        s.sendall(b"hello")
        answer = read_all(s)

    assert interim == b"HTTP/1.1 100 Continue\r"
    assert status(answer.lstrip(b"\r\n")) == 200
    assert control.calls[0][2] == b"hello"


# --- deadlines --------------------------------------------------------------------------------


def test_a_head_that_never_ends_is_cut_off(counted: Journal, prom: CollectorRegistry) -> None:
    with serving(counted, limits=Limits(head_timeout=0.2)) as port:
        answer = exchange(port, b"GET /healthz HTTP/1.1\r\nX-Slow: 1\r\n")

    assert status(answer) == 408
    assert sample(prom, REFUSED, reason="head_timeout") == 1


def test_a_body_that_never_ends_is_cut_off(counted: Journal, prom: CollectorRegistry) -> None:
    control = Recorder()
    with serving(counted, control, Limits(body_timeout=0.2)) as port:
        answer = exchange(port, post("/v1/probe", b"0123456789")[:-7])

    assert status(answer) == 408
    assert control.calls == []
    assert sample(prom, REFUSED, reason="body_timeout") == 1


def test_a_handler_past_its_deadline_is_answered_504(
    counted: Journal, prom: CollectorRegistry
) -> None:
    control = Recorder(block=True)
    try:
        with serving(counted, control, Limits(handler_timeout=0.2)) as port:
            answer = exchange(port, post("/v1/probe", b"{}"))
    finally:
        control.release.set()

    assert status(answer) == 504
    assert sample(prom, REFUSED, reason="handler_timeout") == 1


def test_a_crashing_handler_is_a_500_and_the_port_stays_up(
    counted: Journal, prom: CollectorRegistry
) -> None:
    with serving(counted, Recorder(crash=True)) as port:
        crashed = exchange(port, post("/v1/probe", b"{}"))
        after = exchange(port, GET_HEALTHZ)

    assert status(crashed) == 500
    assert b"handler bug" not in crashed and b"RuntimeError" not in crashed  # only in the log
    assert status(after) == 200
    assert sample(prom, REFUSED, reason="internal_error") == 1


# --- bounded connections and workers ------------------------------------------------------------


def test_a_full_table_evicts_the_oldest_connection_still_sending_its_head(
    counted: Journal, prom: CollectorRegistry
) -> None:
    with serving(counted, limits=Limits(connections=3)) as port, ExitStack() as stack:
        oldest, second, _third = (stack.enter_context(connect(port)) for _ in range(3))
        second.sendall(b"GET /healthz HTTP/1.1\r\n")  # slowloris: a head that has not ended
        newcomer = exchange(port, GET_HEALTHZ)
        evicted = read_all(oldest)
        second.sendall(b"\r\n")
        finished = read_all(second)

    assert status(newcomer) == 200
    assert status(evicted) == 503
    assert b"evicted" in evicted
    assert status(finished) == 200  # only the oldest went
    assert sample(prom, REFUSED, reason="evicted") == 1
    assert sample(prom, REFUSED, reason="too_many_connections") == 0


def test_a_table_full_of_held_bodies_evicts_the_slowest_for_a_newcomer(
    counted: Journal, prom: CollectorRegistry
) -> None:
    # before (issue 16): only a connection still sending its head could be evicted; complete
    # heads with a body never sent held the whole table for the 10 s body deadline, and every
    # other client (/healthz, Prometheus, the brain) got 503 too_many_connections
    control = Recorder()
    with serving(counted, control, Limits(connections=2)) as port, ExitStack() as stack:
        held = [stack.enter_context(connect(port)) for _ in range(2)]
        for s in held:
            s.sendall(post_head("/v1/probe", 2, "Expect: 100-continue"))
            assert read_line(s) == b"HTTP/1.1 100 Continue\r"  # the server holds its head
        newcomer = exchange(port, GET_HEALTHZ)
        for s in held:
            with suppress(OSError):
                s.sendall(b"{}")
        answers = [read_all(s) for s in held]

    assert status(newcomer) == 200
    assert [status(a.lstrip(b"\r\n")) for a in answers] == [503, 200]  # the slowest went
    assert b"evicted" in answers[0]
    assert sample(prom, REFUSED, reason="evicted") == 1
    assert sample(prom, REFUSED, reason="too_many_connections") == 0


def test_a_head_with_the_channel_signature_moves_to_the_reserved_slots(
    counted: Journal, prom: CollectorRegistry
) -> None:
    # the brain's first request after a restart has no trust yet: its signed head takes it out
    # of the anonymous pool, so the newcomers after it evict others, not it
    control = Recorder()
    limits = Limits(connections=2, reserved_connections=2)
    signed = post_head("/v1/probe", 2, "Expect: 100-continue", "X-Medic-Signature: " + "0" * 64)
    plain = post_head("/v1/probe", 2, "Expect: 100-continue")
    with serving(counted, control, limits) as port, ExitStack() as stack:
        first = stack.enter_context(connect(port))
        first.sendall(plain)
        assert read_line(first) == b"HTTP/1.1 100 Continue\r"
        brain = stack.enter_context(connect(port))
        brain.sendall(signed)
        assert read_line(brain) == b"HTTP/1.1 100 Continue\r"
        later = []
        for _ in range(2):  # two more anonymous ones: the pool holds 2
            s = stack.enter_context(connect(port))
            s.sendall(plain)
            assert read_line(s) == b"HTTP/1.1 100 Continue\r"
            later.append(s)
        brain.sendall(b"{}")
        brain_answer = read_all(brain)
        first_answer = read_all(first)

    assert status(brain_answer.lstrip(b"\r\n")) == 200
    assert status(first_answer.lstrip(b"\r\n")) == 503  # the slowest anonymous one went
    assert sample(prom, REFUSED, reason="evicted") == 1


def test_a_table_full_of_running_handlers_refuses_the_newcomer(
    counted: Journal, prom: CollectorRegistry
) -> None:
    control = Recorder(block=True)
    limits = Limits(connections=2, control_workers=2)
    with serving(counted, control, limits) as port, ExitStack() as stack:
        try:
            for _ in range(2):
                stack.enter_context(connect(port)).sendall(post("/v1/probe", b"{}"))
            wait_for(lambda: len(control.calls) == 2)
            refused = exchange(port, GET_HEALTHZ)
        finally:
            control.release.set()

    assert status(refused) == 503
    assert b"too_many_connections" in refused
    assert sample(prom, REFUSED, reason="too_many_connections") == 1


def wait_for(condition: Callable[[], bool], timeout: float = CLIENT_TIMEOUT) -> None:
    until = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < until, "condition not met in time"
        time.sleep(0.01)


def test_busy_workers_answer_503_at_once_and_healthz_does_not_wait(
    counted: Journal, prom: CollectorRegistry
) -> None:
    control = Recorder(block=True)
    with serving(counted, control, Limits(control_workers=1)) as port, connect(port) as first:
        try:
            first.sendall(post("/v1/probe", b"{}"))
            assert control.entered.wait(CLIENT_TIMEOUT)
            busy = exchange(port, post("/v1/probe", b"{}"))
            health = exchange(port, GET_HEALTHZ)
            metrics = exchange(port, b"GET /metrics HTTP/1.1\r\n\r\n")
        finally:
            control.release.set()
        first_answer = read_all(first)
        control.block = False
        again = exchange(port, post("/v1/probe", b"{}"))

    assert status(busy) == 503
    assert b"busy" in busy
    assert status(health) == 200
    assert status(metrics) == 200
    assert status(first_answer) == 200
    assert status(again) == 200  # the worker is given back when its handler returns
    assert len(control.calls) == 2
    assert sample(prom, REFUSED, reason="busy") == 1


# --- refusals are counted every time and logged once per reason per minute ---------------------


def test_refusal_lines_are_rate_limited_per_reason(
    counted: Journal, prom: CollectorRegistry, logs: Logs
) -> None:
    for t in range(5):
        counted.http_refused("bad_request", 400, "10.0.0.9", "garbage", now=100.0 + t)
    counted.http_refused("head_timeout", 408, "10.0.0.8", "slow", now=104.0)
    counted.http_refused("bad_request", 400, "10.0.0.7", "garbage", now=159.9)
    counted.http_refused("bad_request", 400, "10.0.0.6", "garbage", now=160.0)

    lines = logs.named("http: refused")
    assert [(e["reason"], e["peer"], e["suppressed"]) for e in lines] == [
        ("bad_request", "10.0.0.9", 0),
        ("head_timeout", "10.0.0.8", 0),
        ("bad_request", "10.0.0.6", 5),
    ]
    assert {e["log_level"] for e in lines} == {"warning"}
    assert sample(prom, REFUSED, reason="bad_request") == 7
    assert sample(prom, REFUSED, reason="head_timeout") == 1


def test_the_server_logs_refusals_by_its_injected_clock(
    counted: Journal, prom: CollectorRegistry, logs: Logs
) -> None:
    now = [1000.0]
    with serving(counted, clock=lambda: now[0]) as port:
        first = [exchange(port, b"\x00garbage\r\n\r\n") for _ in range(20)]
        now[0] += 60.0
        later = exchange(port, b"\x00garbage\r\n\r\n")

    assert {status(a) for a in [*first, later]} == {400}
    assert [e["suppressed"] for e in logs.named("http: refused")] == [0, 19]
    assert sample(prom, REFUSED, reason="bad_request") == 21


def test_every_refusal_reason_is_preinitialised_at_zero() -> None:
    reg = CollectorRegistry()
    Metrics(reg).preinitialise()
    for reason in Reason:
        assert reg.get_sample_value(REFUSED, {"reason": reason.value}) == 0, reason
    assert reg.get_sample_value(REFUSED, {"reason": "teapot"}) is None


# --- the parser, property-tested ------------------------------------------------------------------

SMALL = Limits(request_line_bytes=40, header_count=3, head_bytes=160, body_bytes=100)
LIMITS = st.sampled_from([Limits(), SMALL])

TOKENS = [
    b"GET", b"POST", b"PUT", b" ", b"/", b"/v1/probe", b"?", b"HTTP/1.1", b"HTTP/1.0",
    b"HTTP/2.0", b"\r\n", b"\n", b"\r", b"\r\n\r\n", b":", b"Content-Length", b"content-length",
    b"Transfer-Encoding", b"chunked", b"-1", b"0", b"99", b"9" * 30, b"\x00", b"\xff", b"\t",
    b"Host", b"X-Medic-Signature", b"a" * 50,
]  # fmt: skip


@st.composite
def valid_requests(draw: st.DrawFn) -> tuple[bytes, Request]:
    method = draw(st.sampled_from(METHODS))
    path = "/" + draw(st.text("abcxyz019-_./", max_size=20))
    query = draw(st.one_of(st.just(""), st.text("a=1&b", max_size=8).map(lambda q: "?" + q)))
    names = draw(
        st.lists(
            st.sampled_from(["Host", "Accept", "X-Medic-Nonce", "User-Agent"]),
            max_size=3,
            unique=True,
        )
    )
    values = [draw(st.text("abc 123/;=,", max_size=10)).strip() for _ in names]
    length = draw(st.integers(0, 100)) if method == "POST" else None
    fields = list(zip(names, values, strict=True))
    if length is not None:
        fields.append(("Content-Length", str(length)))
    eol = draw(st.sampled_from(["\r\n", "\n"]))
    text = eol.join([f"{method} {path}{query} HTTP/1.1", *(f"{k}: {v}" for k, v in fields)])
    expected = Request(method, path + query, "HTTP/1.1", dict(fields), length)
    return (text + eol + eol).encode(), expected


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    raw = bytearray(draw(valid_requests())[0])
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(raw)))
        edit = draw(st.sampled_from(["insert", "delete", "replace"]))
        piece = draw(st.one_of(st.binary(min_size=1, max_size=3), st.sampled_from(TOKENS)))
        if edit == "insert":
            raw[at:at] = piece
        elif edit == "delete":
            del raw[at : at + len(piece)]
        else:
            raw[at : at + len(piece)] = piece
    return bytes(raw)


HOSTILE = st.one_of(
    st.binary(max_size=400),
    st.lists(st.sampled_from(TOKENS), max_size=40).map(b"".join),
    mutated(),
)


def check_request(req: Request, head: bytes, limits: Limits) -> None:
    """What the server relies on in every request the parser lets through."""
    assert len(head) <= limits.head_bytes
    assert req.method in METHODS
    assert req.path.startswith("/")
    assert req.version in ("HTTP/1.0", "HTTP/1.1")
    assert req.header("Transfer-Encoding", "none") == "none"
    assert len(req.headers) <= limits.header_count
    if req.method == "POST":
        assert req.content_length is not None
    if req.content_length is not None:
        assert 0 <= req.content_length <= limits.body_bytes


def parse_or_refuse(raw: bytes, limits: Limits) -> Request | Refusal:
    try:
        return parse_head(raw, limits)
    except Refusal as r:
        assert 400 <= r.status <= 599
        assert isinstance(r.reason, Reason)
        return r


@given(raw=HOSTILE, limits=LIMITS)
def test_the_parser_only_ever_parses_or_refuses(raw: bytes, limits: Limits) -> None:
    result = parse_or_refuse(raw, limits)
    if isinstance(result, Request):
        check_request(result, raw, limits)
    try:
        split = split_head(raw, limits)
    except Refusal as r:
        assert 400 <= r.status <= 599
        return
    if split is not None:
        head, rest = split
        assert head + rest == raw
        parsed = parse_or_refuse(head, limits)
        if isinstance(parsed, Request):
            check_request(parsed, head, limits)


@given(raw=HOSTILE, cut=st.integers(0, 400), limits=LIMITS)
def test_a_prefix_refused_is_never_accepted_later(raw: bytes, cut: int, limits: Limits) -> None:
    """The server splits what has arrived so far: more bytes must not change its mind."""
    try:
        early = split_head(raw[:cut], limits)
    except Refusal:
        with pytest.raises(Refusal):
            split_head(raw, limits)
        return
    if early is not None:
        assert split_head(raw, limits) == (early[0], raw[len(early[0]) :])


@given(case=valid_requests())
def test_a_valid_request_parses_to_what_was_sent(case: tuple[bytes, Request]) -> None:
    raw, expected = case
    split = split_head(raw + b"body", Limits())
    assert split is not None
    assert split[1] == b"body"
    assert parse_head(split[0], Limits()) == expected


# --- 500 idle and slow clients, and a 300 MiB POST, against the server in its own process ---------


def timed(port: int, path: str) -> tuple[int, float]:
    t0 = time.monotonic()
    answer = exchange(port, f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    return status(answer), time.monotonic() - t0


@pytest.mark.usefixtures("many_files")
@pytest.mark.parametrize("held", [None, "600"], ids=["default-limit", "all-500-held"])
def test_500_idle_and_slow_clients_do_not_slow_healthz_or_grow_memory(
    tmp_path: Path, held: str | None
) -> None:
    """250 idle, 200 trickling heads (slowloris), 50 trickling 1 MiB bodies, 4 rounds."""
    with server_process(tmp_path, *([held] if held else [])) as (pid, port):
        assert [timed(port, p)[0] for p in ("/healthz", "/metrics")] == [200, 200]
        before = proc_figures(pid)
        with ExitStack() as stack:
            idle = [stack.enter_context(connect(port)) for _ in range(250)]
            heads = [stack.enter_context(connect(port)) for _ in range(200)]
            bodies = [stack.enter_context(connect(port)) for _ in range(50)]
            answers: list[tuple[str, int, float]] = []
            for n in range(4):
                # Never the blank line, never the whole body. Sends fail on connections the
                # server evicted or refused: that is the point, so they are not errors here.
                for s in heads:
                    with suppress(OSError):
                        s.sendall(b"GET /healthz HTTP/1.1\r\n" if n == 0 else b"X-Slow: 1\r\n")
                for s in bodies:
                    with suppress(OSError):
                        s.sendall(post_head("/v1/probe", MiB) if n == 0 else b"x" * 65536)
                for path in ("/healthz", "/metrics"):
                    answers.append((path, *timed(port, path)))
            during = proc_figures(pid)
            open_here = len(idle) + len(heads) + len(bodies)
        metrics = exchange(port, b"GET /metrics HTTP/1.1\r\n\r\n").decode()

    refused = dict(re.findall(r'swarm_medic_http_refused_total\{reason="(\w+)"\} (\d+)', metrics))
    worst = max(seconds for _, _, seconds in answers)
    print(
        f"\n[{open_here} idle+slow, connection limit {held or Limits().connections}] "
        f"RSS before {before['rss_kib'] / 1024:.1f} MiB, "
        f"during {during['rss_kib'] / 1024:.1f} MiB, "
        f"peak {during['peak_rss_kib'] / 1024:.1f} MiB; threads {before['threads']} -> "
        f"{during['threads']}; server fds {during['fds']}; slowest /healthz or /metrics "
        f"{worst * 1000:.1f} ms over {len(answers)} requests; refused "
        + ", ".join(f"{k}={v}" for k, v in sorted(refused.items()) if v != "0")
    )
    assert {code for _, code, _ in answers} == {200}
    assert worst < 1.0
    assert during["peak_rss_kib"] < 100 * 1024
    assert during["threads"] <= 2 + Limits().control_workers  # main, loop, control pool
    if held:
        assert during["fds"] >= 450  # every idle and slowloris connection really was held
    else:
        assert during["fds"] <= Limits().connections + 10


@pytest.mark.parametrize(
    ("length", "code"),
    [("-1", 400), (None, 411), (str(300 * MiB), 413)],
    ids=["negative-length", "no-length", "300MiB-length"],
)
def test_a_300_mib_post_is_refused_without_reading_it(
    tmp_path: Path, length: str | None, code: int
) -> None:
    head = head_of(
        "POST /v1/probe HTTP/1.1", "Host: t", *([f"Content-Length: {length}"] if length else [])
    )
    chunk = b"x" * MiB
    sent = 0
    with server_process(tmp_path) as (pid, port):
        before = proc_figures(pid)
        with connect(port) as s:
            s.sendall(head)
            try:
                for _ in range(300):
                    s.sendall(chunk)
                    sent += 1
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # the server answered and closed without reading the rest
            answer = read_all(s)
        after = proc_figures(pid)

    print(
        f"\n[300 MiB POST, Content-Length {length}] client got {sent} MiB out before the server "
        f"closed; RSS {before['rss_kib'] / 1024:.1f} -> {after['rss_kib'] / 1024:.1f} MiB, "
        f"peak {after['peak_rss_kib'] / 1024:.1f} MiB"
    )
    assert after["peak_rss_kib"] < 100 * 1024
    assert status(answer) == code
