"""The fake's ServiceWriter: force update, roll back, resume, compare-and-swap on the version.

Each write is recorded in `writes` (verb, service id, version) and publishes the service's
`update` event, as the engine does.
"""

from __future__ import annotations

import copy

from swarm_medic.core.errors import EngineError
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
