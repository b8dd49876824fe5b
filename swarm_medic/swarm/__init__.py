"""The swarm boundary: the only package that talks to the Docker Engine.

`Engine` is the interface the rest of swarm-medic uses. `swarm.engine.DockerEngine` implements
it over the Docker SDK (and is the only module that imports `docker`); `swarm.fake.FakeEngine`
implements it in memory for unit tests and benchmarks. `tests/contract/` runs the same tests
over both.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from swarm_medic.core.apiversion import Speaking
from swarm_medic.core.model import (
    ContainerDetail,
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


class EventStream(Protocol):
    def __iter__(self) -> Iterator[Any]: ...

    def close(self) -> None: ...


class Engine(Protocol):
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
        """Service, node and container events from `since_nano` on (None: from now)."""
        ...

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

    # --- rollout: one service's raw spec, config and secret objects --------------------------

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

    def task_logs(self, task_id: str, tail: int) -> str:
        """The last `tail` lines of a task's container log (stdout and stderr), made safe to
        show: at most mapping.LOG_BYTES, control characters dropped (`mapping.log_text`).
        One request, never retried: a slow or gone node costs one timeout, not a scan."""
        ...

    def read_ledger(self, name: str) -> LedgerDoc | None: ...

    def write_ledger(self, name: str, doc: LedgerDoc | None, labels: Mapping[str, str]) -> None:
        """Create (doc None) or replace the labels of the ledger; Conflict if it moved on."""
        ...

    # --- node-local: what this node's engine runs (answers on workers too) -----------------

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

    def remove_container(self, container_id: str) -> None:
        """Force-remove a container (swarm then replaces its task)."""
        ...

    def close(self) -> None: ...
