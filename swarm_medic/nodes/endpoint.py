"""The node side of the brain-to-node channel: authenticate, decode, then probe or act.

Refusals (unsigned, forged, stale or replayed requests, or requests meant for another node)
change nothing, answer 401 and are logged and counted; a request that does not decode into
its protocol message answers 400; an action the agent will not take (its own dry-run
included) answers 409 with its reason. A 200 answer is sealed (channel.seal) over the
request's nonce and this node's id, inside the JSON envelope http.py serializes as is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from swarm_medic.core.errors import EngineError
from swarm_medic.core.protocol import (
    ACT_PATH,
    MAX_REQUEST,
    PROBE_PATH,
    ActRequest,
    ProbePlan,
    ProtocolError,
    decode,
    encode,
)
from swarm_medic.nodes.agent import AgentError, NodeAgent
from swarm_medic.nodes.channel import Refused, RequestAuth, seal
from swarm_medic.telemetry.journal import Journal

Answer = tuple[int, dict[str, Any]]


class NodeEndpoint:
    """The node's door for the brain: authenticates before anything is decoded, so that an
    unsigned request never reaches the agent, and maps each failure to its HTTP status."""

    def __init__(
        self,
        agent: NodeAgent,
        auth: RequestAuth | None,
        journal: Journal,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.agent = agent
        self.clock = clock  # times the rate limit of the refusal lines
        self.auth = auth
        self.journal = journal
        self._secret = auth.secret if auth is not None else b""

    def handle(self, path: str, headers: Mapping[str, str], body: bytes, peer: str) -> Answer:
        if self.auth is None:
            return 503, {"error": "channel disabled: no shared secret (--secret)"}
        try:
            me = self.agent.node_id
        except EngineError as exc:
            return 503, {"error": f"this node's id is not known yet: {exc}"}
        try:
            nonce = self.auth.authenticate("POST", path, headers, body, node=me)
        except Refused as exc:
            self.journal.channel_refused(peer, path, str(exc), now=self.clock())
            return 401, {"error": "refused"}
        code, answer = self._dispatch(path, body, peer)
        if code != 200 or not isinstance(answer, bytes):
            return code, answer if isinstance(answer, dict) else {"error": "internal"}
        return 200, seal(self._secret, path, nonce, me, answer)

    def _dispatch(self, path: str, body: bytes, peer: str) -> tuple[int, bytes | dict[str, Any]]:
        try:
            if path == PROBE_PATH:
                plan = decode(body, ProbePlan, limit=MAX_REQUEST)
                answer = encode(self.agent.probe(plan))
                self.journal.probe_plan_served()
                return 200, answer
            if path == ACT_PATH:
                request = decode(body, ActRequest, limit=MAX_REQUEST)
                done = self.agent.act(request)
                self.journal.hand_retiring(peer, done.task, done.container, dry_run=done.dry_run)
                return 200, encode(done)
        except ProtocolError as exc:
            return 400, {"error": f"bad request: {exc}"}
        except AgentError as exc:
            self.journal.hand_refused(peer, path, str(exc))
            return 409, {"ok": False, "error": str(exc)}
        except EngineError as exc:
            return 502, {"ok": False, "error": str(exc)}
        return 404, {"error": f"no such endpoint {path}"}
