"""Engine API dictionaries -> model values. Pure; shared by the real engine and the fake.

Every field read here is optional in practice (older engines, half-created objects), so each
lookup has a default and a malformed object raises ValueError naming the object.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Callable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any, ParamSpec, TypeVar

from swarm_medic.core.model import (
    ContainerDetail,
    Event,
    FileRef,
    LocalContainer,
    Network,
    Node,
    PublishedPort,
    Resources,
    Service,
    Stored,
    SwarmInfo,
    Task,
    UpdateConfig,
    UpdateStatus,
)
from swarm_medic.core.protocol import is_ipv4

Json = Mapping[str, Any]
T = TypeVar("T")
P = ParamSpec("P")


def _malformed_is_value_error(kind: str) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Whatever a malformed object makes a reader trip on (a list where a mapping belongs, an
    infinite number for an int) comes out as the one ValueError callers catch."""

    def wrap(fn: Callable[P, T]) -> Callable[P, T]:
        @functools.wraps(fn)
        def read(*args: P.args, **kwargs: P.kwargs) -> T:
            try:
                return fn(*args, **kwargs)
            except (AttributeError, KeyError, IndexError, OverflowError, TypeError) as exc:
                raise ValueError(f"malformed {kind}: {type(exc).__name__}: {exc}") from None

        return read

    return wrap


def map_each(raw: object, fn: Callable[[Json], T], kind: str, bad: list[str]) -> tuple[T, ...]:
    """Maps a list answer object by object; a malformed one is skipped and described in `bad`,
    so one half-created task never blinds a whole scan."""
    if not isinstance(raw, list):
        bad.append(f"the {kind} list is not a list but {type(raw).__name__}")
        return ()
    out: list[T] = []
    for obj in raw:
        if not isinstance(obj, Mapping):
            bad.append(f"{kind} skipped: not an object but {type(obj).__name__}")
            continue
        try:
            out.append(fn(obj))
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            bad.append(f"{kind} skipped: {type(exc).__name__}: {exc}")
    return tuple(out)


def parse_time(value: object) -> float:
    """RFC 3339 with nanoseconds (Go's format) -> epoch seconds. Unknown -> 0.0."""
    if not isinstance(value, str) or not value or value.startswith("0001-01-01"):
        return 0.0
    if value[-1] == "Z" and value[10:11] == "T":
        # The engine's own form (UTC, "Z"): Python 3.11's fromisoformat reads it as it is and,
        # like the general path below, keeps the first 6 digits of the fraction. Twice as fast,
        # and a scan parses two per task. Anything it refuses takes the general path.
        try:
            return _fromisoformat(value).timestamp()
        except ValueError:
            pass
    return _parse_time_general(value)


_fromisoformat = datetime.fromisoformat


def _parse_time_general(value: str) -> float:
    text = value.rstrip("Z")
    offset = "+00:00"
    for sign in ("+", "-"):
        head, sep, tail = text.rpartition(sign)
        if sep and "T" in head and ":" in tail and len(tail) == 5:
            text, offset = head, sign + tail
            break
    if "." in text:
        base, frac = text.split(".", 1)
        text = f"{base}.{(frac + '000000')[:6]}"
    return datetime.fromisoformat(text + offset).timestamp()


def _labels(value: object) -> Mapping[str, str]:
    if not isinstance(value, Mapping) or not value:
        return MappingProxyType({})
    return MappingProxyType({str(k): str(v) for k, v in value.items()})


def _resources(value: object) -> Resources:
    if not isinstance(value, Mapping):
        return Resources()
    return Resources(
        nano_cpus=int(value.get("NanoCPUs") or 0),
        memory_bytes=int(value.get("MemoryBytes") or 0),
    )


def _require_id(obj: Json, kind: str) -> str:
    oid = obj.get("ID")
    if not isinstance(oid, str) or not oid:
        raise ValueError(f"{kind} object without an ID: keys {sorted(obj)[:8]}")
    return oid


