"""swarm_medic.core.protocol: every message decodes into its type or raises ProtocolError, nothing
else, whatever the bytes (property tests, the 1,000-example profile of tests/conftest.py)."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarm_medic.core.protocol import (
    MAX_ANSWER,
    MAX_ERRORS,
    MAX_PORTS,
    MAX_REQUEST,
    MAX_TEXT,
    ActAnswer,
    ActRequest,
    Envelope,
    PortTarget,
    ProbeAnswer,
    ProbePlan,
    ProtocolError,
    TcpResult,
    check_aligned,
    decode,
    encode,
    is_ipv4,
)
from swarm_medic.nodes.channel import open_answer, seal
from tests.unit.samples import ANSWER, PLAN, TARGET, VALID

KINDS: list[type[Any]] = [ProbePlan, ActRequest, ProbeAnswer, ActAnswer, Envelope]


def decodes_or_refuses(data: bytes | str, kind: type[Any]) -> None:
    try:
        value = decode(data, kind, limit=MAX_ANSWER)
    except ProtocolError:
        return
    assert isinstance(value, kind)


# --- properties -------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=30,
)


@given(st.binary(max_size=2048), st.sampled_from(KINDS))
def test_arbitrary_bytes_decode_or_raise_protocol_error(data: bytes, kind: type[Any]) -> None:
    decodes_or_refuses(data, kind)


@given(json_values, st.sampled_from(KINDS))
def test_arbitrary_json_decodes_or_raises_protocol_error(value: object, kind: type[Any]) -> None:
    decodes_or_refuses(json.dumps(value), kind)


FIELD_VALUES = json_values | st.sampled_from(
    [0, 65536, -1, "", "x" * (MAX_TEXT + 1), "fd00::1", "1.2.3.4\n", "256.0.0.1", 1e308, [None]]
)


def _paths(value: object, at: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    out = [at]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*at, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*at, i))
    return out


def _replace(doc: Any, path: tuple[Any, ...], new: object) -> object:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(doc, dict):
        return {**doc, head: _replace(doc[head], rest, new)}
    copy = list(doc)
    copy[head] = _replace(copy[head], rest, new)
    return copy


@given(st.sampled_from(VALID), st.data())
def test_a_valid_message_with_any_field_replaced_decodes_or_raises(
    valid: tuple[type[Any], bytes], data: st.DataObject
) -> None:
    kind, raw = valid
    doc = json.loads(raw)
    path = data.draw(st.sampled_from(_paths(doc)))
    mutated = _replace(doc, path, data.draw(FIELD_VALUES))
    decodes_or_refuses(json.dumps(mutated), kind)


@given(st.sampled_from(VALID), st.data())
def test_a_valid_message_with_bytes_flipped_cut_or_inserted_decodes_or_raises(
    valid: tuple[type[Any], bytes], data: st.DataObject
) -> None:
    kind, raw = valid
    pos = data.draw(st.integers(min_value=0, max_value=len(raw)))
    op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
    if op == "flip" and pos < len(raw):
        raw = raw[:pos] + bytes([raw[pos] ^ data.draw(st.integers(1, 255))]) + raw[pos + 1 :]
    elif op == "cut":
        raw = raw[:pos] + raw[pos + data.draw(st.integers(1, 8)) :]
    else:
        raw = raw[:pos] + data.draw(st.binary(min_size=1, max_size=8)) + raw[pos:]
    decodes_or_refuses(raw, kind)


@given(st.binary(max_size=1024))
def test_opening_arbitrary_bytes_as_an_answer_only_raises_protocol_error(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        open_answer(b"k", "/v1/probe", "nonce", "node1", data)


@given(st.binary(max_size=256))
def test_a_sealed_answer_opens_to_exactly_its_bytes_and_nothing_else_does(body: bytes) -> None:
    text = body.decode("utf-8", errors="replace").encode()
    env = json.dumps(seal(b"k", "/v1/probe", "nonce", "node1", text)).encode()
    assert open_answer(b"k", "/v1/probe", "nonce", "node1", env) == text
    with pytest.raises(ProtocolError):
        open_answer(b"other", "/v1/probe", "nonce", "node1", env)


# --- the bounds, one by one -------------------------------------------------------------------


def test_valid_messages_round_trip() -> None:
    assert decode(encode(PLAN), ProbePlan, limit=MAX_REQUEST) == PLAN
    assert decode(encode(ANSWER), ProbeAnswer, limit=MAX_ANSWER) == ANSWER


def test_results_are_compact_arrays() -> None:
    assert b'"tcp":[[true,"",0.5]]' in encode(
        ProbeAnswer(node="n", tcp=(TcpResult(True, "", 0.5),))
    )


def test_oversize_is_refused_before_decoding() -> None:
    with pytest.raises(ProtocolError, match="over the 10 limit"):
        decode(b"{}" + b" " * 10, ProbePlan, limit=10)


def tcp_with(**over: object) -> bytes:
    return json.dumps({"tcp": [{**msgspec.to_builtins(TARGET), **over}]}).encode()


@pytest.mark.parametrize(
    "over",
    [
        {"port": 0},
        {"port": 65536},
        {"port": "80"},
        {"ip": "fd00::2"},
        {"ip": "10.0.1.2\n"},
        {"ip": "10.0.1.256"},
        {"ip": "010.0.1.2"},
        {"ip": "١٠.0.1.2"},  # noqa: RUF001 - Arabic-Indic digits: \\d would accept them
        {"task": ""},
        {"task": "t" * 129},
        {"net": None},
    ],
)
def test_a_target_outside_its_bounds_is_refused(over: dict[str, object]) -> None:
    with pytest.raises(ProtocolError):
        decode(tcp_with(**over), ProbePlan, limit=MAX_REQUEST)


def test_lists_and_strings_are_bounded() -> None:
    errors = json.dumps({"node": "n", "errors": ["e"] * (MAX_ERRORS + 1)})
    with pytest.raises(ProtocolError, match="length"):
        decode(errors, ProbeAnswer, limit=MAX_ANSWER)
    long = json.dumps({"node": "n", "tcp": [[False, "x" * (MAX_TEXT + 1), 1.0]]})
    with pytest.raises(ProtocolError, match="length"):
        decode(long, ProbeAnswer, limit=MAX_ANSWER)


def test_the_answer_of_the_review_is_refused() -> None:
    with pytest.raises(ProtocolError, match=r"\$\.dns\[0\]"):
        decode(b'{"node":"n2","dns":[{"ips":1}]}', ProbeAnswer, limit=MAX_ANSWER)


@pytest.mark.parametrize(
    ("text", "ok"),
    [("10.0.0.1", True), ("255.255.255.255", True), ("0.0.0.0", True), ("fd00::1", False)],  # noqa: S104 - an address to parse, not to bind
)
def test_is_ipv4(text: str, ok: bool) -> None:
    assert is_ipv4(text) is ok


# --- published ports ----------------------------------------------------------------------------


def ports_with(**over: object) -> bytes:
    return json.dumps({"ports": [{"ip": "192.168.0.2", "port": 8080, **over}]}).encode()


@pytest.mark.parametrize(
    "over",
    [
        {"port": 0},
        {"port": 65536},
        {"port": "8080"},
        {"port": None},
        {"ip": "localhost"},
        {"ip": "fd00::2"},
        {"ip": "192.168.0.2\n"},
        {"ip": "192.168.0.256"},
        {"ip": "192.168.0.2:80"},
        {"ip": ""},
        {"ip": 3232235522},
    ],
)
def test_a_published_port_target_outside_its_bounds_is_refused(over: dict[str, object]) -> None:
    with pytest.raises(ProtocolError, match=r"\$\.ports\[0\]"):
        decode(ports_with(**over), ProbePlan, limit=MAX_REQUEST)


def test_a_published_port_target_carries_an_address_and_a_port_only() -> None:
    plan = decode(ports_with(service="s1", cmd="rm -rf /"), ProbePlan, limit=MAX_REQUEST)
    assert plan.ports == (PortTarget(ip="192.168.0.2", port=8080),)  # the rest is ignored


def test_published_port_targets_are_bounded() -> None:
    many = json.dumps({"ports": [{"ip": "10.0.0.1", "port": 80}] * (MAX_PORTS + 1)})
    with pytest.raises(ProtocolError, match="length"):
        decode(many, ProbePlan, limit=MAX_REQUEST)
    answers = json.dumps({"node": "n", "ports": [[True, "", 1.0]] * (MAX_PORTS + 1)})
    with pytest.raises(ProtocolError, match="length"):
        decode(answers, ProbeAnswer, limit=MAX_ANSWER)


def test_a_plan_from_a_brain_without_published_ports_has_none() -> None:
    old = json.dumps({"tcp": [msgspec.to_builtins(TARGET)]})
    assert decode(old, ProbePlan, limit=MAX_REQUEST).ports == ()


def test_an_answer_without_port_results_is_aligned_it_is_an_older_node() -> None:
    # a node from before published ports ignores the plan's `ports` and answers none
    older = ProbeAnswer(node="node1", tcp=ANSWER.tcp, dns=ANSWER.dns, vip=ANSWER.vip)
    check_aligned(PLAN, older)
    check_aligned(PLAN, ANSWER)


@pytest.mark.parametrize("count", [2, 3])
def test_any_other_count_of_port_results_is_refused(count: int) -> None:
    answer = ProbeAnswer(
        node="node1",
        tcp=ANSWER.tcp,
        dns=ANSWER.dns,
        vip=ANSWER.vip,
        ports=(TcpResult(True),) * count,
    )
    with pytest.raises(ProtocolError, match=f"{count} ports results for 1 ports targets"):
        check_aligned(PLAN, answer)


def test_port_results_without_port_targets_are_refused() -> None:
    answer = ProbeAnswer(node="node1", ports=(TcpResult(True),))
    with pytest.raises(ProtocolError, match="1 ports results for 0 ports targets"):
        check_aligned(ProbePlan(), answer)
