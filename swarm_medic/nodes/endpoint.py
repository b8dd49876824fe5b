"""The node side of the brain-to-node channel: authenticate, decode, then probe or act.

Refusals (unsigned, forged, stale or replayed requests, or requests meant for another node)
change nothing, answer 401 and are logged and counted (a genuine request refused as stale says
how far off its timestamp was: the brain's clue that a clock, not the secret, is wrong); a
request that does not decode into its protocol message answers 400; an action the agent will
not take (its own dry-run included) answers 409 with its reason. A 200 answer is sealed
(channel.seal) over the request's nonce and this node's id, inside the JSON envelope http.py
serializes as is; a probe answer says this node's clock and how long it held the request.

The node answers a brain of the previous release, or of the next one, in its own protocol
(protocol.encode: nothing an older brain does not read); a brain more than one release away
gets 400 with both versions named. Which protocol each brain spoke is said once per change.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from swarm_medic.core.errors import EngineError
from swarm_medic.core.protocol import (
    ACT_PATH,
    MAX_REQUEST,
    PROBE_PATH,
    PROTOCOL,
    PRUNE_NODE,
    ActRequest,
    ProbePlan,
    ProtocolError,
    VersionError,
    encode,
    spoken,
)
from swarm_medic.nodes.agent import AgentError, NodeAgent
from swarm_medic.nodes.channel import Refused, RequestAuth, Stale, Versions, seal
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
        *,
        protocol: int = PROTOCOL,
        wall: Callable[[], float] = time.time,
    ) -> None:
        """`protocol`: what this node speaks (a test plays another release with it); `wall`:
        the clock a probe answer says (the brain measures this node's clock by it)."""
        self.agent = agent
        self.clock = clock  # times the rate limit of the refusal lines, and a request's hold
        self.wall = wall
        self.auth = auth
        self.journal = journal
        self._secret = auth.secret if auth is not None else b""
        self.protocol = protocol
        self.brains = Versions(protocol, limit=64)  # brain address -> what it last spoke

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
            if isinstance(exc, Stale):
                # the brain can then say that clocks, not secrets, are what is wrong
                return 401, {"error": "refused", "skew": round(exc.off, 3)}
            return 401, {"error": "refused"}
        code, answer = self._dispatch(path, body, peer)
        if code != 200 or not isinstance(answer, bytes):
            return code, answer if isinstance(answer, dict) else {"error": "internal"}
        return 200, seal(self._secret, path, nonce, me, answer)

    def _dispatch(self, path: str, body: bytes, peer: str) -> tuple[int, bytes | dict[str, Any]]:
        serve = {PROBE_PATH: self._probe, ACT_PATH: self._act}.get(path)
        if serve is None:
            return 404, {"error": f"no such endpoint {path}"}
        try:
            return 200, serve(body, peer)
        except VersionError as exc:
            if self.brains.heard(peer, exc.theirs) is not None:
                self.journal.peer_protocol_refused(exc.theirs, exc.ours, str(exc), peer=peer)
            return 400, {"error": f"bad request: {exc}", "protocol": self.protocol}
        except ProtocolError as exc:
            return 400, {"error": f"bad request: {exc}"}
        except AgentError as exc:
            self.journal.hand_refused(peer, path, str(exc))
            return 409, {"ok": False, "error": str(exc)}
        except EngineError as exc:
            return 502, {"ok": False, "error": str(exc)}

    def _probe(self, body: bytes, peer: str) -> bytes:
        start = self.clock()
        theirs, plan = spoken(body, ProbePlan, limit=MAX_REQUEST, ours=self.protocol)
        self._heard(peer, theirs)
        answer = self.agent.probe(plan)
        # stamped last: the brain takes the time held (the probes) out of the round trip
        clocked = msgspec.structs.replace(
            answer, clock=self.wall(), held=min(3600.0, max(0.0, self.clock() - start))
        )
        self.journal.probe_plan_served()
        return encode(clocked, speaks=self.protocol, reader=theirs)

    def _act(self, body: bytes, peer: str) -> bytes:
        theirs, request = spoken(body, ActRequest, limit=MAX_REQUEST, ours=self.protocol)
        self._heard(peer, theirs)
        done = self.agent.act(request)
        if request.kind == PRUNE_NODE:
            self.journal.hand_pruning(peer, done.detail, dry_run=done.dry_run)
        else:
            self.journal.hand_retiring(peer, done.task, done.container, dry_run=done.dry_run)
        return encode(done, speaks=self.protocol, reader=theirs)

    def _heard(self, peer: str, theirs: int) -> None:
        """A signed request's version (only a brain holding the secret gets here)."""
        change = self.brains.heard(peer, theirs)
        if change is not None:
            ours = self.protocol
            self.journal.peer_protocol(change.before, theirs, ours, peer=peer, role="brain")
        if theirs < self.protocol:
            self.journal.channel_downgraded()
