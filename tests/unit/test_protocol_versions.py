"""Protocol versions (issue 17, section 2; issue 20, section 2): what this tree sends, the
previous release reads; what the previous release sent, this tree reads; a peer more than one
release away is refused with both versions named.

The previous release is protocol 2 (main at 89637ef, before standing probe duties), played here
by its own code, frozen in tests/fixtures/protocol2 (protocol, channel, endpoint), and by the
bytes it put on the wire, captured there (capture.py). Protocol 1 (the release before versions,
tests/fixtures/protocol1) is now two releases back: refused, naming both. Exchanges over HTTP,
both ways, are in tests/pipeline/test_rolling_protocol.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from swarm_medic.core import protocol
from swarm_medic.core.protocol import (
    LATER,
    MAX_ANSWER,
    MAX_REQUEST,
    PROTOCOL,
    ActAnswer,
    ActRequest,
    Disk,
    Duty,
    NetDuty,
    NetState,
    ProbeAnswer,
    ProbePlan,
    ProtocolError,
    VersionError,
    Watched,
    check_aligned,
    decode,
    encode,
    readable,
    spoken,
)
from swarm_medic.nodes.channel import Change, Versions, open_answer, seal
from tests.fixtures.protocol2 import channel as channel2
from tests.fixtures.protocol2 import protocol as protocol2
from tests.unit.samples import ANSWER, PLAN

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
PREVIOUS = FIXTURES / "protocol2"
META: dict[str, Any] = json.loads((PREVIOUS / "exchanges.json").read_text())
SECRET = META["secret"].encode()
NODE: str = META["node"]
ACT = ActRequest(kind="remove_task_container", task="t1", service="s1")
DONE = ActAnswer(ok=True, container="c" * 64, task="t1", node="node1", stop_timeout=20.0)
MESSAGES: list[tuple[type[Any], type[Any], protocol.Message]] = [
    (ProbePlan, protocol2.ProbePlan, PLAN),
    (ProbeAnswer, protocol2.ProbeAnswer, ANSWER),
    (ActRequest, protocol2.ActRequest, ACT),
    (ActAnswer, protocol2.ActAnswer, DONE),
]
DUTY = Duty(nets=(NetDuty(net="net1", digest="0123456789abcdef"),), take=40, suspects=40)
WATCHED = Watched(nets=(NetState(net="net1", digest="0123456789abcdef", ok=b"\x01"),), probed=1)


def http(name: str, release: Path = PREVIOUS) -> tuple[str, dict[str, str], bytes]:
    """A captured HTTP message: its first line, its headers, its body."""
    head, _, body = (release / name).read_bytes().partition(b"\r\n\r\n")
    first, *lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    return first, headers, body


def captured_answer(name: str) -> tuple[str, bytes]:
    """(the request's nonce, the answer's envelope) of captured exchange `name`."""
    _, headers, _ = http(f"{name}.request")
    return headers["X-Medic-Nonce"], http(f"{name}.answer")[2]


# --- what protocol 2 reads of this tree --------------------------------------------------------


@pytest.mark.parametrize(("kind", "kind2", "message"), MESSAGES)
def test_protocol_2_reads_what_this_tree_sends(
    kind: type[Any], kind2: type[Any], message: protocol.Message
) -> None:
    """The frozen decoder of the previous release reads every message this tree sends, and
    reads exactly what it was sent: the version field is skipped like any unknown one."""
    sent = encode(message)
    assert sent.startswith(b'{"protocol":%d,' % PROTOCOL)
    read = protocol2.decode(sent, kind2, limit=protocol2.MAX_ANSWER)
    assert protocol2.encode(read, speaks=2) == encode(message, speaks=2)


@pytest.mark.parametrize(("kind", "kind2", "message"), MESSAGES)
def test_speaking_2_is_byte_for_byte_what_protocol_2_sent(
    kind: type[Any], kind2: type[Any], message: protocol.Message
) -> None:
    as_2 = protocol2.decode(encode(message, speaks=2), kind2, limit=protocol2.MAX_ANSWER)
    assert encode(message, speaks=2) == protocol2.encode(as_2)
    assert spoken(protocol2.encode(as_2), kind, limit=MAX_ANSWER) == (2, message)


def test_a_duty_is_read_past_by_protocol_2_as_a_plan_with_no_tcp_target() -> None:
    """What a node of the previous release makes of a plan with a duty: the positional lists
    (DNS, VIPs, ports) it answers as ever, no tcp target, so no tcp result: the brain takes
    that as no opinion, and sends it positional plans once it has heard it speak 2."""
    plan = msgspec.structs.replace(PLAN, tcp=(), duty=DUTY)
    read = protocol2.decode(encode(plan), protocol2.ProbePlan, limit=protocol2.MAX_REQUEST)
    assert read.tcp == ()
    assert protocol2.encode(read, speaks=3) == encode(msgspec.structs.replace(plan, duty=None))


def test_a_state_is_read_past_by_a_brain_of_protocol_2() -> None:
    answer = msgspec.structs.replace(ANSWER, tcp=(), duty=WATCHED)
    read = protocol2.decode(encode(answer), protocol2.ProbeAnswer, limit=protocol2.MAX_ANSWER)
    assert protocol2.encode(read, speaks=3) == encode(msgspec.structs.replace(answer, duty=None))


PRUNE = ActRequest(
    kind=protocol.PRUNE_NODE,
    task="n2",
    service="n2",
    keep=("app:1@sha256:" + "a" * 64, "app:0"),
    wanted=("t1", "t2"),
    target=85,
)


def test_a_prune_is_read_by_protocol_2_as_a_kind_it_refuses_by_name() -> None:
    """A brain that prunes in a swarm whose node still runs the release before: that node reads
    the request (the node is named where it wants a task and a service) and its agent refuses
    the unknown kind by name, as it refuses any; the prune's fields are read past."""
    sent = encode(PRUNE)
    assert b'"keep"' in sent and b'"wanted"' in sent and b'"target":85' in sent
    read = protocol2.decode(sent, protocol2.ActRequest, limit=protocol2.MAX_REQUEST)
    assert (read.kind, read.task, read.service) == ("prune_node", "n2", "n2")
    assert spoken(sent, ActRequest, limit=MAX_REQUEST) == (PROTOCOL, PRUNE)
    # a request that says no prune's fields is protocol 2's, byte for byte but the version
    assert encode(ACT, speaks=2) == protocol2.encode(
        protocol2.decode(encode(ACT), protocol2.ActRequest, limit=protocol2.MAX_REQUEST)
    )


