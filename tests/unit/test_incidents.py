"""Incidents' open-age gauge input: the oldest open incident per runbook."""

from __future__ import annotations

from swarm_medic.core.incidents import Incidents
from swarm_medic.core.model import Finding


def finding(runbook: str, key: str) -> Finding:
    return Finding(runbook=runbook, key=key, summary="s", cause="c")


def test_oldest_open_age_is_the_oldest_per_runbook_and_forgets_closed_ones() -> None:
    inc = Incidents()
    inc.update([finding("stuck-task", "a")], now=100.0)
    inc.update([finding("stuck-task", "a"), finding("stuck-task", "b")], now=130.0)
    inc.update(
        [finding("stuck-task", "a"), finding("stuck-task", "b"), finding("paused-update", "c")],
        now=160.0,
    )
    assert inc.oldest_open_age(200.0) == {"stuck-task": 100.0, "paused-update": 40.0}
    inc.update([finding("stuck-task", "b")], now=210.0)  # a and c closed
    assert inc.oldest_open_age(220.0) == {"stuck-task": 90.0}
    inc.update([], now=230.0)
    assert inc.oldest_open_age(240.0) == {}
