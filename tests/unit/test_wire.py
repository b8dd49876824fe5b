"""swarm_medic.swarm.wire: JSON bytes -> model values, the same as mapping.py's dict path."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from swarm_medic.core.model import Node, Service, Task
from swarm_medic.swarm import mapping, wire
from swarm_medic.swarm.mapping import _parse_time_general, parse_time
from swarm_medic.swarm.shape import Shape
from tests.unit.samples import NODE, SERVICE, TASK

KINDS: list[tuple[wire.Kind[Any], dict[str, Any]]] = [
    (wire.TASKS, TASK),
    (wire.SERVICES, SERVICE),
    (wire.NODES, NODE),
]


def both(kind: wire.Kind[Any], objs: list[Any]) -> tuple[Any, Any]:
    """(values, problems) from the bytes path and from the dict path, for the same list."""
    body = json.dumps(objs).encode()
    bad_wire: list[str] = []
    bad_dict: list[str] = []
    got = wire.decode_list(body, kind, bad_wire, wire.Memo())
    want = mapping.map_each(json.loads(body), kind.fallback, kind.name, bad_dict)
    return (got, bad_wire), (want, bad_dict)


@pytest.mark.parametrize(("kind", "obj"), KINDS, ids=lambda k: getattr(k, "name", ""))
def test_a_realistic_object_maps_as_the_dict_path_maps_it(
    kind: wire.Kind[Any], obj: dict[str, Any]
) -> None:
    (got, bad), (want, _) = both(kind, [obj])
    assert got == want
    assert len(got) == 1
    assert bad == []


def test_the_realistic_task_in_detail() -> None:
    (got, _), _ = both(wire.TASKS, [TASK])
    t: Task = got[0]
    assert (t.id, t.service_id, t.node_id, t.state, t.container_id) == (
        "t1abc",
        "svc1",
        "node1",
        "running",
        "c0ffee",
    )
    assert t.exit_code == 0
    assert t.addresses == (("net1", "shop_backend", "10.0.1.7"),)  # no ingress, no empty one


def test_a_malformed_element_among_good_ones_is_skipped_alone() -> None:
    no_id = {**TASK, "ID": ""}
    bad_time = {**TASK, "ID": "t3", "CreatedAt": "yesterday"}
    odd_slot = {**TASK, "ID": "t4", "Slot": "1"}  # not an int: the dict path keeps it, no slot
    odd_status = {**TASK, "ID": "t5", "Status": []}  # falsy: the dict path reads defaults
    good2 = {**TASK, "ID": "t2"}
    objs = [TASK, no_id, 5, bad_time, None, odd_slot, good2, odd_status]

    (got, bad), (want, bad_dict) = both(wire.TASKS, objs)

    assert [t.id for t in got] == ["t1abc", "t4", "t2", "t5"]
    assert got == want
    assert bad == bad_dict
    assert len(bad) == 4
    assert got[1].slot is None
    assert got[3].state == "new"


def test_an_answer_that_is_not_a_list_says_so() -> None:
    bad: list[str] = []
    assert wire.decode_list(b'{"message": "boom"}', wire.TASKS, bad) == ()
    assert bad == ["the task list is not a list but dict"]


def test_an_answer_that_is_not_json_raises() -> None:
    with pytest.raises(wire.NotJSON, match="not JSON"):
        wire.decode_list(b"<html>502 Bad Gateway</html>", wire.TASKS, [])


def test_unchanged_elements_are_not_decoded_again() -> None:
    memo: wire.Memo[Task] = wire.Memo()
    changed = copy.deepcopy(TASK)
    first = wire.decode_list(
        json.dumps([TASK, {**TASK, "ID": "t2"}]).encode(), wire.TASKS, [], memo
    )
    changed["ID"] = "t2"
    changed["Status"]["State"] = "failed"
    bad: list[str] = []
    second = wire.decode_list(
        json.dumps([TASK, changed, {"ID": ""}]).encode(), wire.TASKS, bad, memo
    )

    assert second[0] is first[0]  # the same bytes: the same value, not decoded again
    assert second[1].state == "failed"
    assert len(memo.values) == 2  # this answer's elements only; the skipped one is not kept
    assert all(isinstance(v, Task) for v in memo.values.values())  # and no bytes
    third_bad: list[str] = []
    wire.decode_list(json.dumps([{"ID": ""}]).encode(), wire.TASKS, third_bad, memo)
    assert third_bad == bad  # a malformed element is reported on every answer
    assert memo.values == {}


def test_a_value_is_reused_only_for_the_same_bytes_not_the_same_version() -> None:
    # The engine fills a manager's Leader and Reachability at list time, without a new
    # Version.Index: the same (ID, version) with other bytes is decoded again.
    memo: wire.Memo[Node] = wire.Memo()
    leader = {**NODE, "ManagerStatus": {"Leader": True, "Reachability": "reachable"}}
    follower = {**NODE, "ManagerStatus": {"Leader": False, "Reachability": "unreachable"}}
    first = wire.decode_list(json.dumps([leader]).encode(), wire.NODES, [], memo)
    second = wire.decode_list(json.dumps([follower]).encode(), wire.NODES, [], memo)
    again = wire.decode_list(json.dumps([follower]).encode(), wire.NODES, [], memo)

    assert first[0].leader and not second[0].leader
    assert second[0].reachability == "unreachable"
    assert again[0] is second[0]
    assert len(memo.values) == 1


@pytest.mark.parametrize(
    "previous", [{}, None, {"Name": "web"}, {"Name": {}}, [], [1], "", "x", 0, 1, True, False]
)
def test_previous_spec_presence_as_the_dict_path_reads_it(previous: object) -> None:
    (got, _), (want, _) = both(wire.SERVICES, [{**SERVICE, "PreviousSpec": previous}])
    assert got == want


# --- every field, every odd value: the bytes path gives the dict path's answer --------------

ODD: list[object] = [
    None,
    "",
    "x",
    "10.0.0.9/16",
    "2026-11-26T07:58:42Z",
    0,
    7,
    -1,
    1.5,
    True,
    False,
    [],
    [1],
    ["a"],
    {},
    {"a": "b"},
    {"a": 1},
]


def paths(obj: object, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield (*at, k)
            yield from paths(v, (*at, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield (*at, i)
            yield from paths(v, (*at, i))


def replaced(obj: dict[str, Any], path: tuple[Any, ...], value: object) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    here: Any = out
    for step in path[:-1]:
        here = here[step]
    here[path[-1]] = value
    return out


def cases() -> Iterator[tuple[wire.Kind[Any], dict[str, Any]]]:
    for kind, base in KINDS:
        for path in paths(base):
            for value in ODD:
                yield kind, replaced(base, path, value)


def test_odd_values_anywhere_give_the_dict_paths_answer() -> None:
    for kind, obj in cases():
        (got, bad), (want, bad_dict) = both(kind, [obj, obj])
        assert (got, bad) == (want, bad_dict), obj


@pytest.mark.parametrize(
    "fn", [mapping.task_from_api, mapping.service_from_api, mapping.node_from_api]
)
def test_kinds_fall_back_to_the_public_mapping_functions(fn: Callable[..., Any]) -> None:
    assert fn in {k.fallback for k, _ in KINDS}


def test_model_types() -> None:
    (tasks, _), _ = both(wire.TASKS, [TASK])
    (services, _), _ = both(wire.SERVICES, [SERVICE])
    (nodes, _), _ = both(wire.NODES, [NODE])
    assert isinstance(tasks[0], Task)
    assert isinstance(services[0], Service)
    assert isinstance(nodes[0], Node)


# --- parse_time: the fast form and the general one agree --------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-26T07:58:42.229777971Z",
        "2026-11-26T07:58:42Z",
        "2026-11-26T07:58:42.5Z",
        "2026-11-26T07:58:42.123456789123Z",
        "2026-11-26T07:58:42.9999999Z",
        "2026-11-26T07:58Z",
        "2026-11-26T07:58:42,5Z",
        "2026-11-26.07:58:42Z",  # "." between date and time: the general path's reading
        "2026-11-26T07:58:42ZZ",
        "2026-11-26T07:58:42.Z",
        "2026-W48-4T07:58:42Z",
    ],
)
def test_parse_time_fast_form_agrees_with_the_general_path(text: str) -> None:
    def outcome(fn: Callable[[str], float]) -> float | str:
        try:
            return fn(text)
        except ValueError:
            return "ValueError"

    assert outcome(parse_time) == outcome(_parse_time_general)


def test_the_stop_grace_period_is_read_on_both_paths() -> None:
    # the orphan runbook's grace depends on it: a field the fast path forgot would read 10 s
    (svc,) = wire.decode_list(json.dumps([SERVICE]).encode(), wire.SERVICES, [])
    assert svc.stop_grace_period == 45.0 == mapping.service_from_api(SERVICE).stop_grace_period


def test_a_model_field_without_its_declaration_is_refused() -> None:
    # one declaration per field: a field added to the model and not here fails at import
    declared = dict(mapping.TASK.fields)
    declared.pop("exit_code")
    with pytest.raises(ImportError, match="declare each"):
        Shape(Task, "task", ("ID",), **declared)
