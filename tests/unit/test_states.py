"""The engine's state vocabularies, named once on the model and read the same everywhere."""

from __future__ import annotations

import pytest

from runbooks import unbalanced
from swarm_medic.core import reach
from swarm_medic.core.model import (
    ENDED_STATES,
    LIVE_STATES,
    PRE_RUNNING_STATES,
    UPDATE_IN_FLIGHT,
    UPDATE_PAUSED,
    UPDATE_SETTLED,
    Snapshot,
    TaskState,
    UpdateState,
    UpdateStatus,
)
from swarm_medic.pipeline import verify
from tests import builders as build
from tests.builders import NOW


def test_task_states_split_into_live_and_ended() -> None:
    assert set(TaskState) == LIVE_STATES | ENDED_STATES
    assert not LIVE_STATES & ENDED_STATES
    assert {*PRE_RUNNING_STATES, TaskState.RUNNING} == LIVE_STATES
    order = list(TaskState)
    assert [order.index(s) for s in PRE_RUNNING_STATES] == list(range(len(PRE_RUNNING_STATES)))


def test_update_states_are_in_flight_paused_or_settled_and_only_one() -> None:
    groups = (UPDATE_IN_FLIGHT, UPDATE_PAUSED, UPDATE_SETTLED)
    assert set().union(*groups) == set(UpdateState)
    assert sum(len(g) for g in groups) == len(UpdateState)


def test_the_engines_text_is_read_as_a_member() -> None:
    # the model keeps the engine's strings: membership and equality must hold for them
    assert "running" in LIVE_STATES and "shutdown" in ENDED_STATES
    assert "rollback_started" in UPDATE_IN_FLIGHT and "completed" in UPDATE_SETTLED
    assert ", ".join(PRE_RUNNING_STATES[:2]) == "new, allocated"
    assert f"{TaskState.RUNNING}" == "running"


def _converged_service(update: UpdateStatus | None) -> Snapshot:
    """Two replicas running, one on each of two ready nodes: settled but for the update."""
    return build.snapshot(
        nodes=[build.node("n1"), build.node("n2")],
        services=[build.service("s1", replicas=2, update=update)],
        tasks=[build.task(f"t{i}", sid="s1", node_id=f"n{i}", slot=i) for i in (1, 2)],
    )


@pytest.mark.parametrize("state", [None, *UpdateState])
def test_verify_unbalanced_and_the_probes_agree_on_what_is_settled(
    state: UpdateState | None,
) -> None:
    """verify wrote None into its settled set, unbalanced tested `is not None` first, reach
    kept its own copy of the in-flight states: all of them read one vocabulary now."""
    snap = _converged_service(None if state is None else UpdateStatus(state, started_at=NOW))
    (svc,) = snap.services
    settled = state is None or state in UPDATE_SETTLED
    assert verify.converged(snap, "s1")[0] is settled
    assert unbalanced.converged(snap, svc) is settled
    # the probes leave out only what is in flight: a paused update does not move tasks
    assert reach.settled(snap, svc) is (state not in UPDATE_IN_FLIGHT)
