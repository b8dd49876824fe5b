"""The nouns of swarm-medic: frozen values that flow watch -> observe -> match -> decide -> act.

Nothing here does I/O. The swarm boundary (`swarm_medic.swarm`) is the only code that turns
Engine API dictionaries into these; everything downstream reads only these.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any, TypedDict, Unpack

EMPTY: Mapping[str, str] = MappingProxyType({})


def _empty() -> Mapping[str, str]:
    return EMPTY


# The engine's state vocabularies, named once. The model keeps states as the engine's text
# (Task.state, Node.state, UpdateStatus.state are str); each member equals its text, so
# `task.state == TaskState.RUNNING` and `task.state in LIVE_STATES` read it as it is.


class TaskState(enum.StrEnum):
    """A task's state (Status.State) and desired state, in swarmkit's order of progress."""

    NEW = "new"
    ALLOCATED = "allocated"
    PENDING = "pending"
    ASSIGNED = "assigned"
    ACCEPTED = "accepted"
    PREPARING = "preparing"
    READY = "ready"
    STARTING = "starting"
    RUNNING = "running"
    COMPLETE = "complete"
    SHUTDOWN = "shutdown"
    FAILED = "failed"
    REJECTED = "rejected"
    REMOVE = "remove"
    ORPHANED = "orphaned"


# Not running yet, in order of progress (a setting lists them in this order).
PRE_RUNNING_STATES = (
    TaskState.NEW,
    TaskState.ALLOCATED,
    TaskState.PENDING,
    TaskState.ASSIGNED,
    TaskState.ACCEPTED,
    TaskState.PREPARING,
    TaskState.READY,
    TaskState.STARTING,
)
# Not ended: on its way, or running. Such a task still holds its addresses on its networks and
# its place on its node; the allocator frees them once it has ended.
LIVE_STATES = frozenset((*PRE_RUNNING_STATES, TaskState.RUNNING))
# Ended, by itself (complete, failed, rejected) or by the orchestrator: never runs again.
ENDED_STATES = frozenset(TaskState) - LIVE_STATES


class UpdateState(enum.StrEnum):
    """A service's UpdateStatus.State (a service that was never updated has no UpdateStatus)."""

    UPDATING = "updating"
    PAUSED = "paused"
    COMPLETED = "completed"
    ROLLBACK_STARTED = "rollback_started"
    ROLLBACK_PAUSED = "rollback_paused"
    ROLLBACK_COMPLETED = "rollback_completed"


# An update or a rollback under way: tasks come and go meanwhile.
UPDATE_IN_FLIGHT = frozenset({UpdateState.UPDATING, UpdateState.ROLLBACK_STARTED})
UPDATE_PAUSED = frozenset({UpdateState.PAUSED, UpdateState.ROLLBACK_PAUSED})
# Finished. A service with no UpdateStatus at all is settled too: the callers say so, since
# None is no state.
UPDATE_SETTLED = frozenset({UpdateState.COMPLETED, UpdateState.ROLLBACK_COMPLETED})


class NodeState(enum.StrEnum):
    """A node's Status.State."""

    READY = "ready"
    DOWN = "down"
    UNKNOWN = "unknown"
    DISCONNECTED = "disconnected"


@dataclass(frozen=True, slots=True)
class Resources:
    nano_cpus: int = 0
    memory_bytes: int = 0


@dataclass(frozen=True, slots=True)
class Node:
    id: str
    hostname: str
    role: str  # "manager" | "worker"
    availability: str  # "active" | "pause" | "drain"
    state: str  # "ready" | "down" | "unknown" | "disconnected"
    message: str = ""
    addr: str = ""
    # spec labels: what placement constraints read
    labels: Mapping[str, str] = field(default_factory=_empty)
    engine_labels: Mapping[str, str] = field(default_factory=_empty)
    platform_os: str = ""
    platform_arch: str = ""
    resources: Resources = Resources()
    leader: bool = False
    # ManagerStatus.Reachability: reachable | unreachable | unknown ("" on a worker)
    reachability: str = ""
    version: int = 0  # Version.Index: a node removal is decided on it (compare-and-swap)
    created_at: float = 0.0  # when it joined the swarm (a node that leaves and joins is new)
    # when the node object last changed: for a Down node, about when it went down (a leader
    # change marks every node unknown and then down again, which moves it later)
    updated_at: float = 0.0


