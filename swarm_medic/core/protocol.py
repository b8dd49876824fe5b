"""The brain-to-node protocol: every message that crosses the wire, typed and bounded.

Bytes from the network are decoded here once, at the edge, into these frozen msgspec Structs;
`agent`, `endpoint`, `rounds` and `reach` only ever see the types. A message that is too big,
is not JSON, has a field of the wrong type, a list longer than its bound, a string longer than
its bound, a port outside 1..65535 or an IPv4 field that is not a dotted quad raises
`ProtocolError` (and nothing else): the caller treats it as that peer's failure.

Wire format (JSON, UTF-8):

- request: the body is a `ProbePlan` (POST /v1/probe) or an `ActRequest` (POST /v1/act),
  signed in headers by `channel.sign` (the signature covers the node the request is for);
- answer: the node's 200 body is an `Envelope`: `{"sig": hex, "body": "<JSON text>"}` where
  `body` is a `ProbeAnswer` or an `ActAnswer` as a JSON string and `sig` its HMAC over the
  request's nonce and the node id (`channel.seal` / `channel.open_answer`). The answer rides
  as a string so the signed bytes are exactly the bytes verified, whatever the HTTP server's
  JSON serializer does to the envelope around it.

Answers are positional: `ProbeAnswer.tcp[i]` answers `ProbePlan.tcp[i]` (same for dns, vip
and ports), so a node cannot report on a target it was not asked about, and results stay small.

Versions. Every request and every answer says the protocol its sender speaks in a `protocol`
field of the message itself (`encode`), so the request's signature and the answer's seal cover
it with no change to either: a protocol 1 instance (the release before versions) checks them as
it always did. Protocol 1 says nothing, and a message without the field speaks 1. A side reads
its own protocol, the one before and the one after (`readable`): mixed versions work one
release apart, which is what a rolling upgrade of a global service needs. The version is read
first, on its own (`spoken`), so a message more than one release away is refused as that
(`VersionError`, naming both versions) whatever its fields became. An instance never sends a
field an older peer does not know, save the version itself, which every release reads past.

Unknown fields are ignored (not refused) so a newer brain can add optional fields without
breaking older nodes during a rolling update; the version field is one, and protocol 1 reads
past it like any other. `ports` (published ports, added after the others) is such a field: a
node from before it ignores the plan's `ports` and answers none, so an answer with no `ports`
results is "no opinion on any of them", while any other count that is not the plan's is refused
like a misaligned tcp list.

Standing duties (protocol 3). A plan may carry a `Duty` instead of tcp targets: the node's tcp
targets, one list per overlay named by a digest (`NetDuty`; the list itself is sent only when
the node does not hold it), how many to probe each round (`take`, least recently probed first)
and how many failing ones to probe again first (`suspects`). The node keeps the history and
answers its state (`Watched`): per overlay, a bitmap of the targets whose last probe answered
and the failing ones with their failures in a row, in the order of the list it holds; a target
in neither has no opinion. A node of protocol 2 reads past `duty` and answers no tcp results:
the brain takes that as no opinion and sends it positional plans once it has heard it speak 2
(core/duty.py says the rest). Its container list, too, is sent only when it changed: the plan
says the digest of the list the brain holds (`listed`), the answer the digest of the node's
list, and leaves the list out when the two are the same.

Protocol 3 also says the node's clock: `ProbeAnswer.clock` (its wall clock as it answered) and
`held` (how long it held the request, by its monotonic clock), which the brain turns into an
offset corrected by the round trip (`reach.Clock`). They are absent (None) from a node that
does not say them (a node of protocol 2), and left out of what a brain of protocol 2 gets.
So are the node's health readings: its swarm certificate's expiry (`cert_not_after`) and the
free space of its data root and raft folder (`disks`), measured by the node's own instance.
"""

from __future__ import annotations

import re
from typing import Annotated, Final, TypeVar

import msgspec
from msgspec import Meta

