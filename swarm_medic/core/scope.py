"""Which services the medic may act on: opt-in or all, minus its own and the opted out.

Pure and shared: the policy gates actions with it, and the probe planner (reach) uses it to probe
only services an action could follow.
"""

from __future__ import annotations

from collections.abc import Mapping

from swarm_medic.core.model import Service
from swarm_medic.core.settings import Settings

ENABLE_LABEL = "swarm-medic.enable"
SELF_LABEL = "swarm-medic.self"


def _label_true(labels: Mapping[str, str], key: str) -> bool | None:
    value = labels.get(key)
    if value is None:
        return None
    return value.strip().lower() in ("1", "true", "yes", "on")


def scope_reason(service: Service | None, settings: Settings) -> str | None:
    """Why this service is out of scope for actions, or None if it is in scope."""
    if service is None:
        return "no_action"
    if (
        service.name in settings.self_services
        or service.id in settings.self_services
        or _label_true(service.labels, SELF_LABEL)
    ):
        return "self"
    enabled = _label_true(service.labels, ENABLE_LABEL)
    if enabled is False:
        return "opted_out"
    if settings.scope == "opt-in" and not enabled:
        return "not_opted_in"
    return None
