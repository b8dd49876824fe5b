"""swarm_medic.core.duty (protocol 3's standing duties: the brain's lists, the node's Watch) and
their fold into the probe matrix (reach.Reachability.record): what a node knows, the brain
ends up holding, cell for cell, touching only what changed."""

from __future__ import annotations

import random
from collections.abc import Collection

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarm_medic.core import duty
from swarm_medic.core.duty import NetList, Watch
from swarm_medic.core.model import Snapshot, Task
from swarm_medic.core.protocol import (
    MAX_DUTY,
    MAX_LISTED,
    Duty,
    Failing,
    NetDuty,
    NetState,
    ProbeAnswer,
    ProbePlan,
    ProtocolError,
    TcpResult,
    TcpTarget,
    Watched,
)
from swarm_medic.core.reach import Cell, Reachability
from tests import builders as build
from tests.builders import NOW

NET_A = "neta0123456789abcdef"
NET_B = "netb0123456789abcdef"
OK, BAD, NONE = TcpResult(True), TcpResult(False, "timeout"), TcpResult(None, "no vantage point")


def target(i: int, net: str = NET_A) -> TcpTarget:
    return TcpTarget(
        net=net,
        task=f"t{i:04d}",
        service="s1",
        node="n1",
        ip=f"10.0.{i // 250}.{i % 250 + 2}",
        port=80,
    )


def targets(n: int, net: str = NET_A, start: int = 0) -> tuple[TcpTarget, ...]:
    return tuple(target(i, net) for i in range(start, start + n))


def held(watch: Watch, net: str, tcp: tuple[TcpTarget, ...], *, take: int = 0) -> None:
    watch.hold(Duty(nets=(NetDuty(net=net, digest=duty.digest_of(tcp), tcp=tcp),), take=take))


def rounds(watch: Watch, n: int, take: int, bad: Collection[str] = ()) -> list[list[str]]:
    """`n` rounds of the watch: the tasks each probed (those in `bad` fail)."""
    out = []
    for _ in range(n):
        picked = watch.pick(take, take)
        watch.record(picked, [BAD if t.task in bad else OK for t in picked])
        out.append([t.task for t in picked])
    return out


# --- the brain's lists ---------------------------------------------------------------------------


def test_a_list_is_named_by_its_targets_on_every_instance() -> None:
    a = duty.lists({NET_A: list(targets(5))})
    b = duty.lists({NET_A: list(targets(5))})  # another brain, the same swarm
    assert a[NET_A].digest == b[NET_A].digest
    assert len(a[NET_A].digest) == 16
    assert duty.lists({NET_A: list(targets(6))})[NET_A].digest != a[NET_A].digest
    assert duty.lists({NET_A: list(reversed(targets(5)))})[NET_A].digest != a[NET_A].digest


def test_an_unchanged_list_is_the_same_object_round_after_round() -> None:
    first = duty.lists({NET_A: list(targets(5)), NET_B: list(targets(3, NET_B))})
    again = duty.lists({NET_A: list(targets(5)), NET_B: list(targets(4, NET_B))}, first)
    assert again[NET_A] is first[NET_A]  # the fold knows it: nothing to compare again
    assert again[NET_B] is not first[NET_B]


@pytest.mark.parametrize(
    ("total", "cover", "least", "want"),
    [(9, 4, 40, 9), (2000, 4, 40, 500), (2001, 4, 40, 501), (2000, 3, 40, 667), (100, 4, 40, 40)],
)
def test_a_round_takes_enough_to_cover_every_target_within_cover_rounds(
    total: int, cover: int, least: int, want: int
) -> None:
    assert duty.take(total, cover, least) == want


def test_a_duty_names_the_lists_a_node_holds_and_sends_the_others() -> None:
    ls = duty.lists({NET_A: list(targets(100)), NET_B: list(targets(20, NET_B))})
    a, b = ls[NET_A], ls[NET_B]
    first = duty.duty([NET_A, NET_B], ls, None, cover=4, least=10)
    assert [(nd.net, nd.digest, nd.tcp) for nd in first.nets] == [
        (NET_A, a.digest, None),  # not heard yet: believed to hold them
        (NET_B, b.digest, None),
    ]
    assert (first.take, first.suspects) == (30, 30)
    later = duty.duty([NET_A, NET_B], ls, {NET_A: a.digest, NET_B: ""}, cover=4, least=10)
    assert [nd.tcp for nd in later.nets] == [None, b.tcp]


