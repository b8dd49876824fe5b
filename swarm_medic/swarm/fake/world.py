"""The fake's world: the Engine-API-shaped objects it stores, and how a test builds them.

`World` holds what every role answers from (nodes, services, tasks, configs and secrets, the
events published, a node's containers) as the dictionaries the engine would list, and the
calls that build and change them as the swarm would (`add_service`, `pause_update`,
`set_task_state`, `emit`, `upgrade`...). `_enter` is what every request goes through: it
counts the call, raises an injected failure, negotiates the version, refuses a non-manager.
"""

from __future__ import annotations

import copy
import itertools
import queue
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec

from swarm_medic.core import apiversion
from swarm_medic.core.apiversion import Speaking
from swarm_medic.core.errors import Conflict, EngineUnavailable, NotAManager, NotFound
from swarm_medic.swarm import wire

Json = dict[str, Any]
STOP = object()  # the end of an event stream, as the engine going away ends it


def ts(epoch: float) -> str:
    """Epoch seconds -> the engine's own time format (RFC 3339, nanoseconds, UTC)."""
    whole = int(epoch)
    nanos = round((epoch - whole) * 1e9)
    base = datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{nanos:09d}Z"


class World:
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
        self.writes: list[tuple[str, str, int]] = []  # (verb, service id, version) written
        self.malformed: list[str] = []
        self._containers: dict[str, Json] = {}
        self.stopped: list[tuple[str, float]] = []  # (container id, timeout)
        self.removed: list[str] = []  # container ids
        # what a prune sees: the node's images as GET /images/json lists them, by id
        self._images: dict[str, Json] = {}
        self.image_removals: list[str] = []  # references removed (tags untagged, ids deleted)
        self.builder = True  # False: an engine without a builder (no build cache to prune)
        self.build_cache = 0  # bytes the next build-cache prune reclaims
        self.build_prunes = 0
        self._memos: dict[str, wire.Memo[Any]] = {}
        self._logs: dict[str, tuple[list[bytes], bool]] = {}  # task id -> (lines, tty)
        self.log_reads: list[tuple[str, int]] = []  # (task id, tail) asked
        self.slept: list[float] = []  # what a retry policy asked to wait: the fake never does
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
        # What /info says as SystemTime (None: nothing, as the fake's clock is a test's own)
        self.system_time: float | None = None

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

    def _answer(self, store: dict[str, Json], kind: wire.Kind[Any]) -> tuple[Any, ...]:
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
        addr: str = "127.0.0.1",
        created: float | None = None,
        updated: float | None = None,
    ) -> str:
        """`created`: when it joined; `updated`: when its object last changed (default: now)."""
        nid = node_id or self._next_id("node")
        self._frozen = None
        joined = self.now if created is None else created
        obj: Json = {
            "ID": nid,
            "Version": {"Index": 1},
            "CreatedAt": ts(joined),
            "UpdatedAt": ts(joined if updated is None else updated),
            "Spec": {"Role": role, "Availability": availability, "Labels": dict(labels or {})},
            "Description": {
                "Hostname": hostname,
                "Platform": {"OS": "linux", "Architecture": "x86_64"},
                "Resources": {"NanoCPUs": nano_cpus, "MemoryBytes": memory_bytes},
                "Engine": {"Labels": {}},
            },
            "Status": {"State": state, "Addr": addr},
        }
        if role == "manager":
            obj["ManagerStatus"] = {"Leader": leader, "Reachability": "reachable"}
        self._nodes[nid] = obj
        return nid

    def set_node_state(self, node_id: str, state: str, message: str = "") -> None:
        """The node's Status.State changes, as the dispatcher writes it (a heartbeat missed:
        "down", "heartbeat failure"): its version and UpdatedAt move on."""
        self._frozen = None
        node = self._nodes[node_id]
        node["Version"]["Index"] += 1
        node["UpdatedAt"] = ts(self.now)
        node["Status"]["State"] = state
        node["Status"]["Message"] = message

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
        obj: Json = {"ID": sid, "Version": {"Index": 10}, "Spec": spec, "UpdatedAt": ts(self.now)}
        if previous_spec:
            obj["PreviousSpec"] = copy.deepcopy(spec)
        if endpoint:
            obj["Endpoint"] = copy.deepcopy(dict(endpoint))
        if update_status:
            obj["UpdateStatus"] = dict(update_status)
        self._services[sid] = obj
        self._service_event("create", sid)
        return sid

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
            "CreatedAt": ts(self.now if created is None else created),
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
        image: str = "",
    ) -> str:
        """`since`: when the task entered `state` (and was created, unless `created` says);
        `exit_code`: its container's, once it ended; `image`: the one it runs (default: its
        service's)."""
        tid = self._next_id("task")
        self._frozen = None
        when = ts(self.now if since is None else since)
        container: Json = {"ContainerID": f"ctr-{tid}"}
        svc = self._services.get(service_id)
        spec_image = svc["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"] if svc else ""
        if exit_code is not None:
            container["ExitCode"] = exit_code
        self._tasks[tid] = {
            "ID": tid,
            # as the engine writes it: ID, then Version, bumped at every change
            "Version": {"Index": 1},
            "ServiceID": service_id,
            "Slot": slot,
            "NodeID": node_id,
            "CreatedAt": when if created is None else ts(created),
            "DesiredState": desired,
            # the spec the task was made from: its service's image as it was then
            "Spec": {"ContainerSpec": {"Image": image or spec_image}},
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
        task["Version"]["Index"] += 1
        task["Status"]["State"] = state
        task["Status"]["Timestamp"] = ts(self.now)
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
            status["StartedAt"] = ts(started)
        self._services[service_id]["UpdateStatus"] = status

    def emit(self, event: Json) -> None:
        """Publish a raw event (malformed ones too) to the backlog and every open stream."""
        self._events.append(event)
        for q in self._streams:
            q.put(event)

    def drop_streams(self) -> None:
        """Simulate the engine going away: every open event stream ends."""
        for q in self._streams:
            q.put(STOP)
        self._streams.clear()

    def raw_service(self, service_id: str) -> Json:
        return copy.deepcopy(self._services[service_id])

    # --- the engine as a whole -----------------------------------------------------------

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

    def _service_for_write(self, service_id: str, version: int, verb: str) -> Json:
        """A write's request: the service, if it is still at `version` (compare-and-swap)."""
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

    def close(self) -> None:
        self.drop_streams()

    def unavailable(self, n: int = 1) -> None:
        """The next `n` calls fail as if dockerd were down."""
        self.failures.extend(EngineUnavailable("fake engine is down") for _ in range(n))