# Caps. A probe plan is at most one rotation window plus suspects (see reach.Budget); these
# bounds are far above what a plan holds, they only stop a hostile peer from making us
# allocate without limit.
MAX_REQUEST: Final = 1 << 20  # the HTTP server's own cap (http.MAX_BODY)
MAX_ANSWER: Final = 1 << 20  # bytes of one answer body (the JSON text inside the envelope)
MAX_ENVELOPE: Final = 2 * MAX_ANSWER + 512  # the JSON string escaping may double it
MAX_TARGETS: Final = 8192  # tcp entries of one plan (and of its answer)
MAX_NAMES: Final = 2048  # dns / vip entries of one plan
MAX_PORTS: Final = 2048  # published-port entries of one plan
MAX_IPS: Final = 1024  # A records in one answer (a 4 KiB UDP reply holds ~250)
MAX_CONTAINERS: Final = 4096  # task containers on one node
MAX_ERRORS: Final = 256
MAX_ID: Final = 128  # swarm ids are 25 characters, container ids 64
MAX_TEXT: Final = 512  # error strings, container names
MAX_DNS_NAME: Final = 255
MAX_NETS: Final = 512  # overlays in one duty
MAX_DUTY: Final = 32768  # tcp targets one node holds across its duty's overlays
MAX_LISTED: Final = 1024  # failing targets one answer lists (the rest: no opinion this round)
MAX_FAILS: Final = 1_000_000
MAX_DISKS: Final = 4  # filesystems one node measures: its data root, its raft folder
MAX_PATH: Final = 4096
MAX_LOSSY: Final = 256  # paths one answer says lose large packets (the rest: no opinion)

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
# [0-9], not \d (which matches any Unicode digit), and \Z, not $ (which allows a trailing \n)
IPV4_PATTERN: Final = rf"^(?:{_OCTET}\.){{3}}{_OCTET}\Z"
_IPV4 = re.compile(IPV4_PATTERN)


def is_ipv4(text: str) -> bool:
    """A dotted-quad IPv4 address, exactly as the protocol accepts one."""
    return _IPV4.match(text) is not None


Id = Annotated[str, Meta(min_length=1, max_length=MAX_ID)]
OptId = Annotated[str, Meta(max_length=MAX_ID)]
Text = Annotated[str, Meta(max_length=MAX_TEXT)]
IPv4 = Annotated[str, Meta(pattern=IPV4_PATTERN)]
Port = Annotated[int, Meta(ge=1, le=65535)]
DnsName = Annotated[str, Meta(min_length=1, max_length=MAX_DNS_NAME)]
Millis = Annotated[float, Meta(ge=0, le=3_600_000)]
# a wall clock in epoch seconds, up to 2100-01-01: a node's clock is whatever it says, within
# what a float of seconds holds without losing its milliseconds
Epoch = Annotated[float, Meta(ge=0, le=4_102_444_800)]
Seconds = Annotated[float, Meta(ge=0, le=3600)]
Bytes = Annotated[int, Meta(ge=0, le=1 << 62)]
Path = Annotated[str, Meta(min_length=1, max_length=MAX_PATH)]
Hex64 = Annotated[str, Meta(pattern=r"^[0-9a-f]{64}\Z")]
Digest = Annotated[str, Meta(pattern=r"^[0-9a-f]{16}\Z")]
OptDigest = Annotated[str, Meta(pattern=r"^(?:[0-9a-f]{16})?\Z")]


class ProtocolError(ValueError):
    """A message that is not a valid protocol message; the text is safe to log."""


# --- versions ---------------------------------------------------------------------------------

# The brain-to-node protocol this tree speaks. Say a new one when a message changes in a way an
# instance of the previous release would misread; 1 is the release before versions.
PROTOCOL: Final = 3
VERSION_FIELD: Final = "protocol"
# Fields added after protocol 2, and the protocol that added them: left out of a message whose
# value is the field's default there, None or empty (a plan without a duty is protocol 2's
# plan, byte for byte but the version)
LATER: Final = {
    "duty": 3,
    "listed": 3,
    "clock": 3,
    "held": 3,
    "cert_not_after": 3,
    "disks": 3,
    "lossy": 3,
    "paths_checked": 3,
    "underlay_mtu": 3,
    # a prune (ActRequest) and what a node says of an action (ActAnswer): added within
    # protocol 3, as a new kind of action an older node refuses by name (see ActRequest)
    "keep": 3,
    "wanted": 3,
    "target": 3,
    "detail": 3,
}


