"""unbalanced end to end on the FakeEngine: a labelled service piled on some nodes is force
updated, and the fix is healed only when the tasks came out spread, not merely converged."""

from __future__ import annotations

from swarm_medic.core.settings import Settings
from swarm_medic.swarm.fake import FakeEngine
from tests.builders import NOW as T0
from tests.pipeline.harness import ME, Harness, builtin, swarm

REBALANCE = {"swarm-medic.enable": "true", "swarm-medic.rebalance": "true"}
AFTER = 5.0


def piled_swarm(labels: dict[str, str] | None = None) -> tuple[FakeEngine, str, list[str]]:
    """Three nodes; a 3-replica service running 2 tasks on ME, 1 on w2 and none on w3 (it came
    back from a drain). -> (engine, service id, its task ids)."""
    fake = swarm()
    fake.add_node("worker-2", node_id="w2", role="worker")
    fake.add_node("worker-3", node_id="w3", role="worker")
    sid = fake.add_service("web", replicas=3, labels=REBALANCE if labels is None else labels)
    tids = [
        fake.add_task(sid, node_id=node, slot=slot) for slot, node in ((1, ME), (2, ME), (3, "w2"))
    ]
    return fake, sid, tids


def harness(fake: FakeEngine, settings: Settings | None = None) -> Harness:
    reg = builtin()
    reg.configure([f"unbalanced.after={AFTER:.0f}s"])
    return Harness(fake, settings or Settings(breaker_failures=1), runbooks=reg)


def swarm_replaces(fake: FakeEngine, sid: str, old: list[str], onto: tuple[str, ...]) -> None:
    """What swarm does for the force update: every old task shut down, new ones on `onto`."""
    for tid in old:
        fake.set_task_state(tid, "shutdown", desired="shutdown")
    for slot, node in enumerate(onto, 1):
        fake.add_task(sid, node_id=node, slot=slot)
    fake.set_update_status(sid, "completed")


def act(h: Harness, sid: str) -> None:
    assert h.scan(T0) and h.logs.named("finding") == []  # the hold starts at the first sighting
    h.scan(T0 + AFTER)
    (finding,) = h.logs.named("finding")
    assert finding["runbook"] == "unbalanced"
    assert "worker-3 could run its tasks and runs none while manager-1 runs 2" in str(
        finding["summary"]
    )
    (done,) = h.logs.named("action: force_update done")
    assert done["service_id"] == sid
    assert h.fake.writes == [("force_update", sid, 10)]
    # the verification's next scan sees the update under way: nothing judged, the incident
    # is cleared while the fix is verified
    h.scan(T0 + AFTER + 2)
    assert h.logs.named("cleared; verifying the fix holds")


def test_a_force_update_that_spreads_the_tasks_is_healed() -> None:
    fake, sid, old = piled_swarm()
    h = harness(fake)
    act(h, sid)

    swarm_replaces(fake, sid, old, (ME, "w2", "w3"))
    h.scan(T0 + 10)
    h.scan(T0 + 10 + h.settings.verify_hold)

    (healed,) = h.logs.named("verified: healed")
    assert healed["runbook"] == "unbalanced"
    assert healed["detail"] == "3 task(s) running"
    assert h.logs.named("verified: NOT healed") == []
    assert len(h.logs.named("finding")) == 1


def test_a_force_update_that_leaves_them_piled_up_is_not_healed() -> None:
    fake, sid, old = piled_swarm()
    h = harness(fake)
    act(h, sid)

    swarm_replaces(fake, sid, old, (ME, "w2", "w2"))  # converged, still piled, w3 empty
    for t in (10.0, 10.0 + h.settings.verify_hold, 60.0):
        h.scan(T0 + t)
    assert h.logs.named("verified: healed") == []
    # the fault is seen again once held for `after`: a new incident, not acted on meanwhile
    assert len(h.logs.named("finding")) == 2
    h.scan(T0 + AFTER + h.settings.verify_timeout)

    (not_healed,) = h.logs.named("verified: NOT healed")
    assert not_healed["detail"] == "3 task(s) running, but unbalanced still sees the fault"
    assert h.logs.starting("circuit breaker OPENED")
    assert fake.writes == [("force_update", sid, 10)]


def test_without_the_label_it_is_reported_and_nothing_is_written() -> None:
    fake, _, _ = piled_swarm(labels={"swarm-medic.enable": "true"})
    h = harness(fake)
    h.scan(T0)
    h.scan(T0 + AFTER)
    (finding,) = h.logs.named("finding")
    assert "docker service update --force web" in str(finding["diagnosis"])
    assert h.logs.named("decision: report only")
    assert fake.writes == []
