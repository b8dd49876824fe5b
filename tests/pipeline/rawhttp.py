"""A raw HTTP client for the port's tests: sockets from 127.0.0.9 with a timeout and bounded
reads, a control handler that records what it is given, and the server alone in a process
(tests/pipeline/hostile_server.py) with its figures read from /proc."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CLIENT_TIMEOUT = 5.0  # only reached when the server fails to answer: a failure, not a wait


class Recorder:
    """A control handler that remembers what it was given; it can block and it can crash."""

    def __init__(self, *, block: bool = False, crash: bool = False) -> None:
        self.calls: list[tuple[str, dict[str, str], bytes, str]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.block = block
        self.crash = crash

    def __call__(
        self, path: str, headers: Mapping[str, str], body: bytes, peer: str
    ) -> tuple[int, dict[str, Any]]:
        self.calls.append((path, dict(headers), body, peer))
        self.entered.set()
        if self.block:
            self.release.wait(CLIENT_TIMEOUT)
        if self.crash:
            raise RuntimeError("handler bug")
        return 200, {"ok": True, "bytes": len(body)}


# Clients come from 127.0.0.9: a remote client as the server sees one (127.0.0.1 is the node
# itself, served from the reserved slots; see test_http_flood.py).
CLIENT = "127.0.0.9"


def connect(port: int) -> socket.socket:
    return socket.create_connection(
        ("127.0.0.1", port), timeout=CLIENT_TIMEOUT, source_address=(CLIENT, 0)
    )


def read_all(s: socket.socket) -> bytes:
    """Everything the server sends until it closes (or resets after answering)."""
    got = b""
    try:
        for _ in range(10_000):
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    except ConnectionResetError:
        pass  # a server closing with our unread bytes in its buffer resets: the answer came first
    return got


def exchange(port: int, data: bytes) -> bytes:
    """Send `data` and read the answer, leaving the connection open for writing."""
    with connect(port) as s:
        s.sendall(data)
        return read_all(s)


def status(raw: bytes) -> int:
    assert re.match(rb"HTTP/1\.[01] [0-9]{3} ", raw), raw[:100]
    return int(raw[9:12])


def read_line(s: socket.socket) -> bytes:
    line = b""
    for _ in range(1000):
        c = s.recv(1)
        if not c or c == b"\n":
            break
        line += c
    return line


def post_head(path: str, length: int, *extra: str) -> bytes:
    head = [f"POST {path} HTTP/1.1", "Host: t", f"Content-Length: {length}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode()


def post(path: str, body: bytes) -> bytes:
    return post_head(path, len(body)) + body


def proc_figures(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) in KiB, thread and open-file counts, from /proc."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return {
        "rss_kib": int(fields["VmRSS"].split()[0]),
        "peak_rss_kib": int(fields["VmHWM"].split()[0]),
        "threads": len(os.listdir(f"/proc/{pid}/task")),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
    }


@contextmanager
def server_process(tmp_path: Path, *args: str) -> Iterator[tuple[int, int]]:
    """(pid, port) of tests/pipeline/hostile_server.py; stopped by closing its stdin."""
    with (tmp_path / "server.log").open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.pipeline.hostile_server", *args],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        assert proc.stdin is not None and proc.stdout is not None
        try:
            line = proc.stdout.readline()
            assert line.strip().isdigit(), (
                f"server did not start: {(tmp_path / 'server.log').read_text()}"
            )
            yield proc.pid, int(line)
        finally:
            proc.stdin.close()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
