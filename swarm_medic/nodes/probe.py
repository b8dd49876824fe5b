"""Probes from inside a network namespace: TCP connect and embedded-DNS lookups.

A probe runs in a short-lived thread that first joins the namespace (setns(2) on a sandbox
file under /var/run/docker/netns): namespaces are per thread on Linux, so the daemon's own
threads never move, and no user container is touched (no exec, nothing installed in it).
Sockets are made inside the namespace and then driven non-blocking from that one thread, so
a round of N connects costs one thread and at most `timeout` seconds, whatever N is.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from swarm_medic.core.protocol import is_ipv4

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
EMBEDDED_DNS = "127.0.0.11"


class NamespaceError(OSError):
    """The namespace could not be joined (gone, not a namespace, no CAP_SYS_ADMIN)."""


def in_netns(path: str, fn: Callable[[], T], timeout: float = 30.0) -> T:
    """Runs fn() in a new thread that has joined the network namespace at `path`."""
    box: dict[str, object] = {}

    def run() -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            box["error"] = NamespaceError(exc.errno, f"cannot open netns {path}: {exc.strerror}")
            return
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                box["error"] = NamespaceError(err, f"cannot join netns {path}: {os.strerror(err)}")
                return
        finally:
            os.close(fd)
        try:
            box["value"] = fn()
        except Exception as exc:  # noqa: BLE001 - handed to the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=run, name="swarm-medic-netns", daemon=True)
    thread.start()
    thread.join(timeout)
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    if "value" not in box:
        raise TimeoutError(f"probe in {path} did not finish in {timeout:.0f}s")
    return box["value"]  # type: ignore[return-value]


@dataclass(frozen=True)
class TcpResult:
    ip: str
    port: int
    ok: bool
    error: str  # "" when ok; "timeout", "refused", "unreachable", ...
    seconds: float


def tcp_connect_all(targets: Sequence[tuple[str, int]], timeout: float) -> list[TcpResult]:
    """Non-blocking connects to every (ip, port) at once; each gets at most `timeout` s."""
    sel = selectors.DefaultSelector()
    start = time.monotonic()
    results: dict[int, TcpResult] = {}
    pending: dict[int, tuple[socket.socket, str, int]] = {}
    for i, (ip, port) in enumerate(targets):
        # Checked before connect_ex, which would resolve a name (a DNS query from inside
        # the namespace) and raises for an IPv6 address: one bad target fails alone.
        if not is_ipv4(ip) or not 0 < port < 65536:
            results[i] = TcpResult(ip, port, False, "bad target: not an IPv4 address:port", 0.0)
            continue
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            code = s.connect_ex((ip, port))
        except OSError as exc:
            results[i] = TcpResult(ip, port, False, f"bad target: {exc}", 0.0)
            s.close()
            continue
        if code in (0, errno.EINPROGRESS):
            pending[i] = (s, ip, port)
            sel.register(s, selectors.EVENT_WRITE, i)
        else:
            results[i] = TcpResult(ip, port, False, _why(code), 0.0)
            s.close()
    while pending:
        left = timeout - (time.monotonic() - start)
        if left <= 0:
            break
        for key, _ in sel.select(left):
            i = int(key.data)
            s, ip, port = pending.pop(i)
            sel.unregister(s)
            code = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            results[i] = TcpResult(
                ip, port, code == 0, "" if code == 0 else _why(code), time.monotonic() - start
            )
            s.close()
    for i, (s, ip, port) in pending.items():
        results[i] = TcpResult(ip, port, False, "timeout", timeout)
        s.close()
    sel.close()
    return [results[i] for i in range(len(targets))]


def _why(code: int) -> str:
    names = {
        errno.ECONNREFUSED: "refused",
        errno.EHOSTUNREACH: "unreachable",
        errno.ENETUNREACH: "network unreachable",
        errno.ETIMEDOUT: "timeout",
    }
    return names.get(code, errno.errorcode.get(code, str(code)).lower())


SIOCGIFFLAGS, SIOCGIFADDR, SIOCGIFMTU = 0x8913, 0x8915, 0x8921
IFF_UP, IFF_RUNNING = 0x1, 0x40


def _holding(s: socket.socket, ip: str) -> bytes | None:
    """The ioctl request naming the interface that holds `ip` in the calling thread's
    namespace (None: no interface here holds it)."""
    for _, name in socket.if_nameindex():
        req = struct.pack("256s", name.encode()[:15])
        try:
            addr = fcntl.ioctl(s.fileno(), SIOCGIFADDR, req)
        except OSError:
            continue  # no IPv4 address on this one
        if socket.inet_ntoa(addr[20:24]) == ip:
            return req
    return None


def interface_up(ip: str) -> bool:
    """Is the interface that holds `ip` (in the calling thread's namespace) up and running?"""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        if (req := _holding(s, ip)) is not None:
            flags = struct.unpack("H", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req)[16:18])[0]
            return bool(flags & IFF_UP) and bool(flags & IFF_RUNNING)
    return False


