"""No parser recurses (issue 16, section 4): a JSON value nested up to 100,000 levels deep, in any
field of any format that crosses an edge, is refused by that edge's ordinary error (or skipped
as malformed), never a RecursionError.

The edges: a node's answer and a brain's request (core.protocol, before any seal is checked),
Alertmanager's webhook body (core.alerts), the engine's list answers, object answers and event
stream (swarm.wire), the ledger's labels (core.ledger) and Prometheus's alerts answer
(pipeline.hold). Each property takes a valid document of that format, puts the nested value
at any of its paths (or in an unknown field of any of its objects), and decodes it.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarm_medic.core import alerts, ledger, protocol
from swarm_medic.core.ledger import History, LedgerEntryError, Verifying
from swarm_medic.nodes.channel import open_answer, seal
from swarm_medic.pipeline.hold import AlertsHold
from swarm_medic.swarm import mapping, wire
from tests.unit.samples import NODE, SERVICE, TASK, VALID

PLACEHOLDER = "\x00deep\x00"
DEPTHS = st.sampled_from([1, 999, 1_000, 1_001, 10_000, 100_000]) | st.integers(1, 100_000)
SHAPES = st.sampled_from(["array", "object", "mixed"])


def nested(depth: int, shape: str) -> bytes:
    if shape == "array":
        return b"[" * depth + b"1" + b"]" * depth
    if shape == "object":
        return b'{"a":' * depth + b"1" + b"}" * depth
    return b'[{"a":' * (depth // 2 + 1) + b"1" + b"}]" * (depth // 2 + 1)


def _paths(value: object, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value, plus a new unknown key in every object."""
    out = [at]
    if isinstance(value, dict):
        out.append((*at, "x-unknown"))
        for k, v in value.items():
            out += _paths(v, (*at, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*at, i))
    return out


def _put(doc: Any, path: tuple[Any, ...], new: object) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(doc, dict):
        return {**doc, head: _put(doc.get(head), rest, new)}
    copy = list(doc)
    copy[head] = _put(copy[head], rest, new)
    return copy


def deepened(doc: object, data: st.DataObject) -> bytes:
    """`doc` as JSON with one value, at a drawn path, replaced by a deeply nested one."""
    path = data.draw(st.sampled_from(_paths(doc)), label="path")
    text = json.dumps(_put(doc, path, PLACEHOLDER)).encode()
    deep = nested(data.draw(DEPTHS, label="depth"), data.draw(SHAPES, label="shape"))
    return text.replace(json.dumps(PLACEHOLDER).encode(), deep)


# --- the brain-to-node protocol ----------------------------------------------------------------


@given(st.sampled_from(VALID), st.data())
def test_a_protocol_message_nested_anywhere_is_refused_as_a_protocol_error(
    valid: tuple[type[Any], bytes], data: st.DataObject
) -> None:
    kind, raw = valid
    body = deepened(json.loads(raw), data)
    try:
        value = protocol.decode(body, kind, limit=10 * protocol.MAX_ANSWER)
    except protocol.ProtocolError:
        return
    assert isinstance(value, kind)


@given(st.data())
def test_a_deeply_nested_answer_envelope_is_refused_before_its_seal(data: st.DataObject) -> None:
    secret = b"s" * 32
    env = seal(secret, "/v1/act", "n" * 32, "node1", b'{"ok":true}')
    body = deepened(env, data)
    try:
        got = open_answer(secret, "/v1/act", "n" * 32, "node1", body)
    except protocol.ProtocolError:
        return
    assert got == b'{"ok":true}'  # only the untouched envelope opens


def test_the_review_case_an_unknown_field_100000_deep() -> None:
    body = b'{"sig":"' + b"0" * 64 + b'","body":"{}","x":' + nested(100_000, "array") + b"}"
    with pytest.raises(protocol.ProtocolError, match="nested too deeply"):
        protocol.decode(body, protocol.Envelope, limit=1 << 30)


# --- Alertmanager's webhook -----------------------------------------------------------------------

NOTIFICATION = {
    "version": "4",
    "groupKey": "{}:{}",
    "status": "firing",
    "receiver": "swarm-medic",
    "groupLabels": {"alertname": "X"},
    "externalURL": "http://alertmanager:9093",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "X", "swarm_service": "web"},
            "annotations": {"summary": "s"},
            "startsAt": "2026-11-26T07:58:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "fingerprint": "abc",
        }
    ],
}