class Speaks(msgspec.Struct, frozen=True):
    """The one field read before the rest of a message: the protocol its sender speaks."""

    protocol: int = 1  # protocol 1 said nothing


class VersionError(ProtocolError):
    """A peer more than one release away: nothing it says is read, and nothing is done."""

    def __init__(self, what: str, theirs: int, ours: int) -> None:
        super().__init__(
            f"{what} speaks protocol {theirs}; this instance speaks {ours} and reads "
            f"{ours - 1} to {ours + 1}: upgrade the older instance (mixed versions work one "
            f"release apart)"
        )
        self.theirs = theirs
        self.ours = ours


def readable(theirs: int, ours: int = PROTOCOL) -> bool:
    """A side reads its own protocol, the previous release's, and the next release's (whose
    new fields it skips: the newer side leaves them out once it has heard the older one)."""
    return ours - 1 <= theirs <= ours + 1


# --- requests (brain -> node) -----------------------------------------------------------------


class TcpTarget(msgspec.Struct, frozen=True):
    """Connect to ip:port of task `task` on overlay `net`. `node` is the task's node: the
    agent on that node probes it from the overlay's own namespace, others from a sandbox."""

    net: Id
    task: Id
    service: Id
    node: Id
    ip: IPv4
    port: Port


class DnsTarget(msgspec.Struct, frozen=True):
    net: Id
    service: Id
    name: DnsName  # tasks.<service name>


class VipTarget(msgspec.Struct, frozen=True):
    net: Id
    service: Id
    ip: IPv4
    port: Port


class PortTarget(msgspec.Struct, frozen=True):
    """Connect to a node's address on a port a service publishes, from the answering node's
    own network namespace: the path a client outside the swarm takes (no overlay, no
    sandbox). Only an IPv4 address and a port: nothing else about it crosses the wire."""

    ip: IPv4
    port: Port


class NetDuty(msgspec.Struct, frozen=True, omit_defaults=True):
    """One overlay's tcp targets a node watches, in a fixed order named by `digest` (a hash of
    the list). `tcp` None: the brain believes the node holds that list already."""

    net: Id
    digest: Digest
    tcp: Annotated[tuple[TcpTarget, ...], Meta(max_length=MAX_TARGETS)] | None = None


class Duty(msgspec.Struct, frozen=True):
    """What a node watches (every overlay it is not given is dropped) and how much of it to
    probe each round: the failing targets first (at most `suspects`), then the `take` least
    recently probed of the rest."""

    nets: Annotated[tuple[NetDuty, ...], Meta(max_length=MAX_NETS)] = ()
    take: Annotated[int, Meta(ge=0, le=MAX_DUTY)] = 0
    suspects: Annotated[int, Meta(ge=0, le=MAX_DUTY)] = 0


class ProbePlan(msgspec.Struct, frozen=True):
    tcp: Annotated[tuple[TcpTarget, ...], Meta(max_length=MAX_TARGETS)] = ()
    dns: Annotated[tuple[DnsTarget, ...], Meta(max_length=MAX_NAMES)] = ()
    vip: Annotated[tuple[VipTarget, ...], Meta(max_length=MAX_NAMES)] = ()
    ports: Annotated[tuple[PortTarget, ...], Meta(max_length=MAX_PORTS)] = ()
    duty: Duty | None = None  # protocol 3: the node's standing tcp duty (then tcp is empty)
    # protocol 3: the digest of the node's container list the brain holds; the node leaves its
    # list out of the answer when it is still that one
    listed: OptDigest | None = None


REMOVE_TASK_CONTAINER: Final = "remove_task_container"
PRUNE_NODE: Final = "prune_node"
MAX_KEEP: Final = 8192  # image references one prune keeps (a Spec's and a PreviousSpec's each)
MAX_IMAGE_REF: Final = 4096  # one image reference (a real one is under 300 characters)
MAX_WANTED: Final = 8192  # tasks still wanted on one node
ImageRef = Annotated[str, Meta(min_length=1, max_length=MAX_IMAGE_REF)]

# where a node's endpoint answers the brain
PROBE_PATH: Final = "/v1/probe"
ACT_PATH: Final = "/v1/act"