@dataclass(frozen=True, slots=True)
class UpdateStatus:
    state: str  # updating | paused | completed | rollback_started | rollback_paused | ...
    message: str = ""
    started_at: float | None = None
    completed_at: float | None = None


@dataclass(frozen=True, slots=True)
class UpdateConfig:
    """Spec.UpdateConfig with the engine's defaults where a field is unset."""

    parallelism: int = 1  # 0: every task at once
    delay: float = 0.0  # seconds between batches
    monitor: float = 5.0  # seconds a new task is watched for failure
    failure_action: str = "pause"  # pause | continue | rollback
    order: str = "stop-first"  # stop-first | start-first


@dataclass(frozen=True, slots=True)
class PublishedPort:
    """One published port (Endpoint.Ports, which include ports the engine chose)."""

    target: int
    published: int
    protocol: str = "tcp"  # tcp | udp | sctp
    mode: str = "ingress"  # ingress (routing mesh, every node) | host (nodes with a task)


@dataclass(frozen=True, slots=True)
class FileRef:
    """A config or secret a service's containers get as a file."""

    id: str
    name: str
    target: str  # File.Name: the path in the container (a secret's is under /run/secrets)


@dataclass(frozen=True, slots=True)
class Service:
    id: str
    name: str
    version: int  # Version.Index: every update we send carries it (compare-and-swap)
    labels: Mapping[str, str] = field(default_factory=_empty)
    mode: str = "replicated"  # replicated | global | replicated-job | global-job
    replicas: int | None = None
    image: str = ""
    constraints: tuple[str, ...] = ()
    max_replicas_per_node: int = 0
    reservations: Resources = Resources()
    update_status: UpdateStatus | None = None
    has_previous_spec: bool = False
    force_update: int = 0
    updated_at: float | None = None
    endpoint_mode: str = "vip"  # vip | dnsrr
    target_ports: tuple[int, ...] = ()  # EndpointSpec.Ports[].TargetPort
    vips: tuple[tuple[str, str], ...] = ()  # (network id, IPv4) of the service's virtual IPs
    stop_grace_period: float = 10.0  # seconds swarm gives a task to stop (the engine default)
    memory_limit: int = 0  # TaskTemplate.Resources.Limits.MemoryBytes (0: none)
    update_config: UpdateConfig = UpdateConfig()
    networks: tuple[str, ...] = ()  # TaskTemplate.Networks[].Target: the networks it asks for
    published: tuple[PublishedPort, ...] = ()
    configs: tuple[FileRef, ...] = ()
    secrets: tuple[FileRef, ...] = ()
    # ids of the configs and secrets PreviousSpec refers to: what a rollback needs to exist
    previous_refs: tuple[str, ...] = ()
    # the image PreviousSpec names ("" : none): a rollback needs it on every node it may run on
    previous_image: str = ""


@dataclass(frozen=True, slots=True)
class Task:
    id: str
    service_id: str
    slot: int | None
    node_id: str  # "" until the scheduler assigns one
    state: str
    desired_state: str
    message: str = ""
    err: str = ""
    timestamp: float = 0.0  # when the task entered `state` (Status.Timestamp)
    created_at: float = 0.0
    container_id: str = ""
    exit_code: int | None = None
    # (network id, network name, IPv4) per overlay network the task is attached to (no ingress)
    addresses: tuple[tuple[str, str, str], ...] = ()
    # Spec.ContainerSpec.Image: the image this task runs (a service's tasks of an update in
    # flight run two), with its digest once the manager resolved it
    image: str = ""


