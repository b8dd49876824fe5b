"""stale-nodes end to end on the FakeEngine: a worker's ghost removed by the one executor when
opted in (claimed in the ledger under the node's id, decided on its version, verified gone),
said and not done in dry-run, and never a manager's; and a new leader's take-over of a removal
an earlier one left unjudged."""

from __future__ import annotations

from swarm_medic.core.ledger import Ledger, Verifying
from swarm_medic.core.model import ActionKind, Result
from swarm_medic.core.runbook import remove_node
from swarm_medic.core.settings import SafetySettings, Settings
from swarm_medic.pipeline import verify
from swarm_medic.pipeline.act import Executor
from swarm_medic.pipeline.observe import take_snapshot
from swarm_medic.swarm.fake import FakeEngine
from tests.builders import NOW as T0
from tests.pipeline.harness import Harness, builtin, ledger, swarm

DAY = 86400.0


def ghost_swarm(role: str = "worker") -> FakeEngine:
    """node3 left the swarm two hours ago (its entry Down since) and joined again an hour ago
    under a new id, from the same address."""
    fake = swarm()
    fake.add_node(
        "node3",
        node_id="old3",
        role=role,
        state="down",
        addr="10.99.0.13",
        created=T0 - DAY,
        updated=T0 - 7200,
    )
    fake.add_node("node3", node_id="new3", role=role, addr="10.99.0.13", created=T0 - 3600)
    return fake


def harness(fake: FakeEngine, *flags: str, settings: Settings | None = None) -> Harness:
    reg = builtin()
    reg.configure(list(flags))
    return Harness(fake, settings, runbooks=reg)


def listed(fake: FakeEngine) -> set[str]:
    return {n.id for n in fake.nodes()}


def test_a_workers_ghost_is_removed_and_verified_gone_when_opted_in() -> None:
    fake = ghost_swarm()
    h = harness(fake, "stale-nodes.action=remove")
    h.scan(T0)

    (finding,) = h.logs.named("finding")
    assert (finding["runbook"], finding["nodes"]) == ("stale-nodes", ["old3"])
    (done,) = h.logs.named("action: remove_node done")
    assert done["service_version"] == 1  # the node's version the decision was made on
    assert fake.writes == [("remove_node", "old3", 1)]
    assert listed(fake) == {"mgr1", "new3"}
    history = ledger(fake).history("old3")  # the claim, kept under the node's id
    assert [rb for _, rb in history.actions] == ["stale-nodes"]
    assert history.pending is not None and history.pending.kind == "remove_node"

    h.scan(T0 + 2)  # the ghost is gone: its incident clears while the removal is verified
    assert h.logs.named("cleared; verifying the fix holds")
    h.scan(T0 + 2 + h.settings.safety.verify_hold)
    (healed,) = h.logs.named("verified: healed")
    assert healed["detail"] == "node old3 is no longer listed"
    assert healed["node"] == "old3"
    assert ledger(fake).history("old3").pending is None
    assert h.actions("done", runbook="stale-nodes", kind="remove_node") == 1
    assert fake.writes == [("remove_node", "old3", 1)]  # once


def test_a_ghost_is_only_reported_by_default_and_only_said_in_dry_run() -> None:
    fake = ghost_swarm()
    h = harness(fake)
    h.scan(T0)
    assert h.logs.named("decision: report only")
    dry = harness(
        fake,
        "stale-nodes.action=remove",
        settings=Settings(safety=SafetySettings(dry_run=True)),
    )
    dry.scan(T0)
    assert dry.logs.named("decision: would remove_node (dry-run: nothing changed)")
    assert fake.writes == []
    assert listed(fake) == {"mgr1", "old3", "new3"}


def test_a_managers_ghost_is_never_removed() -> None:
    fake = ghost_swarm(role="manager")
    h = harness(fake, "stale-nodes.action=remove")
    h.scan(T0)
    (finding,) = h.logs.named("finding")
    assert "docker node demote old3" in str(finding["diagnosis"])
    assert h.logs.named("decision: report only")
    assert fake.writes == []


def test_the_executor_stands_down_when_the_node_moved_on_or_came_up() -> None:
    fake = ghost_swarm()
    snap = take_snapshot(fake, T0)
    old3 = snap.node("old3")
    assert old3 is not None
    act = Executor(fake, Settings().safety)
    fake.set_node_state("old3", "down", "heartbeat failure")  # a new leader wrote it again
    moved = act.execute(remove_node(old3, "ghost"), "stale-nodes", T0)
    assert moved.result is Result.CONFLICT and "version 2" in moved.error
    fake.set_node_state("old3", "ready")  # it came back after all: the engine refuses
    up = act.execute(remove_node(old3, "ghost"), "stale-nodes", T0)
    assert up.result is Result.CONFLICT  # its version moved again: never even asked
    current = take_snapshot(fake, T0).node("old3")
    assert current is not None
    refused = act.execute(remove_node(current, "ghost"), "stale-nodes", T0)
    assert refused.result is Result.FAILED and "is not down" in refused.error
    assert "old3" in listed(fake) and fake.writes == []


def pending_removal(node: str) -> Ledger:
    claim = Verifying("inc-9", "stale-nodes", "remove_node", 1, T0, T0 + 120, node=node)
    claimed, _ = Ledger().record_action(node, "stale-nodes", T0, 3, 3600.0, pending=claim)
    return claimed


def test_a_new_leader_releases_a_removal_that_never_happened_and_verifies_one_that_did() -> None:
    fake = ghost_swarm()
    snap = take_snapshot(fake, T0 + 5)
    kept, (taken,) = verify.take_over(pending_removal("old3"), snap, T0 + 5)
    assert taken.outcome is verify.TakeOver.NODE_KEPT
    assert kept.history("old3").pending is None and kept.history("old3").actions == ()

    fake.remove_node("old3", 1)
    gone = take_snapshot(fake, T0 + 5)
    same, (resumed,) = verify.take_over(pending_removal("old3"), gone, T0 + 5)
    assert resumed.outcome is verify.TakeOver.RESUMED and same.history("old3").pending
    p = resumed.pending()
    assert (p.action.kind, p.action.subject, p.action.service_id) == (
        ActionKind.REMOVE_NODE,
        "old3",
        "",
    )
    first = verify.judge(p, gone, T0 + 5, hold=3.0)
    assert isinstance(first, verify.Pending)  # gone, held for --verify-hold
    healed = verify.judge(first, gone, T0 + 8, hold=3.0)
    assert isinstance(healed, verify.Outcome) and healed.result is Result.HEALED
