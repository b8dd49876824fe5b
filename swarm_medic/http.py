"""One HTTP port: /metrics (Prometheus text format) and /healthz (JSON, 200 or 503)."""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

Health = Callable[[], tuple[bool, dict[str, Any]]]


class _Server(ThreadingHTTPServer):
    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves its own name (getfqdn): with a dead resolver that
        # is a 10 s stall at start-up, and a DNS query we have no reason to send.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)


Control = Callable[[str, Mapping[str, str], bytes, str], tuple[int, dict[str, Any]]]
MAX_BODY = 1 << 20


def serve(
    addr: str,
    port: int,
    registry: CollectorRegistry,
    health: Health,
    control: Control | None = None,
) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            path = self.path.split("?", 1)[0]
            length = int(self.headers.get("Content-Length") or 0)
            if control is None or not path.startswith("/v1/"):
                self._send(404, "text/plain", b"not found\n")
                return
            if length > MAX_BODY:
                self._send(413, "text/plain", b"request too large\n")
                return
            body = self.rfile.read(length)
            code, answer = control(path, dict(self.headers.items()), body, self.client_address[0])
            self._send(code, "application/json", json.dumps(answer).encode())

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                encoder, ctype = choose_encoder(self.headers.get("Accept", ""))
                self._send(200, ctype, encoder(registry))
            elif path == "/healthz":
                ok, detail = health()
                body = json.dumps({"ok": ok, **detail}, sort_keys=True).encode()
                self._send(200 if ok else 503, "application/json", body)
            else:
                self._send(404, "text/plain", b"not found: try /metrics or /healthz\n")

        def _send(self, code: int, ctype: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # scrapes every 15 s would drown the remediation log

    server = _Server((addr, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="swarm-medic-http", daemon=True).start()
    return server
