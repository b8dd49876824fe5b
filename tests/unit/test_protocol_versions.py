"""Protocol versions (issue 17, section 2): what this tree sends, protocol 1 reads; what protocol 1
sent, this tree reads; a peer more than one release away is refused with both versions named.

Protocol 1 is the release before versions (main at 05c28ee). It is played here by its own code,
frozen in tests/fixtures/protocol1 (protocol, channel), and by the bytes it put on the wire,
captured there before versions existed (capture.py). Exchanges over HTTP, both ways, are in
tests/pipeline/test_rolling_protocol.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from swarm_medic.core import protocol
from swarm_medic.core.protocol import (
    MAX_ANSWER,
    MAX_REQUEST,
    PROTOCOL,
    ActAnswer,
    ActRequest,
    ProbeAnswer,
    ProbePlan,
    ProtocolError,
    VersionError,
    check_aligned,
    decode,
    encode,
    readable,
    spoken,
)
from swarm_medic.nodes.channel import Change, Versions, open_answer, seal
from tests.fixtures.protocol1 import channel as channel1
from tests.fixtures.protocol1 import protocol as protocol1
from tests.unit.samples import ANSWER, PLAN

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "protocol1"
META: dict[str, Any] = json.loads((FIXTURES / "exchanges.json").read_text())
SECRET = META["secret"].encode()
NODE: str = META["node"]
ACT = ActRequest(kind="remove_task_container", task="t1", service="s1")
DONE = ActAnswer(ok=True, container="c" * 64, task="t1", node="node1", stop_timeout=20.0)
MESSAGES: list[tuple[type[Any], type[Any], protocol.Message]] = [
    (ProbePlan, protocol1.ProbePlan, PLAN),
    (ProbeAnswer, protocol1.ProbeAnswer, ANSWER),
    (ActRequest, protocol1.ActRequest, ACT),
    (ActAnswer, protocol1.ActAnswer, DONE),
]


def http(name: str) -> tuple[str, dict[str, str], bytes]:
    """A captured HTTP message: its first line, its headers, its body."""
    head, _, body = (FIXTURES / name).read_bytes().partition(b"\r\n\r\n")
    first, *lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    return first, headers, body


def captured_answer(name: str) -> tuple[str, bytes]:
    """(the request's nonce, the answer's envelope) of captured exchange `name`."""
    _, headers, _ = http(f"{name}.request")
    return headers["X-Medic-Nonce"], http(f"{name}.answer")[2]


# --- what protocol 1 reads of this tree --------------------------------------------------------


@pytest.mark.parametrize(("kind", "kind1", "message"), MESSAGES)
def test_protocol_1_reads_what_this_tree_sends(
    kind: type[Any], kind1: type[Any], message: protocol.Message
) -> None:
    """The frozen decoder of the release before versions reads every message this tree sends,
    and reads exactly what it was sent: the version field is skipped like any unknown one."""
    sent = encode(message)
    assert sent.startswith(b'{"protocol":%d,' % PROTOCOL)
    read = protocol1.decode(sent, kind1, limit=protocol1.MAX_ANSWER)
    assert protocol1.encode(read) == encode(message, speaks=1)


@pytest.mark.parametrize(("kind", "kind1", "message"), MESSAGES)
def test_speaking_1_is_byte_for_byte_what_protocol_1_sent(
    kind: type[Any], kind1: type[Any], message: protocol.Message
) -> None:
    as_1 = protocol1.decode(encode(message, speaks=1), kind1, limit=protocol1.MAX_ANSWER)
    assert encode(message, speaks=1) == protocol1.encode(as_1)
    assert spoken(protocol1.encode(as_1), kind, limit=MAX_ANSWER) == (1, message)


def _fields(kind: type[Any]) -> dict[str, Any]:
    """Every field of a message, its nested messages' fields under `field.`."""
    out: dict[str, Any] = {}
    for f in msgspec.structs.fields(kind):
        out[f.name] = f.required
        inner = f.type
        for arg in getattr(inner, "__args__", ()):
            for sub in (arg, *getattr(arg, "__args__", ())):
                if isinstance(sub, type) and issubclass(sub, msgspec.Struct):
                    out |= {f"{f.name}.{k}": v for k, v in _fields(sub).items()}
        if isinstance(inner, type) and issubclass(inner, msgspec.Struct):
            out |= {f"{f.name}.{k}": v for k, v in _fields(inner).items()}
    return out


