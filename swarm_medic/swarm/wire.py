"""Engine API JSON bytes -> model values: the answers' bytes, the event stream's lines.

The scan's three big answers (nodes, services, tasks) are decoded from the raw response body,
element by element, with msgspec into the Structs `mapping`'s declarations make (`mapping.NODE`,
`SERVICE`, `TASK`): only the fields swarm-medic reads are built, the engine's others are
skipped. Each Struct then becomes the frozen model value (`Shape.from_struct`).

Exactness comes first: the Structs are strict, and whenever an element does not fit them, or
turning it into the model raises, that element alone is decoded as plain JSON and given to the
`mapping` function, the same declaration read as a dict: an unusual object gets the dict path's
answer (including its "skipped" message), never a different one, and one malformed element
never loses the list.

`Memo` keeps, per answer kind, the model value of each element of the last answer under the
hash of the element's bytes: an object the engine lists unchanged (same bytes) is not decoded
again on the next scan. It keeps no bytes: a real engine's task is 2-4 KiB of JSON, so a memo of
bytes held 10-20 MiB at 10k tasks. Not (ID, Version.Index): the engine fills some fields at list
time without a new version (a manager's Leader and Reachability), so only the bytes say a value
still holds; and reading the ID and version of each element cost three times the scan's decoding.
Python's hash of bytes is 64-bit SipHash with a key drawn at start-up: two different elements
of a 10k list share it by chance about once in 10^11 lists, and cannot be made to on purpose.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import msgspec

from swarm_medic.core.model import Event, Node, Service, Task
from swarm_medic.swarm import MalformedEvent, mapping
from swarm_medic.swarm.shape import Shape, Unusual

T = TypeVar("T")

_ANY = msgspec.json.Decoder()
_RAW_LIST = msgspec.json.Decoder(list[msgspec.Raw])


# A JSON string (escapes included) or one structural character: enough to find where each
# top-level element of an array ends without building anything, and without recursion.
_TOKEN = re.compile(rb'"(?:[^"\\]++|\\.)*+"|[\[\]{},]')
TOO_DEEP = "nested too deeply"


def split_array(body: bytes) -> list[bytes] | None:
    """The top-level elements of a JSON array, as bytes, found iteratively; None when `body`
    is not an array at all. Only used when msgspec could not split the answer because some
    element is nested deeper than the recursion limit: each element is then decoded (or
    refused) on its own, so one such element never loses the list."""
    s = body.strip()
    if not (s.startswith(b"[") and s.endswith(b"]")):
        return None
    out: list[bytes] = []
    depth, start = 0, 1
    for m in _TOKEN.finditer(s):
        c = s[m.start()]
        if c == 0x22:  # '"': a whole string, skipped
            continue
        if c in (0x5B, 0x7B):  # [ {
            depth += 1
        elif c in (0x5D, 0x7D):  # ] }
            depth -= 1
        elif depth == 1:  # a comma between two top-level elements
            out.append(s[start : m.start()])
            start = m.end()
    last = s[start:-1]
    if last.strip() or out:
        out.append(last)
    return out


# --- lists ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kind(Generic[T]):
    """One list answer: its declaration, and the dict path for unusual elements."""

    name: str
    shape: Shape[T]
    fallback: Callable[[mapping.Json], T]


TASKS: Kind[Task] = Kind("task", mapping.TASK, mapping.task_from_api)
SERVICES: Kind[Service] = Kind("service", mapping.SERVICE, mapping.service_from_api)
NODES: Kind[Node] = Kind("node", mapping.NODE, mapping.node_from_api)


@dataclass
class Memo(Generic[T]):
    """Each element's model value by the hash of its bytes, from the last answer of one kind."""

    values: dict[int, T] = field(default_factory=dict)  # hash of the element's bytes -> value


class NotJSON(ValueError):
    """The answer body is not JSON at all."""


def decode_list(
    body: bytes, kind: Kind[T], bad: list[str], memo: Memo[T] | None = None
) -> tuple[T, ...]:
    """A list answer's bytes -> model values, element by element; see the module docstring."""
    try:
        raws: list[bytes] | list[msgspec.Raw] = _RAW_LIST.decode(body)
    except msgspec.ValidationError:  # JSON, but not a list: the dict path says what it is
        return mapping.map_each(_decode_any(body), kind.fallback, kind.name, bad)
    except msgspec.DecodeError as exc:
        raise NotJSON(f"the {kind.name} list is not JSON: {exc}") from exc
    except RecursionError:
        # some element nests deeper than the recursion limit: split the list without msgspec,
        # and that element alone is skipped below, as malformed
        split = split_array(body)
        if split is None:
            raise NotJSON(f"the {kind.name} answer is {TOO_DEEP}") from None
        raws = split
    old = memo.values if memo is not None else {}
    seen: dict[int, T] = {}
    out: list[T] = []
    decode, build = kind.shape.decoder.decode, kind.shape.from_struct
    for raw in raws:
        key = bytes(raw)
        mark = hash(key)
        value = old.get(mark)
        if value is None:
            try:
                value = build(decode(key))
            except (
                msgspec.DecodeError,
                Unusual,
                ValueError,
                TypeError,
                KeyError,
                IndexError,
                AttributeError,
                OverflowError,
                RecursionError,
            ):
                found = _fallback(key, kind, bad)
                if found is None:
                    continue  # skipped and said why in `bad`; asked again next time
                value = found
        seen[mark] = value
        out.append(value)
    if memo is not None:
        memo.values = seen
    return tuple(out)


