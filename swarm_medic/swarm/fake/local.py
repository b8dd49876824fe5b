"""The fake's NodeLocal: the containers of swarm tasks on this engine's node."""

from __future__ import annotations

from collections.abc import Mapping

from swarm_medic.core.errors import NotFound
from swarm_medic.core.model import ContainerDetail, LocalContainer
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
