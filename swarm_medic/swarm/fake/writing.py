"""The fake's writers. ServiceWriter: force update, roll back, resume, compare-and-swap on the
version; each write is recorded in `writes` (verb, service id, version) and publishes the
service's `update` event, as the engine does. NodeWriter: a node entry removed as swarmkit's
RemoveNode does without force (a manager or a ready node refused), recorded in `writes` as
("remove_node", node id, version) with the node's `remove` event.
"""

from __future__ import annotations

import copy

from swarm_medic.core.errors import Conflict, EngineError, NotFound
from swarm_medic.swarm.fake.world import World


class ServiceWriting(World):
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


class NodeWriting(World):
    def remove_node(self, node_id: str, version: int) -> None:
        with self._lock:
            self._enter()
            what = f"remove node {node_id}"
            node = self._nodes.get(node_id)
            if node is None:
                raise NotFound(f"{what}: node {node_id} not found", status=404)
            if node["Version"]["Index"] != version:
                raise Conflict(
                    f"{what}: the node is at version {node['Version']['Index']}, "
                    f"the decision was made at {version}"
                )
            if node["Spec"]["Role"] != "worker":
                raise EngineError(f"{what}: it is a {node['Spec']['Role']}, never removed here")
            if node["Status"]["State"] == "ready":
                # swarmkit's words (FailedPrecondition, HTTP 400) for a removal without force
                raise EngineError(
                    f"{what}: node {node_id} is not down and can't be removed", status=400
                )
            self._frozen = None
            del self._nodes[node_id]
            self.writes.append(("remove_node", node_id, version))
            nano = int(self.now * 1e9) + next(self._ids)
            self.emit(
                {
                    "Type": "node",
                    "Action": "remove",
                    "scope": "swarm",
                    "time": nano // 10**9,
                    "timeNano": nano,
                    "Actor": {"ID": node_id, "Attributes": {}},
                }
            )
