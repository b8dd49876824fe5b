"""The real Engine: Docker SDK calls, mapped to the model, errors made readable.

The only module in swarm-medic that imports `docker`. Transient failures (connection refused,
timeouts, 5xx) are retried with tenacity; 4xx never are, nor a lost compare-and-swap (only the
ledger's `cas_update` goes again, and it reads and changes again first: `swarm.cas`). Sections
follow the roles of `swarm.Engine`.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, TypeVar

import docker
import docker.errors
import requests.exceptions
import tenacity
from docker.utils import kwargs_from_env

from swarm_medic.core import apiversion
from swarm_medic.core.apiversion import Speaking
from swarm_medic.core.errors import (
    ApiVersionRefused,
    Conflict,
    EngineError,
    EngineUnavailable,
    NotAManager,
    NotFound,
    SettingsError,
)
from swarm_medic.core.model import (
    ContainerDetail,
    EngineContainer,
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
from swarm_medic.swarm import Change, EventStream, R, cas, mapping, wire

T = TypeVar("T")

# The client is made at our oldest API version, which asks nothing of the engine, so the daemon
# starts while dockerd is still coming up; the version actually spoken is negotiated before the
# first request (`core.apiversion`) and again whenever the engine may have been replaced.
API_VERSION = apiversion.SUPPORTED_MIN
LEDGER_DATA = b"swarm-medic durable history: the state lives in this config's labels.\n"
# A task's log is read through the manager from the task's node, which may be down or slow:
# one attempt, this long at most per read, so a scan is never held longer than that.
LOG_TIMEOUT = 5.0


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, (EngineUnavailable, ApiVersionRefused)) or (
        isinstance(exc, EngineError)
        and not isinstance(exc, (Conflict, NotAManager, NotFound))
        and (exc.status or 0) >= 500
    )


def _api_error(exc: docker.errors.APIError, what: str) -> EngineError:
    """An answer of the Engine -> the error callers tell apart, its text kept."""
    status = exc.status_code
    text = str(exc.explanation or exc)
    if status == 400 and "client version" in text and ("too old" in text or "too new" in text):
        # The engine was replaced by one of another range (an upgrade under a running medic).
        return ApiVersionRefused(f"{what}: {text}", status=status)
    if "out of sequence" in text:
        return Conflict(f"{what}: the object changed since it was read ({text})", status=status)
    if status == 404:
        return NotFound(f"{what}: not found ({text})", status=status)
    if status == 503 and ("not a swarm manager" in text or "not part of a swarm" in text):
        return NotAManager(
            f"{what}: this engine is not a swarm manager; run swarm-medic against a "
            f"manager's socket to observe services ({text})",
            status=status,
        )
    if "does not have a leader" in text:
        # A short election says the same; a lost raft quorum says it until someone acts.
        return EngineError(
            f"{what}: the swarm has no leader: an election is under way or, if this lasts, "
            "the managers lost their raft quorum (fewer than a majority reachable); see "
            f"`swarm-medic runbooks manager-quorum` for the recovery steps ({text})",
            status=status,
        )
    return EngineError(f"{what}: engine answered {status}: {text}", status=status)


def translate(exc: Exception, what: str) -> EngineError:
    """Docker SDK / requests exceptions -> our errors, with a message a person understands."""
    if isinstance(exc, docker.errors.APIError):
        return _api_error(exc, what)
    if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
        return EngineUnavailable(
            f"{what}: cannot reach the Docker Engine ({type(exc).__name__}); is dockerd running "
            f"and is DOCKER_HOST right?"
        )
    if isinstance(exc, docker.errors.DockerException):
        return EngineUnavailable(f"{what}: {exc}")
    if isinstance(exc, RecursionError):
        # an answer the SDK decodes itself (an inspect before a write), nested past the
        # recursion limit by a faulty engine or a proxy: that request failed, nothing else
        return EngineError(f"{what}: the Engine's answer is nested too deeply to be read")
    raise exc


class DockerEngine:
    def __init__(
        self,
        base_url: str | None = None,
        *,
        timeout: float = 10.0,
        attempts: int = 4,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        kwargs: dict[str, Any] = kwargs_from_env()
        if base_url:
            kwargs["base_url"] = base_url
        try:
            self._api = docker.APIClient(version=API_VERSION, timeout=timeout, **kwargs)
        except docker.errors.DockerException as exc:
            where = kwargs.get("base_url") or "DOCKER_HOST"
            raise SettingsError(
                f"cannot use the Docker Engine address {where!r} (--docker-host / DOCKER_HOST, "
                f"DOCKER_TLS_VERIFY, DOCKER_CERT_PATH): {exc}"
            ) from exc
        self.malformed: list[str] = []
        # as the operator wrote it (the SDK's own base_url of a socket is "http+docker://...")
        self.base_url: str = str(kwargs.get("base_url") or "unix:///var/run/docker.sock")
        # The last version negotiated (kept while stale, for status pages and the "engine
        # changed" line) and whether it must be asked again before the next request.
        self.speaking: Speaking | None = None
        self._stale = True
        self._version_lock = threading.Lock()
        self.api_calls = 0
        self._memo_nodes: wire.Memo[Node] = wire.Memo()
        self._memo_services: wire.Memo[Service] = wire.Memo()
        self._memo_tasks: wire.Memo[Task] = wire.Memo()
        self._retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(max(1, attempts)),
            wait=tenacity.wait_exponential(multiplier=0.2, max=5.0) + tenacity.wait_random(0, 0.2),
            retry=tenacity.retry_if_exception(_is_transient),
            sleep=sleep,
            reraise=True,
        )
        self._cas = cas.retrying(sleep)

    # --- the API version: negotiated, and again after the engine went away -----------------

    def speaks(self) -> Speaking:
        """The engine's version and the API version spoken to it, asked (`GET /version`,
        unversioned) when not known or after the engine may have been replaced; retried
        while dockerd is still coming up."""
        with self._version_lock:
            if self._stale or self.speaking is None:
                self._retrying(lambda: self._negotiate("ask the engine its version"))
            assert self.speaking is not None  # noqa: S101 - _negotiate sets it or raises
            return self.speaking

    def _negotiate(self, what: str) -> None:
        self.api_calls += 1
        try:
            answer = self._api.version(api_version=False)
        except Exception as exc:
            raise translate(exc, what) from exc
        spoken = apiversion.choose(answer, f"the Docker Engine at {self.base_url}")
        self._api._version = spoken.api  # the SDK has no setter; every URL is built from it
        self.speaking, self._stale = spoken, False

    def _ready(self, what: str) -> None:
        """Negotiated before a request (writes included), once: the caller's own retries,
        if any, cover it, and an unreachable engine is said as the caller's failure."""
        if self._stale or self.speaking is None:
            with self._version_lock:
                if self._stale or self.speaking is None:
                    self._negotiate(what)

    def _gone(self, exc: BaseException) -> None:
        # The engine went away or refused our version: the one that answers next may be
        # another (dockerd restarted by an upgrade), so ask its version again first.
        if isinstance(exc, (EngineUnavailable, ApiVersionRefused)):
            self._stale = True

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        def once() -> T:
            self._ready(what)
            self.api_calls += 1
            try:
                return fn()
            except Exception as exc:
                err = translate(exc, what)
                self._gone(err)
                raise err from exc

        return self._retrying(once)

    def _once(self, what: str, fn: Callable[[], T]) -> T:
        """One request, never retried (a write: a timeout may hide a success)."""
        self._ready(what)
        self.api_calls += 1
        try:
            return fn()
        except Exception as exc:
            err = translate(exc, what)
            self._gone(err)
            raise err from exc

    # --- reading the swarm: one request each, whatever its size ---------------------------
    # The body is decoded by `wire` (msgspec, only the fields we read, element by element)
    # rather than by requests' json(): no dict is built for the fields we never look at, and
    # an object listed unchanged since the last scan is not decoded again.

    def _get_json(self, what: str, path: str) -> bytes:
        def get() -> bytes:
            resp = self._api._get(self._api._url(path))
            self._api._raise_for_status(resp)
            return bytes(resp.content)

        return self._call(what, get)

    def _list(self, what: str, path: str, kind: wire.Kind[T], memo: wire.Memo[T]) -> tuple[T, ...]:
        body = self._get_json(what, path)
        try:
            return wire.decode_list(body, kind, self.malformed, memo)
        except wire.NotJSON as exc:
            raise EngineError(f"{what}: {exc}") from exc

    def info(self) -> SwarmInfo:
        body = self._get_json("docker info", "/info")
        try:
            info = wire.decode_object(body, mapping.info_from_api, "docker info")
        except wire.NotJSON as exc:
            raise EngineError(f"docker info: {exc}") from exc
        said = self.speaking
        if said is not None and info.engine_version and info.engine_version != said.engine:
            # Replaced between two requests without one failing (a quick restart): speak the
            # new engine's version from the next request on.
            self._stale = True
        return info

    def nodes(self) -> tuple[Node, ...]:
        return self._list("list nodes", "/nodes", wire.NODES, self._memo_nodes)

    def services(self) -> tuple[Service, ...]:
        return self._list("list services", "/services", wire.SERVICES, self._memo_services)

    def tasks(self) -> tuple[Task, ...]:
        return self._list("list tasks", "/tasks", wire.TASKS, self._memo_tasks)

    def _plain_list(
        self, what: str, path: str, fn: Callable[[mapping.Json], T], kind: str
    ) -> tuple[T, ...]:
        body = self._get_json(what, path)
        try:
            return wire.decode_plain_list(body, fn, kind, self.malformed)
        except wire.NotJSON as exc:
            raise EngineError(f"{what}: {exc}") from exc

    def networks(self) -> tuple[Network, ...]:
        return self._plain_list("list networks", "/networks", mapping.network_from_api, "network")

    def configs(self) -> tuple[Stored, ...]:
        return self._plain_list("list configs", "/configs", mapping.CONFIG, "config")

    def secrets(self) -> tuple[Stored, ...]:
        return self._plain_list("list secrets", "/secrets", mapping.SECRET, "secret")

    def events(self, since_nano: int | None) -> EventStream:
        since = None
        if since_nano is not None:
            since = f"{since_nano // 1_000_000_000}.{since_nano % 1_000_000_000:09d}"
        filters = {"type": ["service", "node", "container"]}
        # A stream is opened at the start and after the last one broke, which is what an
        # engine restart does: the engine that answers now may be another version.
        self._stale = True
        stream: Any = self._call(
            "open event stream",
            lambda: self._api.events(since=since, filters=filters, decode=False),
        )
        # decoded line by line by wire: a line that is not an event is said, not fatal
        return wire.EventLines(stream)

    def task_logs(self, task_id: str, tail: int) -> str:
        what = f"read the log of task {task_id[:12]}"
        tail = max(1, min(tail, mapping.LOG_LINES))
        url = self._api._url("/tasks/{0}/logs", task_id)
        params = {"stdout": 1, "stderr": 1, "follow": 0, "tail": max(1, tail)}
        body = bytearray()
        self._ready(what)
        self.api_calls += 1  # once: a timeout would only come again
        try:
            resp = self._api._get(url, params=params, stream=True, timeout=LOG_TIMEOUT)
            try:
                self._api._raise_for_status(resp)
                # Bounded: `tail` counts lines, and one line can be as long as its writer likes.
                for chunk in resp.iter_content(chunk_size=8192):
                    body += chunk
                    if len(body) >= mapping.LOG_READ_MAX:
                        break
            finally:
                resp.close()
        except requests.exceptions.Timeout as exc:
            raise EngineUnavailable(
                f"{what}: no answer within {LOG_TIMEOUT:g}s (the task's node may be down or slow)"
            ) from exc
        except Exception as exc:
            if isinstance(exc, requests.exceptions.RequestException) and not isinstance(
                exc, (docker.errors.APIError, requests.exceptions.ConnectionError)
            ):
                raise EngineError(f"{what}: the answer broke off ({type(exc).__name__})") from exc
            raise translate(exc, what) from exc
        return mapping.log_text(bytes(body[: mapping.LOG_READ_MAX]), tail)

    # --- writing a service: compare-and-swap on Version.Index, never retried blindly ------

    def _update_service(self, service_id: str, version: int, *, how: str) -> None:
        """how: force (bump ForceUpdate), rollback (rollback=previous) or resume (the same
        spec again: swarm resets UpdateStatus and carries on with the tasks not yet updated)."""
        verb = {"force": "force update", "rollback": "roll back", "resume": "resume the update of"}
        what = f"{verb[how]} service {service_id}"
        current = self._call(
            f"inspect service {service_id}", lambda: self._api.inspect_service(service_id)
        )
        seen = int((current.get("Version") or {}).get("Index") or 0)
        if seen != version:
            raise Conflict(
                f"{what}: the service is at version {seen}, the decision was made at {version}"
            )
        spec = copy.deepcopy(current["Spec"])
        params: dict[str, Any] = {"version": version}
        if how == "rollback":
            params["rollback"] = "previous"
        elif how == "force":
            template = spec.setdefault("TaskTemplate", {})
            template["ForceUpdate"] = int(template.get("ForceUpdate") or 0) + 1

        def post() -> None:
            url = self._api._url("/services/{0}/update", service_id)
            self._api._result(self._api._post_json(url, data=spec, params=params), json=True)

        # A write is attempted once: a timeout may hide a success, and the version check
        # above turns any replay into a clean Conflict instead of a second update.
        self._once(what, post)

    def force_update(self, service_id: str, version: int) -> None:
        self._update_service(service_id, version, how="force")

    def rollback(self, service_id: str, version: int) -> None:
        self._update_service(service_id, version, how="rollback")

    def resume_update(self, service_id: str, version: int) -> None:
        self._update_service(service_id, version, how="resume")

    # --- removing a node entry: a worker's, at the version it was decided on ----------------

    def remove_node(self, node_id: str, version: int) -> None:
        what = f"remove node {node_id}"
        current = self._call(f"inspect node {node_id}", lambda: self._api.inspect_node(node_id))
        seen = int((current.get("Version") or {}).get("Index") or 0)
        if seen != version:
            # DELETE /nodes takes no version: the inspect just before is the compare, and the
            # engine's own refusal of a node that is not down covers the moment in between
            raise Conflict(
                f"{what}: the node is at version {seen}, the decision was made at {version}"
            )
        role = (current.get("Spec") or {}).get("Role")
        if role != "worker":
            raise EngineError(
                f"{what}: it is a {role or 'node of no known role'}, and only a worker's entry "
                "is ever removed (a manager is a raft member: demote it first, by hand)"
            )
        # Once, never forced: a timeout may hide a success (the verifier then sees it gone).
        self._once(what, lambda: self._api.remove_node(node_id, force=False))

    # --- the object store: a service's raw spec, config and secret objects -----------------

    def service_spec(self, service: str) -> ServiceSpec:
        raw = self._call(f"inspect service {service}", lambda: self._api.inspect_service(service))
        spec = raw.get("Spec") if isinstance(raw, dict) else None
        if not isinstance(spec, dict) or not raw.get("ID"):
            raise EngineError(f"inspect service {service}: the engine answered no service spec")
        return ServiceSpec(
            id=str(raw["ID"]),
            name=str(spec.get("Name") or raw["ID"]),
            version=int((raw.get("Version") or {}).get("Index") or 0),
            spec=spec,
        )

    def update_service_spec(
        self, service_id: str, version: int, spec: Mapping[str, Any]
    ) -> tuple[str, ...]:
        what = f"update service {service_id}"
        url = self._api._url("/services/{0}/update", service_id)
        # Once, as every write: the engine checks `version` itself ("update out of sequence"
        # -> Conflict), so a caller re-reads and decides again rather than replaying blindly.
        answer = self._once(
            what,
            lambda: self._api._result(
                self._api._post_json(url, data=dict(spec), params={"version": version}),
                json=True,
            ),
        )
        warnings = (answer or {}).get("Warnings") if isinstance(answer, dict) else None
        return tuple(str(w) for w in warnings or ())

    def create_stored(self, kind: str, name: str, data: bytes, labels: Mapping[str, str]) -> str:
        what = f"create {kind} {name}"
        create = self._api.create_config if kind == "config" else self._api.create_secret
        self._ready(what)
        self.api_calls += 1  # once: a timeout may hide a success, which the caller re-lists
        try:
            made = create(name, data, labels=dict(labels))
        except docker.errors.APIError as exc:
            if exc.status_code == 409:
                raise Conflict(f"{what}: the name is taken", status=409) from exc
            raise translate(exc, what) from exc
        except Exception as exc:
            raise translate(exc, what) from exc
        return str(made["ID"])

    def remove_stored(self, kind: str, object_id: str) -> None:
        what = f"remove {kind} {object_id}"
        remove = self._api.remove_config if kind == "config" else self._api.remove_secret
        self._once(what, lambda: remove(object_id))

    # --- the ledger: a config whose labels hold the history ------------------------------

    def read_ledger(self, name: str) -> LedgerDoc | None:
        found = self._call("list configs", lambda: self._api.configs(filters={"name": name}))
        for cfg in found:
            spec = cfg.get("Spec") or {}
            if spec.get("Name") == name:  # the name filter matches prefixes
                return LedgerDoc(
                    id=str(cfg["ID"]),
                    version=int((cfg.get("Version") or {}).get("Index") or 0),
                    labels=mapping._labels(spec.get("Labels")),
                )
        return None

    def write_ledger(self, name: str, doc: LedgerDoc | None, labels: Mapping[str, str]) -> None:
        self._ready(f"write ledger {name}")
        self.api_calls += 1
        try:
            if doc is None:
                self._api.create_config(name, LEDGER_DATA, labels=dict(labels))
                return
            # The engine checks `version` itself: a stale one fails "update out of sequence".
            self.api_calls += 1  # the inspect below is a request of its own
            current = self._api.inspect_config(doc.id)
            spec = dict(current["Spec"])
            spec["Labels"] = dict(labels)
            url = self._api._url("/configs/{0}/update", doc.id)
            self._api._raise_for_status(
                self._api._post_json(url, data=spec, params={"version": doc.version})
            )
        except Conflict:
            raise
        except docker.errors.APIError as exc:
            if exc.status_code == 409:  # created concurrently by another instance
                raise Conflict(f"write ledger {name}: created concurrently") from exc
            raise translate(exc, f"write ledger {name}") from exc
        except Exception as exc:
            raise translate(exc, f"write ledger {name}") from exc

    def cas_update(self, name: str, change: Callable[[LedgerDoc | None], Change[R]]) -> R:
        return cas.update_ledger(self, name, change, self._cas)

    # --- node-local: this node's own containers (answers on workers too) -------------------

    def local_containers(self) -> tuple[LocalContainer, ...]:
        raw = self._call(
            "list containers",
            lambda: self._api.containers(all=True, filters={"label": mapping.TASK_LABEL}),
        )
        return mapping.map_each(raw, mapping.container_from_api, "container", self.malformed)

    def sandbox(self, container_id: str) -> str:
        info = self._call(
            f"inspect container {container_id[:12]}",
            lambda: self._api.inspect_container(container_id),
        )
        key = (info.get("NetworkSettings") or {}).get("SandboxKey") or ""
        if not key:
            raise NotFound(f"container {container_id[:12]} has no network sandbox")
        return str(key)

    def container_detail(self, container_id: str) -> ContainerDetail:
        info = self._call(
            f"inspect container {container_id[:12]}",
            lambda: self._api.inspect_container(container_id),
        )
        image: Any = None
        if info.get("Image"):
            try:
                image = self._call(
                    f"inspect image of {container_id[:12]}",
                    lambda: self._api.inspect_image(info["Image"]),
                )
            except NotFound:
                image = None  # the image was removed: its labels cannot have been copied
        try:
            return mapping.container_detail_from_api(info, image)
        except (ValueError, TypeError) as exc:
            raise EngineError(f"inspect container {container_id[:12]}: {exc}") from exc

    def stop_container(self, container_id: str, timeout: float) -> None:
        # Not retried: the engine sends the container's own stop signal, waits `timeout`, then
        # kills; the SDK lengthens its HTTP timeout by the same amount.
        self._once(
            f"stop container {container_id[:12]}",
            lambda: self._api.stop(container_id, timeout=max(0, round(timeout))),
        )

    def remove_container(self, container_id: str, *, force: bool = True) -> None:
        # Not retried: a timeout may hide a success, and a second try would only say 404.
        what = f"remove container {container_id[:12]}"
        self._in_use(what, lambda: self._api.remove_container(container_id, force=force))

    def _in_use(self, what: str, fn: Callable[[], object]) -> None:
        """A removal, once, never forced by us: the engine's 409 (something uses it, or it
        runs) is a Conflict, which a prune skips."""
        try:
            self._once(what, fn)
        except EngineError as exc:
            if exc.status == 409 and not isinstance(exc, Conflict):
                raise Conflict(f"{what}: in use ({exc})", status=409) from exc
            raise

    # --- a prune's (disk-pressure): every image and container of this node -----------------

    def images(self) -> tuple[Image, ...]:
        raw = self._call("list images", lambda: self._api.images(all=False))
        return mapping.map_each(raw, mapping.image_from_api, "image", self.malformed)

    def all_containers(self) -> tuple[EngineContainer, ...]:
        raw = self._call("list all containers", lambda: self._api.containers(all=True))
        if not isinstance(raw, list):
            raise EngineError("list all containers: the engine answered no list")
        out: list[EngineContainer] = []
        for listed in raw:
            cid = listed.get("Id") if isinstance(listed, Mapping) else None
            if not isinstance(cid, str) or not cid:
                self.malformed.append("container skipped: without an Id")
                continue
            try:
                inspected = self._call(
                    f"inspect container {cid[:12]}", partial(self._api.inspect_container, cid)
                )
            except NotFound:
                continue  # removed since it was listed
            except EngineError:
                inspected = None  # its log is not known; the rest of it is
            try:
                out.append(mapping.engine_container_from_api(listed, inspected))
            except ValueError as exc:
                self.malformed.append(f"container skipped: {exc}")
        return tuple(out)

    def remove_image(self, ref: str) -> None:
        what = f"remove image {ref[:80]}"
        self._in_use(what, lambda: self._api.remove_image(ref, force=False, noprune=False))

    def prune_build_cache(self) -> int:
        # Once: a timeout may hide a success, and the next prune finds less to do anyway.
        answer = self._once("prune the build cache", self._api.prune_builds)
        reclaimed = answer.get("SpaceReclaimed") if isinstance(answer, Mapping) else None
        return reclaimed if isinstance(reclaimed, int) and reclaimed > 0 else 0

    def close(self) -> None:
        self._api.close()