@pytest.mark.parametrize(("kind", "kind1", "message"), MESSAGES)
def test_every_field_is_one_protocol_1_knows(
    kind: type[Any], kind1: type[Any], message: protocol.Message
) -> None:
    """Protocol 2 added the version, and the optional fields listed in `protocol.LATER`
    (which `encode` leaves out for a reader of protocol 1), and nothing else. A field added
    otherwise fails this test: it must be listed there, with the protocol that added it."""
    later = protocol.LATER.get(kind, {})
    ours = _fields(kind)
    assert {k: v for k, v in ours.items() if k not in later} == _fields(kind1)
    assert all(ours[name] is False for name in later)  # optional: absent is "not said"
    assert protocol.VERSION_FIELD not in ours


CLOCKED = msgspec.structs.replace(ANSWER, clock=1_700_000_000.125, held=0.004)


def test_the_nodes_clock_is_skipped_by_protocol_1_and_left_out_for_it() -> None:
    """An answer saying the node's clock is read by protocol 1's frozen decoder as if the clock
    were not there (as a protocol 2 instance from before the clock reads it: unknown fields are
    skipped), and a reader of protocol 1 is not sent it at all."""
    sent = encode(CLOCKED)
    assert b'"clock":1700000000.125' in sent and b'"held":0.004' in sent
    read = protocol1.decode(sent, protocol1.ProbeAnswer, limit=protocol1.MAX_ANSWER)
    assert protocol1.encode(read) == encode(ANSWER, speaks=1)
    for_1 = encode(CLOCKED, reader=1)
    assert b"clock" not in for_1 and b"held" not in for_1
    assert for_1.startswith(b'{"protocol":%d,' % PROTOCOL)  # the version it speaks is said
    assert encode(CLOCKED, speaks=1) == encode(ANSWER, speaks=1)
    assert spoken(sent, ProbeAnswer, limit=MAX_ANSWER) == (PROTOCOL, CLOCKED)


@pytest.mark.parametrize(
    "field", ['"clock":-1', '"clock":4102444801', '"held":-0.5', '"held":7200', '"clock":"now"']
)
def test_a_clock_out_of_bounds_is_refused(field: str) -> None:
    with pytest.raises(ProtocolError):
        decode(b'{"node":"n1",' + field.encode() + b"}", ProbeAnswer, limit=MAX_ANSWER)


# --- what this tree reads of protocol 1 ----------------------------------------------------------


@pytest.mark.parametrize("name", ["probe", "probe-empty"])
def test_the_captured_probe_plans_of_protocol_1_are_read_as_protocol_1(name: str) -> None:
    first, _, body = http(f"{name}.request")
    assert first.split()[1] == protocol.PROBE_PATH
    theirs, plan = spoken(body, ProbePlan, limit=MAX_REQUEST)
    assert theirs == 1
    as_1 = protocol1.decode(body, protocol1.ProbePlan, limit=protocol1.MAX_REQUEST)
    assert encode(plan, speaks=1) == protocol1.encode(as_1) == body


@pytest.mark.parametrize("name", ["act", "act-dry-run"])
def test_the_captured_actions_of_protocol_1_are_read_as_protocol_1(name: str) -> None:
    first, _, body = http(f"{name}.request")
    assert first.split()[1] == protocol.ACT_PATH
    theirs, request = spoken(body, ActRequest, limit=MAX_REQUEST)
    assert theirs == 1
    assert encode(request, speaks=1) == body
    assert request.kind == protocol.REMOVE_TASK_CONTAINER


