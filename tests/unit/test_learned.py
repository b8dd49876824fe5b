"""Thresholds learned per service (core/learned.py): the figures, the ceiling, the ledger."""

from __future__ import annotations

import json
from types import MappingProxyType

import pytest

from runbooks.stuck_task import DEFAULT_TEXT, parse_stuck_after, thresholds
from swarm_medic.core import learned
from swarm_medic.core.learned import (
    FLOOR,
    LEARNED_PREFIX,
    MARGIN,
    MIN_SAMPLES,
    SAMPLES,
    Book,
    LearnedError,
    Times,
    decode,
    encode,
    percentile,
)
from swarm_medic.core.model import Service, Task
from swarm_medic.core.runbook import Context, TaskClock, Values
from tests.builders import NOW, snapshot


def times(**samples: list[float]) -> Times:
    return Times(NOW, MappingProxyType({k: tuple(v) for k, v in samples.items()}))


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([3.0], 0.9, 3.0),
        ([1.0, 2.0, 3.0, 4.0, 5.0], 0.9, 5.0),
        (list(range(1, 21)), 0.9, 18),
        ([5.0, 1.0, 4.0, 2.0, 3.0, 100.0, 2.0, 3.0, 2.0, 4.0], 0.9, 5.0),
    ],
)
def test_percentile_is_the_nearest_rank(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == expected


def test_no_threshold_before_the_minimum_history() -> None:
    few = times(starting=[3.0] * (MIN_SAMPLES - 1))
    assert few.learned("starting") is None
    assert learned.threshold(few, "starting", 300.0) is None
    enough = times(starting=[3.0] * MIN_SAMPLES)
    assert learned.threshold(enough, "starting", 300.0) == (FLOOR["starting"], MIN_SAMPLES)


def test_fast_starts_learn_the_floor_and_slow_steady_ones_three_times_their_p90() -> None:
    fast = times(starting=[2.0, 3.0, 5.0, 4.0, 2.5, 3.0])
    assert fast.learned("starting") == FLOOR["starting"] == 20.0
    slow = times(starting=[38.0, 40.0, 41.0, 39.0, 42.0, 40.0])
    limit = slow.learned("starting")
    assert limit == 42.0 * MARGIN
    assert limit > 2 * 42.0  # a steady start never reaches it


def test_the_configured_value_is_the_ceiling() -> None:
    slow = times(preparing=[200.0] * 10)
    assert learned.threshold(slow, "preparing", 300.0) == (300.0, 10)


def test_only_the_last_samples_are_kept_and_a_task_is_counted_once() -> None:
    t = Times()
    for i in range(SAMPLES + 5):
        task = Task(
            f"t{i}", "s1", 1, "n1", "running", "running", timestamp=NOW + i * 10 + 4,
            created_at=NOW + i * 10,
        )  # fmt: skip
        t = learned.add(t, task, {})
        assert learned.add(t, task, {}) is t  # again: not counted twice
    assert t.count("starting") == SAMPLES
    assert t.mark == NOW + (SAMPLES + 4) * 10 + 4


def test_durations_come_from_the_sightings_and_bound_the_states_not_seen() -> None:
    task = Task("t1", "s1", 1, "n1", "running", "running", timestamp=NOW + 30, created_at=NOW)
    # seen in preparing at NOW+2 and in starting at NOW+25
    got = learned.durations(task, {"preparing": NOW + 2, "starting": NOW + 25})
    assert got["starting"] == 5.0
    assert got["preparing"] == 23.0
    # not seen before preparing: new, pending, assigned lie between creation and preparing
    assert got["new"] == got["pending"] == got["assigned"] == 2.0
    # never seen before running: the whole path bounds every state
    assert set(learned.durations(task, {}).values()) == {30.0}


def test_task_clock_keeps_when_each_task_entered_each_state_it_was_seen_in() -> None:
    clock = TaskClock()
    t = Task("t1", "s1", 1, "n1", "starting", "running", timestamp=NOW + 1)
    clock.observe([t], NOW + 2)
    later = Task("t1", "s1", 1, "n1", "running", "running", timestamp=NOW + 5)
    clock.observe([later], NOW + 6)
    assert dict(clock.path("t1")) == {"starting": NOW + 1, "running": NOW + 5}
    # a stamp in the future (a node's clock ahead) counts from the first sighting
    ahead = Task("t2", "s1", 1, "n1", "starting", "running", timestamp=NOW + 999)
    clock.observe([ahead], NOW + 7)
    assert dict(clock.path("t2")) == {"starting": NOW + 7}
    assert clock.path("t1") == {}  # gone from the swarm: forgotten


def _ctx(svc: Service, t: Times, after: str | None = None) -> Context:
    parsed = parse_stuck_after(after if after is not None else learned_default())
    return Context(
        snapshot(services=[svc]), NOW, learned={svc.id: t}, settings=Values({"after": parsed})
    )


def learned_default() -> str:
    return DEFAULT_TEXT


def test_stuck_task_thresholds_say_where_each_came_from() -> None:
    svc = Service("s1", "web", 1)
    fast = times(starting=[3.0] * 6, pending=[0.5] * 6)
    limits = thresholds(svc, parse_stuck_after(learned_default()), _ctx(svc, fast))
    assert limits["starting"].describe() == "20s (learned from 6 tasks)"
    assert limits["pending"].describe() == "30s (learned from 6 tasks)"
    assert limits["preparing"].describe() == "300s (default)"  # no history there


def test_a_label_or_an_explicit_setting_overrides_what_was_learned() -> None:
    fast = times(starting=[3.0] * 6)
    labelled = Service(
        "s1", "web", 1, labels=MappingProxyType({"swarm-medic.stuck-after.starting": "90s"})
    )
    limits = thresholds(labelled, parse_stuck_after(learned_default()), _ctx(labelled, fast))
    assert limits["starting"].describe() == "90s (label swarm-medic.stuck-after.starting)"
    svc = Service("s1", "web", 1)
    given = parse_stuck_after("starting=2m")
    ctx = _ctx(svc, fast, "starting=2m")
    assert thresholds(svc, given, ctx)["starting"].describe() == "120s (setting stuck-task.after)"
    # the states not given still learn
    assert thresholds(svc, given, ctx)["pending"].source == "default"  # no pending history
    assert parse_stuck_after(learned_default()).given == frozenset()  # type: ignore[attr-defined]


def test_ledger_round_trip() -> None:
    t = times(starting=[3.0, 4.5], preparing=[10.0])
    assert decode(encode(t)) == t
    labels = learned.labels({"other": "x"}, {"s1": t, "gone": t}, frozenset({"s1"}))
    assert labels == {"other": "x", LEARNED_PREFIX + "s1": encode(t)}
    assert Book.from_labels(labels).by_service == {"s1": t}


def running(i: int, image: str) -> Task:
    return Task(
        f"t{image}{i}", "s1", 1, "n1", "running", "running", timestamp=NOW + i * 10 + 4,
        created_at=NOW + i * 10, image=image,
    )  # fmt: skip


def test_a_new_image_starts_the_history_over_and_until_relearned_the_default_stands() -> None:
    """A release whose tasks start slower than the last one's must not be force-updated on
    the old release's figure: the history is of one image; a new image starts it over."""
    t = Times()
    for i in range(MIN_SAMPLES + 1):
        t = learned.add(t, running(i, "app:1"), {})
    assert (t.image, t.count("starting")) == ("app:1", MIN_SAMPLES + 1)
    assert learned.threshold(t, "starting", 300.0, "app:1") == (20.0, MIN_SAMPLES + 1)
    # the service now names app:2 (an update under way): the old figure does not apply
    assert learned.threshold(t, "starting", 300.0, "app:2") is None
    again = learned.add(t, running(MIN_SAMPLES + 1, "app:2"), {})
    assert (again.image, again.count("starting")) == ("app:2", 1)
    assert decode(encode(again)) == again  # the image is kept in the ledger


def test_tasks_of_the_spec_before_are_not_counted() -> None:
    svc = Service("s1", "web", 1, image="app:2")
    old = running(1, "app:1")
    got, seen = learned.observe(
        {}, snapshot(services=[svc], tasks=[old], taken_at=NOW + 100), {}, frozenset()
    )
    assert got == {} and seen == {old.id}
    new = running(2, "app:2")
    got, _ = learned.observe(
        {}, snapshot(services=[svc], tasks=[old, new], taken_at=NOW + 100), {}, frozenset()
    )
    assert got["s1"].image == "app:2" and got["s1"].count("starting") == 1


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("not json", "not JSON"),
        ("[]", "not a JSON object"),
        ('{"m": 1, "x": 2}', "unknown key"),
        ('{"m": "soon"}', "not a number"),
        ('{"m": 1, "s": {"running": [1]}}', "unknown state"),
        ('{"m": 1, "s": {"starting": 3}}', "not a list"),
        ('{"m": 1, "s": {"starting": [' + ",".join(["1"] * 21) + "]}}", "not a list"),
        ('{"m": 1, "s": {"starting": [-1]}}', "out of range"),
        ('{"m": 1, "s": {"starting": [1e999]}}', "out of range"),
        ('{"m": 1, "s": {"starting": [true]}}', "not a number"),
        ('{"m": 1, "s": {"starting": [' + "1," * 2000 + "1]}}", "bytes long"),
        ('{"m": 1, "i": 7}', "image"),
        ('{"m": 1, "i": "' + "x" * 600 + '"}', "image"),
    ],
)
def test_a_bad_entry_is_refused_with_the_reason(text: str, why: str) -> None:
    with pytest.raises(LearnedError, match=why):
        decode(text)


def test_a_bad_entry_is_said_and_kept_until_the_service_is_learned_afresh() -> None:
    bad = {LEARNED_PREFIX + "s1": "not json"}
    book = Book.from_labels(bad)
    assert book.by_service == {}
    assert "not JSON" in book.problems["s1"]
    few = times(starting=[3.0])
    assert learned.labels(bad, {"s1": few}, frozenset({"s1"})) == bad
    fresh = times(starting=[3.0] * MIN_SAMPLES)
    written = learned.labels(bad, {"s1": fresh}, frozenset({"s1"}))
    assert json.loads(written[LEARNED_PREFIX + "s1"])["s"]["starting"] == [3.0] * MIN_SAMPLES


def test_a_write_is_material_when_a_threshold_appears_or_moves_a_fifth() -> None:
    four = times(starting=[30.0] * 4)
    five = times(starting=[30.0] * 5)
    assert learned.material(four, five)  # it appears
    assert not learned.material(five, times(starting=[30.0] * 5 + [31.0]))
    assert learned.material(five, times(starting=[30.0, 30.0, 30.0, 30.0, 60.0]))
