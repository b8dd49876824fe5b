"""Engine API JSON bytes -> model values: msgspec Structs, then the same model as `mapping`.

The scan's three big answers (nodes, services, tasks) are decoded from the raw response body
with msgspec into Structs that declare only the fields swarm-medic reads (the engine's other
fields are skipped without being built). Each Struct is then turned into the frozen model
value exactly as `mapping.*_from_api` would turn the same object as a dict.

Exactness comes first: the Structs are strict (`str | None`, `int | None`, ...), and whenever
an element does not fit them, or turning it into the model raises, that element alone is
decoded as plain JSON and given to the `mapping` function: an unusual object gets the dict
path's answer (including its "skipped" message), never a different one, and one malformed
element never loses the list.

`Memo` keeps, per answer kind, the model value of each element's exact bytes from the last
answer: an object the engine lists unchanged (same bytes) is not decoded again on the next
scan. Its cost is a copy of the last answer's elements (about the size of the answer).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, Generic, TypeVar

import msgspec

from swarm_medic.core.model import EMPTY, Event, Node, Resources, Service, Task, UpdateStatus
from swarm_medic.core.protocol import is_ipv4
from swarm_medic.swarm import MalformedEvent, mapping

T = TypeVar("T")
S = TypeVar("S", bound=msgspec.Struct)

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


class _Unusual(Exception):
    """This element is not the common shape: let the dict path answer for it."""


# --- the fields we read, and nothing else ---------------------------------------------------


class _Version(msgspec.Struct):
    Index: int | None = None


class _Res(msgspec.Struct):
    NanoCPUs: int | None = None
    MemoryBytes: int | None = None


# tasks


class _ContainerStatus(msgspec.Struct):
    ContainerID: str | None = None
    ExitCode: int | None = None


class _TaskStatus(msgspec.Struct):
    State: str | None = None
    Message: str | None = None
    Err: str | None = None
    Timestamp: str | None = None
    ContainerStatus: _ContainerStatus | None = None


class _NetSpec(msgspec.Struct):
    Name: str | None = None
    Ingress: bool | None = None


class _Net(msgspec.Struct):
    ID: str | None = None
    Spec: _NetSpec | None = None


class _Attachment(msgspec.Struct):
    Network: _Net | None = None
    Addresses: list[str] | None = None


class _Task(msgspec.Struct):
    ID: str | None = None
    ServiceID: str | None = None
    Slot: int | None = None
    NodeID: str | None = None
    CreatedAt: str | None = None
    DesiredState: str | None = None
    Status: _TaskStatus | None = None
    NetworksAttachments: list[_Attachment] | None = None


# services


class _ContainerSpec(msgspec.Struct):
    Image: str | None = None
    StopGracePeriod: int | None = None
    Configs: list[Any] | None = None  # small and rare: read by mapping.file_refs
    Secrets: list[Any] | None = None


class _Placement(msgspec.Struct):
    Constraints: list[str] | None = None
    MaxReplicas: int | None = None


class _TaskResources(msgspec.Struct):
    Reservations: _Res | None = None
    Limits: _Res | None = None


class _TaskTemplate(msgspec.Struct):
    ContainerSpec: _ContainerSpec | None = None
    Placement: _Placement | None = None
    Resources: _TaskResources | None = None
    ForceUpdate: int | None = None
    Networks: list[Any] | None = None


class _EndpointSpec(msgspec.Struct):
    Mode: str | None = None
    Ports: list[dict[str, Any]] | None = None  # read by mapping.published, as is


class _ServiceSpec(msgspec.Struct):
    Name: str | None = None
    Labels: dict[str, str] | None = None
    TaskTemplate: _TaskTemplate | None = None
    Mode: dict[str, Any] | None = None  # the dict path's _mode reads it as it is
    EndpointSpec: _EndpointSpec | None = None
    UpdateConfig: dict[str, Any] | None = None  # read by mapping.update_config
    Networks: list[Any] | None = None  # the old place of TaskTemplate.Networks


class _UpdateStatus(msgspec.Struct):
    State: str | None = None
    Message: str | None = None
    StartedAt: str | None = None
    CompletedAt: str | None = None


class _VirtualIP(msgspec.Struct):
    NetworkID: str | None = None
    Addr: str | None = None


class _Endpoint(msgspec.Struct):
    VirtualIPs: list[_VirtualIP] | None = None
    Ports: list[Any] | None = None  # read by mapping.published, as is


class _Service(msgspec.Struct):
    ID: str | None = None
    Version: _Version | None = None
    Spec: _ServiceSpec | None = None
    UpdateStatus: _UpdateStatus | None = None
    PreviousSpec: msgspec.Raw = msgspec.Raw()  # only whether it is there: never built
    UpdatedAt: str | None = None
    Endpoint: _Endpoint | None = None


# nodes


class _NodeSpec(msgspec.Struct):
    Role: str | None = None
    Availability: str | None = None
    Labels: dict[str, str] | None = None


class _Platform(msgspec.Struct):
    OS: str | None = None
    Architecture: str | None = None


class _EngineDesc(msgspec.Struct):
    Labels: dict[str, str] | None = None


class _Description(msgspec.Struct):
    Hostname: str | None = None
    Platform: _Platform | None = None
    Engine: _EngineDesc | None = None
    Resources: _Res | None = None


class _NodeStatus(msgspec.Struct):
    State: str | None = None
    Message: str | None = None
    Addr: str | None = None


class _ManagerStatus(msgspec.Struct):
    Leader: bool | None = None
    Reachability: str | None = None


class _Node(msgspec.Struct):
    ID: str | None = None
    Spec: _NodeSpec | None = None
    Description: _Description | None = None
    Status: _NodeStatus | None = None
    ManagerStatus: _ManagerStatus | None = None


# --- Struct -> model, as mapping.*_from_api does it with the same object as a dict ----------

_NO_STATUS, _NO_CSTATUS = _TaskStatus(), _ContainerStatus()
_NO_NET, _NO_NETSPEC = _Net(), _NetSpec()
_parse_time = mapping.parse_time
_intern = sys.intern


def _labels(value: dict[str, str] | None) -> Any:
    # A fresh dict from the decoder, owned by nobody else: wrapped, not copied.
    return MappingProxyType(value) if value else MappingProxyType({})


def _resources(value: _Res | None) -> Resources:
    if value is None:
        return Resources()
    return Resources(value.NanoCPUs or 0, value.MemoryBytes or 0)


def _ip(cidr: str | None) -> str:
    return cidr.split("/", 1)[0] if cidr else ""


def _attachments(atts: list[_Attachment]) -> tuple[tuple[str, str, str], ...]:
    out = []
    for att in atts:
        net = att.Network or _NO_NET
        spec = net.Spec or _NO_NETSPEC
        if spec.Ingress or spec.Name == "ingress":
            continue
        for addr in att.Addresses or ():
            # IPv4 only, as mapping._attachments: the model and every probe are IPv4
            if is_ipv4(ip := _ip(addr)):
                out.append((net.ID or "", spec.Name or "", ip))
    return tuple(out)


# A frozen dataclass's __init__ sets each field through object.__setattr__; at 10k tasks that
# is a third of building them. The slots' own descriptors set the same fields directly: the
# value is the one Task(...) makes (no __post_init__, no defaults left unset: checked here).
_TASK_FIELDS = (
    "id",
    "service_id",
    "slot",
    "node_id",
    "state",
    "desired_state",
    "message",
    "err",
    "timestamp",
    "created_at",
    "container_id",
    "exit_code",
    "addresses",
)
if tuple(f.name for f in fields(Task)) != _TASK_FIELDS or hasattr(Task, "__post_init__"):
    raise ImportError("swarm_medic.core.model.Task changed: update wire._new_task")
(
    _set_id,
    _set_service,
    _set_slot,
    _set_node,
    _set_state,
    _set_desired,
    _set_message,
    _set_err,
    _set_timestamp,
    _set_created,
    _set_container,
    _set_exit,
    _set_addresses,
) = (getattr(Task, name).__set__ for name in _TASK_FIELDS)
_object_new = object.__new__


def _new_task(  # noqa: PLR0917 - Task's fields, in order, as Task(...) takes them
    id_: str,
    service_id: str,
    slot: int | None,
    node_id: str,
    state: str,
    desired_state: str,
    message: str,
    err: str,
    timestamp: float,
    created_at: float,
    container_id: str,
    exit_code: int | None,
    addresses: tuple[tuple[str, str, str], ...],
) -> Task:
    t: Task = _object_new(Task)
    _set_id(t, id_)
    _set_service(t, service_id)
    _set_slot(t, slot)
    _set_node(t, node_id)
    _set_state(t, state)
    _set_desired(t, desired_state)
    _set_message(t, message)
    _set_err(t, err)
    _set_timestamp(t, timestamp)
    _set_created(t, created_at)
    _set_container(t, container_id)
    _set_exit(t, exit_code)
    _set_addresses(t, addresses)
    return t


def task_of(o: _Task) -> Task:
    if not o.ID:
        raise _Unusual
    st = o.Status or _NO_STATUS
    cs = st.ContainerStatus or _NO_CSTATUS
    # Service and node ids, states and scheduler messages repeat across thousands of tasks:
    # one string each instead of one per task (sys.intern forgets those no longer used).
    return _new_task(
        o.ID,
        _intern(o.ServiceID) if o.ServiceID else "",
        o.Slot,
        _intern(o.NodeID) if o.NodeID else "",
        _intern(st.State) if st.State else "new",
        _intern(o.DesiredState) if o.DesiredState else "",
        _intern(st.Message) if st.Message else "",
        _intern(st.Err) if st.Err else "",
        _parse_time(st.Timestamp),
        _parse_time(o.CreatedAt),
        cs.ContainerID or "",
        cs.ExitCode,
        _attachments(o.NetworksAttachments) if o.NetworksAttachments else (),
    )


def _present(raw: msgspec.Raw) -> bool:
    """bool() of the JSON value, without building it when it is a non-empty object."""
    if not raw:
        return False
    if memoryview(raw)[:2].tobytes() == b'{"':
        return True
    return bool(_ANY.decode(raw))


def service_of(o: _Service) -> Service:
    if not o.ID:
        raise _Unusual
    spec = o.Spec or _ServiceSpec()
    template = spec.TaskTemplate or _TaskTemplate()
    placement = template.Placement or _Placement()
    resources = template.Resources or _TaskResources()
    reservations, limits = resources.Reservations, resources.Limits
    container = template.ContainerSpec or _ContainerSpec()
    endpoint_spec = spec.EndpointSpec or _EndpointSpec()
    mode, replicas = mapping._mode({"Mode": spec.Mode} if spec.Mode else {})
    us = o.UpdateStatus
    return Service(
        id=o.ID,
        name=spec.Name or o.ID,
        version=(o.Version.Index or 0) if o.Version else 0,
        labels=_labels(spec.Labels),
        mode=mode,
        replicas=replicas,
        image=container.Image or "",
        constraints=tuple(placement.Constraints or ()),
        max_replicas_per_node=placement.MaxReplicas or 0,
        reservations=_resources(reservations),
        update_status=UpdateStatus(
            us.State,
            us.Message or "",
            _parse_time(us.StartedAt) or None,
            _parse_time(us.CompletedAt) or None,
        )
        if us is not None and us.State
        else None,
        has_previous_spec=_present(o.PreviousSpec),
        force_update=template.ForceUpdate or 0,
        updated_at=_parse_time(o.UpdatedAt) or None,
        endpoint_mode=endpoint_spec.Mode or "vip",
        target_ports=mapping.target_ports(endpoint_spec.Ports),
        vips=tuple(
            (v.NetworkID or "", _ip(v.Addr))
            for v in (o.Endpoint.VirtualIPs or () if o.Endpoint else ())
            if v.Addr and is_ipv4(_ip(v.Addr))
        ),
        stop_grace_period=mapping._nanos(container.StopGracePeriod, 10.0),
        memory_limit=(limits.MemoryBytes or 0) if limits else 0,
        update_config=mapping.update_config(spec.UpdateConfig),
        networks=mapping.networks(template.Networks or spec.Networks),
        published=mapping.published(
            (o.Endpoint.Ports if o.Endpoint else None) or endpoint_spec.Ports
        ),
        configs=mapping.file_refs(container.Configs, "Config"),
        secrets=mapping.file_refs(container.Secrets, "Secret"),
        previous_refs=mapping.previous_refs(_ANY.decode(o.PreviousSpec))
        if _present(o.PreviousSpec)
        else (),
    )


def node_of(o: _Node) -> Node:
    if not o.ID:
        raise _Unusual
    spec = o.Spec or _NodeSpec()
    desc = o.Description or _Description()
    status = o.Status or _NodeStatus()
    platform = desc.Platform or _Platform()
    return Node(
        id=o.ID,
        hostname=desc.Hostname or "",
        role=spec.Role or "worker",
        availability=spec.Availability or "active",
        state=status.State or "unknown",
        message=status.Message or "",
        addr=status.Addr or "",
        labels=_labels(spec.Labels),
        engine_labels=_labels(desc.Engine.Labels) if desc.Engine else EMPTY,
        platform_os=platform.OS or "",
        platform_arch=platform.Architecture or "",
        resources=_resources(desc.Resources),
        leader=bool(o.ManagerStatus.Leader) if o.ManagerStatus else False,
        reachability=(o.ManagerStatus.Reachability or "") if o.ManagerStatus else "",
    )


# --- lists ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kind(Generic[S, T]):
    """One list answer: its Struct, Struct -> model, and the dict path for unusual elements."""

    name: str
    decoder: msgspec.json.Decoder[S]
    build: Callable[[S], T]
    fallback: Callable[[mapping.Json], T]


TASKS = Kind("task", msgspec.json.Decoder(_Task), task_of, mapping.task_from_api)
SERVICES = Kind("service", msgspec.json.Decoder(_Service), service_of, mapping.service_from_api)
NODES = Kind("node", msgspec.json.Decoder(_Node), node_of, mapping.node_from_api)


@dataclass
class Memo(Generic[T]):
    """Element bytes -> (the same bytes, model value), from the last answer of one kind."""

    values: dict[bytes, tuple[bytes, T]] = field(default_factory=dict)


class NotJSON(ValueError):
    """The answer body is not JSON at all."""


def decode_list(
    body: bytes, kind: Kind[Any, T], bad: list[str], memo: Memo[T] | None = None
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
    seen: dict[bytes, tuple[bytes, T]] = {}
    out: list[T] = []
    decode, build = kind.decoder.decode, kind.build
    for raw in raws:
        key = bytes(raw)
        entry = old.get(key)
        if entry is None:
            try:
                value = build(decode(key))
            except (
                msgspec.DecodeError,
                _Unusual,
                ValueError,
                TypeError,
                KeyError,
                AttributeError,
                RecursionError,
            ):
                found = _fallback(key, kind, bad)
                if found is None:
                    continue  # skipped and said why in `bad`; asked again next time
                value = found
            entry = (key, value)
        # A hit keeps the stored key: this answer's copy is freed at once.
        seen[entry[0]] = entry
        out.append(entry[1])
    if memo is not None:
        memo.values = seen
    return tuple(out)


def _fallback(element: bytes, kind: Kind[Any, T], bad: list[str]) -> T | None:
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