def test_the_captured_probe_answers_of_protocol_1_open_and_are_read_as_protocol_1() -> None:
    _, _, plan = http("probe.request")
    for name in ("probe", "probe-empty"):
        nonce, envelope = captured_answer(name)
        body = open_answer(SECRET, protocol.PROBE_PATH, nonce, NODE, envelope)
        theirs, answer = spoken(body, ProbeAnswer, limit=MAX_ANSWER)
        assert (theirs, answer.node) == (1, NODE)
        assert encode(answer, speaks=1) == body
    check_aligned(decode(plan, ProbePlan, limit=MAX_REQUEST), answer)
    assert answer.containers[0].swarm_made is True


def test_the_captured_act_answers_of_protocol_1_open_and_are_read_as_protocol_1() -> None:
    said = {}
    for name in ("act", "act-dry-run"):
        nonce, envelope = captured_answer(name)
        body = open_answer(SECRET, protocol.ACT_PATH, nonce, NODE, envelope)
        theirs, said[name] = spoken(body, ActAnswer, limit=MAX_ANSWER)
        assert theirs == 1
        assert encode(said[name], speaks=1) == body
    assert said["act"].ok and said["act"].stop_timeout == 20.0
    assert said["act-dry-run"].dry_run and not said["act-dry-run"].ok


def test_this_trees_sealed_answer_opens_with_protocol_1s_channel() -> None:
    """The seal did not change: an older brain opens a newer node's answer."""
    body = encode(ANSWER)
    envelope = json.dumps(seal(SECRET, "/v1/probe", "n0nce", "node1", body)).encode()
    opened = channel1.open_answer(SECRET, "/v1/probe", "n0nce", "node1", envelope)
    assert protocol1.decode(opened, protocol1.ProbeAnswer, limit=protocol1.MAX_ANSWER)


# --- versions: read one release either way, refuse the rest --------------------------------------


@pytest.mark.parametrize(
    ("ours", "theirs", "ok"),
    [(2, 1, True), (2, 2, True), (2, 3, True), (2, 0, False), (2, 4, False), (3, 1, False)],
)
def test_a_side_reads_one_release_either_way(ours: int, theirs: int, ok: bool) -> None:
    assert readable(theirs, ours) is ok


def test_a_message_of_the_next_release_is_read_its_new_fields_skipped() -> None:
    newer = json.loads(encode(PLAN, speaks=3))
    newer["tcp"][0]["mtu"] = 1450  # what protocol 3 may add: skipped, not refused
    newer["quic"] = [{"ip": "10.0.0.1", "port": 443}]
    assert spoken(json.dumps(newer), ProbePlan, limit=MAX_REQUEST) == (3, PLAN)


@pytest.mark.parametrize(("ours", "theirs"), [(2, 4), (2, 0), (2, 99), (3, 1)])
def test_a_peer_more_than_one_release_away_is_refused_naming_both(ours: int, theirs: int) -> None:
    data = encode(PLAN, speaks=theirs) if theirs > 1 else encode(PLAN, speaks=1)
    if theirs == 0:
        data = b'{"protocol":0,' + encode(PLAN, speaks=1)[1:]
    with pytest.raises(VersionError) as caught:
        spoken(data, ProbePlan, limit=MAX_REQUEST, ours=ours)
    said = str(caught.value)
    assert f"speaks protocol {theirs};" in said
    assert f"this instance speaks {ours} and reads {ours - 1} to {ours + 1}" in said
    assert (caught.value.theirs, caught.value.ours) == (theirs, ours)


def test_the_version_is_read_before_the_fields_it_changes() -> None:
    """A far release's message whose fields no longer fit ours is refused for its version."""
    far = b'{"protocol":5,"tcp":"a string now","dns":7}'
    with pytest.raises(VersionError, match="speaks protocol 5"):
        spoken(far, ProbePlan, limit=MAX_REQUEST)
    with pytest.raises(ProtocolError, match="ProbePlan"):  # and ours, with the same fields, not
        spoken(far.replace(b"5", b"2"), ProbePlan, limit=MAX_REQUEST)


