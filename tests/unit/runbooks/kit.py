"""What the runbook tests share: the built-in runbooks, loaded once from runbooks/ as the daemon
loads them, and a runbook's findings as match.run gets them."""

from __future__ import annotations

from swarm_medic.core.model import Finding
from swarm_medic.core.runbook import Context, Runbook
from swarm_medic.pipeline import registry

REGISTRY = registry.load([registry.builtin_dir()])


def detect(rb: Runbook, c: Context) -> list[Finding]:
    """As match.run does: a runbook whose needs are not met is not run."""
    return [] if rb.missing(c) else list(rb.detect(c))