def _fallback(element: bytes, kind: Kind[T], bad: list[str]) -> T | None:
    try:
        obj = _ANY.decode(element)
    except msgspec.DecodeError as exc:
        bad.append(f"{kind.name} skipped: not JSON: {exc}")
        return None
    except RecursionError:
        bad.append(f"{kind.name} skipped: {TOO_DEEP}")
        return None
    try:
        got = mapping.map_each([obj], kind.fallback, kind.name, bad)
    except RecursionError:
        bad.append(f"{kind.name} skipped: {TOO_DEEP}")
        return None
    return got[0] if got else None


def _decode_any(body: bytes) -> object:
    try:
        return _ANY.decode(body)
    except msgspec.DecodeError as exc:
        raise NotJSON(f"the answer is not JSON: {exc}") from exc
    except RecursionError:
        raise NotJSON(f"the answer is {TOO_DEEP}") from None


def decode_plain_list(
    body: bytes, fn: Callable[[mapping.Json], T], kind: str, bad: list[str]
) -> tuple[T, ...]:
    """A short list answer (networks, configs, secrets): plain JSON, then the dict path. An
    element nested too deeply is skipped alone, as any malformed element is."""
    try:
        return mapping.map_each(_decode_any(body), fn, kind, bad)
    except NotJSON:
        split = split_array(body)
        if split is None:
            raise
    out: list[T] = []
    for element in split:
        try:
            obj = _ANY.decode(element)
        except (msgspec.DecodeError, RecursionError):
            bad.append(f"{kind} skipped: {TOO_DEEP} or not JSON")
            continue
        out.extend(mapping.map_each([obj], fn, kind, bad))
    return tuple(out)


def decode_object(body: bytes, fn: Callable[[mapping.Json], T], what: str) -> T:
    """A single-object answer (e.g. /info): plain JSON, then the dict path."""
    obj = _decode_any(body)
    if not isinstance(obj, dict):
        raise NotJSON(f"{what}: the answer is not an object but {type(obj).__name__}")
    return fn(obj)


# --- the event stream -------------------------------------------------------------------------

MAX_EVENT_BYTES = 1 << 20  # one event line; engine events are a few hundred bytes


class EventLines:
    """The engine's event stream, raw chunks -> one typed event per line.

    The docker SDK's own decoding (`decode=True`) lets a RecursionError out of the stream: an
    event nested too deeply would end the stream, and every reconnect (resumed at the same
    `since`) would end on it again. Here such a line, a line that is not JSON, a line over
    MAX_EVENT_BYTES and a value that is not an event (`mapping.event_from_api`) each become a
    MalformedEvent saying so, which the watcher counts and logs, and the stream goes on."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def close(self) -> None:
        self._stream.close()

    def __iter__(self) -> Iterator[Event | MalformedEvent]:
        buf = b""
        dropping = False
        for chunk in self._stream:
            buf += chunk.encode() if isinstance(chunk, str) else bytes(chunk)
            *lines, buf = buf.split(b"\n")
            for line in lines:
                if dropping:
                    dropping = False
                    yield MalformedEvent(f"event over {MAX_EVENT_BYTES} bytes", line[:200])
                elif line.strip():
                    yield decode_event(line)
            if len(buf) > MAX_EVENT_BYTES:
                buf, dropping = b"", True
        if buf.strip() and not dropping:
            yield decode_event(buf)


def decode_event(line: bytes) -> Event | MalformedEvent:
    try:
        raw = _ANY.decode(line)
    except msgspec.DecodeError as exc:
        return MalformedEvent(f"event is not JSON: {str(exc)[:200]}", line[:200])
    except RecursionError:
        return MalformedEvent(f"event {TOO_DEEP}", line[:200])
    try:
        return mapping.event_from_api(raw)
    except (ValueError, TypeError) as exc:
        return MalformedEvent(str(exc), raw)
