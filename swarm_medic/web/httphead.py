"""The HTTP port's limits and its request-head parser: bytes in, a Request or a Refusal out.

Pure on purpose (no sockets, no clock, no logging) so that every limit is checked on bytes the
server already holds, before it reads one byte more, and so that a property test can feed it
anything. Two functions: `split_head` says where the head ends in what has arrived so far (or
refuses as soon as those bytes already break a limit, without waiting for the rest), and
`parse_head` turns a complete head into a typed `Request`. Both raise nothing but `Refusal`.

Deliberately strict, because the only clients are Prometheus, health checks and our own brain:
HTTP/1.0 and 1.1 only, GET and POST only, origin-form targets, no obsolete line folding, no
whitespace before a header's colon, no `Transfer-Encoding` at all (chunked bodies are refused,
and with them the Content-Length/Transfer-Encoding smuggling family), and a POST must say how
long its body is with one plain non-negative decimal `Content-Length`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from swarm_medic.telemetry.metrics import HttpRefusal


@dataclass(frozen=True)
class Limits:
    """Every bound of the HTTP port; the defaults are what `swarm-medic run` uses."""

    request_line_bytes: int = 4096
    header_count: int = 64
    head_bytes: int = 16 * 1024  # request line, headers and the blank line that ends them
    body_bytes: int = 1 << 20
    # What all bodies being read or handled at once may add up to: it, not the connection
    # count times body_bytes, is what bounds memory when many clients POST at once.
    body_budget_bytes: int = 8 << 20
    head_timeout: float = 10.0  # for the whole head, not per read: trickling cannot extend it
    body_timeout: float = 10.0
    write_timeout: float = 10.0
    handler_timeout: float = 30.0
    connections: int = 128  # per listener: anonymous clients (everyone not yet trusted)
    control_workers: int = 4
    # No peer address holds more than this many connections of one pool: one client, or one
    # host, cannot fill the table however it behaves.
    per_address: int = 16
    # Connections reserved, on the channel's listener, to the peers that sent an authenticated
    # request lately (the brain, Alertmanager): anonymous traffic never takes these slots.
    reserved_connections: int = 32
    trusted_for: float = 900.0  # seconds an authenticated peer keeps its reserved slots


class Refusal(Exception):
    """A request the server will not serve: the status to answer and the reason to count.

    Status 0 when there is nobody left to answer (a client that stopped reading).
    """

    def __init__(self, status: int, reason: HttpRefusal, detail: str = "") -> None:
        super().__init__(f"{status} {reason}: {detail}" if detail else f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    version: str
    # Names as the client spelled them; a name sent twice (in any case) is joined with ", ".
    headers: Mapping[str, str] = field(default_factory=dict)
    content_length: int | None = None

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    def header(self, name: str, default: str = "") -> str:
        lower = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lower), default)


METHODS = ("GET", "POST")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VERSION = re.compile(rb"HTTP/([0-9])\.([0-9])")
_TARGET = re.compile(rb"/[\x21-\x7e]*")  # origin-form: visible ASCII, no spaces, no controls
_VALUE_BAD = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")  # controls other than HT
_DIGITS = re.compile(rb"[0-9]+")
# int() would also take "+5", " 5", "1_000", "٣" and, past 4300 digits, raise something else
# entirely; a length longer than this many digits is over any body limit anyway.
_MAX_LENGTH_DIGITS = 15


def _head_end(buf: bytes | bytearray) -> int | None:
    """Index just past the blank line that ends the head (CRLF or bare LF line ends)."""
    ends = [i + n for i, n in ((buf.find(b"\n\r\n"), 3), (buf.find(b"\n\n"), 2)) if i >= 0]
    return min(ends) if ends else None


def _check_so_far(buf: bytes | bytearray, limits: Limits) -> None:
    first_end = buf.find(b"\n")
    first = len(buf) if first_end < 0 else first_end
    if first > limits.request_line_bytes + 1:  # +1: the CR of CRLF is not part of the line
        raise Refusal(
            414, HttpRefusal.REQUEST_LINE_TOO_LONG, f"over {limits.request_line_bytes} bytes"
        )
    if len(buf) > limits.head_bytes:
        raise Refusal(431, HttpRefusal.HEADERS_TOO_LARGE, f"head over {limits.head_bytes} bytes")
    if buf.count(b"\n") > limits.header_count + 2:  # request line and the blank line
        raise Refusal(431, HttpRefusal.HEADERS_TOO_LARGE, f"over {limits.header_count} headers")


def split_head(buf: bytes | bytearray, limits: Limits) -> tuple[bytes, bytes] | None:
    """(head, what followed it) once the head is complete, None while more bytes are needed.

    Refuses as soon as the bytes so far break a limit, so a client cannot make the server hold
    (or wait for) more than `limits.head_bytes` of head.
    """
    end = _head_end(buf)
    head = buf if end is None else buf[:end]
    _check_so_far(head, limits)
    if end is None:
        return None
    return bytes(head), bytes(buf[end:])


def _request_line(line: bytes, limits: Limits) -> tuple[str, str, str]:
    if len(line) > limits.request_line_bytes:
        raise Refusal(
            414, HttpRefusal.REQUEST_LINE_TOO_LONG, f"over {limits.request_line_bytes} bytes"
        )
    parts = line.split(b" ")
    if len(parts) != 3:
        raise Refusal(400, HttpRefusal.BAD_REQUEST, "request line is not METHOD TARGET VERSION")
    method, target, version = parts
    version_match = _VERSION.fullmatch(version)
    if not _TOKEN.fullmatch(method) or version_match is None:
        raise Refusal(400, HttpRefusal.BAD_REQUEST, "malformed request line")
    if version_match.group(1) != b"1":
        raise Refusal(505, HttpRefusal.HTTP_VERSION, "only HTTP/1.x is served")
    if method.decode("ascii") not in METHODS:
        raise Refusal(405, HttpRefusal.METHOD_NOT_ALLOWED, "only GET and POST are served")
    if not _TARGET.fullmatch(target):
        raise Refusal(400, HttpRefusal.BAD_REQUEST, "target is not an absolute path")
    return method.decode("ascii"), target.decode("ascii"), version.decode("ascii")


def _fields(lines: list[bytes], limits: Limits) -> dict[str, tuple[str, list[str]]]:
    if len(lines) > limits.header_count:
        raise Refusal(431, HttpRefusal.HEADERS_TOO_LARGE, f"over {limits.header_count} headers")
    fields: dict[str, tuple[str, list[str]]] = {}
    for line in lines:
        name, colon, raw = line.partition(b":")
        # A leading space is obsolete line folding and a space before the colon is a classic
        # request-smuggling trick: both are errors here rather than guesses.
        if not colon or not _TOKEN.fullmatch(name):
            raise Refusal(400, HttpRefusal.BAD_REQUEST, "malformed header line")
        value = raw.strip(b" \t")
        if _VALUE_BAD.search(value):
            raise Refusal(400, HttpRefusal.BAD_REQUEST, "control character in a header value")
        key = name.decode("ascii")
        fields.setdefault(key.lower(), (key, []))[1].append(value.decode("latin-1"))
    return fields


def _content_length(values: list[str] | None, method: str, limits: Limits) -> int | None:
    if values is None:
        if method == "POST":
            raise Refusal(411, HttpRefusal.LENGTH_REQUIRED, "a POST needs a Content-Length")
        return None
    if len(values) != 1:
        raise Refusal(400, HttpRefusal.BAD_CONTENT_LENGTH, "more than one Content-Length")
    raw = values[0].encode("latin-1")
    if not _DIGITS.fullmatch(raw):
        raise Refusal(400, HttpRefusal.BAD_CONTENT_LENGTH, "Content-Length is not a plain number")
    if len(raw) > _MAX_LENGTH_DIGITS or int(raw) > limits.body_bytes:
        raise Refusal(413, HttpRefusal.BODY_TOO_LARGE, f"body over {limits.body_bytes} bytes")
    return int(raw)


def parse_head(head: bytes | bytearray, limits: Limits) -> Request:
    """The request a complete head (as `split_head` cut it) asks for; Refusal if it may not."""
    _check_so_far(head, limits)
    lines = bytes(head).split(b"\n")
    lines = [line[:-1] if line.endswith(b"\r") else line for line in lines]
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise Refusal(400, HttpRefusal.BAD_REQUEST, "empty request")
    if any(b"\r" in line for line in lines):
        raise Refusal(400, HttpRefusal.BAD_REQUEST, "bare CR in the head")
    method, target, version = _request_line(lines[0], limits)
    fields = _fields(lines[1:], limits)
    if "transfer-encoding" in fields:
        raise Refusal(501, HttpRefusal.TRANSFER_ENCODING, "Transfer-Encoding is not accepted")
    length_field = fields.get("content-length")
    length = _content_length(length_field[1] if length_field else None, method, limits)
    headers = {name: ", ".join(values) for name, values in fields.values()}
    return Request(method, target, version, headers, length)