@pytest.mark.parametrize(
    "field",
    [
        '"target":101',
        '"target":-1',
        '"keep":[""]',
        '"keep":["' + "x" * (protocol.MAX_IMAGE_REF + 1) + '"]',
        '"keep":[' + ",".join(['"a"'] * (protocol.MAX_KEEP + 1)) + "]",
        '"wanted":[""]',
        '"keep":"app:1"',
    ],
)
def test_a_prune_out_of_bounds_is_refused(field: str) -> None:
    body = b'{"kind":"prune_node","task":"n2","service":"n2",' + field.encode() + b"}"
    with pytest.raises(ProtocolError):
        decode(body, ActRequest, limit=MAX_REQUEST)


def test_what_a_node_says_of_an_action_is_left_out_for_protocol_2() -> None:
    said = msgspec.structs.replace(DONE, detail="a prune is under way already")
    assert b'"detail"' in encode(said) and b'"detail"' not in encode(said, reader=2)
    read = protocol2.decode(encode(said), protocol2.ActAnswer, limit=protocol2.MAX_ANSWER)
    assert protocol2.encode(read, speaks=2) == encode(DONE, speaks=2)


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


@pytest.mark.parametrize(("kind", "kind2", "message"), MESSAGES)
def test_every_field_is_one_protocol_2_knows_or_one_left_out_for_it(
    kind: type[Any], kind2: type[Any], message: protocol.Message
) -> None:
    """Protocol 3 added the duty (plan) and its state (answer), optional, in `LATER`: `encode`
    leaves them out when they say nothing, or for a peer that speaks an older protocol. A field
    added later and not declared there fails this test."""
    later = {f for f in _fields(kind) if f.split(".")[0] in LATER}
    assert {k: v for k, v in _fields(kind).items() if k not in later} == _fields(kind2)
    assert all(_fields(kind)[f.split(".")[0]] is False for f in later)  # optional, all of them
    assert protocol.VERSION_FIELD not in _fields(kind)
    for name in LATER:
        assert f'"{name}"'.encode() not in encode(message)  # None: left out
    with_duty = msgspec.structs.replace(PLAN, duty=DUTY)
    assert b'"duty"' in encode(with_duty)
    assert b'"duty"' not in encode(with_duty, speaks=2)  # never to a peer that cannot read it
    clocked = msgspec.structs.replace(ANSWER, clock=1.0, held=0.0)
    assert b'"clock"' not in encode(clocked, speaks=2)  # never to a peer that cannot read it


CLOCKED = msgspec.structs.replace(ANSWER, clock=1_700_000_000.125, held=0.004)