@_malformed_is_value_error("node")
def node_from_api(obj: Json) -> Node:
    nid = _require_id(obj, "node")
    spec = obj.get("Spec") or {}
    desc = obj.get("Description") or {}
    status = obj.get("Status") or {}
    platform = desc.get("Platform") or {}
    engine = desc.get("Engine") or {}
    manager = obj.get("ManagerStatus") or {}
    return Node(
        id=nid,
        hostname=str(desc.get("Hostname") or ""),
        role=str(spec.get("Role") or "worker"),
        availability=str(spec.get("Availability") or "active"),
        state=str(status.get("State") or "unknown"),
        message=str(status.get("Message") or ""),
        addr=str(status.get("Addr") or ""),
        labels=_labels(spec.get("Labels")),
        engine_labels=_labels(engine.get("Labels")),
        platform_os=str(platform.get("OS") or ""),
        platform_arch=str(platform.get("Architecture") or ""),
        resources=_resources(desc.get("Resources")),
        leader=bool(manager.get("Leader")),
        reachability=str(manager.get("Reachability") or ""),
    )


def _mode(spec: Json) -> tuple[str, int | None]:
    mode = spec.get("Mode") or {}
    if "Replicated" in mode:
        return "replicated", int((mode.get("Replicated") or {}).get("Replicas", 1))
    if "Global" in mode:
        return "global", None
    if "ReplicatedJob" in mode:
        return "replicated-job", None
    if "GlobalJob" in mode:
        return "global-job", None
    return "replicated", 1


def _update_status(value: object) -> UpdateStatus | None:
    if not isinstance(value, Mapping) or not value.get("State"):
        return None
    return UpdateStatus(
        state=str(value["State"]),
        message=str(value.get("Message") or ""),
        started_at=parse_time(value.get("StartedAt")) or None,
        completed_at=parse_time(value.get("CompletedAt")) or None,
    )


@_malformed_is_value_error("service")
def service_from_api(obj: Json) -> Service:
    sid = _require_id(obj, "service")
    spec = obj.get("Spec") or {}
    template = spec.get("TaskTemplate") or {}
    container = template.get("ContainerSpec") or {}
    placement = template.get("Placement") or {}
    reservations = (template.get("Resources") or {}).get("Reservations") or {}
    mode, replicas = _mode(spec)
    return Service(
        id=sid,
        name=str(spec.get("Name") or sid),
        version=int((obj.get("Version") or {}).get("Index") or 0),
        labels=_labels(spec.get("Labels")),
        mode=mode,
        replicas=replicas,
        image=str(container.get("Image") or ""),
        constraints=tuple(str(c) for c in placement.get("Constraints") or ()),
        max_replicas_per_node=int(placement.get("MaxReplicas") or 0),
        reservations=_resources(reservations),
        update_status=_update_status(obj.get("UpdateStatus")),
        has_previous_spec=bool(obj.get("PreviousSpec")),
        force_update=int(template.get("ForceUpdate") or 0),
        updated_at=parse_time(obj.get("UpdatedAt")) or None,
        endpoint_mode=str((spec.get("EndpointSpec") or {}).get("Mode") or "vip"),
        target_ports=target_ports((spec.get("EndpointSpec") or {}).get("Ports")),
        vips=tuple(
            (str(v.get("NetworkID") or ""), _ip(v.get("Addr")))
            for v in (obj.get("Endpoint") or {}).get("VirtualIPs") or ()
            if isinstance(v, Mapping) and is_ipv4(_ip(v.get("Addr")))
        ),
        stop_grace_period=_nanos(container.get("StopGracePeriod"), 10.0),
        memory_limit=int(
            ((template.get("Resources") or {}).get("Limits") or {}).get("MemoryBytes") or 0
        ),
        update_config=update_config(spec.get("UpdateConfig")),
        networks=networks(template.get("Networks") or spec.get("Networks")),
        published=published(
            (obj.get("Endpoint") or {}).get("Ports")
            or (spec.get("EndpointSpec") or {}).get("Ports")
        ),
        configs=file_refs(container.get("Configs"), "Config"),
        secrets=file_refs(container.get("Secrets"), "Secret"),
        previous_refs=previous_refs(obj.get("PreviousSpec")),
    )


# The parts below are read by both paths (wire hands them over as plain JSON): they are small
# and rare next to tasks, so one reading of each is worth more than a faster second one.


