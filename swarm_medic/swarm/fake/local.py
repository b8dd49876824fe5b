"""The fake's NodeLocal: the containers on this engine's node (swarm's tasks' and others), and
its images and build cache, removed as the engine removes them without force."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from swarm_medic.core.errors import Conflict, NotFound
from swarm_medic.core.model import ContainerDetail, EngineContainer, Image, LocalContainer
from swarm_medic.swarm import mapping
from swarm_medic.swarm.fake.world import World


class NodeLocalContainers(World):
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
        image_id: str = "",
        log: Mapping[str, Any] | None = None,
        log_path: str = "",
    ) -> str:
        """A container of `task_id` on this engine's node (the node-local view); "" : a
        container of no task (`docker run`). Named as swarm names task containers unless
        `name` says otherwise; `image_labels` imitate an image made by `docker commit` of a
        task container; `image_id` is the image it runs, `log` its HostConfig.LogConfig
        (default: json-file, no options) and `log_path` its LogPath."""
        task = self._tasks.get(task_id, {"ServiceID": "", "NodeID": self.node_id})
        cid = f"ctr{next(self._ids):09d}"
        svc = self._services.get(task["ServiceID"], {"Spec": {"Name": ""}})
        slot = task.get("Slot") or task.get("NodeID") or self.node_id
        name = name or (f"{svc['Spec']['Name']}.{slot}.{task_id}" if task_id else cid)
        labels = {
            mapping.TASK_LABEL: task_id,
            "com.docker.swarm.service.id": task["ServiceID"],
            "com.docker.swarm.service.name": svc["Spec"]["Name"],
            "com.docker.swarm.node.id": task.get("NodeID") or self.node_id,
            "com.docker.swarm.task.name": name,
        }
        self._containers[cid] = {
            "Id": cid,
            "Names": [f"/{name}"],
            "State": state,
            "ImageID": image_id,
            "Labels": labels if task_id else {},
            "LogConfig": dict(log) if log is not None else {"Type": "json-file", "Config": {}},
            "LogPath": log_path,
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
        tasks = [c for c in self._containers.values() if mapping.TASK_LABEL in c["Labels"]]
        return mapping.map_each(tasks, mapping.container_from_api, "container", self.malformed)

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

    def remove_container(self, container_id: str, *, force: bool = True) -> None:
        self._enter(manager_only=False)
        c = self._containers.get(container_id)
        if c is None:
            raise NotFound(f"remove container {container_id}: no such container", status=404)
        if not force and c["State"] in ("running", "paused", "restarting"):
            raise Conflict(
                f"remove container {container_id}: you cannot remove a {c['State']} container",
                status=409,
            )
        del self._containers[container_id]
        self.removed.append(container_id)

    # --- a prune's: images and the build cache -------------------------------------------

    def add_image(
        self,
        *tags: str,
        digests: tuple[str, ...] = (),
        created: float = 0.0,
        size: int = 1 << 20,
        image_id: str | None = None,
    ) -> str:
        """An image this node holds, named by `tags` (none: dangling) -> its id (sha256:...)."""
        iid = image_id or f"sha256:{next(self._ids):064x}"
        self._images[iid] = {
            "Id": iid,
            "RepoTags": list(tags) or None,  # as the engine lists an untagged image
            "RepoDigests": list(digests),
            "Created": int(created or self.now),
            "Size": size,
            "Containers": -1,
        }
        return iid

    def images(self) -> tuple[Image, ...]:
        self._enter(manager_only=False)
        return mapping.map_each(
            list(self._images.values()), mapping.image_from_api, "image", self.malformed
        )

    def all_containers(self) -> tuple[EngineContainer, ...]:
        self._enter(manager_only=False)
        out = []
        for c in self._containers.values():
            inspected = {"LogPath": c["LogPath"], "HostConfig": {"LogConfig": c["LogConfig"]}}
            out.append(mapping.engine_container_from_api(c, inspected))
        return tuple(out)

    def remove_image(self, ref: str) -> None:
        """As the engine's ImageDelete without force: a tag is untagged while other references
        remain; the last one goes with the image, unless a container uses it; by ID, only an
        image one repository names (or none)."""
        self._enter(manager_only=False)
        what = f"remove image {ref}"
        if ref in self._images:
            iid, img = ref, self._images[ref]
            if len({t.rpartition(":")[0] for t in img["RepoTags"] or ()}) > 1:
                raise Conflict(f"{what}: image is referenced in multiple repositories", status=409)
        else:
            found = [(i, m) for i, m in self._images.items() if ref in (m["RepoTags"] or ())]
            if not found:
                raise NotFound(f"{what}: no such image", status=404)
            (iid, img), *_ = found
            if len(img["RepoTags"]) > 1:
                img["RepoTags"].remove(ref)  # untagged: another tag still names it
                self.image_removals.append(ref)
                return
        users = [c["Id"] for c in self._containers.values() if c["ImageID"] == iid]
        if users:
            raise Conflict(f"{what}: image is being used by container {users[0]}", status=409)
        del self._images[iid]
        self.image_removals.append(ref)

    def prune_build_cache(self) -> int:
        self._enter(manager_only=False)
        if not self.builder:
            raise NotFound("prune the build cache: page not found (no builder)", status=404)
        self.build_prunes += 1
        freed, self.build_cache = self.build_cache, 0
        return freed
