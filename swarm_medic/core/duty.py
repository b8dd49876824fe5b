"""Standing probe duties (protocol 3): each node watches the tasks of its own overlays.

Why. With plans, the brain sent every node a window of its targets each round and folded every
result: its CPU grew with nodes x window, and a window small enough for the brain (40 of 2,000
tasks) came back to a pair every 50 rounds, so a task unreachable from one node was found after
up to 13 minutes at 100 nodes. Here a node holds its duty, probes enough of it each round that
every pair comes round within `cover` rounds (--probe-coverage), keeps the history itself and
answers its state; the brain sends an overlay's list only when the node does not hold it, and
folds only what changed since the node's last answer (reach.Reachability.record): its cost
follows churn and faults, not the size of the swarm.

Brain side: `lists` names each overlay's list of tcp targets by a digest, `duty` is what one
node is sent, `check` refuses a state that does not fit the lists it answers. The digest is a
hash of the list itself, so a new brain after an election names the lists the nodes already
hold, and sends none of them again.

Node side: `Watch` holds the lists, picks each round's targets (the failing ones first, then
the least recently probed, from a phase of the node's own so that 100 nodes do not start on
the same tasks), records the results and says its state. A target that moves to another list
keeps its history; one no longer in any list is forgotten. A probe with no opinion (no vantage
point on that overlay) leaves no opinion: the target is in neither the bitmap nor the failing
list until a probe says something, and its failures in a row are kept.

Both sides are pure: the probes are nodes/agent.py's, the exchange nodes/rounds.py's.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import msgspec

from swarm_medic.core.protocol import (
    MAX_DUTY,
    MAX_FAILS,
    MAX_LISTED,
    Container,
    Duty,
    Failing,
    NetDuty,
    NetState,
    ProtocolError,
    TcpResult,
    TcpTarget,
    Watched,
)

_ENCODER = msgspec.json.Encoder()
# Targets sent to one node in one request: a target is about 160 bytes of JSON, so a request
# stays near 650 KiB, well inside the node's 1 MiB (MAX_REQUEST). An overlay's list is cut to
# it; the lists that do not fit a round are only named, and sent in the next rounds.
SENT: Final = 4096


# --- the brain's side ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NetList:
    """One overlay's tcp targets in the order nodes hold them, and the digest that names it."""

    net: str
    digest: str
    tcp: tuple[TcpTarget, ...]


def digest_of(items: Sequence[TcpTarget] | Sequence[Container]) -> str:
    """The name of a list: the same items in the same order have the same name on every
    instance (no process-local hash), so a node keeps its list across a change of brain."""
    return hashlib.blake2b(_ENCODER.encode(items), digest_size=8).hexdigest()


def lists(
    tcp: Mapping[str, Sequence[TcpTarget]], before: Mapping[str, NetList] | None = None
) -> dict[str, NetList]:
    """Each overlay's list (at most SENT targets: what one request carries; past it, an
    overlay's tasks are not watched from its nodes), the list of `before` reused when its
    targets are the same: no digest computed again, and the fold recognises it as the list it
    knows."""
    out: dict[str, NetList] = {}
    for net, targets in tcp.items():
        held = tuple(targets[:SENT])
        prev = before.get(net) if before else None
        out[net] = (
            prev if prev is not None and prev.tcp == held else NetList(net, digest_of(held), held)
        )
    return out


