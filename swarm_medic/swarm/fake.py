"""An in-memory Engine for unit tests and benchmarks.

It stores Engine-API-shaped dictionaries and answers the list calls (nodes, services, tasks)
with their JSON bytes, decoded by the same `wire` path as the real engine (`info` and the
local containers go through `mapping` as dicts), so the contract tests in tests/contract/ hold
for both and the benchmark measures the decoding a real scan does. It models what the
pipeline relies on: Version.Index compare-and-swap on services and the ledger, rollback to
PreviousSpec, the `since` replay of events, and injected engine failures. It does not model
scheduling: tests move tasks between states themselves (`set_task_state`).
"""

from __future__ import annotations

import copy
import itertools
import queue
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec

from swarm_medic.core import apiversion
from swarm_medic.core.apiversion import Speaking
from swarm_medic.core.errors import Conflict, EngineError, EngineUnavailable, NotAManager, NotFound
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
from swarm_medic.core.versions import MAX_BYTES, ServiceSpec
from swarm_medic.swarm import mapping, wire

Json = dict[str, Any]
_STOP = object()
_STORED_NAME = re.compile(r"^[a-zA-Z0-9]+(?:[a-zA-Z0-9-_.]*[a-zA-Z0-9])?$")  # swarmkit's rule


def _ts(epoch: float) -> str:
    whole = int(epoch)
    nanos = round((epoch - whole) * 1e9)
    base = datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{nanos:09d}Z"


def _frame(payload: bytes, stream: int = 1) -> bytes:
    """One frame of a non-TTY container's log stream (stream 1: stdout, 2: stderr)."""
    return bytes((stream, 0, 0, 0)) + len(payload).to_bytes(4, "big") + payload


class _Stream:
    def __init__(self, backlog: list[Json], live: queue.Queue[object]) -> None:
        self._backlog = backlog
        self._live = live

    def __iter__(self) -> Iterator[Any]:
        yield from self._backlog
        while True:
            item = self._live.get()
            if item is _STOP:
                return
            yield item

    def close(self) -> None:
        self._live.put(_STOP)