def test_the_nodes_clock_is_left_out_for_a_reader_of_protocol_2() -> None:
    """Protocol 3 answers say the node's clock; a brain of protocol 2 is not sent it, and reads
    the rest with its frozen decoder as the answer it knows."""
    sent = encode(CLOCKED)
    assert b'"clock":1700000000.125' in sent and b'"held":0.004' in sent
    for_2 = encode(CLOCKED, reader=2)
    assert b"clock" not in for_2 and b"held" not in for_2
    assert for_2.startswith(b'{"protocol":%d,' % PROTOCOL)  # the version it speaks is said
    read = protocol2.decode(for_2, protocol2.ProbeAnswer, limit=protocol2.MAX_ANSWER)
    assert protocol2.encode(read, speaks=2) == encode(ANSWER, speaks=2)
    assert spoken(sent, ProbeAnswer, limit=MAX_ANSWER) == (PROTOCOL, CLOCKED)


@pytest.mark.parametrize(
    "field", ['"clock":-1', '"clock":4102444801', '"held":-0.5', '"held":7200', '"clock":"now"']
)
def test_a_clock_out_of_bounds_is_refused(field: str) -> None:
    with pytest.raises(ProtocolError):
        decode(b'{"node":"n1",' + field.encode() + b"}", ProbeAnswer, limit=MAX_ANSWER)


# --- what this tree reads of protocol 2 ----------------------------------------------------------


@pytest.mark.parametrize("name", ["probe", "probe-empty"])
def test_the_captured_probe_plans_of_protocol_2_are_read_as_protocol_2(name: str) -> None:
    first, _, body = http(f"{name}.request")
    assert first.split()[1] == protocol.PROBE_PATH
    theirs, plan = spoken(body, ProbePlan, limit=MAX_REQUEST)
    assert theirs == 2
    assert plan.duty is None
    as_2 = protocol2.decode(body, protocol2.ProbePlan, limit=protocol2.MAX_REQUEST)
    assert encode(plan, speaks=2) == protocol2.encode(as_2) == body


@pytest.mark.parametrize("name", ["act", "act-dry-run"])
def test_the_captured_actions_of_protocol_2_are_read_as_protocol_2(name: str) -> None:
    first, _, body = http(f"{name}.request")
    assert first.split()[1] == protocol.ACT_PATH
    theirs, request = spoken(body, ActRequest, limit=MAX_REQUEST)
    assert theirs == 2
    assert encode(request, speaks=2) == body
    assert request.kind == protocol.REMOVE_TASK_CONTAINER


def test_the_captured_probe_answers_of_protocol_2_open_and_are_read_as_protocol_2() -> None:
    _, _, plan = http("probe.request")
    for name in ("probe", "probe-empty"):
        nonce, envelope = captured_answer(name)
        body = open_answer(SECRET, protocol.PROBE_PATH, nonce, NODE, envelope)
        theirs, answer = spoken(body, ProbeAnswer, limit=MAX_ANSWER)
        assert (theirs, answer.node, answer.duty) == (2, NODE, None)
        assert encode(answer, speaks=2) == body
    check_aligned(decode(plan, ProbePlan, limit=MAX_REQUEST), answer)
    assert answer.containers[0].swarm_made is True


def test_the_captured_act_answers_of_protocol_2_open_and_are_read_as_protocol_2() -> None:
    said = {}
    for name in ("act", "act-dry-run"):
        nonce, envelope = captured_answer(name)
        body = open_answer(SECRET, protocol.ACT_PATH, nonce, NODE, envelope)
        theirs, said[name] = spoken(body, ActAnswer, limit=MAX_ANSWER)
        assert theirs == 2
        assert encode(said[name], speaks=2) == body
    assert said["act"].ok and said["act"].stop_timeout == 20.0
    assert said["act-dry-run"].dry_run and not said["act-dry-run"].ok


def test_this_trees_sealed_answer_opens_with_protocol_2s_channel() -> None:
    """The seal did not change: an older brain opens a newer node's answer."""
    body = encode(msgspec.structs.replace(ANSWER, duty=WATCHED))
    envelope = json.dumps(seal(SECRET, "/v1/probe", "n0nce", "node1", body)).encode()
    opened = channel2.open_answer(SECRET, "/v1/probe", "n0nce", "node1", envelope)
    assert protocol2.decode(opened, protocol2.ProbeAnswer, limit=protocol2.MAX_ANSWER)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("probe", ProbePlan),
        ("probe-empty", ProbePlan),
        ("act", ActRequest),
        ("act-dry-run", ActRequest),
    ],
)
def test_the_captured_requests_of_protocol_1_are_refused_two_releases_back(
    name: str, kind: type[Any]
) -> None:
    """Protocol 1 said no version: a message without one is protocol 1's, two releases back."""
    _, _, body = http(f"{name}.request", FIXTURES / "protocol1")
    with pytest.raises(VersionError) as caught:
        spoken(body, kind, limit=MAX_REQUEST)
    assert (caught.value.theirs, caught.value.ours) == (1, PROTOCOL)
    assert f"this instance speaks {PROTOCOL} and reads {PROTOCOL - 1} to" in str(caught.value)


