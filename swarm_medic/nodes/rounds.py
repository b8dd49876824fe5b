"""The brain's probe rounds: send each node its plan, gather the answers; route hand actions.

Runs on the leader's instance only. Its own node is asked in-process; every other node over
the signed channel at the node's underlay address (Node.Status.Addr) and the same port as
ours. Without a shared secret only the brain's own node probes, and the log says so once.

Whatever a node does — no answer, an HTTP error, bytes that are not HTTP, an answer too big,
unsigned, signed for another request or that does not decode into the protocol's types — is
that node's failure, recorded in `failures`, like a failing runbook: the round and the scan
go on with the other nodes.

Every (node, task) pair is probed within --probe-coverage: the rounds' spacing says how many
rounds that is (`cover`), and each node probes its targets / `cover` a round. A remote node
of protocol 3 holds a standing duty for its tcp targets and answers its state (core/duty.py);
the brain's own node, asked in-process, and nodes of protocol 2 get positional windows of that
size. What each node said it holds is kept (`held`), so an overlay's list is sent to a node
only when it does not hold it.

Each remote node's clock is measured on the way (`reach.measured`: the node says its clock
and how long it held the request, the brain times the exchange); a node that refuses the
brain's request as too far off in time says by how much (`channel.ClockRefused`), and that is
kept too. `clocks` holds the last round's readings.

Nodes may run another release than the brain for the minutes a rolling upgrade takes: the
brain reads a node one protocol release away (older or newer) and tells it what it speaks in
every request; what each node spoke in its last answer is kept (`speaks`), and a node heard
speaking another protocol is said once, not every round. A node further away is that node's
failure, with both versions named. A node not heard yet is sent a duty: one of protocol 2
reads past it and answers no tcp results, and gets positional windows from the next round.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TypeVar

import msgspec

from swarm_medic.core import duty, reach
from swarm_medic.core.model import Snapshot
from swarm_medic.core.protocol import (
    ACT_PATH,
    MAX_ANSWER,
    MAX_ENVELOPE,
    PROBE_PATH,
    PROTOCOL,
    ActAnswer,
    ActRequest,
    Container,
    ProbeAnswer,
    ProbePlan,
    ProtocolError,
    check_aligned,
    encode,
    spoken,
)
from swarm_medic.core.settings import ProbeSettings, SafetySettings
from swarm_medic.nodes import fanout
from swarm_medic.nodes.agent import AgentError, NodeAgent
from swarm_medic.nodes.channel import (
    H_NONCE,
    ChannelError,
    ClockRefused,
    NodeRefused,
    Versions,
    call,
    not_ok,
    open_answer,
    request_bytes,
    sign,
)
from swarm_medic.telemetry.journal import Journal

Answers = dict[str, tuple[ProbePlan, ProbeAnswer]]
A = TypeVar("A", ProbeAnswer, ActAnswer)


@dataclasses.dataclass(frozen=True)
class _Times:
    """The brain's wall clock and time.monotonic() read together: a monotonic time of the
    fan-out on the wall clock."""

    at_wall: float
    at_mono: float

    def wall(self, mono: float) -> float:
        return self.at_wall + mono - self.at_mono


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
        self.cover = 1  # rounds within which every (node, task) pair is probed
        self.sent = 0  # targets of lists sent in the last round (0 when every node holds its)
        self.lists: dict[str, duty.NetList] = {}  # the overlays' lists the last duties named
        self.held: dict[str, dict[str, str]] = {}  # node -> overlay -> the list it said it holds
        # node -> (digest, list) of its task containers, as it last sent them (protocol 3)
        self.listed: dict[str, tuple[str, tuple[Container, ...]]] = {}
        self.addresses: dict[str, str] = {}  # node id -> underlay address
        self.me = ""
        self.hostnames: dict[str, str] = {}  # node id -> hostname, for the log
        self.journal = journal
        self.protocol = protocol
        self.speaks = Versions(protocol)  # node id -> the protocol of its last answer
        self.failures: dict[str, str] = {}  # node id -> why it could not be asked last round
        self.answered: set[str] = set()  # nodes that answered the last round
        self.clocks: dict[str, reach.Clock] = {}  # node id -> its clock, as of the last round
        self.seconds = 0.0
        self.cpu_seconds = 0.0
        # its own node's probes, while the exchanges with the others run (one thread, kept)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="swarm-medic-probe")

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
        return self._read(node_id, raw, kind)

    def _read(self, node_id: str, raw: bytes, kind: type[A]) -> A:
        """An opened answer, read in the protocol the node says it speaks."""
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

    def _own(self, plan: ProbePlan) -> ProbeAnswer:
        try:
            return self._checked(self.me, plan, self.agent.probe(plan))
        except AgentError as exc:
            raise ChannelError(str(exc)) from exc

    def _checked(self, node_id: str, plan: ProbePlan, answer: ProbeAnswer) -> ProbeAnswer:
        """`answer`, if it is the named node's answer to `plan`; ChannelError otherwise."""
        if answer.node != node_id:
            raise ChannelError(f"answer names node {answer.node[:32]}, not {node_id}")
        try:
            check_aligned(plan, answer)
            if plan.duty is not None and answer.duty is not None:
                duty.check(plan.duty, self.lists, answer.duty)
        except ProtocolError as exc:
            raise ChannelError(str(exc)) from None
        return answer

    def _opened(self, node_id: str, nonce: str, envelope: bytes) -> bytes:
        """The answer's own bytes once its seal verifies (ProtocolError otherwise)."""
        return open_answer(self.secret, PROBE_PATH, nonce, node_id, envelope)

    def _probe(self, node_id: str, plan: ProbePlan) -> ProbeAnswer:
        """One node's answer to `plan` (ChannelError if none), as a round asks it."""
        got = self._ask_all({node_id: plan})[node_id]
        if isinstance(got, Exception):
            raise got
        return got

    def _ask_all(self, plans: Mapping[str, ProbePlan]) -> dict[str, ProbeAnswer | Exception]:
        """Every node's answer to its plan, or why there is none: its own node in a thread of
        the pool, every other over the channel at once from this one (nodes/fanout.py), each
        exchange within its own timeout."""
        out: dict[str, ProbeAnswer | Exception] = {}
        own = self._pool.submit(self._own, plans[self.me]) if self.me in plans else None
        requests: list[fanout.Request] = []
        nonces: dict[str, str] = {}
        for nid, plan in plans.items():
            if nid == self.me:
                continue
            addr = self.addresses.get(nid)
            if not self.secret:
                out[nid] = ChannelError("no shared secret (--secret): cannot ask other nodes")
            elif not addr:
                out[nid] = ChannelError(f"node {nid} has no known address")
            else:
                body = encode(plan, speaks=self.protocol)
                signed = sign(self.secret, "POST", PROBE_PATH, body, self.clock(), node=nid)
                nonces[nid] = signed[H_NONCE]
                data = request_bytes(addr, self.port, PROBE_PATH, body, signed)
                requests.append(fanout.Request(nid, addr, self.port, data))
        # the exchanges' times on the brain's clock, for the nodes' clocks (reach.measured)
        on = _Times(self.clock(), time.monotonic())
        replies = fanout.exchange_all(requests, timeout=self.timeout, limit=MAX_ENVELOPE)
        for nid, reply in replies.items():
            try:
                out[nid] = self._answer(nid, plans[nid], nonces[nid], reply, on)
            except ClockRefused as exc:
                self.clocks[nid] = reach.refused_at(exc.skew, exc.sent, exc.received)
                out[nid] = exc
            except Exception as exc:  # noqa: BLE001 - one node's failure, never the round's
                out[nid] = exc
        if own is not None:
            out[self.me] = self._own_answer(own)
        return out

    def _own_answer(self, own: Future[ProbeAnswer]) -> ProbeAnswer | Exception:
        wait([own], timeout=self.timeout + 1)
        if not own.done():
            own.cancel()
            return ChannelError(f"no answer within {self.timeout + 1:.0f}s")
        failed = own.exception()
        if failed is None:
            return own.result()
        return failed if isinstance(failed, Exception) else ChannelError("")

    def _answer(
        self,
        nid: str,
        plan: ProbePlan,
        nonce: str,
        reply: fanout.Reply | fanout.ExchangeError,
        on: _Times,
    ) -> ProbeAnswer:
        """A node's reply as its answer to `plan` (its clock measured, when it says it);
        ChannelError, saying why, if it is not (ClockRefused when the node said the request
        was too far off in time)."""
        url = f"http://{self.addresses[nid]}:{self.port}{PROBE_PATH}"
        if isinstance(reply, fanout.ExchangeError):
            raise ChannelError(f"{url}: {reply}")
        sent, received = on.wall(reply.started), on.wall(reply.ended)
        if reply.status != 200:
            raise not_ok(url, reply.status, reply.body[:200], sent, received)
        try:
            raw = self._opened(nid, nonce, reply.body)
        except ProtocolError as exc:
            raise ChannelError(f"{url}: {exc}") from None
        got = self._complete(nid, plan, self._checked(nid, plan, self._read(nid, raw, ProbeAnswer)))
        if got.clock is not None:
            self.clocks[nid] = reach.measured(got.clock, got.held or 0.0, sent, received)
        return got

    def _complete(self, nid: str, plan: ProbePlan, answer: ProbeAnswer) -> ProbeAnswer:
        """The answer with the node's container list: the one held, when the node says it is
        unchanged (protocol 3); a list sent is kept, once it matches the digest it came with."""
        if answer.listed is None:
            return answer
        if not answer.containers and plan.listed is not None and answer.listed == plan.listed:
            return msgspec.structs.replace(answer, containers=self.listed[nid][1])
        if duty.digest_of(answer.containers) != answer.listed:
            raise ChannelError(f"node {nid}: its container list is not the one its digest names")
        self.listed[nid] = (answer.listed, answer.containers)
        return answer

    def _covers(self, now: float) -> int:
        """Rounds within --probe-coverage, spaced as this round is from the last (at least
        --probe-interval): a round that comes late makes the next ones probe more."""
        gap = self.settings.probe_interval
        if self.last_round:
            gap = max(gap, now - self.last_round)
        return max(1, int(self.settings.probe_coverage // gap))

    def _duty_nodes(self, snap: Snapshot) -> set[str]:
        """The remote nodes sent a duty: every one not heard speaking an older protocol."""
        if self.protocol < 3:
            return set()
        out = set()
        for n in snap.nodes:
            said = self.speaks.get(n.id)
            if n.id != self.me and (said is None or said >= 3):
                out.add(n.id)
        return out

    def _plan(self, snap: Snapshot, now: float, suspects: reach.Suspects | None) -> reach.Plans:
        tg = reach.targets(snap, self.scope, now, self.settings.probe_grace)
        self.lists = duty.lists(tg.tcp, self.lists)
        duties = self._duty_nodes(snap)
        if suspects is not None and duties:
            # a node with a duty probes its own suspects first: the brain plans none for it
            tcp = {n: keys for n, keys in suspects.tcp.items() if n not in duties}
            suspects = dataclasses.replace(suspects, tcp=tcp)
        planned = reach.plans(
            snap,
            self.scope,
            now,
            grace=self.settings.probe_grace,
            round_no=self.round_no,
            budget=self.budget,
            suspects=suspects,
            cover=self.cover,
            duties=duties,
            given=tg,
        )
        self.sent = 0
        for nid in duties & planned.by_node.keys():
            given = duty.duty(
                sorted(tg.nets_on_node.get(nid, ())),
                self.lists,
                self.held.get(nid),
                cover=self.cover,
                least=self.budget.tcp,
            )
            self.sent += sum(len(nd.tcp) for nd in given.nets if nd.tcp is not None)
            planned.by_node[nid] = msgspec.structs.replace(
                planned.by_node[nid], duty=given, listed=self.listed.get(nid, ("", ()))[0] or None
            )
        return planned

    def run(self, snap: Snapshot, now: float, suspects: reach.Suspects | None = None) -> Answers:
        """One round: node id -> (plan sent, its answer); nodes that failed are in .failures."""
        started, cpu = time.monotonic(), time.process_time()
        self.cover = self._covers(now)
        self.last_round = now
        self.me = snap.info.node_id
        self.addresses = {n.id: n.addr for n in snap.nodes if n.addr}
        self.hostnames = {n.id: n.hostname for n in snap.nodes}
        self.speaks.keep(self.hostnames)  # a node that left is forgotten
        self.held = {n: h for n, h in self.held.items() if n in self.hostnames}
        self.listed = {n: c for n, c in self.listed.items() if n in self.hostnames}
        planned = self._plan(snap, now, suspects)
        self.round_no += 1
        self.period = max(planned.period, self.cover)
        answers: Answers = {}
        self.failures = {}
        self.clocks = {}
        for nid, got in self._ask_all(planned.by_node).items():
            if isinstance(got, ProbeAnswer):
                answers[nid] = (planned.by_node[nid], got)
            elif isinstance(got, ChannelError):
                self.failures[nid] = str(got)
            else:  # one node's failure, never the scan's
                self.failures[nid] = f"{type(got).__name__}: {str(got)[:200]}"
        for nid, (plan, ans) in answers.items():
            if ans.duty is not None:
                self.held[nid] = {st.net: st.digest for st in ans.duty.nets}
            elif plan.duty is not None:
                self.held.pop(nid, None)
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