class FakeEngine:
    def __init__(self, *, node_id: str = "node-1", now: float = 1_700_000_000.0) -> None:
        self.api_calls = 0
        self.now = now
        self.node_id = node_id
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._nodes: dict[str, Json] = {}
        self._services: dict[str, Json] = {}
        self._tasks: dict[str, Json] = {}
        self._configs: dict[str, Json] = {}  # by name, the ledger among them
        self._secrets: dict[str, Json] = {}  # by name
        self._networks: dict[str, Json] = {}
        self._events: list[Json] = []
        self._streams: list[queue.Queue[object]] = []
        self.failures: list[Exception] = []  # raised, one per call, before anything else
        self.manager = True
        self.writes: list[tuple[str, str, int]] = []
        self.malformed: list[str] = []
        self._containers: dict[str, Json] = {}
        self.stopped: list[tuple[str, float]] = []  # (container id, timeout)
        self.removed: list[str] = []  # (verb, service id, version)
        self._memos: dict[str, wire.Memo[Any]] = {}
        self._logs: dict[str, tuple[list[bytes], bool]] = {}  # task id -> (lines, tty)
        self.log_reads: list[tuple[str, int]] = []  # (task id, tail) asked
        self._frozen: dict[str, bytes] | None = None
        self.data: dict[str, bytes] = {}  # config / secret id -> its content (tests read it)
        # run one per update_service_spec call, before its compare-and-swap: another writer
        # (swarm's updater writing UpdateStatus, an operator) getting there first
        self.before_update: list[Callable[[], None]] = []
        # What GET /version answers; `upgrade()` replaces the engine under a running client.
        self.version_answer: Json = {
            "Version": "28.5.2-fake",
            "ApiVersion": "1.51",
            "MinAPIVersion": "1.24",
        }
        self.speaking: Speaking | None = None
        self._stale = True

    def freeze(self, answers: Mapping[str, bytes] | None = None) -> dict[str, bytes]:
        """Encode the node, service and task lists once and answer with those bytes until the
        next change made through this interface (or `thaw()`); returns them.

        For benchmarks: producing the JSON is dockerd's work, not the client's, so it should
        not be counted in the client's scan. `answers` (from another fake's freeze()) serves a
        world this fake does not hold as dicts. Direct edits of the stored dicts are not seen
        while frozen.
        """
        self._frozen = (
            dict(answers)
            if answers is not None
            else {
                "node": self._encode(self._nodes),
                "service": self._encode(self._services),
                "task": self._encode(self._tasks),
            }
        )
        return dict(self._frozen)

    def thaw(self) -> None:
        self._frozen = None

    @staticmethod
    def _encode(store: dict[str, Json]) -> bytes:
        return msgspec.json.encode(list(store.values()))

    def _answer(self, store: dict[str, Json], kind: wire.Kind[Any, Any]) -> tuple[Any, ...]:
        body = self._frozen[kind.name] if self._frozen is not None else self._encode(store)
        memo = self._memos.setdefault(kind.name, wire.Memo())
        return wire.decode_list(body, kind, self.malformed, memo)

    # --- building a world ------------------------------------------------------------------

    def _next_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):06d}"

    def add_node(
        self,
        hostname: str,
        *,
        node_id: str | None = None,
        role: str = "manager",
        state: str = "ready",
        availability: str = "active",
        labels: Mapping[str, str] | None = None,
        leader: bool = False,
        nano_cpus: int = 2_000_000_000,
        memory_bytes: int = 8 << 30,
    ) -> str:
        nid = node_id or self._next_id("node")
        self._frozen = None
        obj: Json = {
            "ID": nid,
            "Version": {"Index": 1},
            "Spec": {"Role": role, "Availability": availability, "Labels": dict(labels or {})},
            "Description": {
                "Hostname": hostname,
                "Platform": {"OS": "linux", "Architecture": "x86_64"},
                "Resources": {"NanoCPUs": nano_cpus, "MemoryBytes": memory_bytes},
                "Engine": {"Labels": {}},
            },
            "Status": {"State": state, "Addr": "127.0.0.1"},
        }
        if role == "manager":
            obj["ManagerStatus"] = {"Leader": leader, "Reachability": "reachable"}
        self._nodes[nid] = obj
        return nid

    def add_service(
        self,
        name: str,
        *,
        replicas: int | None = 1,
        labels: Mapping[str, str] | None = None,
        constraints: tuple[str, ...] = (),
        image: str = "medic/busybox:test",
        update_status: Mapping[str, str] | None = None,
        previous_spec: bool = False,
        spec_extra: Mapping[str, Any] | None = None,
        template_extra: Mapping[str, Any] | None = None,
        endpoint: Mapping[str, Any] | None = None,
    ) -> str:
        """`spec_extra` / `template_extra` are merged into Spec / Spec.TaskTemplate as the
        engine would list them (e.g. {"UpdateConfig": {...}}, {"Networks": [...]});
        `endpoint` is the service's Endpoint (ports the engine published, VIPs)."""
        sid = self._next_id("svc")
        self._frozen = None
        spec: Json = {
            "Name": name,
            "Labels": dict(labels or {}),
            "TaskTemplate": {
                "ContainerSpec": {"Image": image},
                "Placement": {"Constraints": list(constraints)},
                "ForceUpdate": 0,
            },
            "Mode": {"Replicated": {"Replicas": replicas}}
            if replicas is not None
            else {"Global": {}},
        }
        spec["TaskTemplate"].update(copy.deepcopy(dict(template_extra or {})))
        spec.update(copy.deepcopy(dict(spec_extra or {})))
        obj: Json = {"ID": sid, "Version": {"Index": 10}, "Spec": spec, "UpdatedAt": _ts(self.now)}
        if previous_spec:
            obj["PreviousSpec"] = copy.deepcopy(spec)
        if endpoint:
            obj["Endpoint"] = copy.deepcopy(dict(endpoint))
        if update_status:
            obj["UpdateStatus"] = dict(update_status)
        self._services[sid] = obj
        self._service_event("create", sid)
        return sid

    def add_network(
        self, name: str, *, subnet: str = "10.0.9.0/24", driver: str = "overlay"
    ) -> str:
        nid = self._next_id("net")
        self._networks[nid] = {
            "Name": name,
            "Id": nid,
            "Driver": driver,
            "Scope": "swarm" if driver == "overlay" else "local",
            "IPAM": {"Driver": "default", "Config": [{"Subnet": subnet}] if subnet else []},
            "Ingress": False,
            "Labels": {},
        }
        return nid

    def add_stored(
        self,
        kind: str,
        name: str,
        *,
        labels: Mapping[str, str] | None = None,
        created: float | None = None,
        data: bytes = b"x",
    ) -> str:
        """A config or secret object (kind "config" | "secret"), as `docker config create`."""
        store = self._configs if kind == "config" else self._secrets
        if name in store:
            raise Conflict(f"{kind} {name} already exists", status=409)
        oid = self._next_id("cfg" if kind == "config" else "sec")
        store[name] = {
            "ID": oid,
            "Version": {"Index": 1},
            "CreatedAt": _ts(self.now if created is None else created),
            "Spec": {"Name": name, "Labels": dict(labels or {})},
        }
        self.data[oid] = bytes(data)
        return oid

    def touch_service(self, service_id: str) -> None:
        """Another writer changed the service (its Version.Index moves on), as swarm's updater
        does when it writes UpdateStatus right after an update."""
        self._frozen = None
        self._services[service_id]["Version"]["Index"] += 1

    def _service_event(self, action: str, sid: str) -> None:
        # The engine publishes these to managers; the watcher relies on them for early scans.
        nano = int(self.now * 1e9) + next(self._ids)
        name = self._services[sid]["Spec"]["Name"]
        self.emit(
            {
                "Type": "service",
                "Action": action,
                "scope": "swarm",
                "time": nano // 10**9,
                "timeNano": nano,
                "Actor": {"ID": sid, "Attributes": {"name": name}},
            }
        )

    def add_task(
        self,
        service_id: str,
        *,
        state: str = "running",
        desired: str = "running",
        node_id: str = "",
        since: float | None = None,
        message: str = "",
        err: str = "",
        slot: int | None = 1,
        exit_code: int | None = None,
        created: float | None = None,
    ) -> str:
        """`since`: when the task entered `state` (and was created, unless `created` says);
        `exit_code`: its container's, once it ended."""
        tid = self._next_id("task")
        self._frozen = None
        when = _ts(self.now if since is None else since)
        container: Json = {"ContainerID": f"ctr-{tid}"}
        if exit_code is not None:
            container["ExitCode"] = exit_code
        self._tasks[tid] = {
            "ID": tid,
            "ServiceID": service_id,
            "Slot": slot,
            "NodeID": node_id,
            "CreatedAt": when if created is None else _ts(created),
            "DesiredState": desired,
            "Status": {
                "State": state,
                "Timestamp": when,
                "Message": message,
                "Err": err,
                "ContainerStatus": container,
            },
        }
        return tid

    def set_task_state(self, task_id: str, state: str, *, desired: str | None = None) -> None:
        self._frozen = None
        task = self._tasks[task_id]
        task["Status"]["State"] = state
        task["Status"]["Timestamp"] = _ts(self.now)
        if desired is not None:
            task["DesiredState"] = desired

    def set_task_logs(self, task_id: str, text: str | bytes, *, tty: bool = False) -> None:
        """The task's container log; the engine sends it framed, one frame per line on
        stdout (a non-TTY container's multiplexed stream), or raw with `tty`."""
        raw = text.encode() if isinstance(text, str) else text
        self._logs[task_id] = (raw.splitlines(keepends=True), tty)

    def pause_update(
        self, service_id: str, *, task_state: str = "failed", started: float | None = None
    ) -> str:
        """The service's update paused on a new task that ended in `task_state` (failed: the
        new spec failed by itself; shutdown: the orchestrator stopped it). -> the task id.
        `started`: when the update started (UpdateStatus.StartedAt; unset: not said)."""
        failed = task_state == "failed"
        tid = self.add_task(
            service_id,
            state=task_state,
            desired="shutdown",
            node_id=self.node_id,
            err="task: non-zero exit (3)" if failed else "",
            message="started" if failed else "shutdown",
        )
        self.set_update_status(
            service_id,
            "paused",
            f"update paused due to failure or early termination of task {tid}",
            started=started,
        )
        return tid

    def set_update_status(
        self, service_id: str, state: str, message: str = "", *, started: float | None = None
    ) -> None:
        self._frozen = None
        status: Json = {"State": state, "Message": message}
        if started is not None:
            status["StartedAt"] = _ts(started)
        self._services[service_id]["UpdateStatus"] = status

    def emit(self, event: Json) -> None:
        """Publish a raw event (malformed ones too) to the backlog and every open stream."""
        self._events.append(event)
        for q in self._streams:
            q.put(event)

    def drop_streams(self) -> None:
        """Simulate the engine going away: every open event stream ends."""
        for q in self._streams:
            q.put(_STOP)
        self._streams.clear()

    def raw_service(self, service_id: str) -> Json:
        return copy.deepcopy(self._services[service_id])

    # --- the Engine interface ---------------------------------------------------------------

    def upgrade(self, version_answer: Json) -> None:
        """dockerd restarted at another version (an `apt upgrade`): streams end, and the
        next request finds the new engine."""
        self.version_answer = dict(version_answer)
        self.drop_streams()
        self._stale = True

    def speaks(self) -> Speaking:
        if self._stale or self.speaking is None:
            self.speaking = apiversion.choose(self.version_answer, "the fake engine")
            self._stale = False
        return self.speaking

    def _enter(self, manager_only: bool = True) -> None:
        self.api_calls += 1
        if self.failures:
            raise self.failures.pop(0)
        self.speaks()  # as the real client: negotiated before the first request, not counted
        if manager_only and not self.manager:
            raise NotAManager("this engine is not a swarm manager", status=503)

    def info(self) -> SwarmInfo:
        self._enter(manager_only=False)
        return mapping.info_from_api(
            {
                "ServerVersion": str(self.version_answer.get("Version") or ""),
                "Swarm": {
                    "NodeID": self.node_id,
                    "NodeAddr": "127.0.0.1",
                    "LocalNodeState": "active",
                    "ControlAvailable": self.manager,
                },
            }
        )

    def nodes(self) -> tuple[Node, ...]:
        self._enter()
        return self._answer(self._nodes, wire.NODES)

    def services(self) -> tuple[Service, ...]:
        self._enter()
        return self._answer(self._services, wire.SERVICES)

    def tasks(self) -> tuple[Task, ...]:
        self._enter()
        return self._answer(self._tasks, wire.TASKS)

    def networks(self) -> tuple[Network, ...]:
        self._enter()
        return mapping.map_each(
            copy.deepcopy(list(self._networks.values())),
            mapping.network_from_api,
            "network",
            self.malformed,
        )

    def configs(self) -> tuple[Stored, ...]:
        self._enter()
        return mapping.map_each(
            copy.deepcopy(list(self._configs.values())), mapping.CONFIG, "config", self.malformed
        )

    def secrets(self) -> tuple[Stored, ...]:
        self._enter()
        return mapping.map_each(
            copy.deepcopy(list(self._secrets.values())), mapping.SECRET, "secret", self.malformed
        )

    def events(self, since_nano: int | None) -> _Stream:
        self._enter(manager_only=False)
        backlog = (
            []
            if since_nano is None
            else [
                e
                for e in self._events
                if isinstance(e, dict)
                and isinstance(e.get("timeNano"), int)
                and e["timeNano"] >= since_nano
            ]
        )
        q: queue.Queue[object] = queue.Queue()
        self._streams.append(q)
        return _Stream(backlog, q)

    def _service_for_write(self, service_id: str, version: int, verb: str) -> Json:
        self._enter()
        svc = self._services.get(service_id)
        if svc is None:
            raise NotFound(f"{verb} service {service_id}: not found", status=404)
        if svc["Version"]["Index"] != version:
            raise Conflict(
                f"{verb} service {service_id}: update out of sequence "
                f"(at {svc['Version']['Index']}, asked {version})"
            )
        self.writes.append((verb, service_id, version))
        self._frozen = None
        return svc

    def force_update(self, service_id: str, version: int) -> None:
        with self._lock:
            svc = self._service_for_write(service_id, version, "force_update")
            svc["PreviousSpec"] = copy.deepcopy(svc["Spec"])
            svc["Spec"]["TaskTemplate"]["ForceUpdate"] += 1
            svc["Version"]["Index"] += 1
            svc["UpdateStatus"] = {"State": "updating", "Message": "update in progress"}
            self._service_event("update", service_id)

    def resume_update(self, service_id: str, version: int) -> None:
        with self._lock:
            svc = self._service_for_write(service_id, version, "resume_update")
            svc["PreviousSpec"] = copy.deepcopy(svc["Spec"])  # as swarmkit's UpdateService does
            svc["Version"]["Index"] += 1
            svc["UpdateStatus"] = {"State": "updating", "Message": "update in progress"}
            self._service_event("update", service_id)

    def rollback(self, service_id: str, version: int) -> None:
        with self._lock:
            svc = self._service_for_write(service_id, version, "rollback")
            if "PreviousSpec" not in svc:
                raise EngineError(
                    f"rollback service {service_id}: service does not have a previous spec",
                    status=400,
                )
            svc["Spec"], svc["PreviousSpec"] = svc["PreviousSpec"], svc["Spec"]
            svc["Version"]["Index"] += 1
            svc["UpdateStatus"] = {
                "State": "rollback_started",
                "Message": "manually requested rollback",
            }
            self._service_event("update", service_id)

    # --- rollout ----------------------------------------------------------------------------

    def service_spec(self, service: str) -> ServiceSpec:
        self._enter()
        svc = self._services.get(service) or next(
            (s for s in self._services.values() if s["Spec"]["Name"] == service), None
        )
        if svc is None:
            raise NotFound(f"inspect service {service}: service {service} not found", status=404)
        return ServiceSpec(
            svc["ID"], svc["Spec"]["Name"], svc["Version"]["Index"], copy.deepcopy(svc["Spec"])
        )

    def _check_refs(self, spec: Mapping[str, Any]) -> None:
        # swarmkit's controlapi refuses a spec naming a config or secret that does not exist
        container = spec.get("TaskTemplate", {}).get("ContainerSpec", {})
        for kind, key, store in (
            ("config", "Configs", self._configs),
            ("secret", "Secrets", self._secrets),
        ):
            ids = {o["ID"] for o in store.values()}
            for ref in container.get(key) or ():
                if ref.get(f"{kind.title()}ID") not in ids:
                    raise EngineError(
                        f"update service: {kind} not found: {ref.get(f'{kind.title()}Name')}",
                        status=400,
                    )

    def update_service_spec(
        self, service_id: str, version: int, spec: Mapping[str, Any]
    ) -> tuple[str, ...]:
        if self.before_update:
            self.before_update.pop(0)()
        with self._lock:
            svc = self._service_for_write(service_id, version, "update")
            self._check_refs(spec)
            svc["PreviousSpec"] = copy.deepcopy(svc["Spec"])
            svc["Spec"] = copy.deepcopy(dict(spec))
            svc["Version"]["Index"] += 1
            svc["UpdateStatus"] = {"State": "updating", "Message": "update in progress"}
            self._service_event("update", service_id)
        return ()

    def create_stored(self, kind: str, name: str, data: bytes, labels: Mapping[str, str]) -> str:
        with self._lock:
            self._enter()
            if not _STORED_NAME.match(name) or len(name) > 64:
                raise EngineError(f"create {kind}: invalid name {name!r}", status=400)
            if not 0 < len(data) < MAX_BYTES:
                raise EngineError(
                    f"create {kind}: data must be larger than 0 and less than {MAX_BYTES} bytes",
                    status=400,
                )
            return self.add_stored(kind, name, labels=labels, data=data)

    def remove_stored(self, kind: str, object_id: str) -> None:
        with self._lock:
            self._enter()
            store = self._configs if kind == "config" else self._secrets
            name = next((n for n, o in store.items() if o["ID"] == object_id), None)
            if name is None:
                raise NotFound(f"remove {kind} {object_id}: not found", status=404)
            key = "Configs" if kind == "config" else "Secrets"
            users = [
                s["Spec"]["Name"]
                for s in self._services.values()
                if any(
                    r.get(f"{kind.title()}ID") == object_id
                    for r in s["Spec"]["TaskTemplate"].get("ContainerSpec", {}).get(key) or ()
                )
            ]
            if users:  # as swarmkit: a spec's references protect, a PreviousSpec's do not
                raise EngineError(
                    f"remove {kind} {object_id}: {kind} '{name}' is in use by the following "
                    f"service: {', '.join(users)}",
                    status=400,
                )
            del store[name]
            self.data.pop(object_id, None)

    def task_logs(self, task_id: str, tail: int) -> str:
        self._enter()
        self.log_reads.append((task_id, tail))
        if task_id not in self._tasks:
            raise NotFound(f"read the log of task {task_id[:12]}: no such task", status=404)
        lines, tty = self._logs.get(task_id, ([], False))
        last = lines[-max(1, min(tail, mapping.LOG_LINES)) :]
        body = b"".join(last if tty else (_frame(line) for line in last))
        return mapping.log_text(body[: mapping.LOG_READ_MAX], tail)

    def read_ledger(self, name: str) -> LedgerDoc | None:
        self._enter()
        cfg = self._configs.get(name)
        if cfg is None:
            return None
        return LedgerDoc(
            id=cfg["ID"], version=cfg["Version"]["Index"], labels=dict(cfg["Spec"]["Labels"])
        )

    def write_ledger(self, name: str, doc: LedgerDoc | None, labels: Mapping[str, str]) -> None:
        with self._lock:
            self._enter()
            cfg = self._configs.get(name)
            if doc is None:
                if cfg is not None:
                    raise Conflict(f"write ledger {name}: created concurrently", status=409)
                self._configs[name] = {
                    "ID": self._next_id("cfg"),
                    "Version": {"Index": 1},
                    "Spec": {"Name": name, "Labels": dict(labels)},
                }
                return
            if cfg is None or cfg["Version"]["Index"] != doc.version:
                raise Conflict(f"write ledger {name}: changed since it was read")
            cfg["Spec"]["Labels"] = dict(labels)
            cfg["Version"]["Index"] += 1

    def add_container(
        self,
        task_id: str,
        *,
        state: str = "running",
        networks: tuple[tuple[str, str], ...] = (),
        sandbox: str = "",
        name: str | None = None,
        image_labels: Mapping[str, str] | None = None,
        stop_timeout: int | None = None,
    ) -> str:
        """A container of `task_id` on this engine's node (the node-local view). Named as
        swarm names task containers unless `name` says otherwise; `image_labels` imitate an
        image made by `docker commit` of a task container."""
        task = self._tasks.get(task_id, {"ServiceID": "", "NodeID": self.node_id})
        cid = f"ctr{next(self._ids):09d}"
        svc = self._services.get(task["ServiceID"], {"Spec": {"Name": ""}})
        slot = task.get("Slot") or task.get("NodeID") or self.node_id
        name = name or f"{svc['Spec']['Name']}.{slot}.{task_id}"
        self._containers[cid] = {
            "Id": cid,
            "Names": [f"/{name}"],
            "State": state,
            "Labels": {
                mapping.TASK_LABEL: task_id,
                "com.docker.swarm.service.id": task["ServiceID"],
                "com.docker.swarm.service.name": svc["Spec"]["Name"],
                "com.docker.swarm.node.id": task.get("NodeID") or self.node_id,
                "com.docker.swarm.task.name": name,
            },
            "NetworkSettings": {
                "Networks": {
                    f"net{i}": {"NetworkID": n, "IPAddress": ip}
                    for i, (n, ip) in enumerate(networks)
                }
            },
            "SandboxKey": sandbox,
            "ImageLabels": dict(image_labels or {}),
            "StopTimeout": stop_timeout,
        }
        return cid

    def local_containers(self) -> tuple[LocalContainer, ...]:
        self._enter(manager_only=False)
        return mapping.map_each(
            list(self._containers.values()), mapping.container_from_api, "container", self.malformed
        )

    def sandbox(self, container_id: str) -> str:
        self._enter(manager_only=False)
        c = self._containers.get(container_id)
        if c is None or not c["SandboxKey"]:
            raise NotFound(f"container {container_id} has no network sandbox", status=404)
        return str(c["SandboxKey"])

    def container_detail(self, container_id: str) -> ContainerDetail:
        self._enter(manager_only=False)
        c = self._containers.get(container_id)
        if c is None:
            raise NotFound(f"inspect container {container_id}: no such container", status=404)
        inspected = {
            "Id": c["Id"],
            "Name": c["Names"][0],
            "Config": {"Labels": c["Labels"], "StopTimeout": c["StopTimeout"]},
        }
        return mapping.container_detail_from_api(
            inspected, {"Config": {"Labels": c["ImageLabels"]}}
        )

    def stop_container(self, container_id: str, timeout: float) -> None:
        self._enter(manager_only=False)
        c = self._containers.get(container_id)
        if c is None:
            raise NotFound(f"stop container {container_id}: no such container", status=404)
        c["State"] = "exited"
        self.stopped.append((container_id, timeout))

    def remove_container(self, container_id: str) -> None:
        self._enter(manager_only=False)
        if self._containers.pop(container_id, None) is None:
            raise NotFound(f"remove container {container_id}: no such container", status=404)
        self.removed.append(container_id)

    def close(self) -> None:
        self.drop_streams()

    def unavailable(self, n: int = 1) -> None:
        """The next `n` calls fail as if dockerd were down."""
        self.failures.extend(EngineUnavailable("fake engine is down") for _ in range(n))