@given(st.data())
def test_an_alertmanager_body_nested_anywhere_is_a_payload_error(data: st.DataObject) -> None:
    try:
        note = alerts.decode(deepened(NOTIFICATION, data))
    except alerts.PayloadError:
        return
    assert note.version == "4"


# --- the engine's answers ------------------------------------------------------------------------

KINDS = [(wire.TASKS, TASK), (wire.SERVICES, SERVICE), (wire.NODES, NODE)]


@given(st.sampled_from(KINDS), st.data())
def test_one_deeply_nested_engine_object_is_skipped_alone(
    case: tuple[wire.Kind[Any], dict[str, Any]], data: st.DataObject
) -> None:
    kind, good = case
    bad_one = deepened(good, data)
    other = json.dumps({**good, "ID": "other"}).encode()
    body = b"[" + json.dumps(good).encode() + b"," + bad_one + b"," + other + b"]"
    problems: list[str] = []
    got = wire.decode_list(body, kind, problems, wire.Memo())
    ids = [v.id for v in got]
    assert ids[0] == good["ID"] and ids[-1] == "other"  # the list is never lost
    assert len(ids) in (2, 3)


@pytest.mark.parametrize("shape", ["array", "object", "mixed"])
def test_a_deep_element_is_named_as_such(shape: str) -> None:
    body = b"[" + json.dumps(TASK).encode() + b"," + nested(100_000, shape) + b"]"
    problems: list[str] = []
    got = wire.decode_list(body, wire.TASKS, problems)
    assert [t.id for t in got] == [TASK["ID"]]
    assert problems == ["task skipped: nested too deeply"]


@given(st.data())
def test_a_plain_list_or_object_answer_nested_deeply_is_not_json_or_skipped(
    data: st.DataObject,
) -> None:
    configs = [{"ID": "c1", "Spec": {"Name": "a", "Labels": {"k": "v"}}, "Version": {"Index": 1}}]
    problems: list[str] = []
    stored = mapping.stored_from_api("config")
    with contextlib.suppress(wire.NotJSON):
        wire.decode_plain_list(deepened(configs, data), stored, "config", problems)
    with pytest.raises(wire.NotJSON):
        wire.decode_object(nested(100_000, "object"), mapping.info_from_api, "docker info")


@given(st.data())
def test_an_engine_event_nested_deeply_is_a_malformed_line_and_the_stream_goes_on(
    data: st.DataObject,
) -> None:
    event = {"Type": "service", "Action": "update", "timeNano": 5, "Actor": {"ID": "s1"}}
    good = json.dumps(event).encode()

    class Stream:
        def __iter__(self) -> Any:
            yield good + b"\n" + deepened(event, data)[:7]
            yield deepened(event, data)[7:] + b"\n"
            yield good + b"\n"

        def close(self) -> None:
            pass

    values = list(wire.EventLines(Stream()))
    assert len(values) == 3
    assert values[0] == mapping.event_from_api(event) == values[2]


# --- the ledger and Prometheus ------------------------------------------------------------------

LABEL = json.loads(
    ledger.encode(
        History(
            actions=((1_700_000_000.0, "stuck-task"),),
            failures_in_row=1,
            open_until=1_700_000_600.0,
            open_reason="did not hold",
            pending=Verifying(
                "i1", "stuck-task", "force_update", 12, 1_700_000_000.0, 1_700_000_120.0, "t1", "n1"
            ),
        )
    )
)


@given(st.data())
def test_a_ledger_label_nested_anywhere_is_a_ledger_entry_error(data: st.DataObject) -> None:
    try:
        ledger.decode(deepened(LABEL, data).decode())
    except LedgerEntryError:
        return


PROMETHEUS = {
    "status": "success",
    "data": {"alerts": [{"labels": {"alertname": "X"}, "state": "firing", "value": "1"}]},
}


@given(st.data())
def test_a_prometheus_answer_nested_anywhere_is_a_hold_not_a_crash(data: st.DataObject) -> None:
    hold = AlertsHold("http://127.0.0.1:9", ["X"])
    try:
        hold._firing(deepened(PROMETHEUS, data))
    except ValueError:
        return