def update_config(value: object) -> UpdateConfig:
    """Spec.UpdateConfig; absent: swarmkit's defaults (parallelism 1, monitor 5 s, pause)."""
    if not isinstance(value, Mapping):
        return UpdateConfig()
    par = value.get("Parallelism")
    return UpdateConfig(
        # present but without Parallelism: Go's zero value, every task at once
        parallelism=par if isinstance(par, int) and not isinstance(par, bool) and par >= 0 else 0,
        delay=_nanos(value.get("Delay"), 0.0),
        monitor=_nanos(value.get("Monitor"), 0.0) or 5.0,  # 0: swarmkit's default monitor
        failure_action=str(value.get("FailureAction") or "pause"),
        order=str(value.get("Order") or "stop-first"),
    )


def target_ports(value: object) -> tuple[int, ...]:
    """EndpointSpec.Ports[].TargetPort"""
    return tuple(
        int(p["TargetPort"])
        for p in value or ()  # type: ignore[attr-defined]
        if isinstance(p, Mapping) and p.get("TargetPort")
    )


def networks(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(str(n["Target"]) for n in value if isinstance(n, Mapping) and n.get("Target"))


def published(value: object) -> tuple[PublishedPort, ...]:
    if not isinstance(value, list):
        return ()
    out = []
    for p in value:
        if not isinstance(p, Mapping):
            continue
        target, pub = p.get("TargetPort"), p.get("PublishedPort")
        if isinstance(target, int) and isinstance(pub, int) and pub > 0:
            out.append(
                PublishedPort(
                    target,
                    pub,
                    str(p.get("Protocol") or "tcp"),
                    str(p.get("PublishMode") or "ingress"),
                )
            )
    return tuple(out)


def file_refs(value: object, kind: str) -> tuple[FileRef, ...]:
    """ContainerSpec.Configs or .Secrets (kind "Config" | "Secret")."""
    if not isinstance(value, list):
        return ()
    return tuple(
        FileRef(
            str(r.get(f"{kind}ID") or ""),
            str(r.get(f"{kind}Name") or ""),
            str((r.get("File") or {}).get("Name") or "")
            if isinstance(r.get("File"), Mapping)
            else "",
        )
        for r in value
        if isinstance(r, Mapping) and r.get(f"{kind}ID")
    )


def previous_refs(value: object) -> tuple[str, ...]:
    if not isinstance(value, Mapping):
        return ()
    container = ((value.get("TaskTemplate") or {}).get("ContainerSpec")) or {}
    if not isinstance(container, Mapping):
        return ()
    refs = file_refs(container.get("Configs"), "Config") + file_refs(
        container.get("Secrets"), "Secret"
    )
    return tuple(sorted({r.id for r in refs}))


@_malformed_is_value_error("network")
def network_from_api(obj: Json) -> Network:
    nid = obj.get("Id") or obj.get("ID")
    if not isinstance(nid, str) or not nid:
        raise ValueError(f"network object without an Id: keys {sorted(obj)[:8]}")
    ipam = obj.get("IPAM") or {}
    return Network(
        id=nid,
        name=str(obj.get("Name") or nid),
        driver=str(obj.get("Driver") or ""),
        scope=str(obj.get("Scope") or ""),
        subnets=tuple(
            str(c["Subnet"])
            for c in ipam.get("Config") or ()
            if isinstance(c, Mapping) and c.get("Subnet")
        ),
        ingress=bool(obj.get("Ingress")),
        labels=_labels(obj.get("Labels")),
    )


def stored_from_api(kind: str) -> Callable[[Json], Stored]:
    """A config or secret object -> Stored (its Spec.Data, if any, is never read)."""

    @_malformed_is_value_error(kind)
    def read(obj: Json) -> Stored:
        oid = _require_id(obj, kind)
        spec = obj.get("Spec") or {}
        return Stored(
            kind=kind,
            id=oid,
            name=str(spec.get("Name") or oid),
            labels=_labels(spec.get("Labels")),
            created_at=parse_time(obj.get("CreatedAt")),
        )

    return read


CONFIG, SECRET = stored_from_api("config"), stored_from_api("secret")


def _nanos(value: object, default: float) -> float:
    """A Go time.Duration in nanoseconds -> seconds; unset or nonsense -> `default`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return default
    return value / 1e9


def _ip(cidr: object) -> str:
    return str(cidr).split("/", 1)[0] if cidr else ""


def _attachments(obj: Json) -> tuple[tuple[str, str, str], ...]:
    out = []
    for att in obj.get("NetworksAttachments") or ():
        net = att.get("Network") or {}
        spec = net.get("Spec") or {}
        if spec.get("Ingress") or spec.get("Name") == "ingress":
            continue  # the routing mesh's network is not the service's own overlay
        for addr in att.get("Addresses") or ():
            # the model (and every probe) is IPv4; a dual-stack overlay's IPv6 is left out
            if is_ipv4(ip := _ip(addr)):
                out.append((str(net.get("ID") or ""), str(spec.get("Name") or ""), ip))
    return tuple(out)


@_malformed_is_value_error("task")
def task_from_api(obj: Json) -> Task:
    tid = _require_id(obj, "task")
    status = obj.get("Status") or {}
    cstatus = status.get("ContainerStatus") or {}
    exit_code = cstatus.get("ExitCode")
    slot = obj.get("Slot")
    return Task(
        id=tid,
        service_id=str(obj.get("ServiceID") or ""),
        slot=int(slot) if isinstance(slot, int) else None,
        node_id=str(obj.get("NodeID") or ""),
        state=str(status.get("State") or "new"),
        desired_state=str(obj.get("DesiredState") or ""),
        message=str(status.get("Message") or ""),
        err=str(status.get("Err") or ""),
        timestamp=parse_time(status.get("Timestamp")),
        created_at=parse_time(obj.get("CreatedAt")),
        container_id=str(cstatus.get("ContainerID") or ""),
        exit_code=int(exit_code) if isinstance(exit_code, int) else None,
        addresses=_attachments(obj),
    )


@_malformed_is_value_error("docker info")
def info_from_api(obj: Json) -> SwarmInfo:
    swarm = obj.get("Swarm") or {}
    return SwarmInfo(
        node_id=str(swarm.get("NodeID") or ""),
        node_addr=str(swarm.get("NodeAddr") or ""),
        local_state=str(swarm.get("LocalNodeState") or "inactive"),
        control_available=bool(swarm.get("ControlAvailable")),
        engine_version=str(obj.get("ServerVersion") or ""),
    )


@_malformed_is_value_error("event")
def event_from_api(obj: object) -> Event:
    if not isinstance(obj, Mapping):
        raise ValueError(f"event is not an object: {type(obj).__name__}")
    etype = obj.get("Type")
    action = obj.get("Action")
    actor = obj.get("Actor")
    tnano = obj.get("timeNano")
    if not isinstance(etype, str) or not isinstance(action, str):
        raise ValueError(f"event without Type/Action: keys {sorted(obj)[:8]}")
    if not isinstance(tnano, int):
        t = obj.get("time")
        if not isinstance(t, int):
            raise ValueError(f"{etype} {action} event without a time")
        tnano = t * 1_000_000_000
    actor_id, attrs = "", {}
    if isinstance(actor, Mapping):
        actor_id = str(actor.get("ID") or "")
        raw = actor.get("Attributes")
        if isinstance(raw, Mapping):
            attrs = {str(k): str(v) for k, v in raw.items()}
    return Event(etype, action, actor_id, tnano, MappingProxyType(attrs))


TASK_LABEL = "com.docker.swarm.task.id"


@_malformed_is_value_error("container")
def container_from_api(obj: Json) -> LocalContainer:
    cid = obj.get("Id")
    if not isinstance(cid, str) or not cid:
        raise ValueError("container without an Id")
    labels = obj.get("Labels") or {}
    nets = ((obj.get("NetworkSettings") or {}).get("Networks") or {}).values()
    names = obj.get("Names")
    first = names[0] if isinstance(names, list) and names and isinstance(names[0], str) else ""
    return LocalContainer(
        id=cid,
        state=str(obj.get("State") or ""),
        task_id=str(labels.get(TASK_LABEL) or ""),
        service_id=str(labels.get("com.docker.swarm.service.id") or ""),
        service_name=str(labels.get("com.docker.swarm.service.name") or ""),
        node_id=str(labels.get("com.docker.swarm.node.id") or ""),
        networks=tuple(
            (str(n.get("NetworkID") or ""), str(n.get("IPAddress") or ""))
            for n in nets
            if isinstance(n, Mapping) and is_ipv4(str(n.get("IPAddress") or ""))
        ),
        name=first.removeprefix("/"),
    )


def container_detail_from_api(obj: Json, image: Json | None) -> ContainerDetail:
    """`docker inspect` of a container (and of its image, when it still exists)."""
    cid = obj.get("Id")
    if not isinstance(cid, str) or not cid:
        raise ValueError("container without an Id")
    cfg = obj.get("Config") or {}
    timeout = cfg.get("StopTimeout")
    img_cfg = (image or {}).get("Config") or {}
    return ContainerDetail(
        id=cid,
        name=str(obj.get("Name") or "").lstrip("/"),
        labels=_labels(cfg.get("Labels")),
        image_labels=_labels(img_cfg.get("Labels")),
        stop_timeout=float(timeout) if isinstance(timeout, int) and timeout >= 0 else None,
        stop_signal=str(cfg.get("StopSignal") or ""),
    )


# --- a task's log: untrusted bytes, made into a few lines a person can read safely ----------

LOG_LINES = 20  # the most lines of a log kept with a finding
LOG_BYTES = 4096  # and the most bytes (UTF-8) of those lines
LOG_READ_MAX = 64 * 1024  # the most bytes read from the engine's answer at all
_FRAME_HEADER = 8  # stream (1 byte: 0 stdin, 1 stdout, 2 stderr), 3 zero bytes, length (u32 BE)
# Control and format characters (escape sequences, bidi overrides, zero-width marks) and the
# Unicode line separators a reader would take for new lines: the log is written by the
# container, and must not rewrite a terminal, a chat message or our own log line.
_UNSAFE = frozenset({"Cc", "Cf", "Zl", "Zp"})


def demultiplex(raw: bytes) -> bytes:
    """The payload of a logs answer: a non-TTY container's stream is framed (an 8-byte header
    per frame: stream, three zero bytes, big-endian length; docker SDK's frames_iter), a TTY
    container's is the raw text. A body that does not start with a valid frame header is taken
    for raw text; a last frame cut short (a bounded read) keeps what arrived."""
    if not _is_frame_header(raw):
        return raw
    out = bytearray()
    at = 0
    while len(raw) - at >= _FRAME_HEADER and _is_frame_header(raw[at:]):
        length = int.from_bytes(raw[at + 4 : at + _FRAME_HEADER], "big")
        start = at + _FRAME_HEADER
        out += raw[start : start + length]
        at = start + length
    return bytes(out)


def _is_frame_header(raw: bytes) -> bool:
    return len(raw) >= _FRAME_HEADER and raw[0] in (0, 1, 2) and raw[1:4] == b"\0\0\0"


def _safe_line(line: str) -> str:
    return "".join(
        " " if c == "\t" else c for c in line if c == "\t" or unicodedata.category(c) not in _UNSAFE
    ).rstrip()


def log_text(raw: bytes, lines: int = LOG_LINES, limit: int = LOG_BYTES) -> str:
    """The last `lines` lines of a task's log answer (`raw`, framed or not), at most `limit`
    bytes of UTF-8, decoded with replacement characters and with every control character
    dropped; lines joined by "\\n". A line longer than the whole limit keeps its end."""
    text = demultiplex(raw).decode("utf-8", errors="replace")
    kept: list[str] = []
    size = 0
    for line in reversed([s for s in map(_safe_line, text.split("\n")) if s]):
        if len(kept) >= lines:
            break
        cost = len(line.encode()) + (1 if kept else 0)
        if size + cost > limit:
            if not kept:  # one huge line: its end, cut on a character boundary
                kept.append(line.encode()[-limit:].decode("utf-8", errors="ignore"))
            break
        kept.append(line)
        size += cost
    return "\n".join(reversed(kept))
