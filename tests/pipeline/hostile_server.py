"""The HTTP port alone in a process, so a test can read its RSS and threads from /proc.

`python -m tests.pipeline.hostile_server [CONNECTIONS]` serves on 127.0.0.1 port 0 with a
journal and metrics wired as `swarm-medic run` wires them, prints the port, and stops when its
stdin closes. CONNECTIONS, when given, overrides the connection limit.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import structlog
from prometheus_client import CollectorRegistry

from swarm_medic.telemetry.httphead import Limits
from swarm_medic.telemetry.journal import Journal, configure_logging
from swarm_medic.telemetry.metrics import Metrics


def control(
    path: str, headers: Mapping[str, str], body: bytes, peer: str
) -> tuple[int, dict[str, Any]]:
    return 200, {"path": path, "bytes": len(body)}


def main(argv: list[str]) -> int:
    from swarm_medic.telemetry.http import serve

    configure_logging("json", stream=sys.stderr)
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.preinitialise()
    journal = Journal(metrics, structlog.get_logger("swarm_medic"))
    limits = Limits(connections=int(argv[0])) if argv else Limits()
    server = serve(
        "127.0.0.1",
        0,
        registry,
        lambda: (True, {"role": "test"}),
        control,
        journal=journal,
        limits=limits,
    )
    print(server.server_address[1], flush=True)
    sys.stdin.read()  # until the test closes our stdin
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
