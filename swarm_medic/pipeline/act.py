"""act: the one executor. Claims the action in the ledger (compare-and-swap), then does it.

Order matters: the ledger write is the claim, and it is a lock only if it is judged against
what the decision saw. The executor reads the ledger afresh; if the service's history there
is not the history the decision was made on (another instance acted, or a fix was recorded,
in between), the gates' premises are gone and it stands down (Conflict). Otherwise it writes
the claim with compare-and-swap on the version it just read, so of two instances that read
the same fresh ledger only one write succeeds. The service update itself carries the
Version.Index the decision was made on, so a service changed meanwhile (a deploy) makes the
action fail cleanly with Conflict instead of overwriting the deploy.

A node entry's removal (REMOVE_NODE) names no service: it is claimed the same way under the
node's id (`Action.subject`), and the engine reads the node's version just before removing it.
So does a prune (PRUNE_NODE): claimed under the node's id, carried out by that node's instance
like a node-local action.

A node-local action needs that node's instance: if the node could not be asked in the last
probe round, nothing is claimed (Result.UNREACHABLE); if the request to it fails, the claim is
released, so a dead node never spends a service's budget or opens its circuit breaker.

The claim also reads the pause switch (`swarm-medic pause`): a pause written after the
decision stands the executor down, and one written after its read makes its compare-and-swap
fail. Once `pause` has returned, nothing new is claimed.

An approved action (`swarm-medic approve`) consumes its approval in the claim's own write: the
claim stands down if the approval is gone from the fresh ledger (applied by another instance,
expired), so one approval lets one action through.

Dry-run never reaches this module: the policy turns every action into `would_act`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from swarm_medic.core.errors import Conflict, EngineError, NotFound
from swarm_medic.core.ledger import Ledger, Verifying, as_written
from swarm_medic.core.model import HANDS, Action, ActionKind, LedgerDoc, Result
from swarm_medic.core.protocol import PRUNE_NODE, REMOVE_TASK_CONTAINER, ActAnswer, ActRequest
from swarm_medic.core.records import IncidentRecord, Judged
from swarm_medic.core.settings import SafetySettings
from swarm_medic.core.worth import undone_by
from swarm_medic.nodes.channel import ChannelError, NodeRefused
from swarm_medic.swarm import Change, LedgerStore, NodeWriter, ServiceWriter


class Acting(ServiceWriter, NodeWriter, LedgerStore, Protocol):
    """The executor's engine: the ledger (the claim, the outcome) and the service (or the node
    entry) it changes."""


@dataclass(frozen=True)
class Done:
    result: Result  # DONE, CONFLICT, FAILED or UNREACHABLE
    error: str = ""
    circuit_opened: str = ""  # why, if this action spent the service's budget
    claimed: bool = False  # the claim was written (an approval it carried is consumed)


@dataclass(frozen=True)
class Recorded:
    """A verified outcome as written: why the circuit opened ("" : it did not), the incident's
    record after it (None: the ledger has none), and the incident that undid a heal."""

    circuit_opened: str = ""
    record: IncidentRecord | None = None
    undone_by: IncidentRecord | None = None


Hands = Callable[[str, ActRequest], ActAnswer]
# node id -> why that node's instance cannot be asked now ("" when it can)
HandsDown = Callable[[str], str]


class Executor:
    """Carries out decided actions: claim in the ledger, act, say what happened (a `Done`).

    The only code that changes the swarm, so that the claim-then-act order (the ledger lock
    between instances) cannot be skipped by a caller."""

    def __init__(
        self,
        engine: Acting,
        settings: SafetySettings,
        hands: Hands | None = None,
        hands_down: HandsDown = lambda node_id: "",
        failpoint: Callable[[str], None] = lambda point: None,
    ) -> None:
        self._engine = engine
        # fault-injection tests stop the process here (core.failpoints); a no-op otherwise
        self.failpoint = failpoint
        self._settings = settings
        self.hands = hands  # asks the instance on a node to act there (rounds.Prober.hands)
        self.hands_down = hands_down

    def why_no_hands(self, node_id: str) -> str:
        """Why a node-local action on `node_id` cannot be asked for now ("" if it can)."""
        if self.hands is None:
            return "no hands: node-local actions need the probe channel"
        return self.hands_down(node_id)

    def execute(
        self,
        action: Action,
        runbook: str,
        now: float,
        decided: Ledger | None = None,
        incident: str = "",
        *,
        approval: str = "",
    ) -> Done:
        """`decided`: the ledger the decision was made on (None: judge on the fresh read).
        `incident`: recorded with the claim, so a verification outlives this process.
        `approval`: the incident whose approval lets this action through, consumed by the
        claim ("" : none needed)."""
        # the policy skips these already; this covers a node lost between decision and act
        down = self.why_no_hands(action.node_id) if action.kind in HANDS else ""
        if down:
            return Done(Result.UNREACHABLE, f"node {action.node_id}: {down}")
        pending = Verifying(
            incident=incident,
            runbook=runbook,
            kind=action.kind.value,
            version=action.service_version,
            at=now,
            deadline=now + self._settings.verify_timeout,
            task=action.task_id,
            node=action.node_id,
        )
        claim = self._claim(action.subject, runbook, now, decided, pending, approval=approval)
        if isinstance(claim, Done):
            return claim
        fresh, claimed, why = claim
        self.failpoint("after-claim")
        if action.kind in HANDS:
            done = self._by_hand(action, why)
            if done.result is Result.UNREACHABLE:
                self._release(action.subject, fresh, claimed, now)
            return replace(done, claimed=True)
        if action.kind is ActionKind.REMOVE_NODE:
            done = self._remove_node(action, why)
        else:
            done = self._update_service(action, why)
        self.failpoint("after-act")
        return replace(done, claimed=True)

    def _claim(
        self,
        sid: str,
        runbook: str,
        now: float,
        decided: Ledger | None,
        pending: Verifying,
        *,
        approval: str = "",
    ) -> Done | tuple[Ledger, Ledger, str]:
        """The ledger write that is the lock -> (ledger before, ledger claimed, why the circuit
        opened) or the Done that says why we stand down."""
        s = self._settings
        try:
            fresh = Ledger.from_doc(self._engine.read_ledger(s.ledger_name))
            if (why := self._stand_down(fresh, sid, now, decided, approval)) is not None:
                return Done(Result.CONFLICT, why)
            claimed, opened = fresh.record_action(
                sid, runbook, now, s.budget_per_hour, s.breaker_reset, pending=pending
            )
            if approval:  # applied once: consumed by the write that claims the action
                claimed = claimed.without_approvals([approval])
            self._engine.write_ledger(s.ledger_name, fresh.doc, claimed.labels(now))
        except Conflict as exc:
            return Done(Result.CONFLICT, f"another instance is acting (ledger moved): {exc}")
        except EngineError as exc:
            return Done(Result.FAILED, f"could not claim the action in the ledger: {exc}")
        return fresh, claimed, claimed.history(sid).open_reason if opened else ""

    def _stand_down(
        self, fresh: Ledger, sid: str, now: float, decided: Ledger | None, approval: str
    ) -> str | None:
        """Why the fresh ledger takes away a premise of the decision (None: claim)."""
        s = self._settings
        if (pause := fresh.paused(now)) is not None:  # paused since the decision
            return f"swarm-medic was paused: {pause.describe()}"
        if decided is not None and not fresh.same_history(decided, sid, now):
            return "another instance acted on this service since the decision (ledger moved)"
        # The policy judged the swarm-wide limit on the ledger it read; two instances that
        # both believe they lead (an election under way) each pass that check. Judged again
        # on the ledger this claim is written against, a second claim loses the
        # compare-and-swap or sees the first one here.
        under_way = fresh.in_progress(now) - {sid}
        if 0 < s.max_concurrent_actions <= len(under_way):
            return (
                f"{len(under_way)} remediations under way in the swarm since the decision; "
                f"limit {s.max_concurrent_actions}"
            )
        if approval and fresh.approval(approval, now) is None:
            return f"the approval of incident {approval} is gone (applied already, or expired)"
        return None

    def _update_service(self, action: Action, why: str) -> Done:
        try:
            if action.kind is ActionKind.ROLLBACK:
                self._engine.rollback(action.service_id, action.service_version)
            elif action.kind is ActionKind.RESUME_UPDATE:
                self._engine.resume_update(action.service_id, action.service_version)
            else:  # FORCE_UPDATE and RETRY_UPDATE are both a ForceUpdate bump
                self._engine.force_update(action.service_id, action.service_version)
        except Conflict as exc:
            return Done(Result.CONFLICT, str(exc), why)
        except EngineError as exc:
            return Done(Result.FAILED, str(exc), why)
        return Done(Result.DONE, "", why)

    def _remove_node(self, action: Action, why: str) -> Done:
        try:
            self._engine.remove_node(action.node_id, action.service_version)
        except Conflict as exc:
            return Done(Result.CONFLICT, str(exc), why)
        except NotFound as exc:  # someone removed it first: nothing of ours to verify
            return Done(Result.FAILED, f"the node entry is gone already ({exc})", why)
        except EngineError as exc:
            return Done(Result.FAILED, str(exc), why)
        return Done(Result.DONE, "", why)

    def _by_hand(self, action: Action, why: str) -> Done:
        request = _request(action)
        # neither happens: hands are checked before the claim, and prune_node() says what a
        # prune keeps (none that keeps nothing is ever asked for); kept for the type checker
        if self.hands is None or request is None:
            what = "no hands" if self.hands is None else "a prune that says nothing of its keep"
            return Done(Result.UNREACHABLE, what)
        try:
            answer = self.hands(action.node_id, request)
        except NodeRefused as exc:  # a definitive no: the claim stands (cooldown, budget)
            return Done(Result.FAILED, f"node {action.node_id} refused: {exc}", why)
        except ChannelError as exc:
            # The action is idempotent (a second request for a container already gone is
            # refused by the node; one for a prune under way starts nothing new), so a request
            # that may or may not have arrived is released.
            return Done(Result.UNREACHABLE, f"node {action.node_id}: {exc}")
        if answer.dry_run:
            # not a no to this action: that node's instance observes only (for instance halfway
            # through a rolling update out of dry-run). Nothing spent; asked again next scan.
            said = f": {answer.detail}" if answer.detail else ""
            return Done(
                Result.UNREACHABLE,
                f"node {action.node_id}: its instance runs in dry-run; nothing removed{said}",
            )
        if not answer.ok:
            return Done(Result.FAILED, f"node {action.node_id}: {answer}", why)
        return Done(Result.DONE, "", why)

    def _release(self, service_id: str, before: Ledger, claimed: Ledger, now: float) -> None:
        """Undo our own claim, unless someone else has written this service's history since."""
        name = self._settings.ledger_name
        try:
            cur = Ledger.from_doc(self._engine.read_ledger(name))
            if cur.history(service_id) != as_written(claimed.history(service_id)):
                return
            restored = cur.with_history(service_id, before.history(service_id))
            self._engine.write_ledger(name, cur.doc, restored.labels(now))
        except EngineError:
            pass  # the claim stands: one action of budget spent, the safe way to be wrong

    def record_outcome(
        self,
        service_id: str,
        healed: bool,
        now: float,
        *,
        incident: str = "",
        acted: float | None = None,
    ) -> Recorded:
        """Writes a verified outcome, and the verdict into its incident's record in the same
        write (`acted`: when the fix was claimed). -> what was written."""
        s = self._settings

        def record(doc: LedgerDoc | None) -> Change[Recorded]:
            ledger, opened = Ledger.from_doc(doc).record_outcome(
                service_id, healed, now, s.breaker_failures, s.breaker_reset
            )
            if incident:
                ledger = ledger.with_records([Judged(incident, healed, now, acted)])
            records = ledger.records()
            after = records.by_id.get(incident)
            # an incident of the service found since its fix, before this heal, undid it already
            first_heal = healed and after is not None and after.healed == now
            undone = undone_by(after, records.by_id.values()) if after and first_heal else None
            why = ledger.history(service_id).open_reason if opened else ""
            return Change(ledger.labels(now), Recorded(why, after, undone))

        try:  # the ledger is shared: a lost compare-and-swap is read and recorded again
            return self._engine.cas_update(s.ledger_name, record)
        except Conflict:
            raise Conflict("could not record the outcome: the ledger kept changing") from None


def _request(action: Action) -> ActRequest | None:
    """What the node's instance is asked: a prune names the node where a removal names a task
    and a service (an instance of a release before prunes refuses it by name)."""
    if action.kind is ActionKind.PRUNE_NODE:
        if (p := action.prune) is None:
            return None
        node = action.node_id
        return ActRequest(
            kind=PRUNE_NODE, task=node, service=node, keep=p.keep, wanted=p.wanted, target=p.target
        )
    return ActRequest(kind=REMOVE_TASK_CONTAINER, task=action.task_id, service=action.service_id)