# --- DNS: one A query to the embedded server, enough to compare tasks.<svc> with swarm -----


def _query(name: str, qid: int) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode("idna") for p in name.rstrip(".").split("."))
    return (
        struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + labels + b"\0" + struct.pack("!HH", 1, 1)
    )


def _skip_name(msg: bytes, pos: int) -> int:
    while True:
        length = msg[pos]
        if length == 0:
            return pos + 1
        if length & 0xC0 == 0xC0:  # compression pointer: two bytes, and the name ends
            return pos + 2
        pos += 1 + length


def parse_a_answers(msg: bytes, qid: int) -> list[str]:
    """IPv4 addresses in a DNS answer; ValueError for a malformed or mismatched reply."""
    if len(msg) < 12:
        raise ValueError("DNS reply shorter than its header")
    rid, flags, qd, an, _, _ = struct.unpack("!HHHHHH", msg[:12])
    if rid != qid:
        raise ValueError("DNS reply for another query")
    rcode = flags & 0x000F
    if rcode == 3:  # NXDOMAIN: the name does not exist (no running task)
        return []
    if rcode != 0:
        raise ValueError(f"DNS error rcode {rcode}")
    pos = 12
    try:
        for _ in range(qd):
            pos = _skip_name(msg, pos) + 4
        ips: list[str] = []
        for _ in range(an):
            pos = _skip_name(msg, pos)
            rtype, _, _, rdlen = struct.unpack("!HHIH", msg[pos : pos + 10])
            pos += 10
            if rtype == 1 and rdlen == 4:
                ips.append(socket.inet_ntoa(msg[pos : pos + 4]))
            pos += rdlen
    except (IndexError, struct.error, OSError) as exc:
        raise ValueError(f"malformed DNS reply: {exc}") from exc
    return sorted(ips)


def resolve_a(name: str, timeout: float, server: str = EMBEDDED_DNS, port: int = 53) -> list[str]:
    qid = int.from_bytes(os.urandom(2), "big")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(_query(name, qid), (server, port))
        deadline = time.monotonic() + timeout
        while True:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            msg, _ = s.recvfrom(4096)
            try:
                return parse_a_answers(msg, qid)
            except ValueError as exc:
                if "another query" not in str(exc) or time.monotonic() > deadline:
                    raise


# --- ICMP echo with don't-fragment: does a path carry packets of the overlay's full MTU? -------

IP_MTU_DISCOVER, IP_PMTUDISC_DO, IP_MTU = 10, 2, 14
ICMP_HEADER = 8
IP_HEADER = 20
SMALL = 64  # bytes of IP packet: what a TCP handshake or a health check carries


@dataclass(frozen=True)
class EchoResult:
    ip: str
    size: int  # bytes of the IP packet sent
    ok: bool | None  # None: not sent (no raw socket, too big for this side's own link)
    error: str = ""


