"""The swarm boundary: the only package that talks to the Docker Engine.

The rest of swarm-medic sees the engine through the role it uses, each a small Protocol here:

  SwarmReader    the swarm as it is: info and lists, the event stream (typed events), a task's
                 log, the API version spoken (observe, watch, check, the scan)
  ServiceWriter  one service changed by compare-and-swap on its version (the executor)
  NodeWriter     a worker's Down node entry removed, decided on its version (the executor)
  LedgerStore    the ledger config: read, write, and `cas_update`, the one retried
                 read-change-write (the executor's outcome, `pause`)
  ObjectStore    a service's raw spec, config and secret objects (rollout, uninstall)
  NodeLocal      this node's own containers and images (the node agent only): a task
                 container retired, a prune (disk-pressure)

`Engine` is all of them: what `swarm.engine.DockerEngine` (the only module that imports
`docker`) and `swarm.fake.FakeEngine` (in memory, for tests and benchmarks) implement;
`tests/contract/` runs the same tests over both.

What the engine sends is read here and nowhere else (import-linter keeps it so): `mapping`
declares each node, service and task field once, and `shape` makes both decode paths from that
declaration; `wire` decodes the answers' bytes and the event stream's lines with it, and
`mapping` reads as plain JSON what the fast path does not fit. `cas` is the compare-and-swap
retry policy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from swarm_medic.core.apiversion import Speaking
from swarm_medic.core.model import (
    ContainerDetail,
    EngineContainer,
    Event,
    Image,
    LedgerDoc,
    LocalContainer,
    Network,
    Node,
    Service,
    Stored,
    SwarmInfo,
    Task,
)
from swarm_medic.core.versions import ServiceSpec
from swarm_medic.swarm.mapping import LOG_LINES as LOG_LINES  # what `task_logs` keeps at most

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class MalformedEvent:
    """An event line the engine sent that is not an event: the watcher logs and counts it, and
    the stream goes on."""

    error: str  # what is wrong with it, in one line
    raw: object  # what arrived (the decoded JSON value, or the start of the line)


class EventStream(Protocol):
    def __iter__(self) -> Iterator[Event | MalformedEvent]: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Change(Generic[R]):
    """What a `cas_update` change makes of the ledger it was given."""

    labels: Mapping[str, str] | None  # the ledger's new labels; None: leave it as it is
    result: R  # what the caller wanted to know, from the read it won on


class SwarmReader(Protocol):
    api_calls: int  # every Engine API request made, for "constant calls per scan"
    malformed: list[str]  # objects skipped because they could not be read; drained by observe
    # the engine and API version last negotiated (no request; None until the first)
    speaking: Speaking | None

    def speaks(self) -> Speaking:
        """Negotiate the API version if not known yet, or if the engine may have been
        replaced since (it went away, refused our version, or says another version):
        the newest both sides support. UnsupportedEngine when they share none."""
        ...

    def info(self) -> SwarmInfo: ...

    def nodes(self) -> tuple[Node, ...]: ...

    def services(self) -> tuple[Service, ...]: ...

    def tasks(self) -> tuple[Task, ...]: ...

    def networks(self) -> tuple[Network, ...]: ...

    def configs(self) -> tuple[Stored, ...]:
        """Config objects' metadata (the ledger among them)."""
        ...

    def secrets(self) -> tuple[Stored, ...]:
        """Secret objects' metadata; the engine never returns a secret's content."""
        ...

    def events(self, since_nano: int | None) -> EventStream:
        """Service, node and container events from `since_nano` on (None: from now), decoded:
        a line that is not an event comes as a MalformedEvent, and the stream goes on."""
        ...

    def task_logs(self, task_id: str, tail: int) -> str:
        """The last `tail` lines (at most LOG_LINES) of a task's container log (stdout and
        stderr), made safe to show: at most mapping.LOG_BYTES, control characters dropped
        (`mapping.log_text`). One request, never retried: a slow or gone node costs one
        timeout, not a scan."""
        ...


class ServiceWriter(Protocol):
    def force_update(self, service_id: str, version: int) -> None:
        """Bump TaskTemplate.ForceUpdate. Raises Conflict if the service is not at `version`."""
        ...

    def rollback(self, service_id: str, version: int) -> None:
        """Roll back to PreviousSpec (`rollback=previous`), compare-and-swap on `version`."""
        ...

    def resume_update(self, service_id: str, version: int) -> None:
        """Post the service's own spec again (`docker service update SVC`): a paused update
        carries on. Compare-and-swap on `version`."""
        ...


