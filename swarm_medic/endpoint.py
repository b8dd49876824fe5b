"""The node side of the brain-to-node channel: authenticate, then probe or act.

Refusals (unsigned, forged, stale or replayed requests) change nothing, answer 401 and are
logged and counted; an action the agent will not take answers 409 with its reason.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from swarm_medic.agent import AgentError, NodeAgent
from swarm_medic.channel import Refused, Verifier
from swarm_medic.errors import EngineError
from swarm_medic.journal import Journal
from swarm_medic.rounds import ACT_PATH, PROBE_PATH

Answer = tuple[int, dict[str, Any]]


class NodeEndpoint:
    def __init__(self, agent: NodeAgent, verifier: Verifier | None, journal: Journal) -> None:
        self.agent = agent
        self.verifier = verifier
        self.journal = journal

    def handle(self, path: str, headers: Mapping[str, str], body: bytes, peer: str) -> Answer:
        if self.verifier is None:
            return 503, {"error": "channel disabled: no shared secret (--secret)"}
        try:
            self.verifier.verify("POST", path, headers, body)
        except Refused as exc:
            self.journal.channel_refused(peer, path, str(exc))
            return 401, {"error": "refused"}
        try:
            request = json.loads(body)
        except ValueError as exc:
            return 400, {"error": f"bad request: {exc}"}
        if not isinstance(request, dict):
            return 400, {"error": "bad request: not a JSON object"}
        return self._dispatch(path, request, peer)

    def _dispatch(self, path: str, request: dict[str, Any], peer: str) -> Answer:
        try:
            if path == PROBE_PATH:
                return 200, self.agent.probe(request)
            if path == ACT_PATH:
                answer = self.agent.act(request)
                self.journal.log.warning(
                    "hand: retiring a task container at the brain's request (stop, then remove)",
                    peer=peer,
                    task=answer.get("task"),
                    container=answer.get("container"),
                )
                return 200, answer
        except AgentError as exc:
            self.journal.log.error("hand: refused", peer=peer, path=path, error=str(exc))
            return 409, {"ok": False, "error": str(exc)}
        except EngineError as exc:
            return 502, {"ok": False, "error": str(exc)}
        return 404, {"error": f"no such endpoint {path}"}
