"""The HTTP port alone in a process, so a test can read its RSS and threads from /proc.

`python -m tests.pipeline.hostile_server [CONNECTIONS]` serves on 127.0.0.1 port 0 with a
journal and metrics wired as `swarm-medic run` wires them, prints the port, and stops when its
stdin closes. CONNECTIONS, when given, overrides the connection limit (and the share of one
address, so that one client can hold them all). `--channel SECRET NODE`: POST /v1/* is the
signed channel of node NODE (channel.RequestAuth with SECRET): 200 when the request verifies,
401 otherwise, as the node's endpoint answers.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import structlog
from prometheus_client import CollectorRegistry

from swarm_medic.nodes.channel import Refused, RequestAuth
from swarm_medic.telemetry.journal import Journal, configure_logging
from swarm_medic.telemetry.metrics import Metrics
from swarm_medic.web.httphead import Limits


def control(
    path: str, headers: Mapping[str, str], body: bytes, peer: str
) -> tuple[int, dict[str, Any]]:
    return 200, {"path": path, "bytes": len(body)}


def signed_control(secret: str, node: str) -> Any:
    auth = RequestAuth(secret.encode())

    def handle(
        path: str, headers: Mapping[str, str], body: bytes, peer: str
    ) -> tuple[int, dict[str, Any]]:
        try:
            auth.authenticate("POST", path, headers, body, node=node)
        except Refused:
            return 401, {"error": "refused"}
        return 200, {"path": path, "bytes": len(body)}

    return handle


def main(argv: list[str]) -> int:
    from swarm_medic.web.http import serve

    configure_logging("json", stream=sys.stderr)
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.preinitialise()
    journal = Journal(metrics, structlog.get_logger("swarm_medic"))
    handler = control
    if argv[:1] == ["--channel"]:
        handler, argv = signed_control(argv[1], argv[2]), argv[3:]
    limits = Limits(connections=int(argv[0]), per_address=int(argv[0])) if argv else Limits()
    server = serve(
        "127.0.0.1",
        0,
        registry,
        lambda: (True, {"role": "test"}),
        handler,
        journal=journal,
        limits=limits,
        status=lambda: b"<html>" + b"x" * (256 << 10) + b"</html>",  # a large page to read
    )
    print(server.server_address[1], flush=True)
    sys.stdin.read()  # until the test closes our stdin
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