@dataclass(frozen=True, slots=True)
class Network:
    """A network as a manager lists it (swarm-scoped overlays included)."""

    id: str
    name: str
    driver: str = ""  # overlay | bridge | host | null | ...
    scope: str = ""  # swarm | local
    subnets: tuple[str, ...] = ()  # IPAM.Config[].Subnet, e.g. "10.0.1.0/24"
    ingress: bool = False
    labels: Mapping[str, str] = field(default_factory=_empty)


@dataclass(frozen=True, slots=True)
class Stored:
    """A swarm config or secret object: its metadata only (never a secret's content)."""

    kind: str  # config | secret
    id: str
    name: str
    labels: Mapping[str, str] = field(default_factory=_empty)
    created_at: float = 0.0


@dataclass(frozen=True, slots=True)
class SwarmInfo:
    """What the engine we talk to says about itself."""

    node_id: str
    node_addr: str
    local_state: str  # inactive | pending | active | error | locked
    control_available: bool  # true on managers
    engine_version: str = ""
    # SystemTime: the engine's clock when it answered /info (epoch seconds; 0.0: not said)
    system_time: float = 0.0
    # DockerRootDir: the engine's data root ("" not said); under it swarm/certificates holds
    # this node's certificate and, on a manager, swarm/raft the raft log
    docker_root_dir: str = ""
    # Swarm.Cluster (managers only): the swarm's Spec.CAConfig.NodeCertExpiry in seconds (0.0:
    # not said), and its CA's certificate (TLSInfo.TrustRoot, PEM; "": not said)
    node_cert_expiry: float = 0.0
    trust_root: str = ""


@dataclass(frozen=True)
class Snapshot:
    """Everything one scan saw, taken with a constant number of API calls."""

    taken_at: float
    info: SwarmInfo
    nodes: tuple[Node, ...]
    services: tuple[Service, ...]
    tasks: tuple[Task, ...]
    api_calls: int = 0
    malformed: tuple[str, ...] = ()  # objects the engine listed that could not be read
    networks: tuple[Network, ...] = ()
    configs: tuple[Stored, ...] = ()
    secrets: tuple[Stored, ...] = ()

    def service(self, service_id: str) -> Service | None:
        return self._services_by_id.get(service_id)

    def node(self, node_id: str) -> Node | None:
        return self._nodes_by_id.get(node_id)

    def task(self, task_id: str) -> Task | None:
        return self._tasks_by_id.get(task_id)

    def tasks_of(self, service_id: str) -> tuple[Task, ...]:
        return self._tasks_by_service.get(service_id, ())

    @property
    def is_leader(self) -> bool:
        me = self.node(self.info.node_id)
        return me is not None and me.leader

    # Built once per snapshot (frozen dataclass without slots keeps a __dict__ for these),
    # so runbooks never scan all tasks once per service.
    @cached_property
    def derived(self) -> dict[Hashable, Any]:
        """Values that pure helpers derive from this snapshot alone, kept for its lifetime so
        that they are computed once per scan, not once per service (e.g. which nodes a set of
        placement constraints rules out: `constraints.placement_misses`)."""
        return {}

    @cached_property
    def _services_by_id(self) -> dict[str, Service]:
        return {s.id: s for s in self.services}

    @cached_property
    def running_ips(self) -> dict[tuple[str, str], tuple[str, ...]]:
        """(service id, network id) -> sorted IPs of its tasks running and meant to run."""
        out: dict[tuple[str, str], list[str]] = {}
        for t in self.tasks:
            if t.state == "running" and t.desired_state == "running":
                for net, _, ip in t.addresses:
                    out.setdefault((t.service_id, net), []).append(ip)
        return {k: tuple(sorted(v)) for k, v in out.items()}

    @cached_property
    def _tasks_by_id(self) -> dict[str, Task]:
        return {t.id: t for t in self.tasks}

    @cached_property
    def _nodes_by_id(self) -> dict[str, Node]:
        return {n.id: n for n in self.nodes}

    @cached_property
    def reserved_by_node(self) -> dict[str, tuple[int, int]]:
        """(nano CPUs, memory bytes) reserved by tasks meant to run on each node."""
        used: dict[str, tuple[int, int]] = {}
        for t in self.tasks:
            if not t.node_id or t.desired_state != "running":
                continue
            svc = self._services_by_id.get(t.service_id)
            if svc is None or not (svc.reservations.nano_cpus or svc.reservations.memory_bytes):
                continue
            cpu, mem = used.get(t.node_id, (0, 0))
            used[t.node_id] = (
                cpu + svc.reservations.nano_cpus,
                mem + svc.reservations.memory_bytes,
            )
        return used

    @cached_property
    def _tasks_by_service(self) -> dict[str, tuple[Task, ...]]:
        grouped: dict[str, list[Task]] = {}
        for t in self.tasks:
            grouped.setdefault(t.service_id, []).append(t)
        return {k: tuple(v) for k, v in grouped.items()}