@pytest.mark.parametrize(
    "bad",
    [b'{"protocol":"2"}', b'{"protocol":2.5}', b'{"protocol":null}', b'{"protocol":[2]}', b"[]"],
)
def test_a_version_that_is_not_a_number_is_a_bad_message(bad: bytes) -> None:
    with pytest.raises(ProtocolError) as caught:
        spoken(bad, ProbePlan, limit=MAX_REQUEST)
    assert not isinstance(caught.value, VersionError)
    assert str(caught.value).startswith("ProbePlan: ")


# --- hostile input, in both formats --------------------------------------------------------------


@pytest.mark.parametrize("speaks", [1, 2])
def test_oversize_is_refused_before_the_version_is_read(speaks: int) -> None:
    data = encode(PLAN, speaks=speaks)
    with pytest.raises(ProtocolError, match="over the"):
        spoken(data + b" " * MAX_REQUEST, ProbePlan, limit=MAX_REQUEST)


@pytest.mark.parametrize("speaks", [1, 2])
@pytest.mark.parametrize("where", ["version", "unknown field", "known field"])
def test_deep_nesting_is_refused_in_both_formats(speaks: int, where: str) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    doc = encode(PLAN, speaks=speaks)
    if where == "version":
        data = b'{"protocol":' + deep + b"," + doc[1:]
    elif where == "unknown field":
        data = b'{"x-unknown":' + deep + b"," + doc[1:]
    else:
        data = doc[:-1] + b',"tcp":' + deep + b"}"
    with pytest.raises(ProtocolError):
        spoken(data, ProbePlan, limit=len(data))


@pytest.mark.parametrize("speaks", [1, 2])
def test_a_tampered_answer_does_not_open_in_either_format(speaks: int) -> None:
    body = encode(ANSWER, speaks=speaks)
    envelope = seal(SECRET, "/v1/probe", "n0nce", "node1", body)
    for forged in (
        {**envelope, "body": envelope["body"].replace("timeout", "timeouT")},
        {**envelope, "body": envelope["body"].replace(f'"protocol":{speaks}', '"protocol":3')},
        {**envelope, "sig": "0" * 64},
    ):
        if forged == envelope:
            continue  # speaks 1 has no version to change
        with pytest.raises(ProtocolError, match="does not verify"):
            open_answer(SECRET, "/v1/probe", "n0nce", "node1", json.dumps(forged).encode())


def test_a_tampered_captured_answer_does_not_open() -> None:
    nonce, envelope = captured_answer("probe")
    forged = envelope.replace(b"timed out", b"timed 0ut")
    with pytest.raises(ProtocolError, match="does not verify"):
        open_answer(SECRET, "/v1/probe", nonce, NODE, forged)
    with pytest.raises(ProtocolError, match="does not verify"):  # nor for another request
        open_answer(SECRET, "/v1/probe", "another nonce", NODE, envelope)


# --- what each peer speaks, said once per change -------------------------------------------------


def test_versions_say_a_change_once() -> None:
    v = Versions(2)
    assert v.heard("a", 2) is None  # first heard speaking ours: nothing to say
    assert v.heard("b", 1) == Change(None, 1)  # first heard older: said
    assert [v.heard("b", 1) for _ in range(100)] == [None] * 100  # ... once
    assert v.heard("b", 2) == Change(1, 2)  # upgraded: said once more
    assert v.heard("b", 2) is None
    assert v.heard("a", 1) == Change(2, 1)  # rolled back
    assert v.get("a") == 1
    assert v.get("c") is None


def test_versions_forget_nodes_that_left_and_stay_bounded() -> None:
    v = Versions(2, limit=3)
    for peer in "abcd":
        v.heard(peer, 1)
    assert v.get("a") is None  # the oldest went first
    assert [v.get(p) for p in "bcd"] == [1, 1, 1]
    v.keep({"c"})
    assert [v.get(p) for p in "bcd"] == [None, 1, None]
    assert v.heard("b", 1) == Change(None, 1)  # heard again after being forgotten: said again
