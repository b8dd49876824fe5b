"""act: the one executor. Claims the action in the ledger (compare-and-swap), then does it.

Order matters: the ledger write is the claim. If two instances decide the same thing, only
one ledger write succeeds; the other gets Conflict and does nothing. The service update itself
carries the Version.Index the decision was made on, so a service changed meanwhile (a deploy)
makes the action fail cleanly with Conflict instead of overwriting the deploy.

Dry-run never reaches this module: the policy turns every action into `would_act`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from swarm_medic.channel import ChannelError
from swarm_medic.errors import Conflict, EngineError
from swarm_medic.ledger import Ledger
from swarm_medic.model import Action, ActionKind, Result
from swarm_medic.protocol import REMOVE_TASK_CONTAINER, ActAnswer, ActRequest
from swarm_medic.settings import Settings
from swarm_medic.swarm import Engine


@dataclass(frozen=True)
class Done:
    result: Result  # DONE, CONFLICT or FAILED
    error: str = ""
    circuit_opened: str = ""  # why, if this action spent the service's budget

    @property
    def ok(self) -> bool:
        return not self.error


Hands = Callable[[str, ActRequest], ActAnswer]


class Executor:
    def __init__(self, engine: Engine, settings: Settings, hands: Hands | None = None) -> None:
        self._engine = engine
        self._settings = settings
        self.hands = hands  # asks the instance on a node to act there (rounds.Prober.hands)

    def execute(self, action: Action, runbook: str, now: float) -> Done:
        s = self._settings
        try:
            ledger = Ledger.from_doc(self._engine.read_ledger(s.ledger_name))
            ledger, opened = ledger.record_action(
                action.service_id, runbook, now, s.budget_per_hour, s.breaker_reset
            )
            self._engine.write_ledger(s.ledger_name, ledger.doc, ledger.labels(now))
        except Conflict as exc:
            return Done(Result.CONFLICT, f"another instance is acting (ledger moved): {exc}")
        except EngineError as exc:
            return Done(Result.FAILED, f"could not claim the action in the ledger: {exc}")
        why = ledger.history(action.service_id).open_reason if opened else ""
        if action.kind in (ActionKind.REPLACE_TASK, ActionKind.REMOVE_ORPHAN):
            return self._replace_task(action, why)
        try:
            if action.kind is ActionKind.ROLLBACK:
                self._engine.rollback(action.service_id, action.service_version)
            else:  # FORCE_UPDATE and RETRY_UPDATE are both a ForceUpdate bump
                self._engine.force_update(action.service_id, action.service_version)
        except Conflict as exc:
            return Done(Result.CONFLICT, str(exc), why)
        except EngineError as exc:
            return Done(Result.FAILED, str(exc), why)
        return Done(Result.DONE, "", why)

    def _replace_task(self, action: Action, why: str) -> Done:
        if self.hands is None:
            return Done(Result.FAILED, "no hands: node-local actions need the probe channel", why)
        request = ActRequest(
            kind=REMOVE_TASK_CONTAINER, task=action.task_id, service=action.service_id
        )
        try:
            answer = self.hands(action.node_id, request)
        except ChannelError as exc:
            return Done(Result.FAILED, f"node {action.node_id}: {exc}", why)
        if not answer.ok:
            return Done(Result.FAILED, f"node {action.node_id}: {answer}", why)
        return Done(Result.DONE, "", why)

    def record_outcome(self, service_id: str, healed: bool, now: float) -> str:
        """Writes a verified outcome; returns why the circuit opened, if it did."""
        s = self._settings
        for _ in range(3):  # the ledger is shared; retry on a lost compare-and-swap
            ledger = Ledger.from_doc(self._engine.read_ledger(s.ledger_name))
            ledger, opened = ledger.record_outcome(
                service_id, healed, now, s.breaker_failures, s.breaker_reset
            )
            try:
                self._engine.write_ledger(s.ledger_name, ledger.doc, ledger.labels(now))
            except Conflict:
                continue
            return ledger.history(service_id).open_reason if opened else ""
        raise Conflict("could not record the outcome: the ledger kept changing")