def prune_fits(keep: tuple[str, ...], wanted: tuple[str, ...], target: int) -> str:
    """Why a prune with these fields cannot be asked for ("" : it can): what the node would
    refuse to decode (its bounds, or a request over MAX_REQUEST). A keep list cut short would
    prune an image it names: the brain asks for none rather than for less."""
    if len(keep) > MAX_KEEP or len(wanted) > MAX_WANTED:
        return f"{len(keep)} images to keep and {len(wanted)} tasks wanted, over the bounds"
    if not all(0 < len(k) <= MAX_IMAGE_REF for k in keep):
        return f"an image reference empty or over {MAX_IMAGE_REF} characters"
    if not all(0 < len(w) <= MAX_ID for w in wanted):
        return f"a task id empty or over {MAX_ID} characters"
    if not 0 <= target <= 100:
        return f"a target of {target}%"
    size = len(_ENCODER.encode(keep)) + len(_ENCODER.encode(wanted))
    if size > MAX_REQUEST - 4096:
        return f"{size} bytes of images to keep and tasks wanted, over what a request carries"
    return ""


class ActRequest(msgspec.Struct, frozen=True):
    """A node-local action, one of two:

    - remove_task_container: remove the container of task `task` of service `service`;
    - prune_node: free space on the node's data root (disk-pressure), down to `target`
      percent used at most, keeping every image `keep` names and every container of a task
      in `wanted` (core/prune.py). `task` and `service` name the node itself: they stay
      required, so that an instance of a release before prunes reads the request and refuses
      its kind by name, as any unknown kind.

    `kind` is a plain string (checked by the agent) so an unknown kind is refused with its
    name rather than as an undecodable request. The prune's fields are left out of a request
    that does not say them (LATER)."""

    kind: Text
    task: Id
    service: Id
    keep: Annotated[tuple[ImageRef, ...], Meta(max_length=MAX_KEEP)] = ()
    wanted: Annotated[tuple[Id, ...], Meta(max_length=MAX_WANTED)] = ()
    target: Annotated[int, Meta(ge=0, le=100)] = 0


# --- answers (node -> brain) ------------------------------------------------------------------


class TcpResult(msgspec.Struct, frozen=True, array_like=True):
    """ok None: no opinion (no vantage point on that network this round)."""

    ok: bool | None
    error: Text = ""
    ms: Millis = 0.0


class DnsResult(msgspec.Struct, frozen=True, array_like=True):
    """ips None: the lookup failed or could not run; the last answer stands."""

    ips: Annotated[tuple[IPv4, ...], Meta(max_length=MAX_IPS)] | None
    error: Text = ""


class Container(msgspec.Struct, frozen=True):
    """A task container on the answering node."""

    id: Id
    task: OptId
    service: OptId
    state: Text
    name: Text = ""  # Names[0] without the leading "/": <service>.<slot|node>.<task>
    # for a running one: its own stop timeout (None: unset, as on swarm's containers) and
    # whether swarm made it (its node checked its name and its image's labels); None: unknown
    stop_timeout: Annotated[float, Meta(ge=0, le=86400)] | None = None
    swarm_made: bool | None = None


class Failing(msgspec.Struct, frozen=True, array_like=True):
    """A watched target whose last `fails` probes in a row failed; `at`: its place in the list."""

    at: Annotated[int, Meta(ge=0, lt=MAX_TARGETS)]
    fails: Annotated[int, Meta(ge=1, le=MAX_FAILS)]
    error: Text = ""