# --- versions: read one release either way, refuse the rest --------------------------------------


@pytest.mark.parametrize(
    ("ours", "theirs", "ok"),
    [
        (2, 1, True),
        (2, 2, True),
        (2, 3, True),
        (2, 0, False),
        (2, 4, False),
        (3, 1, False),
        (3, 2, True),
        (3, 4, True),
        (3, 5, False),
    ],
)
def test_a_side_reads_one_release_either_way(ours: int, theirs: int, ok: bool) -> None:
    assert readable(theirs, ours) is ok


def test_a_message_of_the_next_release_is_read_its_new_fields_skipped() -> None:
    newer = json.loads(encode(PLAN, speaks=PROTOCOL + 1))
    newer["tcp"][0]["mtu"] = 1450  # what the next release may add: skipped, not refused
    newer["quic"] = [{"ip": "10.0.0.1", "port": 443}]
    assert spoken(json.dumps(newer), ProbePlan, limit=MAX_REQUEST) == (PROTOCOL + 1, PLAN)


@pytest.mark.parametrize(("ours", "theirs"), [(2, 4), (2, 0), (2, 99), (3, 1), (3, 5)])
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
        spoken(far.replace(b"5", b"%d" % PROTOCOL), ProbePlan, limit=MAX_REQUEST)


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


@pytest.mark.parametrize("speaks", [1, 2, 3])
def test_oversize_is_refused_before_the_version_is_read(speaks: int) -> None:
    data = encode(PLAN, speaks=speaks)
    with pytest.raises(ProtocolError, match="over the"):
        spoken(data + b" " * MAX_REQUEST, ProbePlan, limit=MAX_REQUEST)


@pytest.mark.parametrize("speaks", [1, 2, 3])
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


@pytest.mark.parametrize("speaks", [1, 2, 3])
def test_a_tampered_answer_does_not_open_in_either_format(speaks: int) -> None:
    body = encode(
        msgspec.structs.replace(ANSWER, duty=WATCHED if speaks >= 3 else None), speaks=speaks
    )
    envelope = seal(SECRET, "/v1/probe", "n0nce", "node1", body)
    for forged in (
        {**envelope, "body": envelope["body"].replace("timeout", "timeouT")},
        {**envelope, "body": envelope["body"].replace(f'"protocol":{speaks}', '"protocol":4')},
        {**envelope, "body": envelope["body"].replace('"probed":1', '"probed":0')},
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


# --- the node's health (protocol 3) --------------------------------------------------------------

HEALTHY = msgspec.structs.replace(
    ANSWER,
    cert_not_after=1_804_441_442.0,
    disks=(Disk("data-root", "/var/lib/docker", 100 << 30, 8 << 30),),
)


def test_the_nodes_health_is_left_out_for_a_reader_of_protocol_2() -> None:
    sent = encode(HEALTHY)
    assert b'"cert_not_after":1804441442.0' in sent
    assert b'"disks":[["data-root","/var/lib/docker",' in sent
    assert spoken(sent, ProbeAnswer, limit=MAX_ANSWER) == (PROTOCOL, HEALTHY)
    for_2 = encode(HEALTHY, reader=2)
    assert b"cert_not_after" not in for_2 and b"disks" not in for_2
    read = protocol2.decode(for_2, protocol2.ProbeAnswer, limit=protocol2.MAX_ANSWER)
    assert protocol2.encode(read, speaks=2) == encode(ANSWER, speaks=2)


@pytest.mark.parametrize(
    "field",
    [
        '"cert_not_after":-1',
        '"cert_not_after":"soon"',
        '"disks":[["home","/",1,1]]',  # only the data root and the raft folder
        '"disks":[["raft","",1,1]]',
        '"disks":[["raft","/x",-1,1]]',
        '"disks":[' + ",".join(['["raft","/x",1,1]'] * 5) + "]",  # over MAX_DISKS
    ],
)
def test_health_out_of_bounds_is_refused(field: str) -> None:
    with pytest.raises(ProtocolError):
        decode(b'{"node":"n1",' + field.encode() + b"}", ProbeAnswer, limit=MAX_ANSWER)
