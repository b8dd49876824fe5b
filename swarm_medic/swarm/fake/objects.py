"""The fake's ObjectStore: a service's raw spec, and config and secret objects, checked as swarmkit
checks them (names, sizes, references, removal of an object a spec uses)."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from swarm_medic.core.errors import EngineError, NotFound
from swarm_medic.core.rollout import MAX_BYTES, ServiceSpec
from swarm_medic.swarm.fake.world import World

_STORED_NAME = re.compile(r"^[a-zA-Z0-9]+(?:[a-zA-Z0-9-_.]*[a-zA-Z0-9])?$")  # swarmkit's rule


class ObjectStoring(World):
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
