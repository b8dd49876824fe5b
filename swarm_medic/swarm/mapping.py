"""Engine API objects -> model values: each field declared once, and the dict path.

Nodes, services and tasks are declared field by field (`NODE`, `SERVICE`, `TASK`: a
`shape.Shape` each), and both decode paths are made from that one declaration: `wire` decodes
the list answers' bytes with it, and the `*_from_api` functions here read an object as plain
JSON with it (the answer for an element the fast path's strict types do not fit). The other
objects (info, networks, configs, events, containers) are read here alone, as dicts.

Every field is optional in practice (older engines, half-created objects), so each has a
default, and a malformed object raises ValueError naming the object. Pure; shared by the real
engine and the fake.
"""

from __future__ import annotations

import functools
import sys
import unicodedata
from collections.abc import Callable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Annotated, Any, ParamSpec, TypeVar

import msgspec

from swarm_medic.core.model import (
    EMPTY,
    ContainerDetail,
    EngineContainer,
    Event,
    FileRef,
    Image,
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
from swarm_medic.swarm.shape import Field, Shape

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
            except RecursionError:
                # a value nested past the recursion limit where a string belongs: str() of it
                # recurses (found by hypothesis once it drew such a depth)
                raise ValueError(f"malformed {kind}: a value nested too deeply") from None

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


def _own_labels(value: dict[str, str] | None) -> Mapping[str, str]:
    # a fresh dict from the decoder, owned by nobody else: wrapped, not copied
    return MappingProxyType(value) if value else EMPTY


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


def _nanos(value: object, default: float) -> float:
    """A Go time.Duration in nanoseconds -> seconds; unset or nonsense -> `default`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return default
    return value / 1e9


def _ip(cidr: object) -> str:
    return str(cidr).split("/", 1)[0] if cidr else ""


# --- the readers of the parts that are more than one value ----------------------------------
# Both paths give them the same plain JSON (`part`: the fast path declares them `Any`): they
# are small next to the rest of a task or service, so one reading of each is worth more than
# a faster second one.


def _mode(value: object) -> str:
    mode = value or {}
    if "Replicated" in mode:  # type: ignore[operator]
        return "replicated"
    if "Global" in mode:  # type: ignore[operator]
        return "global"
    if "ReplicatedJob" in mode:  # type: ignore[operator]
        return "replicated-job"
    if "GlobalJob" in mode:  # type: ignore[operator]
        return "global-job"
    return "replicated"


def _replicas(value: object) -> int | None:
    mode: Any = value or {}
    if "Replicated" in mode:
        return int((mode.get("Replicated") or {}).get("Replicas", 1))
    if "Global" in mode or "ReplicatedJob" in mode or "GlobalJob" in mode:
        return None
    return 1


def _update_status(value: object) -> UpdateStatus | None:
    if not isinstance(value, Mapping) or not value.get("State"):
        return None
    return UpdateStatus(
        state=str(value["State"]),
        message=str(value.get("Message") or ""),
        started_at=parse_time(value.get("StartedAt")) or None,
        completed_at=parse_time(value.get("CompletedAt")) or None,
    )


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


def _vips(value: object) -> tuple[tuple[str, str], ...]:
    """Endpoint.VirtualIPs: (network id, IPv4) of each."""
    return tuple(
        (str(v.get("NetworkID") or ""), _ip(v.get("Addr")))
        for v in value or ()  # type: ignore[attr-defined]
        if isinstance(v, Mapping) and is_ipv4(_ip(v.get("Addr")))
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


class _NetSpec(msgspec.Struct):
    Name: str | None = None
    Ingress: bool | None = None


class _Net(msgspec.Struct):
    ID: str | None = None
    Spec: _NetSpec | None = None


class _Attachment(msgspec.Struct):
    Network: _Net | None = None
    Addresses: list[str] | None = None


_NO_NET, _NO_NETSPEC = _Net(), _NetSpec()


def _own_attachments(atts: list[_Attachment] | None) -> tuple[tuple[str, str, str], ...]:
    """_attachments of the fast path's Structs: every task has them, and each names a whole
    network object (its spec, IPAM, driver options), which a typed Struct skips unbuilt."""
    if not atts:
        return ()
    out = []
    for att in atts:
        net = att.Network or _NO_NET
        spec = net.Spec or _NO_NETSPEC
        if spec.Ingress or spec.Name == "ingress":
            continue
        for addr in att.Addresses or ():
            if is_ipv4(ip := _ip(addr)):
                out.append((net.ID or "", spec.Name or "", ip))
    return tuple(out)


def _attachments(value: object) -> tuple[tuple[str, str, str], ...]:
    out = []
    for att in value or ():  # type: ignore[attr-defined]
        net = att.get("Network") or {}
        spec = net.get("Spec") or {}
        if spec.get("Ingress") or spec.get("Name") == "ingress":
            continue  # the routing mesh's network is not the service's own overlay
        for addr in att.get("Addresses") or ():
            # the model (and every probe) is IPv4; a dual-stack overlay's IPv6 is left out
            if is_ipv4(ip := _ip(addr)):
                out.append((str(net.get("ID") or ""), str(spec.get("Name") or ""), ip))
    return tuple(out)


# --- the kinds of field -----------------------------------------------------------------------
# Each says the fast path's strict type and how both paths read the value (see shape.py).

_NO_RAW = msgspec.Raw()
_ANY = msgspec.json.Decoder()


def text(*path: str, default: str = "", shared: bool = False, or_id: bool = False) -> Field:
    """A string; unset or empty: `default` (`or_id`: the object's id). `shared`: one copy of
    each value (sys.intern), for the ids, states and messages thousands of tasks repeat."""
    # "" is unusual when the default is not: the dict path reads it as the default
    typ = Annotated[str, msgspec.Meta(min_length=1)] if default else str
    return Field(
        (path,),
        typ,
        default,
        slow=lambda v: str(v or default),
        fast=sys.intern if shared else None,
        or_id=or_id,
    )


def count(*path: str) -> Field:
    """A number; unset: 0."""
    return Field((path,), int, 0, slow=lambda v: int(v or 0))


def whole(*path: str) -> Field:
    """An integer, or None when unset or not an integer."""
    return Field((path,), int | None, None, slow=lambda v: int(v) if isinstance(v, int) else None)


def flag(*path: str) -> Field:
    return Field((path,), bool, False, slow=bool)


def when(*path: str, unset: float | None = 0.0) -> Field:
    """An RFC 3339 time -> epoch seconds; unset or unreadable: `unset`."""

    def read(v: object) -> float | None:
        return parse_time(v) or unset

    # parse_time's own "unknown" is 0.0: a task's two times are read without the wrapper
    return Field((path,), str, "", slow=read, fast=parse_time if unset == 0.0 else read)


def duration(*path: str, default: float) -> Field:
    """A Go time.Duration (nanoseconds) -> seconds; unset or nonsense: `default`."""
    read = functools.partial(_nanos, default=default)
    return Field((path,), int | None, None, slow=read, fast=read)


def labels(*path: str) -> Field:
    return Field((path,), dict[str, str] | None, None, slow=_labels, fast=_own_labels)


def texts(*path: str) -> Field:
    """A list of strings -> a tuple."""
    return Field(
        (path,),
        list[str] | None,
        None,
        slow=lambda v: tuple(str(c) for c in v or ()),
        fast=lambda v: tuple(v) if v else (),
    )


def part(*paths: tuple[str, ...], read: Callable[..., Any]) -> Field:
    """A part read by `read` from its plain JSON (both paths; several paths: their values)."""
    return Field(paths, Any, None, slow=read, fast=read)


def _present(raw: msgspec.Raw) -> bool:
    """bool() of the JSON value, without building it when it is a non-empty object."""
    if not raw:
        return False
    if memoryview(raw)[:2].tobytes() == b'{"':
        return True
    return bool(_ANY.decode(raw))


def _previous_refs_raw(raw: msgspec.Raw) -> tuple[str, ...]:
    return previous_refs(_ANY.decode(raw)) if _present(raw) else ()


MAX_IMAGE = 4096  # an image reference kept at most this long (a real one is under 300)


def _clip_image(value: object) -> str:
    return value[:MAX_IMAGE] if isinstance(value, str) else ""


def previous_image(value: object) -> str:
    """PreviousSpec.TaskTemplate.ContainerSpec.Image ("" : no previous spec, or none said)."""
    if not isinstance(value, Mapping):
        return ""
    template = value.get("TaskTemplate")
    container = template.get("ContainerSpec") if isinstance(template, Mapping) else None
    return _clip_image(container.get("Image")) if isinstance(container, Mapping) else ""


class _PrevContainer(msgspec.Struct):
    Image: str = ""


class _PrevTemplate(msgspec.Struct):
    ContainerSpec: _PrevContainer | None = None


class _Prev(msgspec.Struct):
    TaskTemplate: _PrevTemplate | None = None


_PREV = msgspec.json.Decoder(_Prev)


def _previous_image_raw(raw: msgspec.Raw) -> str:
    """previous_image of the fast path: only the image is built of the whole PreviousSpec; a
    spec whose parts are not the common shape is read as plain JSON."""
    if not _present(raw):
        return ""
    try:
        prev = _PREV.decode(raw)
    except msgspec.DecodeError:
        return previous_image(_ANY.decode(raw))
    container = prev.TaskTemplate.ContainerSpec if prev.TaskTemplate else None
    return _clip_image(container.Image) if container else ""


# --- nodes, services and tasks, field by field ----------------------------------------------

_TEMPLATE = ("Spec", "TaskTemplate")
_CONTAINER = (*_TEMPLATE, "ContainerSpec")

NODE = Shape(
    Node,
    "node",
    ("ID",),
    hostname=text("Description", "Hostname"),
    role=text("Spec", "Role", default="worker"),
    availability=text("Spec", "Availability", default="active"),
    state=text("Status", "State", default="unknown"),
    message=text("Status", "Message"),
    addr=text("Status", "Addr"),
    labels=labels("Spec", "Labels"),
    engine_labels=labels("Description", "Engine", "Labels"),
    platform_os=text("Description", "Platform", "OS"),
    platform_arch=text("Description", "Platform", "Architecture"),
    resources=part(("Description", "Resources"), read=_resources),
    leader=flag("ManagerStatus", "Leader"),
    reachability=text("ManagerStatus", "Reachability"),
    version=count("Version", "Index"),
    created_at=when("CreatedAt"),
    updated_at=when("UpdatedAt"),
)

SERVICE = Shape(
    Service,
    "service",
    ("ID",),
    name=text("Spec", "Name", or_id=True),
    version=count("Version", "Index"),
    labels=labels("Spec", "Labels"),
    mode=part(("Spec", "Mode"), read=_mode),
    replicas=part(("Spec", "Mode"), read=_replicas),
    image=text(*_CONTAINER, "Image"),
    constraints=texts(*_TEMPLATE, "Placement", "Constraints"),
    max_replicas_per_node=count(*_TEMPLATE, "Placement", "MaxReplicas"),
    reservations=part((*_TEMPLATE, "Resources", "Reservations"), read=_resources),
    update_status=part(("UpdateStatus",), read=_update_status),
    has_previous_spec=Field((("PreviousSpec",),), msgspec.Raw, _NO_RAW, slow=bool, fast=_present),
    force_update=count(*_TEMPLATE, "ForceUpdate"),
    updated_at=when("UpdatedAt", unset=None),
    endpoint_mode=text("Spec", "EndpointSpec", "Mode", default="vip"),
    target_ports=part(("Spec", "EndpointSpec", "Ports"), read=target_ports),
    vips=part(("Endpoint", "VirtualIPs"), read=_vips),
    stop_grace_period=duration(*_CONTAINER, "StopGracePeriod", default=10.0),
    memory_limit=count(*_TEMPLATE, "Resources", "Limits", "MemoryBytes"),
    update_config=part(("Spec", "UpdateConfig"), read=update_config),
    # TaskTemplate.Networks, or where older engines kept them
    networks=part(
        (*_TEMPLATE, "Networks"),
        ("Spec", "Networks"),
        read=lambda asked, old: networks(asked or old),
    ),
    # the ports the engine published (it may have chosen them), or else those asked for
    published=part(
        ("Endpoint", "Ports"),
        ("Spec", "EndpointSpec", "Ports"),
        read=lambda ports, asked: published(ports or asked),
    ),
    configs=part((*_CONTAINER, "Configs"), read=functools.partial(file_refs, kind="Config")),
    secrets=part((*_CONTAINER, "Secrets"), read=functools.partial(file_refs, kind="Secret")),
    # only whether there is one is read from each service: the spec itself is not built
    previous_refs=Field(
        (("PreviousSpec",),), msgspec.Raw, _NO_RAW, slow=previous_refs, fast=_previous_refs_raw
    ),
    # what a rollback runs: a prune on any node keeps it (disk-pressure)
    previous_image=Field(
        (("PreviousSpec",),), msgspec.Raw, _NO_RAW, slow=previous_image, fast=_previous_image_raw
    ),
)

TASK = Shape(
    Task,
    "task",
    ("ID",),
    # ids, states and scheduler messages repeat across thousands of tasks: shared
    service_id=text("ServiceID", shared=True),
    slot=whole("Slot"),
    node_id=text("NodeID", shared=True),
    state=text("Status", "State", default="new", shared=True),
    desired_state=text("DesiredState", shared=True),
    message=text("Status", "Message", shared=True),
    err=text("Status", "Err", shared=True),
    timestamp=when("Status", "Timestamp"),
    created_at=when("CreatedAt"),
    container_id=text("Status", "ContainerStatus", "ContainerID"),
    exit_code=whole("Status", "ContainerStatus", "ExitCode"),
    addresses=Field(
        (("NetworksAttachments",),),
        list[_Attachment] | None,
        None,
        slow=_attachments,
        fast=_own_attachments,
    ),
    image=text("Spec", "ContainerSpec", "Image", shared=True),
)


# Named functions, not the shapes' bound methods: callers, logs and the property tests read a
# reader's name and return type.
@_malformed_is_value_error("node")
def node_from_api(obj: Json) -> Node:
    return NODE.from_dict(obj)


@_malformed_is_value_error("service")
def service_from_api(obj: Json) -> Service:
    return SERVICE.from_dict(obj)


@_malformed_is_value_error("task")
def task_from_api(obj: Json) -> Task:
    return TASK.from_dict(obj)


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


@_malformed_is_value_error("docker info")
def info_from_api(obj: Json) -> SwarmInfo:
    swarm = obj.get("Swarm") or {}
    return SwarmInfo(
        node_id=str(swarm.get("NodeID") or ""),
        node_addr=str(swarm.get("NodeAddr") or ""),
        local_state=str(swarm.get("LocalNodeState") or "inactive"),
        control_available=bool(swarm.get("ControlAvailable")),
        engine_version=str(obj.get("ServerVersion") or ""),
        system_time=_clock(obj.get("SystemTime")),
        docker_root_dir=str(obj.get("DockerRootDir") or "")[:4096],
        node_cert_expiry=_cert_expiry(swarm.get("Cluster")),
        trust_root=_trust_root(swarm.get("Cluster")),
    )


def _cert_expiry(cluster: object) -> float:
    """Swarm.Cluster.Spec.CAConfig.NodeCertExpiry (nanoseconds) in seconds; 0.0 when not said
    (a worker's /info has no Cluster) or not a number."""
    if not isinstance(cluster, Mapping):
        return 0.0
    spec = cluster.get("Spec")
    ca = spec.get("CAConfig") if isinstance(spec, Mapping) else None
    value = ca.get("NodeCertExpiry") if isinstance(ca, Mapping) else None
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 10**20:
        return value / 1e9
    return 0.0


def _trust_root(cluster: object) -> str:
    """The swarm CA's certificate (Swarm.Cluster.TLSInfo.TrustRoot, PEM); "" when not said or
    longer than a CA bundle is (core/certs.MAX_PEM, read where it is judged)."""
    if not isinstance(cluster, Mapping):
        return ""
    tls = cluster.get("TLSInfo")
    root = tls.get("TrustRoot") if isinstance(tls, Mapping) else None
    return root if isinstance(root, str) and len(root) <= 65536 else ""


def _clock(value: object) -> float:
    """The engine's SystemTime; one it writes in a form we do not read is not said (0.0): a
    clock reading is worth less than the scan the rest of /info serves."""
    try:
        return parse_time(value)
    except (ValueError, OverflowError):
        return 0.0


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


# --- what a prune reads: every image and every container of this node's engine -------------

MAX_REFS = 256  # tags or digests of one image kept at most (a real one has a handful)


def _refs(value: object, none: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(r[:MAX_IMAGE] for r in value[:MAX_REFS] if isinstance(r, str) and r and r != none)


def _whole(value: object, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


@_malformed_is_value_error("image")
def image_from_api(obj: Json) -> Image:
    """An element of GET /images/json."""
    iid = obj.get("Id")
    if not isinstance(iid, str) or not iid:
        raise ValueError("image without an Id")
    created = obj.get("Created")
    return Image(
        id=iid,
        tags=_refs(obj.get("RepoTags"), "<none>:<none>"),
        digests=_refs(obj.get("RepoDigests"), "<none>@<none>"),
        created=float(created)
        if isinstance(created, int | float) and not isinstance(created, bool) and created > 0
        else 0.0,
        size=max(0, _whole(obj.get("Size"), 0)),
        containers=_whole(obj.get("Containers"), -1),
    )


@_malformed_is_value_error("container")
def engine_container_from_api(listed: Json, inspected: Json | None) -> EngineContainer:
    """An element of GET /containers/json?all=1, with its log as its inspect says (None: not
    inspected, its log not known)."""
    cid = listed.get("Id")
    if not isinstance(cid, str) or not cid:
        raise ValueError("container without an Id")
    labels = listed.get("Labels") or {}
    names = listed.get("Names")
    first = names[0] if isinstance(names, list) and names and isinstance(names[0], str) else ""
    log = ((inspected or {}).get("HostConfig") or {}).get("LogConfig") or {}
    opts = log.get("Config") or {}
    path = (inspected or {}).get("LogPath")
    return EngineContainer(
        id=cid,
        state=str(listed.get("State") or ""),
        image_id=str(listed.get("ImageID") or ""),
        task_id=str(labels.get(TASK_LABEL) or ""),
        name=first.removeprefix("/")[:MAX_IMAGE],
        log_driver=str(log.get("Type") or ""),
        log_max_size=str(opts.get("max-size") or ""),
        log_path=path[:MAX_IMAGE] if isinstance(path, str) else "",
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
