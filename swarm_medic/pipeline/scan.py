"""The loop: observe -> match -> decide -> act -> verify -> record, one scan at a time.

`Medic.scan()` is one pass; it is called by the schedule (observe.Schedule) and made to come
early by the watcher and while a fix is being verified. A failure anywhere in a scan is
recorded and the next scan runs as usual: the daemon never dies of a bad answer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from swarm_medic.core import learned as learned_mod
from swarm_medic.core import ledger as ledger_mod
from swarm_medic.core import records
from swarm_medic.core.alerts import AlertBook, Alerts
from swarm_medic.core.apiversion import Speaking
from swarm_medic.core.errors import EngineError, NotAManager
from swarm_medic.core.incidents import (
    NEW_UPDATE,
    REMIND_EVERY,
    Incident,
    Incidents,
    Known,
    Recent,
    Remediation,
    changed_by_someone,
    explained_by,
    new_id,
)
from swarm_medic.core.ledger import Ledger, Pause
from swarm_medic.core.model import (
    HANDS,
    Action,
    Finding,
    LedgerDoc,
    Result,
    Snapshot,
    TargetKind,
    Verdict,
)
from swarm_medic.core.reach import Reachability
from swarm_medic.core.records import IncidentRecord
from swarm_medic.core.runbook import ServiceMemory, Sightings, TaskClock, context
from swarm_medic.core.scope import notify_muted, notify_wanted
from swarm_medic.core.settings import Settings
from swarm_medic.core.storm import Guard
from swarm_medic.core.worth import undone_by
from swarm_medic.nodes.rounds import Prober
from swarm_medic.pipeline import match, policy, verify
from swarm_medic.pipeline.act import Acting, Executor
from swarm_medic.pipeline.hold import AlertsHold
from swarm_medic.pipeline.observe import take_snapshot
from swarm_medic.pipeline.registry import Registry
from swarm_medic.swarm import LOG_LINES, Change, SwarmReader
from swarm_medic.telemetry.journal import Journal

VERIFY_POLL = 2.0
# The medic's own update shows as a new update of its service: one that swarm started this soon
# after the medic acted is taken for the medic's (its updater starts within a second or two)
OWN_UPDATE_GRACE = 30.0
MAX_UNWRITTEN = 1000  # incident record changes kept while the ledger cannot be written


class Brain(SwarmReader, Acting, Protocol):
    """The leader's loop reads the swarm (and a task's log) and the ledger, and acts through
    the executor."""


@dataclass
class State:
    role: str = "starting"  # leader | manager | worker | unreachable
    last_ok: float | None = None
    last_error: str = ""
    snapshot: Snapshot | None = None
    circuits_open: int = 0
    open_until: dict[str, float] = field(default_factory=dict)
    unprobed: dict[str, str] = field(
        default_factory=dict
    )  # node id -> why, last round  # service id -> breaker end
    pending: dict[str, verify.Pending] = field(default_factory=dict)
    ledger_problems: dict[str, tuple[str, float]] = field(default_factory=dict)  # sid -> said
    breaker_why: dict[str, str] = field(default_factory=dict)  # service id -> why it opened
    pause: Pause | None = None  # the pause in force at the last ledger read
    pause_known: bool = False  # False until the ledger is read, and while it cannot be
    hold: str = ""  # why the alerts hold held at the last check ("" : no hold)
    in_progress: int = 0  # remediations under way in the swarm (being verified)


def _undone(
    before: records.Records, after: records.Records, steps: Sequence[records.Change]
) -> list[tuple[IncidentRecord, IncidentRecord]]:
    """(heal, new incident) for each heal that a new incident of these `steps` undoes first."""
    out = []
    for step in steps:
        new = after.by_id.get(step.id) if isinstance(step, records.Opened) else None
        if new is None or step.id in before.by_id or not new.service_id:
            continue
        same = [r for r in after.by_id.values() if r.service_id == new.service_id]
        for r in same:
            earlier = [o for o in same if o.id != new.id]
            if r.healed is not None and undone_by(r, [new]) is new and not undone_by(r, earlier):
                out.append((r, new))
    return out


class Medic:
    """The leader's loop, one scan at a time: the only place that carries state from one scan
    to the next (incidents, task clocks, probe results, fixes being verified), so that every
    step it calls (match, policy, act, verify) can stay a function of what it is given."""

    def __init__(
        self,
        engine: Brain,
        settings: Settings,
        registry: Registry,
        journal: Journal,
        *,
        clock: Callable[[], float] = time.time,
        make_id: Callable[[], str] = new_id,
        prober: Prober | None = None,
        failpoint: Callable[[str], None] = lambda point: None,
        alerts: AlertBook | None = None,
    ) -> None:
        self.engine = engine
        self.alerts = alerts  # None: alerts are not taken in (no --alerts-token)
        self.settings = settings
        self.safety = settings.safety  # the policy's, the executor's and the ledger's
        self.registry = registry
        self.journal = journal
        self.clock = clock
        self.prober = prober
        self.reach = Reachability()
        self.executor = (
            Executor(engine, settings.safety, prober.hands, prober.hands_down, failpoint)
            if prober
            else Executor(engine, settings.safety, failpoint=failpoint)
        )
        self.incidents = Incidents(make_id)
        self._make_id = make_id
        self.task_clock = TaskClock()
        self.sightings = Sightings()
        self.service_memory = ServiceMemory()
        self.state = State()
        self.wake: Callable[[float], None] = lambda delay: None
        self._lock = threading.Lock()
        self._resume_due = False  # pending fixes in the ledger not yet taken over
        # For the status page (web/view.py), read from the HTTP thread without the scan
        # lock: the open incidents as a tuple replaced whole, the last outcomes, and the
        # probe matrix, which a probe round changes only while holding reach_lock.
        self.open_incidents: tuple[Incident, ...] = ()
        self.recent = Recent()
        self.reach_lock = threading.Lock()
        self.hold = AlertsHold.of(settings.safety)  # --hold-while-alerts
        self._told_fixes: dict[str, bool] = {}  # incident id of a fix verified -> notify its end
        self._spoken: Speaking | None = None  # the engine version last said in the journal
        # The incidents' record (core/records.py), written by the leader in acting mode: the
        # changes not written yet, when the medic last acted on each service (its own changes
        # are not someone else's), and whether records an earlier leader left open are to be
        # closed (those whose fault this leader does not see)
        self._unwritten: list[records.Change] = []
        self._acted_at: dict[str, float] = {}
        self._orphans_due = False
        # for the status page: the ledger as last read (the figures are computed when asked)
        self.last_ledger: Ledger | None = None
        # How long each service's tasks normally take to pass each state (core/learned.py):
        # learned by every manager from what it sees, seeded from the ledger (where the leader
        # writes it) when it starts and when it becomes the leader
        self.learned: dict[str, learned_mod.Times] = {}
        self._counted: frozenset[str] = frozenset()  # tasks seen running at the last scan
        self._learned_seeded = False
        self._learned_written: dict[str, learned_mod.Times] = {}
        self._learned_at: float | None = None  # the last write
        self._learned_said: dict[str, tuple[str, float]] = {}  # sid -> (problem, when said)
        # the storm guard (core/storm.py): too much failing at once, no action anywhere
        self.storm = Guard(
            settings.safety.storm_share,
            settings.safety.storm_min,
            settings.safety.storm_window,
            settings.safety.storm_hold,
        )
        # ask first: incident id -> the action proposed (shown until acted on or closed), and
        # the approvals said expired or unreadable (said once each)
        self.proposals: dict[str, str] = {}
        self._approvals_said: set[tuple[str, str]] = set()

    def scan(self) -> None:
        # the scan's notifications go out once all are offered, the most urgent first
        with self._lock, self.journal.notify_batch():
            self._scan()

    def _observe(self, now: float, before: int) -> Snapshot | None:
        """A snapshot, and this instance's role from it (None: nothing to observe now)."""
        try:
            return self._observe_role(now, before)
        finally:
            spoken = self.engine.speaking
            if spoken is not None and spoken != self._spoken:
                where = str(getattr(self.engine, "base_url", "") or "")
                self.journal.engine_speaks(self._spoken, spoken, where)
                self._spoken = spoken

    def _observe_role(self, now: float, before: int) -> Snapshot | None:
        try:
            snap = take_snapshot(self.engine, now)
        except NotAManager as exc:
            if self.state.role != "worker":
                self.journal.not_a_manager(str(exc))
            self.state.role, self.state.last_ok = "worker", now
            return None
        except EngineError as exc:
            self.state.role, self.state.last_error = "unreachable", str(exc)
            self.journal.scan_failed(exc, self.engine.api_calls - before)
            return None
        if snap.is_leader and self.state.role != "leader":
            self._resume_due = True  # a new leader takes over the fixes left unjudged
            self._learned_seeded = False  # and what the last leader learned
        self.state.role = "leader" if snap.is_leader else "manager"
        if snap.is_leader and self._resume_due:
            self._resume_due = not self._resume_pending(snap, now)
        return snap

    def _scan(self) -> None:
        now = self.clock()
        before = self.engine.api_calls
        snap = self._observe(now, before)
        if snap is None:
            return
        for problem in snap.malformed:
            self.journal.malformed_object(problem)
        self.state.snapshot = snap
        self.task_clock.observe(snap.tasks, now)
        self._learn(snap, now)
        if self.prober is not None and snap.is_leader and self.prober.due(now):
            self._probe(self.prober, snap, now)
        seen = self.service_memory.observe(snap.services, now)
        alerts = self.alerts.view(now) if self.alerts is not None else None
        ctx = context(
            snap,
            now,
            self.settings,
            self.task_clock,
            # probe results exist once this instance has probed (the brain): until then the
            # runbooks that need them are not run
            reach=self.reach if self.reach.rounds else None,
            sightings=self.sightings,
            services_seen=seen,
            alerts=alerts,
            learned=self.learned,
        )

        matched = match.run(self.registry, ctx)
        planned, plan_failures = match.plan_all(self.registry.runbooks, matched.findings, ctx)
        # the faults the runbooks still see (reported, or held within their grace): a fix is
        # not healed while its finding's key is among them
        faults = self.sightings.held() | {f.key for f in matched.findings}
        self.sightings.end_scan()
        for failure in (*matched.failures, *plan_failures):
            self.journal.runbook_failed(failure)

        changes = self.incidents.update(matched.findings, now)
        self.open_incidents = self.incidents.all()
        self._storm(matched.findings, snap, now)
        for inc in changes.opened:
            self._opened(inc, snap, now)
        touched = self._watch_services(snap, now, changes.closed)
        for inc in changes.closed:
            self.proposals.pop(inc.id, None)
            self.journal.closed(
                inc,
                now,
                verifying=self._verifying(inc),
                notify=self._tells(inc, snap),
            )
        self._record_steps(snap, now, changes.closed, touched)
        self._remind(snap, now)

        self._verify(snap, now, alerts, faults)

        ledger = self._decide_and_act(planned, snap, now)

        self.state.circuits_open = sum(1 for u in self.state.open_until.values() if u > now)
        self.journal.circuits_open(self.state.circuits_open)
        # after the decisions: each open incident's stance is this scan's
        self.journal.open_incidents(
            self.incidents.open_count(),
            self.incidents.oldest_open_age(now),
            self.incidents.open_since(),
        )
        self.state.in_progress = len(ledger.in_progress(now) | set(self.state.pending))
        self.journal.remediations_in_progress(self.state.in_progress)
        if self._recording(snap):
            self._write_records(now)
            self._write_learned(snap, now)
        self.state.last_ok, self.state.last_error = now, ""
        self.journal.scan_ok(
            snap, self.clock() - now, self.engine.api_calls - before, len(matched.findings)
        )
        if self.state.pending:
            self.wake(VERIFY_POLL)

    def _decide_and_act(
        self, planned: Sequence[tuple[Finding, Action | None]], snap: Snapshot, now: float
    ) -> Ledger:
        """decide, then act on what the gates let through. -> the ledger read for it."""
        ledger = self._read_ledger(planned, snap)
        hold = self._alerts_hold(planned, snap, ledger, now)
        approved = self._approvals(ledger, snap, now)
        decisions = policy.evaluate(
            planned,
            snap,
            ledger=ledger,
            safety=self.safety,
            now=now,
            verifying=frozenset(self.state.pending),
            hands_down=self._hands_down(planned),
            hold=hold,
            storm=self.storm.why(),
            approved=approved,
        )
        for d in decisions:
            incident = self.incidents.get(d.finding.key)
            if incident is None:
                continue
            telling = incident.decided(
                d.verdict.value, d.reason.value, now, every_time=d.verdict is Verdict.ACT
            )
            if telling is not None:
                self.journal.decision(
                    incident,
                    d,
                    reminder=telling == "reminder",
                    notify=self._tells(incident, snap),
                )
            if d.verdict is Verdict.PROPOSE and d.action is not None:
                self._propose(incident, d.action, snap)
            if d.verdict is Verdict.ACT and d.action is not None:
                approval = incident.id if d.finding.key in approved else ""
                self._act(incident, d.action, now, ledger, approval)

        return ledger

    def _opened(self, inc: Incident, snap: Snapshot, now: float) -> None:
        """A new incident said (and told). The last lines of the log of the task its finding
        names come with it: read once, now, and by the leader only (the instance that tells
        people; the other managers would only ask the same node again). A failure to read
        them is said in their place and the scan goes on."""
        if inc.finding.logs_of and snap.is_leader:
            try:
                inc.logs = self.engine.task_logs(inc.finding.logs_of, LOG_LINES) or "(empty)"
            except EngineError as exc:
                inc.logs_error = str(exc)
        cause = explained_by(inc.finding, self.incidents.all(), snap)
        if cause is not None:
            inc.linked_to = cause.id
        tell = self._tells(inc, snap)
        self.journal.opened(inc, notify=tell)
        if tell:
            inc.told_at = now

    def _verifying(self, inc: Incident) -> bool:
        """A fix is being verified for this incident's service, or for the incident itself (a
        node's removal names no service)."""
        pending = self.state.pending
        return inc.finding.service_id in pending or any(
            p.incident_id == inc.id for p in pending.values()
        )

    def _tells(self, inc: Incident, snap: Snapshot) -> bool:
        """Whether people are notified of this incident's steps: only by the leader (the brain;
        the other managers see the same incidents and keep quiet), only of a service not muted
        with swarm-medic.notify=false and severe enough, and not of an incident another one
        explains (one cause, one story: the other incident tells it)."""
        finding = inc.finding
        return (
            not inc.linked_to
            and bool(self.settings.notify.notify)
            and snap.is_leader
            and notify_wanted(
                finding, snap.service(finding.service_id), self.settings.notify.notify_min_severity
            )
        )

    def _remind(self, snap: Snapshot, now: float) -> None:
        """Incidents still open are notified again every --notify-remind (and, on a new leader,
        at once those it never told: they opened before it led)."""
        if not (self.settings.notify.notify and snap.is_leader):
            return
        for inc in self.incidents.all():
            if inc.remind_due(now, self.settings.notify.notify_remind) and self._tells(inc, snap):
                self.journal.still_open(inc, now, notify=True)
                inc.told_at = now

    def _probe(self, prober: Prober, snap: Snapshot, now: float) -> None:
        answers = prober.run(snap, now, self.reach.suspects())
        with self.reach_lock:
            self.reach.record(
                snap,
                answers,
                now,
                period=prober.period,
                lists=prober.lists,
                clocks=prober.clocks,
            )
        hostnames = {n.id: n.hostname for n in snap.nodes}
        # a node that cannot be asked is said once, and again only when the reason changes
        news = {n: why for n, why in prober.failures.items() if self.state.unprobed.get(n) != why}
        self.state.unprobed = dict(prober.failures)
        self.journal.probe_round(
            self.reach,
            prober.seconds,
            news,
            hostnames,
            cpu_seconds=prober.cpu_seconds,
            cover=prober.cover,
            sent=prober.sent,
        )

    def _hands_down(self, planned: Sequence[tuple[object, Action | None]]) -> dict[str, str]:
        nodes = {a.node_id for _, a in planned if a is not None and a.kind in HANDS}
        return {n: why for n in nodes if (why := self.executor.why_no_hands(n))}

    def _read_ledger(
        self,
        planned: Sequence[tuple[object, Action | None]],
        snap: Snapshot,
    ) -> Ledger:
        # Read on every scan of every manager (one small request): the pause switch in it is
        # obeyed, and shown, within one scan. The services' histories matter where the
        # policy says (`history_wanted`, the condition `check` reads them on too).
        ids = policy.history_wanted(planned, snap)
        try:
            ledger = Ledger.from_doc(self.engine.read_ledger(self.safety.ledger_name))
        except EngineError as exc:
            self.state.pause_known = False
            if ids:
                self.journal.ledger_read_failed(str(exc))
            return Ledger(unreadable=ids)
        self._note_pause(ledger, snap.taken_at)
        self.last_ledger = ledger
        self._seed_learned(ledger, snap)
        if not ids:
            return ledger
        if self._resume_due:  # fixes an earlier instance left may be under way: act blind? no.
            return replace(Ledger(unreadable=ids), pause=ledger.pause)
        self.state.open_until = {
            sid: h.open_until for sid, h in ledger.services.items() if h.open_until
        }
        self.state.breaker_why = {
            sid: h.open_reason for sid, h in ledger.services.items() if h.open_until
        }
        self._say_unreadable(ledger, snap)
        return ledger

    def _note_pause(self, ledger: Ledger, now: float) -> None:
        """The pause switch as just read: said when it turns on, changes, ends or expires, and
        at the first read after start-up if it is on."""
        pause, said = ledger.paused(now), self.state.pause
        if pause is not None and (pause != said or not self.state.pause_known):
            self.journal.paused(pause)
        elif pause is None and said is not None:
            if said.until is not None and said.until <= now:
                self.journal.pause_expired(said)
            else:
                self.journal.resumed(said)
        self.state.pause, self.state.pause_known = pause, True
        self.journal.pause_state(pause is not None)

    def _alerts_hold(
        self,
        planned: Sequence[tuple[object, Action | None]],
        snap: Snapshot,
        ledger: Ledger,
        now: float,
    ) -> str:
        """Prometheus asked on a scan that could act (as the ledger's histories are read):
        why the hold holds, or ""."""
        if self.hold is None or ledger.paused(now) is not None:
            return ""
        if not policy.history_wanted(planned, snap):
            return self.state.hold  # not asked: nothing could act; the last answer is shown
        hold = self.hold.check()
        if hold != self.state.hold:
            self.journal.alerts_hold(hold, self.state.hold)
        self.state.hold = hold
        return hold

    def _say_unreadable(self, ledger: Ledger, snap: Snapshot) -> None:
        # Said when an entry turns bad or its problem changes, and again every REMIND_EVERY:
        # loud enough to be seen, not a line per scan.
        now = snap.taken_at
        said = self.state.ledger_problems
        for sid in list(said):
            if sid not in ledger.problems:
                del said[sid]
        for sid, problem in sorted(ledger.problems.items()):
            before = said.get(sid)
            if before is not None and before[0] == problem and now - before[1] < REMIND_EVERY:
                continue
            said[sid] = (problem, now)
            svc = snap.service(sid)
            self.journal.ledger_unreadable(
                sid, svc.name if svc else "", ledger_mod.PREFIX + sid, problem
            )

    def _storm(self, findings: Sequence[Finding], snap: Snapshot, now: float) -> None:
        """The storm guard's verdict on this scan's findings: a storm that starts or ends is
        said (and told, by the leader) once; the gauge says whether one is in force."""
        change = self.storm.observe_snapshot(findings, snap, now)
        tell = bool(self.settings.notify.notify) and snap.is_leader
        if change.started is not None and self.storm.storm is not None:
            self.storm.storm = replace(self.storm.storm, id=self._make_id())
            self.journal.storm_started(self.storm.storm, notify=tell)
        if change.ended is not None:
            self.journal.storm_ended(change.ended, now, notify=tell)
        self.journal.storm_state(self.storm.storm is not None)

    def _approvals(self, ledger: Ledger, snap: Snapshot, now: float) -> frozenset[str]:
        """The findings (keys) whose open incident an operator approved, unexpired. An expired
        approval applies nothing: said once, and dropped from the ledger by the leader; one
        that cannot be read approves nothing and is said once (kept as it is)."""
        for iid, problem in sorted(ledger.approval_problems.items()):
            if (iid, problem) not in self._approvals_said:
                self._approvals_said.add((iid, problem))
                self.journal.approval_unreadable(iid, ledger_mod.APPROVAL_PREFIX + iid, problem)
        expired = [a for a in ledger.approvals.values() if not a.active(now)]
        for a in expired:
            if (a.incident, "expired") not in self._approvals_said:
                self._approvals_said.add((a.incident, "expired"))
                self.journal.approval_expired(a)
        # forgotten once gone from the ledger: the memory is bounded by the ledger's labels
        self._approvals_said &= {(i, p) for i, p in ledger.approval_problems.items()} | {
            (a.incident, "expired") for a in expired
        }
        if expired and self._recording(snap):
            self._drop_approvals([a.incident for a in expired], now)
        if not snap.is_leader:
            return frozenset()
        return frozenset(
            inc.finding.key for inc in self.incidents.all() if ledger.approval(inc.id, now)
        )

    def _drop_approvals(self, incidents: list[str], now: float) -> None:
        def drop(doc: LedgerDoc | None) -> Change[None]:
            ledger = Ledger.from_doc(doc)
            gone = [i for i in incidents if (a := ledger.approvals.get(i)) and not a.active(now)]
            return Change(ledger.without_approvals(gone).labels(now) if gone else None, None)

        try:
            self.engine.cas_update(self.safety.ledger_name, drop)
        except EngineError as exc:
            self.journal.approvals_not_dropped(str(exc))

    def _propose(self, inc: Incident, action: Action, snap: Snapshot) -> None:
        """A proposal is kept for the status page and written into the incident's record, for
        `swarm-medic approve` to say what it lets through."""
        what = f"{action.kind.value} on {action.service_name or action.subject}: {action.reason}"
        if self.proposals.get(inc.id) == what:
            return
        self.proposals[inc.id] = what
        if self._recording(snap):
            self._queue(records.Proposed(inc.id, what))

    def _act(
        self, inc: Incident, action: Action, now: float, decided: Ledger, approval: str = ""
    ) -> None:
        done = self.executor.execute(
            action, inc.finding.runbook, now, decided, inc.id, approval=approval
        )
        if approval and done.claimed:  # the claim's write consumed the approval
            self.proposals.pop(inc.id, None)
            self.journal.approval_used(inc, action)
        # A node-local hand action too: its node's instance does it, the brain tells it.
        snap = self.state.snapshot
        tell = snap is not None and self._tells(inc, snap)
        self.journal.action(inc, action, done.result, done.error, notify=tell)
        if done.result is not Result.DONE:
            self.recent.add(
                Remediation(
                    now,
                    inc.id,
                    inc.finding.runbook,
                    action.service_name,
                    action.kind.value,
                    done.result.value,
                    detail=done.error,
                )
            )
        if done.circuit_opened:
            self.state.open_until[action.subject] = now + self.safety.breaker_reset
            self.state.breaker_why[action.subject] = done.circuit_opened
            self.journal.circuit_opened(
                inc.finding.runbook,
                action.service_name,
                action.subject,
                done.circuit_opened,
                incident=inc.id,
                resets_in=self.safety.breaker_reset,
                notify=tell,
            )
        if done.result is Result.DONE:
            target = inc.finding.target
            if not inc.acted and self._recording(snap):
                self.journal.incident_step(inc.finding.runbook, "fixed")
            inc.acted = True
            self._acted_at[action.service_id] = now
            if self._recording(snap):
                self._queue(records.Acted(inc.id, now))
            self._told_fixes[inc.id] = tell
            self.state.pending[action.subject] = verify.Pending(
                inc.id,
                inc.finding.runbook,
                action,
                now,
                now + self.safety.verify_timeout,
                alert=target.id if target is not None and target.kind is TargetKind.ALERT else "",
                key=inc.finding.key,
            )

    def _verify(
        self,
        snap: Snapshot,
        now: float,
        alerts: Alerts | None = None,
        faults: frozenset[str] = frozenset(),
    ) -> None:
        for sid, p in list(self.state.pending.items()):
            checked = verify.judge(
                p, snap, now, self.safety.verify_hold, self.reach, alerts=alerts, seen=faults
            )
            if isinstance(checked, verify.Pending):
                self.state.pending[sid] = checked
                continue
            del self.state.pending[sid]
            tell = self._told_fixes.pop(p.incident_id, None)
            if tell is None:  # a fix taken over from an earlier leader: told unless muted
                svc = snap.service(sid)
                tell = bool(self.settings.notify.notify) and (svc is None or not notify_muted(svc))
            self.journal.outcome(
                p.incident_id,
                p.runbook,
                p.action,
                result=checked.result,
                elapsed=checked.elapsed,
                detail=checked.detail,
                notify=tell and snap.is_leader,
            )
            self.recent.add(
                Remediation(
                    now,
                    p.incident_id,
                    p.runbook,
                    p.action.service_name,
                    p.action.kind.value,
                    checked.result.value,
                    checked.elapsed,
                    checked.detail,
                )
            )
            healed = checked.result is Result.HEALED
            try:
                written = self.executor.record_outcome(
                    sid, healed, now, incident=p.incident_id, acted=p.started
                )
            except EngineError as exc:
                self.journal.outcome_not_recorded(p.incident_id, str(exc))
                continue
            why = written.circuit_opened
            self._judged(p.runbook, healed, written.record, written.undone_by, now)
            if why:
                self.state.open_until[sid] = now + self.safety.breaker_reset
                self.state.breaker_why[sid] = why
                self.journal.circuit_opened(
                    p.runbook,
                    p.action.service_name,
                    sid,
                    why,
                    incident=p.incident_id,
                    resets_in=self.safety.breaker_reset,
                    notify=tell and snap.is_leader,
                )

    def _adopt(self, ledger: Ledger) -> None:
        """On becoming the leader: the incidents an earlier leader recorded as open keep their
        ids and found times here; those whose fault is gone are closed at the first write."""
        if self.safety.dry_run:
            return
        known = {r.key: Known(r.id, r.found, r.fixed) for r in ledger.records().open() if r.key}
        self.incidents.adopt(known)
        for inc in self.incidents.all():
            inc.recorded = inc.recorded or inc.finding.key in known
        self._orphans_due = True

    def _judged(
        self,
        runbook: str,
        healed: bool,
        record: IncidentRecord | None,
        undone: IncidentRecord | None,
        now: float,
    ) -> None:
        """A fix's verdict as written into its incident's record: counted, and its time to
        heal from the finding (the record says when it was found, whichever leader found it)."""
        if record is None or self.safety.dry_run:
            return  # no record of it (written by an older release, or pruned): not counted
        self.journal.incident_step(runbook, "healed" if healed else "not_healed")
        if healed and record.healed == now:
            self.journal.incident_healed(runbook, max(0.0, now - record.found))
            if undone is not None:
                self.journal.heal_undone(record, undone)

    # --- the incidents' record ----------------------------------------------------------------

    def _recording(self, snap: Snapshot | None) -> bool:
        """Whether this instance writes the incidents' record: the leader, acting (dry-run
        changes nothing, the ledger included)."""
        return snap is not None and snap.is_leader and not self.safety.dry_run

    def _queue(self, change: records.Change) -> None:
        self._unwritten.append(change)
        if len(self._unwritten) > MAX_UNWRITTEN:
            dropped = len(self._unwritten) - MAX_UNWRITTEN
            del self._unwritten[:dropped]
            self.journal.records_dropped(dropped)

    def _watch_services(
        self, snap: Snapshot, now: float, closed: Sequence[Incident]
    ) -> list[Incident]:
        """Each incident's service against its last sighting: a change through the API that
        the medic did not make is someone else's (said once per incident). The medic's own
        shows in the scan after its action; an update swarm started within OWN_UPDATE_GRACE of
        it is the medic's too. -> the incidents someone else's change was first seen on."""
        touched: list[Incident] = []
        if not snap.is_leader:
            # another instance acts: its changes would look like someone else's from here.
            # Forgotten, so that leading later starts from what is seen then
            for inc in self.incidents.all():
                inc.seen = None
            return touched
        for inc in (*self.incidents.all(), *closed):
            sid = inc.finding.service_id
            if not sid:
                continue
            svc = snap.service(sid)
            before, inc.seen, seen_at, inc.seen_at = inc.seen, svc, inc.seen_at, now
            if before is None or inc.touched:
                continue
            what = changed_by_someone(before, svc)
            acted = self._acted_at.get(sid)
            if not what or (acted is not None and acted >= seen_at):
                continue
            us = svc.update_status if svc is not None else None
            started = us.started_at if us is not None else None
            if (
                what == NEW_UPDATE
                and acted is not None
                and started is not None
                and acted - 1.0 <= started <= acted + OWN_UPDATE_GRACE
            ):
                continue
            inc.touched, inc.touched_at = what, now
            self.journal.changed_by_someone(inc, what)
            touched.append(inc)
        return touched

    def _record_steps(
        self,
        snap: Snapshot,
        now: float,
        closed: Sequence[Incident],
        touched: Sequence[Incident],
    ) -> None:
        """This scan's steps of the incidents, queued for the ledger (the leader, acting)."""
        if not self._recording(snap):
            return
        for inc in self.incidents.all():
            if not inc.recorded:  # new, or opened before this instance led
                inc.recorded = True
                f = inc.finding
                self._queue(
                    records.Opened(
                        IncidentRecord(
                            inc.id,
                            f.runbook,
                            inc.opened_at,
                            key=f.key,
                            service_id=f.service_id,
                            service=f.service_name,
                            touched=inc.touched_at,
                        )
                    )
                )
                self.journal.incident_step(f.runbook, "found")
        for inc in touched:
            if inc.recorded and inc.touched_at is not None:
                self._queue(records.Touched(inc.id, inc.touched_at))
        for inc in closed:
            if not inc.recorded:
                continue
            self._queue(records.Closed(inc.id, now))
            ended = "closed_by_someone" if inc.touched_at is not None else "closed_no_human"
            self.journal.incident_step(inc.finding.runbook, ended)
        # kept past the next scan, however far apart scans are: it is the previous scan's
        # action that explains the change the next one sees
        keep = OWN_UPDATE_GRACE * 10 + 2 * self.settings.scan.scan_interval
        for sid in [s for s, t in self._acted_at.items() if now - t > keep]:
            del self._acted_at[sid]

    def _write_records(self, now: float) -> None:
        """The queued steps, in one compare-and-swap of the ledger (nothing queued: no write).
        A failed write keeps them for the next scan. A new incident of a service healed in the
        last HARM_WINDOW undoes that heal: said and counted here, once."""
        orphans = self._orphans_due
        if not self._unwritten and not orphans:
            return
        queued = list(self._unwritten)
        mine = {inc.id for inc in self.incidents.all()}

        def write(doc: LedgerDoc | None) -> Change[list[tuple[IncidentRecord, IncidentRecord]]]:
            ledger = Ledger.from_doc(doc)
            before = ledger.records()
            steps = list(queued)
            if orphans:  # an earlier leader's open incidents whose fault is gone
                steps += [records.Closed(r.id, now) for r in before.open() if r.id not in mine]
            after = ledger.with_records(steps)
            if after is ledger:
                return Change(None, [])
            return Change(after.labels(now), _undone(before, after.records(), queued))

        try:
            harms = self.engine.cas_update(self.safety.ledger_name, write)
        except EngineError as exc:
            self.journal.records_not_written(str(exc), len(queued))
            return
        del self._unwritten[: len(queued)]
        self._orphans_due = False
        for healed, by in harms:
            self.journal.heal_undone(healed, by)

    # --- what each service's history says (core/learned.py) ----------------------------------

    def _learn(self, snap: Snapshot, now: float) -> None:
        """The tasks seen running for the first time counted into their services' times,
        once what the ledger holds is known (`_seed_learned`, at the ledger's read): until
        then nothing is counted, and the tasks are counted at the first scan after."""
        if not self._learned_seeded:
            return
        self.learned, self._counted = learned_mod.observe(
            self.learned, snap, self.task_clock.paths(), self._counted
        )
        present = {s.id for s in snap.services}
        for sid in [sid for sid in self.learned if sid not in present]:
            del self.learned[sid]  # a removed service's history goes with it

    def _seed_learned(self, ledger: Ledger, snap: Snapshot) -> None:
        """What the ledger holds, taken in once at start-up and again on becoming the
        leader (what the last leader learned); its unreadable entries said."""
        if self._learned_seeded:
            return
        book = learned_mod.Book.from_labels(ledger.doc.labels if ledger.doc else {})
        self.learned = learned_mod.seeded(book, self.learned)
        self._learned_written = dict(book.by_service)
        self._learned_seeded = True
        self._say_learned_problems(book, snap, snap.taken_at)

    def _say_learned_problems(self, book: learned_mod.Book, snap: Snapshot, now: float) -> None:
        for sid, problem in sorted(book.problems.items()):
            said = self._learned_said.get(sid)
            if said is not None and said[0] == problem and now - said[1] < REMIND_EVERY:
                continue
            self._learned_said[sid] = (problem, now)
            svc = snap.service(sid)
            self.journal.learned_unreadable(
                sid, svc.name if svc else "", learned_mod.LEARNED_PREFIX + sid, problem
            )

    def _write_learned(self, snap: Snapshot, now: float) -> None:
        """The leader writes what it learned: at most once a minute, or at once when a
        threshold appeared or moved materially; nothing new, no write."""
        changed = {sid: t for sid, t in self.learned.items() if self._learned_written.get(sid) != t}
        if not changed:
            return
        material = any(
            learned_mod.material(self._learned_written.get(s), t) for s, t in changed.items()
        )
        due = self._learned_at is None or now - self._learned_at >= learned_mod.WRITE_EVERY
        if not (material or due):
            return
        services = frozenset(s.id for s in snap.services)
        mine = dict(self.learned)

        def write(doc: LedgerDoc | None) -> Change[None]:
            before = dict(doc.labels) if doc else {}
            after = learned_mod.labels(before, mine, services)
            return Change(None if after == before else after, None)

        try:
            self.engine.cas_update(self.safety.ledger_name, write)
        except EngineError as exc:
            self.journal.learned_not_written(str(exc))
            return
        self._learned_written, self._learned_at = mine, now

    def _resume_pending(self, snap: Snapshot, now: float) -> bool:
        """On becoming the leader: take over the fixes an earlier instance claimed and left
        unjudged (it was killed, or lost the leadership), as `verify.take_over` judges them.
        -> False if the ledger was unreadable."""
        try:
            ledger = Ledger.from_doc(self.engine.read_ledger(self.safety.ledger_name))
        except EngineError as exc:
            self.journal.ledger_resume_read_failed(str(exc))
            return False
        self._adopt(ledger)
        changed, taken = verify.take_over(ledger, snap, now, known=frozenset(self.state.pending))
        for t in taken:
            if t.outcome is verify.TakeOver.RESUMED:
                self.state.pending[t.service_id] = t.pending()
            if t.outcome in (verify.TakeOver.RESUMED, verify.TakeOver.LATE):
                # it reached the engine: the instance that carried it out may not have said so
                self._queue(records.Acted(t.fix.incident, t.fix.at))
            fields = {"incident": t.fix.incident, "runbook": t.fix.runbook, "action": t.fix.kind}
            self.journal.pending_fix(t.outcome.value, t.service_name, t.service_id, **fields)
        if changed is not ledger:
            try:
                self.engine.write_ledger(self.safety.ledger_name, ledger.doc, changed.labels(now))
            except EngineError as exc:  # Conflict included: another instance moved it; retry
                self.journal.ledger_resume_write_failed(str(exc))
                return False
        return True