class Severity(enum.StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class ActionKind(enum.StrEnum):
    FORCE_UPDATE = "force_update"
    ROLLBACK = "rollback"
    RETRY_UPDATE = "retry_update"
    RESUME_UPDATE = "resume_update"  # re-issue the same spec: swarm resumes a paused update
    REPLACE_TASK = "replace_task"  # the task's node removes its container; swarm makes another
    REMOVE_ORPHAN = "remove_orphan"  # a node removes a task container swarm no longer knows
    REMOVE_NODE = "remove_node"  # the brain removes a worker's Down node entry (docker node rm)
    PRUNE_NODE = "prune_node"  # a node's own instance frees its data root (disk-pressure)


# Actions on a node itself: no service is named, the node is their subject.
ON_NODE = frozenset({ActionKind.REMOVE_NODE, ActionKind.PRUNE_NODE})
# Actions on a task's container, carried out by the instance on the container's node.
NODE_LOCAL = frozenset({ActionKind.REPLACE_TASK, ActionKind.REMOVE_ORPHAN})
# What a node's own instance carries out: a task's container, or a prune of the node itself.
HANDS = NODE_LOCAL | {ActionKind.PRUNE_NODE}


@dataclass(frozen=True, slots=True)
class Prune:
    """What a prune keeps and how far it goes (core/prune.py): every image reference `keep`
    names, every container of a task in `wanted`; down to `target` percent used."""

    keep: tuple[str, ...] = ()
    wanted: tuple[str, ...] = ()
    target: int = 0


@dataclass(frozen=True, slots=True)
class Action:
    """What to do, as data. Only `act.Executor` carries it out.

    An action on a node itself (REMOVE_NODE, PRUNE_NODE) names no service: `node_id` is the
    node, and `service_version` that node's Version.Index. A prune says what it keeps in
    `prune`."""

    kind: ActionKind
    service_id: str
    service_name: str
    service_version: int  # compare-and-swap: the action fails if the service moved on
    reason: str
    task_id: str = ""  # REPLACE_TASK: which task, on which node
    node_id: str = ""
    prune: Prune | None = None

    @property
    def subject(self) -> str:
        """What the safety policy judges and the ledger keeps this action's history under:
        its service, or the node an action on a node is about (swarm ids never repeat across
        kinds of object, so the two cannot meet)."""
        return self.node_id if self.kind in ON_NODE else self.service_id


class TargetKind(enum.StrEnum):
    SERVICE = "service"
    TASK = "task"
    NODE = "node"
    CONTAINER = "container"
    ALERT = "alert"


@dataclass(frozen=True, slots=True)
class Target:
    """What a finding is about, typed, so that `plan` reads ids instead of parsing strings.

    `id` is the service, task, node or container id (as `kind` says); `node` is the node a
    task or container is on (and the node itself for a node); `task` is a container's task.
    Build one with `Target.for_service(...)`, `.for_task(...)`, `.for_node(...)`,
    `.for_container(...)` or `.for_alert(...)` (`id` is the alert's name; a fix planned for
    it is healed only once the alert resolved). It is not part of the incident's identity:
    that is `Finding.key`.
    """

    kind: TargetKind
    id: str
    node: str = ""
    task: str = ""

    @classmethod
    def for_service(cls, service_id: str) -> Target:
        return cls(TargetKind.SERVICE, service_id)

    @classmethod
    def for_task(cls, task_id: str, node_id: str = "") -> Target:
        return cls(TargetKind.TASK, task_id, node=node_id, task=task_id)

    @classmethod
    def for_node(cls, node_id: str) -> Target:
        return cls(TargetKind.NODE, node_id, node=node_id)

    @classmethod
    def for_container(cls, container_id: str, node_id: str, task_id: str = "") -> Target:
        return cls(TargetKind.CONTAINER, container_id, node=node_id, task=task_id)

    @classmethod
    def for_alert(cls, alert_name: str) -> Target:
        return cls(TargetKind.ALERT, alert_name)


class FindingFields(TypedDict, total=False):
    """A Finding's fields besides its key, summary and cause: what its constructors take."""

    severity: Severity
    service_id: str
    service_name: str
    task_ids: tuple[str, ...]
    node_ids: tuple[str, ...]
    advice: str
    actionable: bool
    details: Mapping[str, str]
    target: Target | None
    logs_of: str


@dataclass(frozen=True, slots=True)
class Finding:
    """One fault a runbook saw. `key` identifies the incident across scans; `target` says
    what the fault is about (None: the service, or nothing more precise).

    A runbook makes one with `Finding.for_service(...)`, `.for_task(...)`, `.for_node(...)`
    or `.about(key, ...)`: they leave `runbook` empty and `key` the runbook's own part, and
    the runbook's name is filled in, and put in front of the key, where detect is called
    (core.runbook.Runbook.detect). A Finding built whole, runbook and prefixed key included,
    is taken as it is.
    """

    runbook: str
    key: str
    summary: str
    cause: str
    severity: Severity = Severity.WARNING
    service_id: str = ""
    service_name: str = ""
    task_ids: tuple[str, ...] = ()
    node_ids: tuple[str, ...] = ()
    advice: str = ""
    actionable: bool = False  # the runbook believes an action can help
    details: Mapping[str, str] = field(default_factory=dict)  # for people, never read back
    target: Target | None = None
    # A task whose last log lines people should read with this finding (e.g. the last crashed
    # task of a crash loop): the pipeline fetches them once, when the incident opens, since a
    # runbook may not do I/O. "" : none.
    logs_of: str = ""

    @classmethod
    def about(cls, key: str, summary: str, cause: str, **fields: Unpack[FindingFields]) -> Finding:
        """A fault that `key` names within its runbook (a network, a config family, the
        managers): the same fault must give the same key on every scan."""
        return cls("", key, summary, cause, **fields)

    @classmethod
    def for_service(
        cls,
        service: Service | str,
        summary: str,
        cause: str,
        *,
        key: str = "",
        **fields: Unpack[FindingFields],
    ) -> Finding:
        """About a service: its id and name, and the service as the target. `service` may be
        the id of one the snapshot no longer holds (its name is then the id). The key is the
        service's id unless given."""
        sid, name = (service, service) if isinstance(service, str) else (service.id, service.name)
        given: FindingFields = {
            "service_id": sid,
            "service_name": name,
            "target": Target.for_service(sid),
        }
        return cls.about(key or sid, summary, cause, **(given | fields))

    @classmethod
    def for_task(
        cls,
        task: Task,
        service: Service,
        summary: str,
        cause: str,
        *,
        key: str = "",
        **fields: Unpack[FindingFields],
    ) -> Finding:
        """About one task of a service: the service's id and name, the task and its node, and
        the task (on its node) as the target. The key is the task's id unless given."""
        given: FindingFields = {
            "service_id": service.id,
            "service_name": service.name,
            "task_ids": (task.id,),
            "node_ids": (task.node_id,) if task.node_id else (),
            "target": Target.for_task(task.id, task.node_id),
        }
        return cls.about(key or task.id, summary, cause, **(given | fields))

    @classmethod
    def for_node(
        cls,
        node: Node,
        summary: str,
        cause: str,
        *,
        key: str = "",
        **fields: Unpack[FindingFields],
    ) -> Finding:
        """About a node: the node, and the node as the target. The key is the node's id
        unless given."""
        given: FindingFields = {"node_ids": (node.id,), "target": Target.for_node(node.id)}
        return cls.about(key or node.id, summary, cause, **(given | fields))


class Verdict(enum.StrEnum):
    ACT = "act"
    WOULD_ACT = "would_act"  # dry-run
    PROPOSE = "propose"  # asks first: acted on once approved (`swarm-medic approve`)
    SKIP = "skip"


class Reason(enum.StrEnum):
    """Why the policy let an action through or not: a metric label and a journal field.

    Each value has a one-line `wording` for operators (the journal's decision line, `check`).
    The members are listed in the order the policy's gates are tried (`policy.GATES` is checked
    against it); DRY_RUN and OK are what a finding that passed every gate becomes.
    """

    wording: str

    def __new__(cls, value: str, wording: str) -> Reason:
        member = str.__new__(cls, value)
        member._value_ = value
        member.wording = wording
        return member

    NO_ACTION = "no_action", "the runbook only reports this fault, or its service is gone"
    SELF = "self", "swarm-medic's own service"
    OPTED_OUT = "opted_out", "labelled swarm-medic.enable=false"
    NOT_OPTED_IN = (
        "not_opted_in",
        "scope is opt-in and the service is not labelled swarm-medic.enable=true",
    )
    REPORT_LABEL = (
        "report_label",
        "labelled swarm-medic.action=report: findings are reported, never acted on",
    )
    PAUSED = (
        "paused",
        "swarm-medic is paused swarm-wide (`swarm-medic pause`) until it is resumed or the "
        "pause expires",
    )
    NOT_LEADER = "not_leader", "only the instance on the leader manager acts on services"
    STORM = (
        "storm",
        "too much is failing at once across the swarm (--storm-share): no action anywhere "
        "until the share falls back",
    )
    LEDGER_UNREADABLE = (
        "ledger_unreadable",
        "the service's history in the ledger could not be read: no acting blind",
    )
    CIRCUIT_OPEN = (
        "circuit_open",
        "the circuit breaker is open (budget spent or fixes did not hold) until it resets",
    )
    VERIFYING = "verifying", "an earlier fix on this service is still being verified"
    BUSY = "busy", "another finding already acts on this service in this scan"
    COOLDOWN = "cooldown", "the same runbook acted on this service less than --cooldown ago"
    BUDGET_SPENT = "budget_spent", "--budget-per-hour actions on this service in the last hour"
    NODE_UNREACHABLE = (
        "node_unreachable",
        "the node of this node-local action could not be asked in the last probe round: "
        "nothing is claimed or spent until it answers",
    )
    ALERTS_HOLD = (
        "alerts_hold",
        "a --hold-while-alerts alert is firing, or Prometheus could not say: no action meanwhile",
    )
    MAX_CONCURRENT = (
        "max_concurrent",
        "--max-concurrent-actions remediations are already under way in the swarm (being "
        "verified, or decided this scan)",
    )
    APPROVAL_NEEDED = (
        "approval_needed",
        "labelled swarm-medic.approve=true, or its runbook is in --approve-runbooks: proposed, "
        "acted on once approved with `swarm-medic approve INCIDENT` (never in dry-run)",
    )
    DRY_RUN = "dry_run", "every gate passed; dry-run only says what would be done"
    OK = "ok", "every gate passed: act"

    @property
    def verdict(self) -> Verdict:
        """The verdict a decision with this reason carries."""
        if self is Reason.OK:
            return Verdict.ACT
        if self is Reason.APPROVAL_NEEDED:
            return Verdict.PROPOSE
        return Verdict.WOULD_ACT if self is Reason.DRY_RUN else Verdict.SKIP


@dataclass(frozen=True, slots=True)
class Decision:
    finding: Finding
    verdict: Verdict
    reason: Reason  # low-cardinality: a metric label
    action: Action | None = None
    explanation: str = ""  # what this case adds to the reason's wording (times, causes)

    @property
    def why(self) -> str:
        """The reason in words, with this case's explanation: one line for an operator."""
        w = self.reason.wording
        return f"{w} ({self.explanation})" if self.explanation else w


class Result(enum.StrEnum):
    DONE = "done"  # carried out; the verifier will say healed or not
    HEALED = "healed"
    NOT_HEALED = "not_healed"
    FAILED = "failed"  # the action itself could not be carried out
    CONFLICT = "conflict"  # the service moved on under us (Version.Index mismatch)
    UNREACHABLE = "unreachable"  # the node that must act could not be asked; nothing spent


@dataclass(frozen=True, slots=True)
class Event:
    """One Engine event, reduced to what the watcher needs."""

    type: str  # service | node | container | ...
    action: str
    actor_id: str
    time_nano: int
    attributes: Mapping[str, str] = field(default_factory=_empty)

    @property
    def identity(self) -> tuple[int, str, str, str]:
        # Resuming with `since` replays events of the same second; this tells them apart.
        return (self.time_nano, self.type, self.action, self.actor_id)


@dataclass(frozen=True, slots=True)
class LedgerDoc:
    """The durable history document as stored in the swarm (a config object's labels)."""

    id: str
    version: int
    labels: Mapping[str, str] = field(default_factory=_empty)


@dataclass(frozen=True, slots=True)
class ContainerDetail:
    """One container inspected (with its image's labels): what the hand checks before it acts."""

    id: str
    name: str  # without the leading "/"
    labels: Mapping[str, str] = field(default_factory=_empty)
    image_labels: Mapping[str, str] = field(default_factory=_empty)
    # Config.StopTimeout: None for swarm's containers (swarm stops them with the service's own
    # stop_grace_period), set by `docker run --stop-timeout`
    stop_timeout: float | None = None
    stop_signal: str = ""  # Config.StopSignal ("" = SIGTERM)


@dataclass(frozen=True, slots=True)
class LocalContainer:
    """A container of a swarm task, as the node it runs on sees it (workers included)."""

    id: str
    state: str  # running | exited | created | ...
    task_id: str
    service_id: str
    service_name: str
    node_id: str
    networks: tuple[tuple[str, str], ...] = ()  # (network id, IPv4)
    name: str = ""  # Names[0] without "/"; swarm names its own <service>.<slot|node>.<task>


@dataclass(frozen=True, slots=True)
class Image:
    """An image this node's engine holds (`docker image ls`): what a prune may remove."""

    id: str  # sha256:<hex>
    tags: tuple[str, ...] = ()  # RepoTags, "<none>:<none>" left out
    digests: tuple[str, ...] = ()  # RepoDigests (name@sha256:...), "<none>@<none>" left out
    created: float = 0.0  # epoch seconds
    size: int = 0  # bytes, its shared layers included
    containers: int = -1  # containers using it, as the engine counts them (-1: not counted)


@dataclass(frozen=True, slots=True)
class EngineContainer:
    """Any container this node's engine holds, swarm's or not, running or not (`docker ps -a`,
    each inspected for its log): what a prune reads before it removes a stopped one."""

    id: str
    state: str  # created | running | paused | restarting | removing | exited | dead
    image_id: str = ""  # ImageID: sha256:<hex>
    task_id: str = ""  # its swarm task's id (label com.docker.swarm.task.id), "" if none
    name: str = ""  # Names[0] without "/"
    log_driver: str = ""  # HostConfig.LogConfig.Type ("" : not known)
    log_max_size: str = ""  # HostConfig.LogConfig.Config["max-size"] ("" : none, unbounded)
    log_path: str = ""  # LogPath: the json-file log on the host ("" : none)
