"""Loopback helpers: a port nobody listens on, a JSON webhook receiver, a port that hangs."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


def closed_port() -> int:
    """A loopback TCP port that was free a moment ago: connecting to it is refused."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


def free_port() -> int:
    """A loopback TCP port free a moment ago, for a server the test starts there."""
    return closed_port()


class Receiver:
    """A JSON webhook on 127.0.0.1 keeping every payload it is posted, in arrival order: what
    Apprise's json:// sends ({"version", "title", "message", "type", ...})."""

    def __init__(self, path: str = "/hook") -> None:
        self.path = path
        self.payloads: list[dict[str, Any]] = []
        received = self.payloads

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                size = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(size)
                received.append({"path": self.path, **json.loads(body)})
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        """Its plain HTTP address (Alertmanager's webhook_configs), any path accepted."""
        return f"http://127.0.0.1:{self.port}"

    def url(self, query: str = "") -> str:
        """Its Apprise URL."""
        return f"json://127.0.0.1:{self.port}{self.path}" + (f"?{query}" if query else "")

    def messages(self) -> list[dict[str, str]]:
        """Each message as `name: text` lines of its body, with its title and type."""
        out = []
        for p in self.payloads:
            lines = dict(
                line.split(": ", 1)
                for line in str(p.get("message", "")).splitlines()
                if ": " in line
            )
            out.append({"title": str(p.get("title", "")), "type": str(p.get("type", "")), **lines})
        return out

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class Hanging:
    """A port on 127.0.0.1 that takes connections (the kernel's backlog) and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port: int = self.sock.getsockname()[1]

    def url(self, query: str = "") -> str:
        return f"json://127.0.0.1:{self.port}/hook" + (f"?{query}" if query else "")

    def __enter__(self) -> Hanging:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()
