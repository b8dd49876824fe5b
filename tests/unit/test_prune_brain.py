"""The brain's side of disk-pressure's prune (issue 19, section 3): an action on a node carried
out by that node's instance. Judged by the policy as a node's action (no service scope; the
node's own history; its instance must answer), asked for by the executor with what it keeps,
and verified once the fault clears on a reading the node gave after it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from swarm_medic.core.ledger import History, Ledger, Verifying
from swarm_medic.core.model import Action, ActionKind, Finding, Reason, Result
from swarm_medic.core.protocol import PRUNE_NODE, ActAnswer, ActRequest, Disk
from swarm_medic.core.reach import Health, Reachability
from swarm_medic.core.records import IncidentRecord, Opened
from swarm_medic.core.runbook import prune_node
from swarm_medic.core.settings import SafetySettings
from swarm_medic.nodes.channel import NodeRefused
from swarm_medic.pipeline import match, policy, verify
from swarm_medic.pipeline.act import Executor
from swarm_medic.swarm.fake import FakeEngine
from tests.builders import NOW, node, snapshot

KEY = "disk-pressure:n2:data-root"
N2 = node("n2", hostname="node2")
KEEP = ("web:1", "web:2@sha256:" + "a" * 64)


def full(node_id: str = "n2") -> Finding:
    f = Finding.for_node(node(node_id), "full", "disk-pressure", key=KEY, actionable=True)
    return replace(f, runbook="disk-pressure")


def action(node_id: str = "n2") -> Action:
    return prune_node(node(node_id), KEEP, ("t2", "t1"), 85, "92% used")


def test_the_constructor_says_what_a_prune_keeps_and_refuses_what_no_request_carries() -> None:
    a = prune_node(N2, [*KEEP, "", "web:1"], ["t2", "t1", "t2"], 85, "92% used")
    assert (a.kind, a.subject, a.service_id, a.node_id) == (ActionKind.PRUNE_NODE, "n2", "", "n2")
    assert a.prune is not None
    assert (a.prune.keep, a.prune.wanted, a.prune.target) == (KEEP, ("t1", "t2"), 85)
    with pytest.raises(ValueError, match="over 4096 characters"):
        prune_node(N2, ["x" * 4097], [], 85, "")
    with pytest.raises(ValueError, match="a target of 101%"):
        prune_node(N2, KEEP, [], 101, "")


def test_a_prune_must_be_of_the_node_its_finding_is_about() -> None:
    assert match.off_target(full("n2"), action("n2")) == ""
    assert "names node 'n3'" in match.off_target(full("n2"), action("n3"))


@pytest.mark.parametrize(
    ("safety", "hands_down", "led", "reason"),
    [
        # no service to opt in: the runbook's setting was the opt-in
        (SafetySettings(scope="opt-in"), {}, Ledger(), Reason.OK),
        (SafetySettings(dry_run=True), {}, Ledger(), Reason.DRY_RUN),
        (SafetySettings(approve_runbooks=("disk-pressure",)), {}, Ledger(), Reason.APPROVAL_NEEDED),
        # its node's instance carries it out: one that did not answer is not asked
        (SafetySettings(), {"n2": "did not answer"}, Ledger(), Reason.NODE_UNREACHABLE),
        # the node's own history
        (
            SafetySettings(cooldown=300),
            {},
            Ledger(services={"n2": History(actions=((NOW - 100, "disk-pressure"),))}),
            Reason.COOLDOWN,
        ),
    ],
)
def test_a_prune_is_judged_as_an_action_on_its_node(
    safety: SafetySettings, hands_down: dict[str, str], led: Ledger, reason: Reason
) -> None:
    (d,) = policy.decide(
        [(full(), action())],
        services={},
        ledger=led,
        safety=safety,
        now=NOW,
        leader=True,
        hands_down=hands_down,
    )
    assert d.reason is reason, d.why


def test_a_storm_holds_a_prune_back_like_any_action() -> None:
    (d,) = policy.decide(
        [(full(), action())],
        services={},
        ledger=Ledger(),
        safety=SafetySettings(),
        now=NOW,
        leader=True,
        storm="5 of 6 services failing",
    )
    assert d.reason is Reason.STORM


# --- the executor ---------------------------------------------------------------------------


def test_the_executor_asks_the_node_with_what_to_keep_and_claims_it_under_the_node() -> None:
    fake = FakeEngine(node_id="n1", now=NOW)
    asked: list[tuple[str, ActRequest]] = []

    def hands(node_id: str, request: ActRequest) -> ActAnswer:
        asked.append((node_id, request))
        return ActAnswer(ok=True, node=node_id, detail="pruning from 92.0% toward 85% used")

    done = Executor(fake, SafetySettings(), hands).execute(action(), "disk-pressure", NOW)
    assert done.result is Result.DONE and done.claimed
    ((where, request),) = asked
    assert where == "n2"
    assert request == ActRequest(PRUNE_NODE, "n2", "n2", keep=KEEP, wanted=("t1", "t2"), target=85)
    ledger = Ledger.from_doc(fake.read_ledger(SafetySettings().ledger_name))
    pending = ledger.history("n2").pending
    assert pending is not None and (pending.kind, pending.node) == ("prune_node", "n2")


def test_a_node_in_dry_run_spends_nothing_and_says_what_it_would_prune() -> None:
    fake = FakeEngine(node_id="n1", now=NOW)
    said = "dry-run, nothing removed: ... 3 unused image(s)"
    bound = lambda n, r: ActAnswer(ok=False, node=n, dry_run=True, detail=said)  # noqa: E731
    done = Executor(fake, SafetySettings(), bound).execute(action(), "disk-pressure", NOW)
    assert done.result is Result.UNREACHABLE and said in done.error
    assert (
        Ledger.from_doc(fake.read_ledger(SafetySettings().ledger_name)).history("n2") == History()
    )


def test_a_node_of_the_release_before_refuses_it_by_name_and_the_claim_stands() -> None:
    fake = FakeEngine(node_id="n1", now=NOW)

    def old(node_id: str, request: ActRequest) -> ActAnswer:
        raise NodeRefused(
            f"action {request.kind!r} is not allowed (allowed: remove_task_container)"
        )

    done = Executor(fake, SafetySettings(), old).execute(action(), "disk-pressure", NOW)
    assert done.result is Result.FAILED and "'prune_node' is not allowed" in done.error
    assert (
        len(Ledger.from_doc(fake.read_ledger(SafetySettings().ledger_name)).history("n2").actions)
        == 1
    )


# --- verification ---------------------------------------------------------------------------

SNAP = snapshot(nodes=[node("n1", leader=True), N2])


def reach(at: float) -> Reachability:
    disk = Disk("data-root", "/var/lib/docker", 100, 20)
    return Reachability(rounds=1, health={"n2": Health(at, None, (disk,))})


def pending(key: str = KEY) -> verify.Pending:
    return verify.Pending("inc-1", "disk-pressure", action(), NOW, NOW + 300, key=key)


def test_healed_once_the_fault_clears_on_a_reading_after_the_prune() -> None:
    p = pending()
    before = verify.judge(p, SNAP, NOW + 2, 0.0, reach(NOW - 1), seen=frozenset())
    assert isinstance(before, verify.Pending)  # no reading since: its absence says nothing
    still = verify.judge(p, SNAP, NOW + 4, 0.0, reach(NOW + 3), seen=frozenset({KEY}))
    assert isinstance(still, verify.Pending)
    healed = verify.judge(p, SNAP, NOW + 6, 0.0, reach(NOW + 5), seen=frozenset())
    assert isinstance(healed, verify.Outcome) and healed.result is Result.HEALED
    late = verify.judge(p, SNAP, NOW + 400, 0.0, reach(NOW + 399), seen=frozenset({KEY}))
    assert isinstance(late, verify.Outcome) and late.result is Result.NOT_HEALED


def test_without_the_faults_key_it_is_never_taken_for_healed() -> None:
    p = pending(key="")
    out = verify.judge(p, SNAP, NOW + 400, 0.0, reach(NOW + 399), seen=frozenset())
    assert isinstance(out, verify.Outcome) and out.result is Result.NOT_HEALED
    assert "not known" in out.detail


def test_a_new_leader_verifies_a_prune_on_the_fault_its_record_names() -> None:
    claim = Verifying("inc-1", "disk-pressure", "prune_node", 1, NOW, NOW + 300, node="n2")
    led, _ = Ledger().record_action("n2", "disk-pressure", NOW, 3, 3600.0, pending=claim)
    led = led.with_records([Opened(IncidentRecord("inc-1", "disk-pressure", NOW - 60, key=KEY))])
    same, (taken,) = verify.take_over(led, SNAP, NOW + 5)
    assert taken.outcome is verify.TakeOver.RESUMED and same.history("n2").pending
    p = taken.pending()
    assert (p.action.kind, p.action.subject, p.key) == (ActionKind.PRUNE_NODE, "n2", KEY)
    gone, (late,) = verify.take_over(led, SNAP, NOW + 301)
    assert late.outcome is verify.TakeOver.LATE and gone.history("n2").pending is None