class NetState(msgspec.Struct, frozen=True, omit_defaults=True):
    """What a node knows of one overlay's list: `digest` the list it holds ("": none); `ok` a
    bitmap (bit i of byte i // 8, lowest first) of the targets whose last probe answered;
    `failing` the targets whose last probe failed. A target in neither: no opinion."""

    net: Id
    digest: OptDigest = ""
    ok: Annotated[bytes, Meta(max_length=MAX_TARGETS // 8)] = b""
    failing: Annotated[tuple[Failing, ...], Meta(max_length=MAX_LISTED)] = ()


class Watched(msgspec.Struct, frozen=True):
    """A node's answer to its duty: its state per overlay, and the probes it made this round."""

    nets: Annotated[tuple[NetState, ...], Meta(max_length=MAX_NETS)] = ()
    probed: Annotated[int, Meta(ge=0, le=2 * MAX_DUTY)] = 0


class Disk(msgspec.Struct, frozen=True, array_like=True):
    """A filesystem on the answering node: the folder measured (`what`: "data-root" or
    "raft"), its size and the bytes free to an unprivileged writer (statvfs f_bavail)."""

    what: Annotated[str, Meta(pattern=r"^(?:data-root|raft)\Z")]
    path: Path
    total: Bytes
    free: Bytes


class Lossy(msgspec.Struct, frozen=True, array_like=True):
    """A path from the answering node over overlay `net` to a task at `ip` on node `node`
    that answered a small ICMP echo and lost one of `size` bytes (the overlay's MTU, as this
    node's side of it says) with don't-fragment, `fails` checks in a row (overlay-mtu)."""

    net: Id
    node: Id
    ip: IPv4
    size: Annotated[int, Meta(ge=68, le=65535)]
    fails: Annotated[int, Meta(ge=1, le=MAX_FAILS)]


MTU = Annotated[int, Meta(ge=68, le=65535)]


class ProbeAnswer(msgspec.Struct, frozen=True):
    node: Id
    ipvs: bool = False
    tcp: Annotated[tuple[TcpResult, ...], Meta(max_length=MAX_TARGETS)] = ()
    dns: Annotated[tuple[DnsResult, ...], Meta(max_length=MAX_NAMES)] = ()
    vip: Annotated[tuple[TcpResult, ...], Meta(max_length=MAX_NAMES)] = ()
    ports: Annotated[tuple[TcpResult, ...], Meta(max_length=MAX_PORTS)] = ()
    errors: Annotated[tuple[Text, ...], Meta(max_length=MAX_ERRORS)] = ()
    containers: Annotated[tuple[Container, ...], Meta(max_length=MAX_CONTAINERS)] = ()
    duty: Watched | None = None  # protocol 3: the state of the plan's duty
    # protocol 3: the digest of this node's container list (duty.digest_of); with no
    # `containers`, the list is the one the plan's `listed` names, unchanged
    listed: OptDigest | None = None
    # the node's wall clock when it answered, and how long it held the request (probing
    # included): what the brain needs to measure the node's clock against its own
    clock: Epoch | None = None
    held: Seconds | None = None
    # protocol 3: this node's swarm certificate's notAfter (None: not known, the file missing
    # or unreadable), and its data root's filesystem (and its raft folder's, on a manager,
    # when that is another one); None: not measured
    cert_not_after: Epoch | None = None
    disks: Annotated[tuple[Disk, ...], Meta(max_length=MAX_DISKS)] | None = None
    # protocol 3, overlay-mtu: the paths that lose large packets while small ones pass, the
    # paths it checked this round, and the MTU of its own link that holds its swarm address
    # (None: not in its namespace, as when it runs in a container)
    lossy: Annotated[tuple[Lossy, ...], Meta(max_length=MAX_LOSSY)] | None = None
    paths_checked: Annotated[int, Meta(ge=0, le=MAX_TARGETS)] | None = None
    underlay_mtu: MTU | None = None


class ActAnswer(msgspec.Struct, frozen=True):
    ok: bool
    container: OptId = ""
    task: OptId = ""
    node: OptId = ""
    stop_timeout: Annotated[float, Meta(ge=0, le=86400)] | None = None
    # The node's own instance runs in dry-run: it checked the container and removed nothing.
    # Signed like any answer, so the brain may trust it and retry later instead of counting a
    # failure (a rolling update from dry-run to acting has brains and hands in both modes).
    dry_run: bool = False
    # what the node does, or would do in dry-run, in words (a prune: what it would remove,
    # or that one is under way already); "" : nothing to add
    detail: Text = ""


class Envelope(msgspec.Struct, frozen=True):
    sig: Hex64
    body: Annotated[str, Meta(max_length=MAX_ANSWER)]


# --- encode / decode --------------------------------------------------------------------------

M = TypeVar("M", ProbePlan, ActRequest, ProbeAnswer, ActAnswer, Envelope)
Message = ProbePlan | ActRequest | ProbeAnswer | ActAnswer  # what says its version

_ENCODER = msgspec.json.Encoder()
_DECODERS: dict[type, msgspec.json.Decoder[object]] = {}


def encode(message: Message, *, speaks: int = PROTOCOL, reader: int | None = None) -> bytes:
    """The message as it goes on the wire, saying the protocol its sender `speaks` (1: nothing,
    as protocol 1 said), for a `reader` of that protocol (unless told: the one it speaks).
    Every message has the fields it had in protocol 2, and the fields of `LATER`
    (test_protocol_versions checks it against the frozen protocol 2), which are left out when
    they say nothing or the reader does not read the protocol that added them: what an older
    peer gets is what it knows, the version aside."""
    reads = speaks if reader is None else min(reader, speaks)
    fields = msgspec.structs.asdict(message)
    defaults = _defaults(type(message))
    for name, since in LATER.items():
        if name in fields and (fields[name] == defaults[name] or reads < since):
            del fields[name]
    if speaks <= 1:
        return _ENCODER.encode(fields)
    return _ENCODER.encode({VERSION_FIELD: speaks, **fields})


def _defaults(kind: type[msgspec.Struct]) -> dict[str, object]:
    """Each field's default (None for a required one): a later field left at it says nothing."""
    if kind not in _DEFAULTS:
        _DEFAULTS[kind] = {
            f.name: None if f.default is msgspec.NODEFAULT else f.default
            for f in msgspec.structs.fields(kind)
        }
    return _DEFAULTS[kind]


_DEFAULTS: dict[type[msgspec.Struct], dict[str, object]] = {}


def decode(data: bytes | str, kind: type[M], *, limit: int) -> M:
    """`data` as a message of type `kind`, or ProtocolError (oversize or invalid)."""
    return _decode(data, kind, limit=limit, name=kind.__name__)


def spoken(data: bytes | str, kind: type[M], *, limit: int, ours: int = PROTOCOL) -> tuple[int, M]:
    """`data` as a message of type `kind` and the protocol its sender speaks; VersionError when
    that is more than one release from `ours`, ProtocolError when it is not a message."""
    theirs = _decode(data, Speaks, limit=limit, name=kind.__name__).protocol
    if not readable(theirs, ours):
        raise VersionError(kind.__name__, theirs, ours)
    return theirs, decode(data, kind, limit=limit)


S = TypeVar("S", bound=msgspec.Struct)


def _decode(data: bytes | str, kind: type[S], *, limit: int, name: str) -> S:
    if len(data) > limit:
        raise ProtocolError(f"{name}: {len(data)} bytes, over the {limit} limit")
    dec = _DECODERS.get(kind)
    if dec is None:
        dec = _DECODERS[kind] = msgspec.json.Decoder(kind)
    try:
        value = dec.decode(data)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        raise ProtocolError(f"{name}: {str(exc)[:200]}") from None
    except UnicodeDecodeError as exc:  # msgspec's own for invalid UTF-8 (found by hypothesis)
        raise ProtocolError(f"{name}: not UTF-8: {exc.reason}") from None
    except RecursionError:
        # msgspec descends into an unknown field's value to skip it: a value nested deeper than
        # the interpreter's recursion limit is refused like any other invalid message
        raise ProtocolError(f"{name}: JSON nested too deeply") from None
    assert isinstance(value, kind)  # noqa: S101 - the decoder was built for `kind`
    return value


def check_aligned(plan: ProbePlan, answer: ProbeAnswer) -> None:
    """Answers are positional: each list must answer its plan list entry for entry. The one
    exception: no `ports` results at all, which a node older than published-port probes
    answers (it never saw the field); the brain takes that as no opinion."""
    for what, asked, got in (
        ("tcp", len(plan.tcp), len(answer.tcp)),
        ("dns", len(plan.dns), len(answer.dns)),
        ("vip", len(plan.vip), len(answer.vip)),
        ("ports", len(plan.ports), len(answer.ports)),
    ):
        if asked != got and not (what == "ports" and got == 0):
            raise ProtocolError(f"ProbeAnswer: {got} {what} results for {asked} {what} targets")