def test_a_duty_never_holds_more_than_a_node_takes() -> None:
    full = [f"net{i}{'f' * 16}" for i in range(MAX_DUTY // duty.SENT)]
    ls = duty.lists({net: list(targets(duty.SENT, net)) for net in full})
    ls |= duty.lists({NET_B: list(targets(20, NET_B))})
    got = duty.duty([*full, NET_B], ls, {}, cover=4, least=40)
    assert [nd.net for nd in got.nets] == full  # the overlay past MAX_DUTY is not watched
    assert got.take == MAX_DUTY // 4


def test_a_round_sends_at_most_sent_targets_and_the_other_lists_later() -> None:
    nets = [f"net{i}{'e' * 16}" for i in range(3)]
    ls = duty.lists({net: list(targets(duty.SENT // 2 + 1, net)) for net in nets})
    held: dict[str, str] = {}
    rounds_to_hold = 0
    while any(held.get(net) != ls[net].digest for net in nets):
        got = duty.duty(nets, ls, held, cover=4, least=40)
        sent = [nd for nd in got.nets if nd.tcp is not None]
        assert sum(len(nd.tcp or ()) for nd in sent) <= duty.SENT
        assert [nd.net for nd in got.nets] == nets  # every list named, held or not
        held |= {nd.net: nd.digest for nd in sent}
        rounds_to_hold += 1
    assert rounds_to_hold == 3


def test_an_overlay_longer_than_one_request_carries_is_cut() -> None:
    ls = duty.lists({NET_A: list(targets(duty.SENT + 5))})
    assert ls[NET_A].tcp == targets(duty.SENT)


# --- the node's watch ----------------------------------------------------------------------------


def test_every_target_comes_round_within_cover_rounds() -> None:
    w = Watch(phase=123)
    held(w, NET_A, targets(2000))
    picked = rounds(w, 12, duty.take(2000, 4, 40))
    last: dict[str, int] = {}
    for r, tasks in enumerate(picked):
        assert len(tasks) == 500 == len(set(tasks))
        for t in tasks:
            if t in last:
                assert r - last[t] == 4  # least recently probed first: exactly every 4 rounds
            last[t] = r
    assert len(last) == 2000


def test_nodes_start_at_their_own_place_in_the_list() -> None:
    firsts = set()
    for phase in range(5):
        w = Watch(phase=phase * 7919)
        held(w, NET_A, targets(100))
        firsts.add(w.pick(10, 10)[0].task)
    assert len(firsts) == 5


def test_failing_targets_are_probed_again_first_every_round_until_they_answer() -> None:
    w = Watch()
    held(w, NET_A, targets(100))
    (first,) = rounds(w, 1, 10, bad={"t0003"})
    assert "t0003" in first
    for n in range(2, 5):
        picked = w.pick(10, 10)
        assert picked[0].task == "t0003"  # suspects first
        assert len(picked) == 11  # on top of the rotation
        w.record(picked, [BAD if t.task == "t0003" else OK for t in picked])
        assert w.marks[target(3)].fails == n
    picked = w.pick(10, 10)
    w.record(picked, [OK] * len(picked))
    assert w.failing == {}
    assert w.marks[target(3)] == duty.Mark(True, 0, "")


def test_the_state_says_ok_failing_and_no_opinion_in_the_order_of_the_list() -> None:
    tcp = targets(10)
    w = Watch()
    held(w, NET_A, tcp)
    picked = w.pick(10, 10)
    results = {"t0001": BAD, "t0004": NONE, "t0009": BAD}
    assert w.record(picked, [results.get(t.task, OK) for t in picked]) == 9
    assert w.state(9) == Watched(
        nets=(
            NetState(
                net=NET_A,
                digest=duty.digest_of(tcp),
                ok=bytes([0b11101101, 0b00000001]),  # 0, 2, 3, 5, 6, 7 and 8 answered
                failing=(Failing(1, 1, "timeout"), Failing(9, 1, "timeout")),
            ),
        ),
        probed=9,
    )


def test_no_opinion_keeps_the_failures_in_a_row_and_the_target_a_suspect() -> None:
    w = Watch()
    held(w, NET_A, targets(3))
    for result in (BAD, BAD, NONE):
        w.record([target(0)], [result])
    assert w.marks[target(0)] == duty.Mark(None, 2, "timeout")
    assert target(0) in w.failing
    (st,) = w.state(0).nets
    assert (st.ok, st.failing) == (b"\x00", ())  # said neither way
    w.record([target(0)], [BAD])
    assert w.state(1).nets[0].failing == (Failing(0, 3, "timeout"),)


def test_a_list_only_named_stays_the_one_held_and_a_node_that_holds_none_says_so() -> None:
    w = Watch()
    old, new = targets(4), targets(5)
    held(w, NET_A, old)
    w.hold(Duty(nets=(NetDuty(NET_A, duty.digest_of(new)), NetDuty(NET_B, "0" * 16)), take=9))
    states = w.state(0).nets
    assert [(s.net, s.digest) for s in states] == [(NET_A, duty.digest_of(old)), (NET_B, "")]
    assert w.pick(9, 9) == list(old)  # probing what it has until the brain sends the new one


def test_a_new_list_keeps_the_history_of_its_targets_and_forgets_the_others() -> None:
    w = Watch()
    held(w, NET_A, targets(4))
    rounds(w, 2, 4, bad={"t0001", "t0002"})
    held(w, NET_A, targets(4, start=2))  # t0000 and t0001 gone, t0004 and t0005 new
    assert set(w.marks) == {target(2), target(3)}
    assert w.marks[target(2)].fails == 2
    assert set(w.failing) == {target(2)}
    assert [t.task for t in w.pick(2, 0)] == ["t0004", "t0005"]  # never probed: first in line


def test_an_overlay_left_out_of_the_duty_is_dropped() -> None:
    w = Watch()
    a, b = targets(3), targets(2, NET_B, start=10)
    w.hold(Duty(nets=(NetDuty(NET_A, duty.digest_of(a), a), NetDuty(NET_B, duty.digest_of(b), b))))
    rounds(w, 1, 5)
    held(w, NET_B, b)
    assert set(w.order) == set(w.marks) == set(b)
    assert [s.net for s in w.state(0).nets] == [NET_B]


def test_a_duty_larger_than_a_node_holds_is_refused() -> None:
    tcp = targets(MAX_DUTY // 2 + 1)
    more = tuple(msgspec.structs.replace(t, net=NET_B) for t in tcp)
    w = Watch()
    with pytest.raises(ProtocolError, match="more than"):
        w.hold(
            Duty(
                nets=(
                    NetDuty(NET_A, duty.digest_of(tcp), tcp),
                    NetDuty(NET_B, duty.digest_of(more), more),
                )
            )
        )
    assert w.lists == {}


def test_at_most_max_listed_failing_targets_are_said_the_most_failing_first() -> None:
    w = Watch()
    n = MAX_LISTED + 10
    held(w, NET_A, targets(n))
    w.record(list(targets(n)), [BAD] * n)
    w.record(list(targets(5, start=100)), [BAD] * 5)  # two in a row for these five
    (st,) = w.state(0).nets
    assert len(st.failing) == MAX_LISTED
    assert {f.at for f in st.failing if f.fails == 2} == set(range(100, 105))
    assert [f.at for f in st.failing] == sorted(f.at for f in st.failing)


# --- the brain checks what it is told ---------------------------------------------------------


def lists_and_duty(n: int = 10) -> tuple[dict[str, NetList], Duty]:
    ls = duty.lists({NET_A: list(targets(n))})
    return ls, duty.duty([NET_A], ls, {}, cover=1, least=n)


def state(ls: dict[str, NetList], ok: bytes, *failing: Failing, net: str = NET_A) -> Watched:
    return Watched(nets=(NetState(net=net, digest=ls[NET_A].digest, ok=ok, failing=failing),))


@pytest.mark.parametrize(
    ("said", "why"),
    [
        (lambda ls: state(ls, b"\xff"), "bitmap of 1 bytes for 10"),
        (lambda ls: state(ls, b"\xff\x07"), "past the end"),
        (lambda ls: state(ls, b"\xfe\x00", Failing(10, 1)), "outside the list"),
        (lambda ls: state(ls, b"\xfe\x00", Failing(1, 1), Failing(1, 2)), "twice"),
        (lambda ls: state(ls, b"\xff\x00", Failing(1, 1)), "also ok"),
        (lambda ls: state(ls, b"\xff\x00", net=NET_B), "it was not given"),
        (lambda ls: Watched(nets=state(ls, b"\xff\x03").nets * 2), "it was not given once"),
    ],
)
def test_a_state_that_does_not_fit_the_list_is_refused(said: object, why: str) -> None:
    ls, sent = lists_and_duty()
    assert callable(said)
    with pytest.raises(ProtocolError, match=why):
        duty.check(sent, ls, said(ls))


def test_a_state_of_another_list_is_allowed_as_no_opinion() -> None:
    ls, sent = lists_and_duty()
    duty.check(sent, ls, Watched(nets=(NetState(NET_A, "0" * 16, b"\xff" * 9),)))
    duty.check(sent, ls, Watched(nets=(NetState(NET_A),)))
    duty.check(sent, ls, state(ls, b"\xfd\x03", Failing(1, 3, "timeout")))


# --- the fold: the brain holds what the node knows ---------------------------------------------


def world(tasks: list[str]) -> Snapshot:
    return build.snapshot(
        nodes=[build.node("n1"), build.node("n2")],
        services=[build.service("s1", labels={"swarm-medic.enable": "true"})],
        tasks=[running(t) for t in tasks],
        taken_at=NOW,
    )


def running(tid: str) -> Task:
    return build.task(tid, sid="s1", node_id="n1", timestamp=NOW - 100)


class Node2:
    """Node n2 with its watch, asked by a brain that folds its answers into `reach`."""

    def __init__(self, tcp: tuple[TcpTarget, ...], take: int) -> None:
        self.watch = Watch()
        self.reach = Reachability()
        self.lists = duty.lists({NET_A: list(tcp)})
        self.take = take

    def round(self, results: dict[str, TcpResult], snap: Snapshot, at: float = NOW) -> None:
        sent = duty.duty([NET_A], self.lists, {}, cover=1, least=self.take)
        self.watch.hold(sent)
        picked = self.watch.pick(sent.take, sent.suspects)
        said = self.watch.record(picked, [results.get(t.task, OK) for t in picked])
        answer = ProbeAnswer(node="n2", duty=self.watch.state(said))
        duty.check(sent, self.lists, answer.duty or Watched())
        self.reach.record(snap, {"n2": (ProbePlan(duty=sent), answer)}, at, lists=self.lists)

    def known(self) -> dict[str, tuple[bool, int, str]]:
        """What the node knows of each target it has an opinion on, by task."""
        return {
            t.task: (bool(m.ok), m.fails, m.error)
            for t, m in self.watch.marks.items()
            if m.ok is not None
        }

    def cells(self) -> dict[str, tuple[bool, int, str]]:
        return {
            task: (c.ok, c.fails, c.error) for (n, task), c in self.reach.tcp.items() if n == "n2"
        }


def test_the_brain_holds_what_the_node_knows_and_touches_only_what_changed() -> None:
    tcp = targets(20)
    snap = world([t.task for t in tcp])
    n2 = Node2(tcp, take=20)
    n2.round({"t0003": BAD}, snap)
    assert n2.cells() == n2.known()
    assert n2.cells()["t0003"] == (False, 1, "timeout")
    assert n2.reach.tcp.suspect == {("n2", "t0003")}
    before = dict(n2.reach.tcp)

    n2.round({"t0003": BAD}, snap, NOW + 15)
    after = dict(n2.reach.tcp)
    changed = [k for k in after if after[k] is not before[k]]
    assert changed == [("n2", "t0003")]  # one cell written of twenty
    assert after[("n2", "t0003")] == Cell(False, "timeout", 2, NOW + 15, 2)

    n2.round({}, snap, NOW + 30)
    assert n2.reach.tcp.suspect == set()
    assert n2.cells() == n2.known() == {t.task: (True, 0, "") for t in tcp}
    assert n2.reach.tcp.per_node == {"n2": 20}
    assert n2.reach.probes_last_round == 20


def test_a_target_with_no_opinion_loses_its_cell() -> None:
    tcp = targets(5)
    snap = world([t.task for t in tcp])
    n2 = Node2(tcp, take=5)
    n2.round({}, snap)
    n2.round({"t0002": NONE}, snap, NOW + 15)
    assert ("n2", "t0002") not in n2.reach.tcp
    assert len(n2.reach.tcp) == 4


def test_a_list_that_changes_keeps_the_cells_of_the_targets_still_in_it() -> None:
    tcp = targets(6)
    snap = world([t.task for t in targets(8)])
    n2 = Node2(tcp, take=8)
    n2.round({"t0001": BAD}, snap)
    kept = n2.reach.tcp[("n2", "t0004")]
    n2.lists = duty.lists({NET_A: list(targets(6, start=2))}, n2.lists)  # t0000-1 gone
    n2.round({}, snap, NOW + 15)
    assert n2.cells() == n2.known()
    assert set(n2.cells()) == {f"t000{i}" for i in range(2, 8)}
    assert n2.reach.tcp[("n2", "t0004")] is kept  # the same word: the same cell
    assert n2.reach.tcp.suspect == set()


def test_the_cells_of_a_node_that_stopped_answering_go_after_the_period() -> None:
    tcp = targets(5)
    snap = world([t.task for t in tcp])
    n2 = Node2(tcp, take=5)
    n2.round({}, snap)
    for r in range(1, 4):  # rounds the others answer, n2 does not
        n2.reach.record(snap, {}, NOW + 15 * r, period=2)
        assert len(n2.reach.tcp) == (5 if r < 3 else 0)
    assert n2.reach.tcp.per_node == {}


def test_a_node_that_answers_positionally_again_loses_what_its_duty_said() -> None:
    tcp = targets(5)
    snap = world([t.task for t in tcp])
    n2 = Node2(tcp, take=5)
    n2.round({"t0000": BAD}, snap)
    plan = ProbePlan(tcp=tcp[1:2])
    n2.reach.record(
        snap, {"n2": (plan, ProbeAnswer(node="n2", tcp=(BAD,)))}, NOW + 15, lists=n2.lists
    )
    assert n2.cells() == {"t0001": (False, 1, "timeout")}
    assert n2.reach.tcp.suspect == {("n2", "t0001")}


def test_a_state_of_an_older_list_is_no_opinion_until_the_node_holds_this_one() -> None:
    tcp = targets(5)
    snap = world([t.task for t in targets(6)])
    n2 = Node2(tcp, take=5)
    n2.round({}, snap)
    newer = duty.lists({NET_A: list(targets(6))})
    stale = n2.watch.state(0)  # the node still holds the five
    n2.reach.record(
        snap, {"n2": (ProbePlan(duty=Duty()), ProbeAnswer(node="n2", duty=stale))}, NOW, lists=newer
    )
    assert n2.cells() == {}


@settings(max_examples=60, deadline=None)
@given(
    rng=st.randoms(use_true_random=False),
    n=st.integers(1, 40),
    take=st.integers(1, 12),
    rounds_=st.integers(1, 12),
)
def test_whatever_the_rounds_the_brain_holds_exactly_what_the_node_knows(
    rng: random.Random, n: int, take: int, rounds_: int
) -> None:
    universe = targets(n + 10)
    snap = world([t.task for t in universe])
    n2 = Node2(universe[:n], take=take)
    for r in range(rounds_):
        if rng.random() < 0.3:  # churn: the list changes
            lo = rng.randrange(0, 10)
            n2.lists = duty.lists({NET_A: list(universe[lo : lo + n])}, n2.lists)
        results = {t.task: rng.choice((OK, OK, BAD, NONE)) for t in universe}
        n2.round(results, snap, NOW + 15 * r)
        assert n2.cells() == n2.known()
        assert n2.reach.tcp.suspect == {("n2", t) for t, c in n2.cells().items() if not c[0]}
        assert n2.reach.tcp.per_node.get("n2", 0) == len(n2.cells())
