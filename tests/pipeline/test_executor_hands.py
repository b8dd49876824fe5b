"""A node that cannot be asked is not a spent action.

Before: the executor claimed a node-local action in the ledger and then failed to reach the
node; every scan did it again, spent the service's budget, opened its circuit breaker, and the
open breaker then blocked a real fix (a paused update) on the same service.
"""

from __future__ import annotations

from swarm_medic.core.ledger import Ledger
from swarm_medic.core.model import Action, ActionKind, Result
from swarm_medic.core.protocol import ActAnswer, ActRequest
from swarm_medic.core.settings import SafetySettings
from swarm_medic.nodes.channel import ChannelError, NodeRefused
from swarm_medic.pipeline.act import Executor
from swarm_medic.swarm.fake import FakeEngine

# fractional, as time.time() is: the ledger keeps 3 decimals, and a claim must still be
# recognised as our own when it is released
T0 = 1_700_000_000.1234567
S = SafetySettings(budget_per_hour=2, cooldown=0)


def replace(sid: str) -> Action:
    return Action(ActionKind.REMOVE_ORPHAN, sid, "api", 10, "orphan", task_id="t1", node_id="n2")


def history(fake: FakeEngine, sid: str) -> int:
    return len(Ledger.from_doc(fake.read_ledger(S.ledger_name)).history(sid).actions)


def test_a_hand_that_cannot_be_reached_releases_its_claim() -> None:
    fake = FakeEngine(node_id="n1", now=T0)
    sid = fake.add_service("api")
    asked: list[str] = []

    def dead_hand(node: str, request: ActRequest) -> ActAnswer:
        asked.append(node)
        raise ChannelError("http://10.0.0.2:9324/v1/act: ConnectionRefusedError")

    ex = Executor(fake, S, dead_hand)
    for i in range(5):  # more tries than the budget: none of them may spend it
        done = ex.execute(replace(sid), "orphan-container", T0 + i)
        assert done.result is Result.UNREACHABLE and "ConnectionRefused" in done.error
        assert done.circuit_opened == ""
    assert asked == ["n2"] * 5
    assert history(fake, sid) == 0


def test_a_node_known_to_be_down_is_not_even_claimed() -> None:
    fake = FakeEngine(node_id="n1", now=T0)
    sid = fake.add_service("api")
    ex = Executor(fake, S, lambda n, r: ActAnswer(ok=True), lambda node: "did not answer")
    done = ex.execute(replace(sid), "orphan-container", T0)
    assert done.result is Result.UNREACHABLE and "did not answer" in done.error
    assert fake.read_ledger(S.ledger_name) is None  # not a single ledger write


def test_a_hand_that_refuses_keeps_the_claim() -> None:
    # a definitive "no" from the node: cooldown and budget apply, as for any failed action
    fake = FakeEngine(node_id="n1", now=T0)
    sid = fake.add_service("api")

    def refusing(node: str, request: ActRequest) -> ActAnswer:
        raise NodeRefused("container ctr1 is not swarm's container of task t1")

    done = Executor(fake, S, refusing).execute(replace(sid), "orphan-container", T0)
    assert done.result is Result.FAILED and "refused" in done.error
    assert history(fake, sid) == 1


def test_a_reachable_hand_spends_the_budget_as_before() -> None:
    fake = FakeEngine(node_id="n1", now=T0)
    sid = fake.add_service("api")
    ex = Executor(fake, S, lambda n, r: ActAnswer(ok=True, node=n))
    results = [ex.execute(replace(sid), "orphan-container", T0 + i) for i in range(2)]
    assert [d.result for d in results] == [Result.DONE, Result.DONE]
    assert "budget spent" in results[1].circuit_opened
    assert history(fake, sid) == 2


def test_a_hand_in_dry_run_releases_the_claim_and_is_asked_again() -> None:
    # halfway through a rolling update out of dry-run, the brain acts and a node's instance
    # still observes only: not a failure of the fix (no cooldown, no budget, no breaker)
    fake = FakeEngine(node_id="n1", now=T0)
    sid = fake.add_service("api")
    bound = lambda n, r: ActAnswer(ok=False, container="c1", task=r.task, node=n, dry_run=True)  # noqa: E731
    ex = Executor(fake, S, bound)
    for i in range(3):
        done = ex.execute(replace(sid), "orphan-container", T0 + i)
        assert done.result is Result.UNREACHABLE and "dry-run" in done.error
        assert done.circuit_opened == ""
    assert history(fake, sid) == 0
    # once the node's instance acts, the same action goes through and is counted
    done = Executor(fake, S, lambda n, r: ActAnswer(ok=True, node=n)).execute(
        replace(sid), "orphan-container", T0 + 5
    )
    assert done.result is Result.DONE and history(fake, sid) == 1
