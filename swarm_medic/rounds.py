"""The brain's probe rounds: send each node its plan, gather the answers; route hand actions.

Runs on the leader's instance only. Its own node is asked in-process; every other node over
the signed channel at the node's underlay address (Node.Status.Addr) and the same port as
ours. Without a shared secret only the brain's own node probes, and the log says so once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from swarm_medic import reach
from swarm_medic.agent import AgentError, NodeAgent
from swarm_medic.channel import ChannelError, NodeRefused, call
from swarm_medic.model import Snapshot
from swarm_medic.settings import Settings

PROBE_PATH = "/v1/probe"
ACT_PATH = "/v1/act"


class Prober:
    def __init__(
        self, settings: Settings, agent: NodeAgent, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.settings = settings
        self.agent = agent
        self.clock = clock
        self.secret = settings.secret.encode() if settings.secret else b""
        self.last_round = 0.0
        self.addresses: dict[str, str] = {}  # node id -> underlay address
        self.me = ""
        self.failures: dict[str, str] = {}  # node id -> why it could not be asked last round
        self.answered: set[str] = set()  # nodes that answered the last round
        self.seconds = 0.0
        self.cpu_seconds = 0.0

    def due(self, now: float) -> bool:
        return now - self.last_round >= self.settings.probe_interval

    def _url(self, node_id: str) -> str:
        addr = self.addresses.get(node_id)
        if not addr:
            raise ChannelError(f"node {node_id} has no known address")
        return f"http://{addr}:{self.settings.http_port}"

    def _ask(self, node_id: str, path: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        if node_id == self.me:
            try:
                return (self.agent.probe if path == PROBE_PATH else self.agent.act)(payload)
            except AgentError as exc:
                raise NodeRefused(str(exc)) from exc
        if not self.secret:
            raise ChannelError("no shared secret (--secret): cannot ask other nodes")
        timeout = self.settings.probe_timeout * 4 + 5
        return call(
            self._url(node_id), path, payload, self.secret, timeout=timeout, clock=self.clock
        )

    def run(self, snap: Snapshot, now: float) -> dict[str, dict[str, Any]]:
        """One round: node id -> that node's answer (nodes that failed are in .failures)."""
        started, cpu = time.monotonic(), time.process_time()
        self.last_round = now
        self.me = snap.info.node_id
        self.addresses = {n.id: n.addr for n in snap.nodes if n.addr}
        plans = reach.plans(snap, self.settings, now)
        answers: dict[str, dict[str, Any]] = {}
        self.failures = {}
        if plans:
            # one request per node at once (bounded): a round costs about one probe timeout,
            # not one per node
            with ThreadPoolExecutor(
                max_workers=min(32, len(plans)), thread_name_prefix="swarm-medic-probe"
            ) as pool:
                futures = {
                    nid: pool.submit(self._ask, nid, PROBE_PATH, plan)
                    for nid, plan in plans.items()
                }
                for nid, fut in futures.items():
                    try:
                        answers[nid] = fut.result()
                    except ChannelError as exc:
                        self.failures[nid] = str(exc)
        self.answered = set(answers)
        self.seconds = time.monotonic() - started
        self.cpu_seconds = time.process_time() - cpu  # this process: brain + its own node
        return answers

    def hands_down(self, node_id: str) -> str:
        """Why the instance on `node_id` cannot be asked to act now ("" if it can)."""
        if node_id == self.me or node_id in self.answered:
            return ""
        return self.failures.get(node_id) or "did not answer the last probe round"

    def hands(self, node_id: str, request: Mapping[str, Any]) -> dict[str, Any]:
        """Ask the instance on `node_id` to carry out a node-local action."""
        return self._ask(node_id, ACT_PATH, request)