def route_mtu(ip: str) -> int | None:
    """The MTU of the route to `ip` in the calling thread's namespace (the link the packet
    leaves by): no packet is sent, a UDP socket is only connected."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect((ip, 9))
            return int(s.getsockopt(socket.IPPROTO_IP, IP_MTU))
        except OSError:
            return None


def interface_mtu(ip: str) -> int | None:
    """The MTU of the interface that holds `ip` in the calling thread's namespace (None: no
    such interface here, as in a container that is not in the host's namespace)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        if (req := _holding(s, ip)) is not None:
            return int(struct.unpack("i", fcntl.ioctl(s.fileno(), SIOCGIFMTU, req)[16:20])[0])
    return None


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def echo_packet(ident: int, seq: int, size: int) -> bytes:
    """An ICMP echo request that makes an IP packet of `size` bytes."""
    payload = bytes(range(256)) * (size // 256 + 1)
    body = payload[: max(0, size - IP_HEADER - ICMP_HEADER)]
    header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    csum = _checksum(header + body)
    return struct.pack("!BBHHH", 8, 0, csum, ident, seq) + body


def parse_echo_reply(packet: bytes, ident: int) -> tuple[str, int, int] | None:
    """(source ip, sequence, IP packet size) of an echo reply to `ident`; None for anything
    else (a raw socket sees every ICMP packet of the namespace)."""
    if len(packet) < IP_HEADER + ICMP_HEADER:
        return None
    ihl = (packet[0] & 0x0F) * 4
    if ihl < IP_HEADER or len(packet) < ihl + ICMP_HEADER:
        return None
    kind, code, _, rid, seq = struct.unpack("!BBHHH", packet[ihl : ihl + ICMP_HEADER])
    if kind != 0 or code != 0 or rid != ident:
        return None
    total = struct.unpack("!H", packet[2:4])[0]
    return socket.inet_ntoa(packet[12:16]), seq, min(total, len(packet))


def echo_all(targets: Sequence[tuple[str, int]], timeout: float) -> list[EchoResult]:
    """One ICMP echo with don't-fragment to each (ip, IP packet size), all at once from one
    raw socket; each gets at most `timeout` s. A reply counts only from the address asked and
    with the whole packet: a path that truncates or fragments is not a pass."""
    out: dict[int, EchoResult] = {}
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    except OSError as exc:  # no CAP_NET_RAW: no opinion on any path
        return [
            EchoResult(ip, size, None, f"no raw socket: {exc.strerror}") for ip, size in targets
        ]
    ident = int.from_bytes(os.urandom(2), "big")
    waiting: dict[int, tuple[str, int]] = {}
    with s:
        s.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO)
        s.setblocking(False)
        for seq, (ip, size) in enumerate(targets):
            if not is_ipv4(ip) or not SMALL <= size <= 65535:
                out[seq] = EchoResult(ip, size, None, "bad target")
                continue
            try:
                s.sendto(echo_packet(ident, seq, size), (ip, 0))
            except OSError as exc:  # EMSGSIZE: larger than this side's own link takes
                out[seq] = EchoResult(ip, size, None, _why(exc.errno or 0))
                continue
            waiting[seq] = (ip, size)
        deadline = time.monotonic() + timeout
        sel = selectors.DefaultSelector()
        sel.register(s, selectors.EVENT_READ)
        try:
            while waiting and (left := deadline - time.monotonic()) > 0:
                if not sel.select(left):
                    break
                while True:
                    try:
                        packet = s.recv(65535)
                    except BlockingIOError:
                        break
                    got = parse_echo_reply(packet, ident)
                    if got is None or got[1] not in waiting:
                        continue
                    src, seq, size = got
                    ip, sent = waiting[seq]
                    if src == ip and size >= sent:
                        out[seq] = EchoResult(ip, sent, True)
                        del waiting[seq]
        finally:
            sel.close()
    for seq, (ip, size) in waiting.items():
        out[seq] = EchoResult(ip, size, False, "timeout")
    return [out[i] for i in range(len(targets))]
