"""The brain's probe rounds: send each node its plan, gather the answers; route hand actions.

Runs on the leader's instance only. Its own node is asked in-process; every other node over
the signed channel at the node's underlay address (Node.Status.Addr) and the same port as
ours. Without a shared secret only the brain's own node probes, and the log says so once.

Whatever a node does — no answer, an HTTP error, bytes that are not HTTP, an answer too big,
unsigned, signed for another request or that does not decode into the protocol's types — is
that node's failure, recorded in `failures`, like a failing runbook: the round and the scan
go on with the other nodes.

Each remote node's clock is measured on the way (`reach.measured`: the node says its clock
and how long it held the request, the brain times the exchange); a node that refuses the
brain's request as too far off in time says by how much (`channel.ClockRefused`), and that is
kept too. `clocks` holds the last round's readings.

Nodes may run another release than the brain for the minutes a rolling upgrade takes: the
brain reads a node one protocol release away (older or newer) and tells it what it speaks in
every request; what each node spoke in its last answer is kept (`speaks`), and a node heard
speaking another protocol is said once, not every round. A node further away is that node's
failure, with both versions named.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TypeVar

from swarm_medic.core import reach
from swarm_medic.core.model import Snapshot
from swarm_medic.core.protocol import (
    ACT_PATH,
    MAX_ANSWER,
    PROBE_PATH,
    PROTOCOL,
    ActAnswer,
    ActRequest,
    ProbeAnswer,
    ProbePlan,
    ProtocolError,
    check_aligned,
    encode,
    spoken,
)
from swarm_medic.core.settings import ProbeSettings, SafetySettings
from swarm_medic.nodes.agent import AgentError, NodeAgent
from swarm_medic.nodes.channel import ChannelError, ClockRefused, NodeRefused, Versions, call
from swarm_medic.telemetry.journal import Journal

Answers = dict[str, tuple[ProbePlan, ProbeAnswer]]
A = TypeVar("A", ProbeAnswer, ActAnswer)


class Prober:
    """The brain's side of the probe rounds: decides when a round is due, asks every node
    (itself in-process) and keeps what each node failed to answer, so that one dead or hostile
    node costs the scan a recorded failure, never the round."""

    def __init__(
        self,
        settings: ProbeSettings,
        agent: NodeAgent,
        *,
        port: int,
        scope: SafetySettings,
        clock: Callable[[], float] = time.time,
        budget: reach.Budget = reach.DEFAULT_BUDGET,
        journal: Journal | None = None,
        protocol: int = PROTOCOL,
    ) -> None:
        """`port`: every node's channel port (the HTTP port, the same on every node); `scope`:
        which services are probed (those an action could follow); `journal`: where a node
        heard speaking another protocol is said (None: nowhere); `protocol`: what this brain
        speaks (a test plays another release with it)."""
        self.settings = settings
        self.port = port
        self.scope = scope
        self.agent = agent
        self.clock = clock
        self.budget = budget
        self.secret = settings.secret.encode() if settings.secret else b""
        self.last_round = 0.0
        self.round_no = 0  # moves every node's rotation window
        self.period = 1  # rounds the last plans need to probe every pair
        self.addresses: dict[str, str] = {}  # node id -> underlay address
        self.me = ""
        self.hostnames: dict[str, str] = {}  # node id -> hostname, for the log
        self.journal = journal
        self.protocol = protocol
        self.speaks = Versions(protocol)  # node id -> the protocol of its last answer
        self.failures: dict[str, str] = {}  # node id -> why it could not be asked last round
        self.clocks: dict[str, reach.Clock] = {}  # node id -> its clock, as of the last round
        self.answered: set[str] = set()  # nodes that answered the last round
        self.seconds = 0.0
        self.cpu_seconds = 0.0
        # kept across rounds: starting 32 threads every round is CPU for nothing
        self._pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="swarm-medic-probe")

    def due(self, now: float) -> bool:
        return now - self.last_round >= self.settings.probe_interval

    @property
    def timeout(self) -> float:
        return self.settings.probe_timeout * 4 + 5

    def _url(self, node_id: str) -> str:
        addr = self.addresses.get(node_id)
        if not addr:
            raise ChannelError(f"node {node_id} has no known address")
        return f"http://{addr}:{self.port}"

    def _remote(self, node_id: str, path: str, body: bytes) -> bytes:
        if not self.secret:
            raise ChannelError("no shared secret (--secret): cannot ask other nodes")
        return call(
            self._url(node_id),
            path,
            body,
            self.secret,
            node=node_id,
            timeout=self.timeout,
            clock=self.clock,
        )

    def _ask(self, node_id: str, path: str, message: ProbePlan | ActRequest, kind: type[A]) -> A:
        """Sends `message` saying the protocol this brain speaks; the node's answer, read in the
        protocol the node says it speaks (one release either way)."""
        raw = self._remote(node_id, path, encode(message, speaks=self.protocol))
        try:
            theirs, answer = spoken(raw, kind, limit=MAX_ANSWER, ours=self.protocol)
        except ProtocolError as exc:
            raise ChannelError(f"node {node_id}: {exc}") from None
        self._heard(node_id, theirs)  # only now: the answer's seal proved who said it
        return answer

    def _heard(self, node_id: str, theirs: int) -> None:
        change = self.speaks.heard(node_id, theirs)
        if self.journal is None:
            return
        if change is not None:
            self.journal.peer_protocol(
                change.before,
                theirs,
                self.protocol,
                node=self.hostnames.get(node_id, node_id),
                node_id=node_id,
                role="node",
            )
        if theirs < self.protocol:
            self.journal.channel_downgraded()

    def _probe(self, node_id: str, plan: ProbePlan) -> ProbeAnswer:
        if node_id == self.me:
            try:
                answer = self.agent.probe(plan)
            except AgentError as exc:
                raise ChannelError(str(exc)) from exc
        else:
            answer = self._ask(node_id, PROBE_PATH, plan, ProbeAnswer)
        if answer.node != node_id:
            raise ChannelError(f"answer names node {answer.node[:32]}, not {node_id}")
        try:
            check_aligned(plan, answer)
        except ProtocolError as exc:
            raise ChannelError(str(exc)) from None
        return answer

    def _measured(self, node_id: str, plan: ProbePlan) -> tuple[ProbeAnswer, reach.Clock | None]:
        """The node's answer, and its clock as the answer says it (None: its own node, which
        shares our clock, or a node that does not say it)."""
        sent = self.clock()
        answer = self._probe(node_id, plan)
        if node_id == self.me or answer.clock is None:
            return answer, None
        return answer, reach.measured(answer.clock, answer.held or 0.0, sent, self.clock())

    def run(self, snap: Snapshot, now: float, suspects: reach.Suspects | None = None) -> Answers:
        """One round: node id -> (plan sent, its answer); nodes that failed are in .failures."""
        started, cpu = time.monotonic(), time.process_time()
        self.last_round = now
        self.me = snap.info.node_id
        self.addresses = {n.id: n.addr for n in snap.nodes if n.addr}
        self.hostnames = {n.id: n.hostname for n in snap.nodes}
        self.speaks.keep(self.hostnames)  # a node that left is forgotten
        planned = reach.plans(
            snap,
            self.scope,
            now,
            grace=self.settings.probe_grace,
            round_no=self.round_no,
            budget=self.budget,
            suspects=suspects,
        )
        self.round_no += 1
        self.period = planned.period
        answers: Answers = {}
        self.failures = {}
        self.clocks = {}
        if planned.by_node:
            # one request per node at once (bounded): a round costs about one probe timeout,
            # not one per node
            pool = self._pool
            futures: dict[str, Future[tuple[ProbeAnswer, reach.Clock | None]]] = {
                nid: pool.submit(self._measured, nid, plan) for nid, plan in planned.by_node.items()
            }
            # 32 at a time, each within its timeout; a node that holds its connection past
            # that is not waited for (its thread ends with its socket timeout)
            waves = -(-len(futures) // 32)
            wait(futures.values(), timeout=self.timeout * waves + 1)
            for nid, fut in futures.items():
                if not fut.done():
                    fut.cancel()  # not started yet: never sent; running: ends by its timeout
                    self.failures[nid] = f"no answer within {self.timeout * waves + 1:.0f}s"
                    continue
                try:
                    answer, clock = fut.result()
                except ClockRefused as exc:
                    self.failures[nid] = str(exc)
                    self.clocks[nid] = reach.refused_at(exc.skew, exc.sent, exc.received)
                    continue
                except ChannelError as exc:
                    self.failures[nid] = str(exc)
                    continue
                except Exception as exc:  # noqa: BLE001 - one node's failure, never the scan's
                    self.failures[nid] = f"{type(exc).__name__}: {str(exc)[:200]}"
                    continue
                answers[nid] = (planned.by_node[nid], answer)
                if clock is not None:
                    self.clocks[nid] = clock
        self.answered = set(answers)
        self.seconds = time.monotonic() - started
        self.cpu_seconds = time.process_time() - cpu  # this process: brain + its own node
        return answers

    def hands_down(self, node_id: str) -> str:
        """Why the instance on `node_id` cannot be asked to act now ("" if it can)."""
        if node_id == self.me or node_id in self.answered:
            return ""
        return self.failures.get(node_id) or "did not answer the last probe round"

    def hands(self, node_id: str, request: ActRequest) -> ActAnswer:
        """Ask the instance on `node_id` to carry out a node-local action."""
        if node_id == self.me:
            try:
                return self.agent.act(request)
            except AgentError as exc:
                raise NodeRefused(str(exc)) from exc
        return self._ask(node_id, ACT_PATH, request, ActAnswer)
