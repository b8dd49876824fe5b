"""Probe primitives on loopback, in this process's own network namespace."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator

import pytest

from swarm_medic.nodes.probe import (
    NamespaceError,
    _query,
    in_netns,
    parse_a_answers,
    resolve_a,
    tcp_connect_all,
)
from tests.netkit import closed_port

OWN_NETNS = "/proc/self/ns/net"


@pytest.fixture
def listener() -> Iterator[int]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    yield s.getsockname()[1]
    s.close()


def test_tcp_connect_all_tells_open_from_refused(listener: int) -> None:
    shut = closed_port()
    res = tcp_connect_all([("127.0.0.1", listener), ("127.0.0.1", shut)], timeout=1.0)
    assert [(r.port, r.ok, r.error) for r in res] == [
        (listener, True, ""),
        (shut, False, "refused"),
    ]


def test_in_netns_runs_in_the_namespace_and_returns(listener: int) -> None:
    res = in_netns(OWN_NETNS, lambda: tcp_connect_all([("127.0.0.1", listener)], 1.0))
    assert res[0].ok


def test_in_netns_reports_a_missing_namespace() -> None:
    with pytest.raises(NamespaceError, match="cannot open netns /nonexistent"):
        in_netns("/nonexistent", lambda: 1)


def test_in_netns_hands_back_the_function_error() -> None:
    def boom() -> int:
        raise RuntimeError("inside")

    with pytest.raises(RuntimeError, match="inside"):
        in_netns(OWN_NETNS, boom)


def answer(query: bytes, ips: list[str], rcode: int = 0) -> bytes:
    qid = struct.unpack("!H", query[:2])[0]
    question = query[12:]
    head = struct.pack("!HHHHHH", qid, 0x8180 | rcode, 1, len(ips), 0, 0)
    records = b"".join(
        struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + socket.inet_aton(ip) for ip in ips
    )
    return head + question + records


def test_parse_a_answers() -> None:
    q = _query("tasks.web", 7)
    assert parse_a_answers(answer(q, ["10.0.1.3", "10.0.1.2"]), 7) == ["10.0.1.2", "10.0.1.3"]
    assert parse_a_answers(answer(q, [], rcode=3), 7) == []
    with pytest.raises(ValueError, match="another query"):
        parse_a_answers(answer(q, ["10.0.1.2"]), 8)
    with pytest.raises(ValueError, match="rcode 2"):
        parse_a_answers(answer(q, [], rcode=2), 7)
    with pytest.raises(ValueError, match="malformed"):
        parse_a_answers(answer(q, ["10.0.1.2"])[:-3], 7)


def test_resolve_a_against_a_loopback_dns_server() -> None:
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.0.1", 0))
    port = srv.getsockname()[1]

    def serve() -> None:
        msg, peer = srv.recvfrom(512)
        srv.sendto(answer(msg, ["10.0.9.9"]), peer)

    t = threading.Thread(target=serve)
    t.start()
    try:
        assert resolve_a("tasks.api", 2.0, server="127.0.0.1", port=port) == ["10.0.9.9"]
    finally:
        t.join(2)
        srv.close()


@pytest.mark.parametrize("bad", ["fd00::2", "10.0.1.300", "example.invalid"])
def test_one_target_that_is_not_ipv4_fails_alone(listener: int, bad: str) -> None:
    # an IPv6 task address (dual-stack overlay) used to raise out of the whole namespace batch
    res = tcp_connect_all([(bad, 80), ("127.0.0.1", listener)], timeout=1.0)
    assert (res[0].ip, res[0].ok) == (bad, False)
    assert res[0].error.startswith("bad target: ")
    assert (res[1].port, res[1].ok, res[1].error) == (listener, True, "")


# --- ICMP echo with don't-fragment (overlay-mtu) --------------------------------------------


def test_an_echo_packet_has_the_size_asked_and_a_valid_checksum() -> None:
    from swarm_medic.nodes.probe import _checksum, echo_packet

    pkt = echo_packet(0x1234, 7, 1450)
    assert len(pkt) + 20 == 1450
    assert _checksum(pkt) == 0  # a packet with its checksum in sums to zero


def test_a_reply_is_read_only_for_our_identifier_and_echo_replies() -> None:
    import socket
    import struct

    from swarm_medic.nodes.probe import echo_packet, parse_echo_reply

    body = b"\x00" + echo_packet(0x1234, 7, 100)[1:]  # type 0: an echo reply
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        100,
        0,
        0,
        64,
        1,
        0,
        socket.inet_aton("10.0.1.5"),
        socket.inet_aton("10.0.1.2"),
    )
    assert parse_echo_reply(header + body, 0x1234) == ("10.0.1.5", 7, 100)
    assert parse_echo_reply(header + body, 0x9999) is None
    request = header + echo_packet(0x1234, 7, 100)  # our own request, seen by a raw socket
    assert parse_echo_reply(request, 0x1234) is None
    assert parse_echo_reply(header[:10], 0x1234) is None


def test_echoes_on_loopback_for_real() -> None:
    from swarm_medic.nodes.probe import echo_all, route_mtu

    mtu = route_mtu("127.0.0.1")
    assert mtu is not None and mtu >= 1500
    got = echo_all([("127.0.0.1", 64), ("127.0.0.1", 1500), ("127.0.0.1", 70000)], 1.0)
    assert [r.ok for r in got] == [True, True, None]  # larger than IP carries: not sent
    assert got[2].error == "bad target"