class NodeWriter(Protocol):
    def remove_node(self, node_id: str, version: int) -> None:
        """Remove a worker's node entry as `docker node rm` does, never forced (the engine
        itself refuses a node that is not down). Conflict if the node is no longer at
        `version`; NotFound if it is gone; EngineError, before any write, if it is a manager
        (a raft member: never removed here), or when the engine refuses."""
        ...


class LedgerStore(Protocol):
    def read_ledger(self, name: str) -> LedgerDoc | None: ...

    def write_ledger(self, name: str, doc: LedgerDoc | None, labels: Mapping[str, str]) -> None:
        """Create (doc None) or replace the labels of the ledger; Conflict if it moved on."""
        ...

    def cas_update(self, name: str, change: Callable[[LedgerDoc | None], Change[R]]) -> R:
        """Read the ledger, `change` it, write it by compare-and-swap on the version read; when
        another writer got there first, read and change again (`cas.ATTEMPTS` in all, then
        Conflict). -> the result of the change that was written (or asked for no write)."""
        ...


class ObjectStore(Protocol):
    """The config and secret objects, and the services whose specs refer to them."""

    def services(self) -> tuple[Service, ...]: ...

    def configs(self) -> tuple[Stored, ...]: ...

    def secrets(self) -> tuple[Stored, ...]: ...

    def service_spec(self, service: str) -> ServiceSpec:
        """One service by id or name: its raw Spec and Version.Index; NotFound if none."""
        ...

    def update_service_spec(
        self, service_id: str, version: int, spec: Mapping[str, Any]
    ) -> tuple[str, ...]:
        """Post `spec` as the service's spec (an update that rolls by the service's own update
        config), compare-and-swap on `version`: Conflict if the service moved on. -> the
        engine's warnings."""
        ...

    def create_stored(self, kind: str, name: str, data: bytes, labels: Mapping[str, str]) -> str:
        """Create a config or secret (kind "config" | "secret") -> its id; Conflict if the
        name is taken."""
        ...

    def remove_stored(self, kind: str, object_id: str) -> None:
        """Remove a config or secret; NotFound if it is gone, EngineError (400) if a
        service's spec uses it (the engine does not look at PreviousSpecs)."""
        ...


class NodeLocal(Protocol):
    """What this node's engine runs: answers on workers too."""

    def info(self) -> SwarmInfo:
        """Which node this engine is (`node_id`)."""
        ...

    def local_containers(self) -> tuple[LocalContainer, ...]:
        """Containers of swarm tasks on this node, running or not: one list call."""
        ...

    def sandbox(self, container_id: str) -> str:
        """The network namespace file of a container (NetworkSettings.SandboxKey)."""
        ...

    def container_detail(self, container_id: str) -> ContainerDetail:
        """The container inspected, with its image's labels (two requests)."""
        ...

    def stop_container(self, container_id: str, timeout: float) -> None:
        """Stop it the way its owner would: its own stop signal, then `timeout` seconds."""
        ...

    def remove_container(self, container_id: str, *, force: bool = True) -> None:
        """Remove a container: forced (a task's, retired: swarm then replaces its task), or
        not (a prune's: the engine refuses one that runs, Conflict). NotFound if gone."""
        ...

    # --- what a prune reads and removes (disk-pressure) ------------------------------------

    def images(self) -> tuple[Image, ...]:
        """The images this engine holds (`docker image ls`): one list call."""
        ...

    def all_containers(self) -> tuple[EngineContainer, ...]:
        """Every container, swarm's or not, running or not, with its log (driver, max-size,
        LogPath): one list call and one inspect each; one gone in between is left out."""
        ...

    def remove_image(self, ref: str) -> None:
        """Remove one reference to an image (a tag, or the image's ID), never forced, as
        `docker image rm` does: the image goes with its last reference. Conflict if a
        container uses it (or, by ID, several repositories name it); NotFound if gone."""
        ...

    def prune_build_cache(self) -> int:
        """`docker builder prune` (POST /build/prune): the bytes the engine says it reclaimed.
        NotFound when the engine has no builder to prune."""
        ...


class Engine(SwarmReader, ServiceWriter, NodeWriter, LedgerStore, ObjectStore, NodeLocal, Protocol):
    """Every role: what a process builds once (`App`) and hands out by role."""

    def close(self) -> None: ...