def take(total: int, cover: int, least: int) -> int:
    """Targets probed each round besides the failing ones, so that the least recently probed
    order comes back to every one within `cover` rounds; never fewer than `least`, so that a
    small swarm is probed whole every round, as before duties."""
    return min(total, max(least, -(-total // max(1, cover))))


def duty(
    nets: Sequence[str],
    lists: Mapping[str, NetList],
    held: Mapping[str, str] | None,
    *,
    cover: int,
    least: int,
) -> Duty:
    """The duty of a node on `nets`. `held`: what it said it holds in its last answer (None:
    not heard since this brain started; it is believed to hold the lists, and says otherwise
    in its answer, which costs it one round without an opinion). At most SENT targets are sent
    in one duty: the other lists it lacks are named, and sent in the next rounds. The failing
    ones it may probe again first are as many as it probes in rotation: a node whose overlay
    broke does not wait for the rotation to confirm every pair, and its work at most doubles."""
    sent: list[NetDuty] = []
    total = carried = 0
    for net in nets:
        nl = lists.get(net)
        if nl is None or total + len(nl.tcp) > MAX_DUTY:
            continue  # more than a node holds: the overlays past it are not watched from there
        total += len(nl.tcp)
        send = held is not None and held.get(net) != nl.digest
        if send and carried + len(nl.tcp) > SENT:
            send = False  # named only: sent in a later round, when this request has room
        carried += len(nl.tcp) if send else 0
        sent.append(NetDuty(net=net, digest=nl.digest, tcp=nl.tcp if send else None))
    n = take(total, cover, least)
    return Duty(nets=tuple(sent), take=n, suspects=n)


def check(sent: Duty, lists: Mapping[str, NetList], got: Watched) -> None:
    """ProtocolError unless `got` answers `sent`: states of overlays it was given, once each,
    and for a list named as ours, a bitmap of its length and failing places inside it that are
    not also answered. A state of another list is allowed (the node holds an older one): it is
    no opinion, and the list is sent again."""
    given = {nd.net for nd in sent.nets}
    seen: set[str] = set()
    for st in got.nets:
        if st.net not in given or st.net in seen:
            raise ProtocolError(f"Watched: a state of overlay {st.net[:32]} it was not given once")
        seen.add(st.net)
        nl = lists.get(st.net)
        if nl is None or st.digest != nl.digest:
            continue
        n = len(nl.tcp)
        if len(st.ok) != (n + 7) // 8:
            raise ProtocolError(f"Watched: a bitmap of {len(st.ok)} bytes for {n} targets")
        ok = int.from_bytes(st.ok, "little")
        places = [f.at for f in st.failing]
        if len(set(places)) != len(places) or any(at >= n or (ok >> at) & 1 for at in places):
            raise ProtocolError("Watched: failing places outside the list, twice or also ok")
        if ok >> n:
            raise ProtocolError("Watched: bits set past the end of the list")


# --- the node's side ---------------------------------------------------------------------------


@dataclass(slots=True)
class Mark:
    """What this node knows of one target."""

    ok: bool | None = None  # the last probe's answer; None: no opinion (yet, or any more)
    fails: int = 0  # probes in a row that failed (kept across probes with no opinion)
    error: str = ""


class Watch:
    """A node's duty and its history. Not thread-safe: the agent holds it under its lock."""

    def __init__(self, phase: int = 0) -> None:
        self.phase = phase
        self.asked: tuple[str, ...] = ()  # the overlays of the last duty, in its order
        self.lists: dict[str, tuple[str, tuple[TcpTarget, ...]]] = {}  # net -> (digest, list)
        self.marks: dict[TcpTarget, Mark] = {}
        self.order: dict[TcpTarget, None] = {}  # every target held, least recently probed first
        self.failing: dict[TcpTarget, None] = {}  # those whose last opinion failed, likewise

    def hold(self, duty: Duty) -> None:
        """Takes the duty's lists: one it sends replaces ours, one it only names stays ours
        (even if its digest is not the one named: the brain sends it once it hears ours), an
        overlay it leaves out is dropped. ProtocolError past MAX_DUTY targets in all."""
        held: dict[str, tuple[str, tuple[TcpTarget, ...]]] = {}
        for nd in duty.nets:
            have = self.lists.get(nd.net)
            if nd.tcp is not None:
                held[nd.net] = have if have == (nd.digest, nd.tcp) else (nd.digest, nd.tcp)
            elif have is not None:
                held[nd.net] = have
        if sum(len(tcp) for _, tcp in held.values()) > MAX_DUTY:
            raise ProtocolError(f"Duty: more than {MAX_DUTY} targets in all")
        changed = held.keys() != self.lists.keys() or any(
            held[net] is not self.lists[net] for net in held
        )
        self.asked = tuple(nd.net for nd in duty.nets)
        self.lists = held
        if changed:
            self._reorder()

    def _reorder(self) -> None:
        wanted = dict.fromkeys(t for _, tcp in self.lists.values() for t in tcp)
        for t in [t for t in self.order if t not in wanted]:
            del self.order[t]
            self.marks.pop(t, None)
            self.failing.pop(t, None)
        new = [t for t in wanted if t not in self.order]
        if new:
            k = self.phase % len(new)
            # never probed: first in line, from this node's own place in the list
            self.order = dict.fromkeys(itertools.chain(new[k:], new[:k], self.order))

    def pick(self, take: int, suspects: int) -> list[TcpTarget]:
        """This round's targets: up to `suspects` failing ones (least recently probed first),
        then the `take` least recently probed of the rest."""
        out = list(itertools.islice(self.failing, suspects))
        again = set(out)
        want = len(out) + take
        for t in self.order:
            if len(out) >= want:
                break
            if t not in again:
                out.append(t)
        return out

    def record(self, probed: Sequence[TcpTarget], results: Sequence[TcpResult]) -> int:
        """Folds the results of `probed` (in its order); the probes that had an opinion."""
        said = 0
        for t, r in zip(probed, results, strict=True):
            if t not in self.order:
                continue
            del self.order[t]
            self.order[t] = None
            m = self.marks.get(t)
            if m is None:
                m = self.marks[t] = Mark()
            if r.ok is None:
                m.ok = None
            else:
                said += 1
                m.ok = r.ok
                m.fails = 0 if r.ok else min(m.fails + 1, MAX_FAILS)
                m.error = "" if r.ok else r.error
            self.failing.pop(t, None)
            if m.fails:
                self.failing[t] = None
        return said

    def state(self, probed: int) -> Watched:
        """The answer: per overlay of the last duty, in its order, the list held and what is
        known of it. At most MAX_LISTED failing targets are listed, those with the most
        failures in a row first: the others are no opinion this round."""
        failing: list[tuple[int, int, Failing]] = []  # (-fails, overlay, the entry)
        bitmaps: list[tuple[str, str, bytearray]] = []
        for k, net in enumerate(self.asked):
            digest, tcp = self.lists.get(net, ("", ()))
            bits = bytearray((len(tcp) + 7) // 8)
            marks = self.marks
            for i, t in enumerate(tcp):
                m = marks.get(t)
                if m is None or m.ok is None:
                    continue
                if m.ok:
                    bits[i >> 3] |= 1 << (i & 7)
                else:
                    failing.append((-m.fails, k, Failing(at=i, fails=m.fails, error=m.error)))
            bitmaps.append((net, digest, bits))
        if len(failing) > MAX_LISTED:
            failing = sorted(failing, key=lambda f: f[0])[:MAX_LISTED]
        per_net: dict[int, list[Failing]] = {}
        for _, k, f in failing:
            per_net.setdefault(k, []).append(f)
        nets = tuple(
            NetState(
                net=net,
                digest=digest,
                ok=bytes(bits),
                failing=tuple(sorted(per_net.get(k, ()), key=lambda f: f.at)),
            )
            for k, (net, digest, bits) in enumerate(bitmaps)
        )
        return Watched(nets=nets, probed=probed)
