"""record: the one place that writes the remediation log and increments metrics.

One structured line per finding, decision, action and outcome, bound with runbook, service
(name and id), tasks, nodes and the incident id that ties them together. JSON lines when
stderr is not a terminal, a readable console otherwise.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
from typing import Any, TextIO

import structlog

from swarm_medic.core.alerts import Received
from swarm_medic.core.apiversion import Speaking
from swarm_medic.core.incidents import Incident
from swarm_medic.core.ledger import Approval, Pause
from swarm_medic.core.model import Action, Decision, Reason, Result, Severity, Snapshot, Verdict
from swarm_medic.core.prune import Pruned
from swarm_medic.core.reach import Reachability
from swarm_medic.core.records import IncidentRecord
from swarm_medic.core.runbook import LoadError, RunbookFailure
from swarm_medic.core.storm import Storm
from swarm_medic.telemetry.metrics import Metrics
from swarm_medic.telemetry.notify import Message, Notifier


def configure_logging(fmt: str = "auto", level: str = "info", stream: TextIO | None = None) -> None:
    stream = stream or sys.stderr
    console = fmt == "console" or (fmt == "auto" and stream.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer(sort_keys=False)
        if console
        else structlog.processors.JSONRenderer(sort_keys=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )


def _incident_fields(inc: Incident) -> dict[str, Any]:
    f = inc.finding
    out: dict[str, Any] = {"incident": inc.id, "runbook": f.runbook}
    if f.service_id:
        out["service"] = f.service_name
        out["service_id"] = f.service_id
    if f.task_ids:
        out["tasks"] = list(f.task_ids[:10])
    if f.node_ids:
        out["nodes"] = list(f.node_ids)
    if inc.linked_to:  # another incident's fault explains this one: that one tells the story
        out["linked_to"] = inc.linked_to
    return out


_SEVERITY_KIND = {Severity.INFO: "info", Severity.WARNING: "warning", Severity.CRITICAL: "failure"}


_SEVERITY_PRIORITY = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.INFO: 2}
ALERT_RUNBOOK = "on-alert"  # its findings restate alerts people get from Alertmanager anyway


def _priority(inc: Incident, step: str) -> int:
    """Which messages go first when many wait: by the finding's severity; an alert's own
    finding, reminder or resolution last (an action taken on an alert is news: by severity)."""
    if inc.finding.runbook == ALERT_RUNBOOK and step in ("finding", "reminder", "resolved"):
        return 3
    return _SEVERITY_PRIORITY[inc.finding.severity]


def _message(inc: Incident, step: str, headline: str, kind: str, **fields: str) -> Message:
    f = inc.finding
    return Message(
        step,
        headline,
        inc.id,
        f.runbook,
        f.service_name,
        tuple(fields.items()),
        kind,
        _priority(inc, step),
    )


def _took(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{seconds:.1f}s"


class Journal:
    """The daemon's one voice: every log line and every metric increment goes through a named
    method here, so an event's name and fields are written in one place (operators and tests
    grep them) and nothing else holds the logger. It writes what it is told; when something
    is worth saying again (a reminder) is decided by its caller (Incident.decided)."""

    def __init__(
        self, metrics: Metrics, logger: Any = None, notifier: Notifier | None = None
    ) -> None:
        self.metrics = metrics
        self._log = logger if logger is not None else structlog.get_logger("swarm_medic")
        # Told the steps of an incident its caller says to notify (`notify=True`): the same
        # words as the log line, handed to the notifier's queue (never waited for).
        self.notifier = notifier
        self._notify_lock = threading.Lock()
        self._dropped = 0  # messages dropped since the queue last took one
        self._failing: dict[str, int] = {}  # receiver -> failures since its last delivery
        # reason -> (when its last line was written, refusals not logged since)
        self._http_refusals: dict[str, tuple[float, int]] = {}
        self._runbooks_seen: set[str] = set()  # runbooks that have had an incident
        self._incident_series: set[tuple[str, str, str]] = set()  # (runbook, service, state)
        self._http_lock = threading.Lock()

    # --- the daemon -------------------------------------------------------------------------

    def starting(self, version: str, description: str, **fields: object) -> None:
        self._log.warning(f"swarm-medic {version} starting: {description}", **fields)

    def stopping(self) -> None:
        self._log.warning("stopping")

    def scan_crashed(self, error: BaseException) -> None:
        """A bug, not an engine error: the line carries the traceback."""
        self._log.exception("scan crashed; the next scan runs as scheduled", exc_info=error)

    def not_a_manager(self, error: str) -> None:
        self._log.warning("not a manager: nothing to observe from here", error=error)

    # --- scans ------------------------------------------------------------------------------

    def scan_ok(self, snap: Snapshot, seconds: float, api_calls: int, findings: int) -> None:
        m = self.metrics
        m.scans.labels("ok").inc()
        m.scan_seconds.observe(seconds)
        m.api_calls.inc(api_calls)
        m.last_scan.set(snap.taken_at)
        m.leader.set(1 if snap.is_leader else 0)
        for kind, n in (
            ("node", len(snap.nodes)),
            ("service", len(snap.services)),
            ("task", len(snap.tasks)),
        ):
            m.snapshot_objects.labels(kind).set(n)
        self._log.debug(
            "scan",
            seconds=round(seconds, 4),
            api_calls=api_calls,
            services=len(snap.services),
            tasks=len(snap.tasks),
            findings=findings,
        )

    def engine_speaks(self, before: Speaking | None, now: Speaking, where: str) -> None:
        """The engine answered, first or at another version than before (an upgrade under
        the running medic): said once, and in swarm_medic_info."""
        self.metrics.set_info(engine_version=now.engine, api_version=now.api)
        if before is None:
            self._log.info(f"engine: {now.describe()}", engine=where, **now.fields())
        else:
            self._log.warning(
                f"engine changed: Docker {before.engine} API {before.api} -> "
                f"{now.describe()}; speaking the new version",
                engine=where,
                **now.fields(),
            )

    def scan_failed(self, error: Exception, api_calls: int) -> None:
        self.metrics.scans.labels("error").inc()
        self.metrics.api_calls.inc(api_calls)
        self._log.error("scan failed", error=str(error), error_type=type(error).__name__)

    def runbook_failed(self, failure: RunbookFailure) -> None:
        self.metrics.runbook_errors.labels(failure.runbook).inc()
        self._log.error(
            "runbook raised; the other runbooks still ran",
            runbook=failure.runbook,
            error=failure.error,
        )

    def load_errors(self, errors: list[LoadError]) -> None:
        self.metrics.runbook_load_errors.set(len(errors))
        for e in errors:
            self._log.error(
                "runbook file not loaded; the other runbooks still run",
                path=e.path,
                error=e.message,
            )

    def failpoint(self, point: str) -> None:
        self._log.error("failpoint reached: waiting to be killed", failpoint=point)

    def pending_fix(self, what: str, service: str, service_id: str, **fields: object) -> None:
        """What a new leader did with a fix an earlier instance claimed and left unjudged."""
        self._log.warning(what, service=service, service_id=service_id, **fields)

    def ledger_read_failed(self, error: str) -> None:
        self._log.error("cannot read the ledger; not acting this scan", error=error)

    def ledger_resume_read_failed(self, error: str) -> None:
        self._log.error(
            "cannot read the ledger to take over pending fixes; not acting until it can",
            error=error,
        )

    def ledger_resume_write_failed(self, error: str) -> None:
        self._log.error("cannot write the resumed ledger", error=error)

    def outcome_not_recorded(self, incident: str, error: str) -> None:
        self._log.error(
            "could not record the outcome in the ledger", incident=incident, error=error
        )

    def ledger_unreadable(self, service_id: str, service: str, label: str, problem: str) -> None:
        self._log.error(
            "ledger entry unreadable: no action on this service until the label is fixed "
            "or removed",
            service=service,
            service_id=service_id,
            label=label,
            problem=problem,
        )

    def learned_unreadable(self, service_id: str, service: str, label: str, problem: str) -> None:
        self._log.warning(
            "learned times unreadable: this service's stuck-task thresholds are the configured "
            "ones until it is learned afresh (the label is kept until then)",
            service=service,
            service_id=service_id,
            label=label,
            problem=problem,
        )

    def learned_not_written(self, error: str) -> None:
        self._log.warning(
            "learned times not written to the ledger: tried again at the next scan", error=error
        )

    # --- the pause switch and swarm-wide limits ----------------------------------------------

    def paused(self, pause: Pause) -> None:
        """The pause in force, as first read (at start-up too) or as it changed."""
        self._log.warning(
            pause.describe(),
            paused_since=pause.at,
            paused_until=pause.until,
            reason=pause.reason,
            by=pause.by,
            problem=pause.problem or None,
        )

    def pause_expired(self, pause: Pause) -> None:
        self._log.warning("pause expired: acting again", reason=pause.reason, by=pause.by)

    def resumed(self, pause: Pause) -> None:
        self._log.warning("resumed: acting again", reason=pause.reason, by=pause.by)

    def pause_state(self, paused: bool) -> None:
        self.metrics.paused.set(1 if paused else 0)

    def remediations_in_progress(self, n: int) -> None:
        self.metrics.remediations_in_progress.set(n)

    def alerts_hold(self, why: str, before: str) -> None:
        """The alerts hold as it starts, changes or ends."""
        self.metrics.alerts_hold.set(1 if why else 0)
        if why:
            self._log.warning("holding: no action while alerts fire", why=why)
        else:
            self._log.warning("alerts hold lifted: acting again", was=before)

    # --- the storm guard -----------------------------------------------------------------------

    def storm_started(self, storm: Storm, *, notify: bool = False) -> None:
        """Too much is failing at once: no action anywhere until the share falls back."""
        what = storm.describe()
        self._log.error(
            "storm: too much is failing at once; no action anywhere until it passes",
            incident=storm.id,
            runbook="storm",
            services=list(storm.services),
            nodes=list(storm.nodes),
            runbooks=list(storm.runbooks),
            what=what,
        )
        if notify:
            self._tell(
                Message(
                    "finding",
                    "storm: standing still, no action anywhere",
                    storm.id,
                    "storm",
                    "",
                    (
                        ("what", what),
                        (
                            "advice",
                            "look for one cause (registry, network, a zone); "
                            "swarm-medic acts again by itself once the share falls back",
                        ),
                    ),
                    "failure",
                    0,
                )
            )

    def storm_ended(self, storm: Storm, now: float, *, notify: bool = False) -> None:
        self._log.warning(
            "storm over: acting again",
            incident=storm.id,
            runbook="storm",
            lasted=round(now - storm.since, 1),
        )
        if notify:
            self._tell(
                Message(
                    "resolved",
                    "storm over: acting again",
                    storm.id,
                    "storm",
                    "",
                    (("lasted", _took(now - storm.since)),),
                    "success",
                    1,
                )
            )

    def storm_state(self, storm: bool) -> None:
        self.metrics.storm.set(1 if storm else 0)

    # --- approvals (`swarm-medic approve`) -------------------------------------------------------

    def approval_used(self, inc: Incident, action: Action) -> None:
        self._log.warning(
            "approval applied: consumed", **_incident_fields(inc), action=action.kind.value
        )

    def approval_expired(self, a: Approval) -> None:
        self._log.warning(
            "approval expired: nothing applied", incident=a.incident, by=a.by, until=a.until
        )

    def approval_unreadable(self, incident: str, label: str, problem: str) -> None:
        self._log.error(
            "approval unreadable: refused, nothing applied; kept until fixed or removed",
            incident=incident,
            label=label,
            problem=problem,
        )

    def approvals_not_dropped(self, error: str) -> None:
        self._log.warning("expired approvals not removed from the ledger", error=error)

    # --- incidents ----------------------------------------------------------------------------

    def opened(self, inc: Incident, *, notify: bool = False) -> None:
        f = inc.finding
        self.metrics.incidents_opened.labels(f.runbook).inc()
        # the last lines of the log of the task the finding names, or why they were not read
        logs = {k: v for k, v in (("logs", inc.logs), ("logs_error", inc.logs_error)) if v}
        self._log.warning(
            "finding",
            **_incident_fields(inc),
            summary=f.summary,
            cause=f.cause,
            severity=f.severity.value,
            diagnosis=f.advice,
            **logs,
        )
        if notify:
            told: dict[str, str] = {}
            if inc.logs:
                # one line each, indented under the heading: no line of the log (written by the
                # container) can pass for a field of this message
                told["last log lines"] = "".join(f"\n  | {ln}" for ln in inc.logs.split("\n"))
            if inc.logs_error:
                told["log not read"] = inc.logs_error
            self._tell(
                _message(
                    inc,
                    "finding",
                    f"finding ({f.severity.value})",
                    _SEVERITY_KIND[f.severity],
                    summary=f.summary,
                    cause=f.cause,
                    diagnosis=f.advice,
                    **told,
                )
            )

    def closed(
        self, inc: Incident, now: float, *, verifying: bool = False, notify: bool = False
    ) -> None:
        # After an action the finding usually clears at once; healed is the verifier's word.
        lasted = round(now - inc.opened_at, 1)
        # someone else's change of its service (core.incidents.changed_by_someone): not on its own
        by = {"changed_by_someone": inc.touched} if inc.touched else {}
        self._log.info(
            "cleared; verifying the fix holds" if verifying else "resolved",
            **_incident_fields(inc),
            summary=inc.finding.summary,
            lasted_seconds=lasted,
            **by,
        )
        if notify and not verifying:
            headline = "resolved" if inc.acted else "resolved on its own"
            if inc.touched:
                headline = "resolved after someone else changed the service"
            self._tell(
                _message(
                    inc,
                    "resolved",
                    headline,
                    "success",
                    summary=inc.finding.summary,
                    lasted=_took(lasted),
                )
            )

    def still_open(self, inc: Incident, now: float, *, notify: bool = False) -> None:
        """A reminder of an incident still open (every --notify-remind, by the leader)."""
        f = inc.finding
        lasted = round(now - inc.opened_at, 1)
        self._log.warning(
            "still open", **_incident_fields(inc), summary=f.summary, lasted_seconds=lasted
        )
        if notify:
            self._tell(
                _message(
                    inc,
                    "reminder",
                    f"still open after {_took(lasted)}",
                    _SEVERITY_KIND[f.severity],
                    summary=f.summary,
                    cause=f.cause,
                    diagnosis=f.advice,
                )
            )

    def open_incidents(
        self,
        counts: dict[str, int],
        oldest: dict[str, float] | None = None,
        since: dict[tuple[str, str, str], float] | None = None,
    ) -> None:
        """Open incidents per runbook (a runbook's series appear with its first incident, then
        stay, at 0 when none is open) and per service (a series per open fault, gone when it
        closes: a page names the service, and the cost is the faults open now)."""
        ages = oldest or {}
        self._runbooks_seen.update(counts)
        for rb in sorted(self._runbooks_seen):
            self.metrics.incidents_open.labels(rb).set(counts.get(rb, 0))
            self.metrics.incident_oldest.labels(rb).set(round(ages.get(rb, 0.0), 1))
        now = dict(since or {})
        for gone in self._incident_series - now.keys():
            self.metrics.incident_open_since.remove(*gone)
        for key, opened_at in now.items():
            self.metrics.incident_open_since.labels(*key).set(opened_at)
        self._incident_series = set(now)

    def decision(
        self, inc: Incident, d: Decision, *, reminder: bool = False, notify: bool = False
    ) -> None:
        """A decision that is news (the incident says when: Incident.decided); a reminder is
        logged again but not counted again. Notified: what a dry run would do (once); an act
        is told by `action`, a skip is the finding's story already told."""
        if not reminder:
            self.metrics.decisions.labels(d.finding.runbook, d.verdict.value, d.reason.value).inc()
        fields = _incident_fields(inc)
        what = d.action.kind.value if d.action else None
        if d.verdict is Verdict.ACT:
            self._log.warning(
                "decision: act", **fields, action=what, why=d.action.reason if d.action else ""
            )
        elif d.verdict is Verdict.WOULD_ACT:
            self._log.warning(
                f"decision: would {what} (dry-run: nothing changed)", **fields, action=what
            )
            if notify and not reminder:
                why = d.action.reason if d.action else ""
                self._tell(
                    _message(
                        inc, "would", f"would {what} (dry-run: nothing changed)", "info", why=why
                    )
                )
        elif d.verdict is Verdict.PROPOSE:
            command = f"swarm-medic approve {inc.id}"
            self._log.warning(
                f"decision: propose {what} (waiting for an approval: `{command}` on a manager)",
                **fields,
                action=what,
                why=d.action.reason if d.action else "",
                approve=command,
                explanation=d.explanation or None,
            )
            if notify and not reminder:
                why = d.action.reason if d.action else ""
                self._tell(
                    _message(
                        inc,
                        "would",
                        f"proposes {what}: approve with `{command}` on a manager",
                        "warning",
                        why=why,
                        approve=command,
                    )
                )
        elif d.reason is Reason.CIRCUIT_OPEN:
            self._log.error(
                "decision: circuit breaker OPEN, not acting",
                **fields,
                would=what,
                gate=d.reason.wording,
                explanation=d.explanation,
            )
        elif d.reason is Reason.NO_ACTION:
            self._log.info("decision: report only", **fields, advice=d.finding.advice)
        else:
            self._log.info(
                f"decision: skip ({d.reason.value})",
                **fields,
                would=what,
                gate=d.reason.wording,
                explanation=d.explanation,
            )

    # --- actions and outcomes -----------------------------------------------------------------

    def action(
        self, inc: Incident, action: Action, result: Result, error: str, *, notify: bool = False
    ) -> None:
        self.metrics.actions.labels(inc.finding.runbook, action.kind.value, result.value).inc()
        fields = _incident_fields(inc) | {
            "action": action.kind.value,
            "service_version": action.service_version,
        }
        if result is Result.DONE:
            self._log.warning(f"action: {action.kind.value} done", **fields, why=action.reason)
        else:
            self._log.error(f"action: {action.kind.value} {result.value}", **fields, error=error)
        if notify:
            done = result is Result.DONE
            self._tell(
                _message(
                    inc,
                    "action",
                    f"action: {action.kind.value} {result.value}",
                    "info" if done else "failure",
                    why=action.reason,
                    error=error,
                    next="verifying that the fix holds" if done else "",
                )
            )

    def outcome(
        self,
        inc_id: str,
        runbook: str,
        action: Action,
        *,
        result: Result,
        elapsed: float,
        detail: str,
        notify: bool = False,
    ) -> None:
        self.metrics.remediations.labels(runbook, result.value).inc()
        fields = {
            "incident": inc_id,
            "runbook": runbook,
            "service": action.service_name,
            "service_id": action.service_id,
            "action": action.kind.value,
            "elapsed_seconds": round(elapsed, 1),
            "detail": detail,
        }
        if action.node_id:
            fields["node"] = action.node_id
        healed = result is Result.HEALED
        if healed:
            self.metrics.time_to_heal.labels(runbook).observe(elapsed)
            self._log.warning("verified: healed", **fields)
        else:
            self._log.error("verified: NOT healed", **fields)
        if notify:
            took = _took(elapsed)
            self._tell(
                Message(
                    "healed" if healed else "not-healed",
                    "verified: healed" if healed else "verified: NOT healed",
                    inc_id,
                    runbook,
                    action.service_name,
                    (
                        ("action", action.kind.value),
                        ("time to heal" if healed else "waited", took),
                        ("detail", detail),
                    ),
                    "success" if healed else "failure",
                )
            )

    def circuit_opened(
        self,
        runbook: str,
        service: str,
        service_id: str,
        why: str,
        *,
        incident: str = "",
        resets_in: float = 0.0,
        notify: bool = False,
    ) -> None:
        self.metrics.circuits_opened.labels(runbook).inc()
        headline = "circuit breaker OPENED: no more actions on this service until it resets"
        self._log.error(
            headline,
            incident=incident,
            runbook=runbook,
            service=service,
            service_id=service_id,
            why=why,
        )
        if notify:
            self._tell(
                Message(
                    "circuit",
                    headline,
                    incident,
                    runbook,
                    service,
                    (("why", why), ("resets in", _took(resets_in) if resets_in else "")),
                    "failure",
                )
            )

    # --- the incidents' record: what the healing was worth ----------------------------------

    def incident_step(self, runbook: str, outcome: str) -> None:
        """One step of an incident as the brain records it (INCIDENT_OUTCOMES)."""
        self.metrics.incident_outcomes.labels(runbook, outcome).inc()

    def incident_healed(self, runbook: str, seconds: float) -> None:
        """An incident's fix verified healed, `seconds` after the incident was found."""
        self.metrics.incident_time_to_heal.labels(runbook).observe(seconds)

    def changed_by_someone(self, inc: Incident, what: str) -> None:
        """Someone else changed the service of an open incident: if it closes, a person's
        hand (or a deploy) closed it, not the medic's nor swarm's."""
        self._log.warning(
            "service changed by someone else while the incident is open",
            **_incident_fields(inc),
            change=what,
        )

    def heal_undone(self, healed: IncidentRecord, by: IncidentRecord) -> None:
        """A verified heal followed, within 10 minutes, by another incident of its service:
        the fix did not hold, or did harm."""
        self.metrics.incident_outcomes.labels(healed.runbook, "undone").inc()
        self._log.warning(
            "heal undone: the service had another incident soon after its fix",
            incident=healed.id,
            runbook=healed.runbook,
            service=healed.service,
            service_id=healed.service_id,
            by_incident=by.id,
            by_runbook=by.runbook,
            after_heal_seconds=round(by.found - (healed.healed or by.found), 1),
        )

    def records_not_written(self, error: str, waiting: int) -> None:
        self._log.error(
            "could not write the incidents' record to the ledger; tried again at the next scan",
            error=error,
            waiting=waiting,
        )

    def records_dropped(self, dropped: int) -> None:
        self._log.error(
            "incident record changes dropped: the ledger could not be written for too long",
            dropped=dropped,
        )

    # --- notifications ------------------------------------------------------------------------

    def _tell(self, msg: Message) -> None:
        """Hand a message to the notifier's queue, never waiting: a full queue drops it, counted
        every time and logged once per burst: until the worker has caught up (the queue held
        nothing else), when the number dropped is said."""
        if self.notifier is None:
            return
        queued = self.notifier.offer(msg)
        for _ in range(self.notifier.take_evicted()):  # less urgent ones it replaced
            self.metrics.notifications.labels("dropped").inc()
        caught_up = queued and self.notifier.pending() <= 1
        with self._notify_lock:
            dropped = self._dropped
            if not queued:
                self._dropped += 1
            elif caught_up:
                self._dropped = 0
        if queued:
            if dropped and caught_up:
                self._log.warning("notifications caught up after dropping some", dropped=dropped)
            return
        self.metrics.notifications.labels("dropped").inc()
        if dropped == 0:
            self._log.error(
                "notification dropped: the queue is full (a slow or dead receiver); "
                "further drops are counted, not logged, until the queue is caught up",
                incident=msg.incident,
                step=msg.step,
            )

    def notify_batch(self) -> contextlib.AbstractContextManager[None]:
        """A scan's messages, delivered once all are offered, the most urgent first."""
        if self.notifier is None:
            return contextlib.nullcontext()
        return self.notifier.batch()

    def notification(self, receiver: str, error: str, attempts: int) -> None:
        """What the notifier's worker achieved with one message for one receiver (its URL
        with the tokens masked). A failure is logged once until that receiver takes one."""
        if not error:
            self.metrics.notifications.labels("sent").inc()
            with self._notify_lock:
                failed = self._failing.pop(receiver, 0)
            if failed:
                self._log.warning("notifications delivered again", receiver=receiver, failed=failed)
            return
        self.metrics.notifications.labels("failed").inc()
        with self._notify_lock:
            failed = self._failing.get(receiver, 0)
            self._failing[receiver] = failed + 1
        if failed == 0:
            self._log.error(
                "notification not delivered; further failures to this receiver are counted, "
                "not logged, until one is delivered",
                receiver=receiver,
                attempts=attempts,
                error=error,
            )

    def circuits_open(self, n: int) -> None:
        self.metrics.circuits_open.set(n)

    # --- overlay probes ---------------------------------------------------------------------

    def probe_round(
        self,
        reach: Reachability,
        seconds: float,
        failures: dict[str, str],
        hostnames: dict[str, str],
        *,
        cpu_seconds: float = 0.0,
        cover: int = 1,
        sent: int = 0,
    ) -> None:
        """`cover`: the rounds within which every (node, task) pair is probed; `sent`: the
        targets of the overlays' lists sent to nodes that did not hold them (0 when steady)."""
        m = self.metrics
        m.probe_rounds.inc()
        m.probes.inc(reach.probes_last_round)
        m.probe_round_seconds.observe(seconds)
        # from the matrix's own counts: at 100 nodes it holds 200,000 cells, read by no one here
        failing = len(reach.tcp.suspect)
        m.probes_failing.set(failing)
        bad = reach.tcp.failing_per_node()
        pairs: dict[tuple[str, str], int] = {}
        for node, held in reach.tcp.per_node.items():
            name = hostnames.get(node, node)
            for state, count in (("ok", held - bad.get(node, 0)), ("failing", bad.get(node, 0))):
                if count:
                    pairs[(name, state)] = pairs.get((name, state), 0) + count
        m.probe_pairs.clear()  # a node that left the swarm must not keep its last figures
        for (node, state), count in pairs.items():
            m.probe_pairs.labels(node=node, state=state).set(count)
        for node, why in failures.items():
            self._log.warning(
                "node not probed this round",
                node=hostnames.get(node, node),
                node_id=node,
                error=why,
            )
        for node, errors in reach.errors.items():
            for e in errors:
                self._log.warning(
                    "probe problem on node", node=hostnames.get(node, node), node_id=node, error=e
                )
        self._log.debug(
            "probe round",
            probes=reach.probes_last_round,
            failing=failing,
            seconds=round(seconds, 3),
            cpu_seconds=round(cpu_seconds, 4),
            nodes=len(reach.ipvs),
            # nodes heard this round (`nodes` counts those heard within the window)
            answered=sum(1 for r in reach.answered.values() if r == reach.rounds),
            cover=cover,
            sent=sent,
        )

    def hand_retired(self, container_id: str, error: str) -> None:
        """A retirement the brain asked for (stop with the container's own grace, remove)."""
        if error:
            self._log.error(
                "hand: could not retire the container", container=container_id, error=error
            )
        else:
            self._log.warning("hand: task container stopped and removed", container=container_id)

    def hand_retiring(self, peer: str, task: str, container: str, *, dry_run: bool) -> None:
        """A retirement the brain asked for, as it starts (or what a dry-run node would do)."""
        if dry_run:
            self._log.info(
                "hand: dry-run, would retire a task container; nothing removed",
                peer=peer,
                task=task,
                container=container,
            )
        else:
            self._log.warning(
                "hand: retiring a task container at the brain's request (stop, then remove)",
                peer=peer,
                task=task,
                container=container,
            )

    def hand_pruning(self, peer: str, detail: str, *, dry_run: bool) -> None:
        """A prune the brain asked for (disk-pressure), as it starts, is under way already, or
        what a dry-run node would prune."""
        if dry_run:
            self._log.info("hand: dry-run, would prune; nothing removed", peer=peer, detail=detail)
        else:
            self._log.warning("hand: pruning at the brain's request", peer=peer, detail=detail)

    def hand_pruned(self, p: Pruned) -> None:
        """A prune as it ended: one line, with what it freed, per step, and the logs found."""
        self.metrics.pruned_bytes.inc(p.freed)
        fields: dict[str, Any] = {
            "node": p.node,
            "target_percent": p.target,
            "used_percent_before": p.used_before,
            "used_percent_after": p.used_after,
            "reached": p.reached,
            "freed_bytes": p.freed,
            "build_cache_bytes": p.build_cache,
            "containers": p.containers,
            "dangling_images": p.dangling,
            "images": p.images,
            "in_use_skipped": p.in_use,
            "unbounded_logs": p.unbounded_logs,
            "unbounded": list(p.unbounded),
            "largest_logs": [{"path": f.path, "bytes": f.bytes} for f in p.largest_logs],
        }
        if p.notes:
            fields["notes"] = list(p.notes)
        if p.errors:
            self._log.error("hand: pruned", **fields, errors=list(p.errors))
        else:
            self._log.warning("hand: pruned", **fields)

    def hand_refused(self, peer: str, path: str, error: str) -> None:
        self._log.error("hand: refused", peer=peer, path=path, error=error)

    def probe_plan_served(self) -> None:
        self.metrics.probe_plans_served.inc()

    def channel_refused(self, peer: str, path: str, why: str, *, now: float) -> None:
        """Counted every time; logged at most once a minute (as http_refused): a stream of
        forged requests must not bury the log, nor cost a line each."""
        self.metrics.channel_refused.inc()
        with self._http_lock:
            last, suppressed = self._http_refusals.get("channel", (None, 0))
            if last is not None and now - last < 60.0:
                self._http_refusals["channel"] = (last, suppressed + 1)
                return
            self._http_refusals["channel"] = (now, 0)
        self._log.error(
            "refused brain-to-node request",
            peer=peer,
            path=path,
            why=why,
            suppressed=suppressed,
            suppressed_window_seconds=60.0,
        )

    def peer_protocol(self, before: int | None, theirs: int, ours: int, **peer: str) -> None:
        """A peer heard speaking another protocol than before: said once per change, not every
        round (the caller keeps what each peer last spoke: channel.Versions)."""
        fields = {**peer, "theirs": theirs, "ours": ours, "before": before}
        if theirs < ours:
            self._log.warning("peer speaks an older protocol", **fields)
        elif theirs > ours:
            self._log.warning("peer speaks a newer protocol", **fields)
        else:
            self._log.info("peer speaks our protocol", **fields)

    def peer_protocol_refused(self, theirs: int, ours: int, error: str, **peer: str) -> None:
        """A peer more than one release away, refused: said once per change of its version."""
        self._log.error("refused a peer's protocol", **peer, theirs=theirs, ours=ours, error=error)

    def channel_downgraded(self) -> None:
        """One exchange with an instance of the previous release (counted, never logged)."""
        self.metrics.channel_downgraded.inc()

    # --- HTTP port --------------------------------------------------------------------------

    def http_refused(
        self,
        reason: str,
        status: int,
        peer: str,
        detail: str,
        *,
        now: float,
        every: float = 60.0,
    ) -> None:
        """Counted every time; logged at most once per reason per `every` seconds.

        A port scan or a slowloris sends thousands of these: one line each would bury the
        remediation log (and cost more than refusing). The line says how many were left out.
        """
        self.metrics.http_refused.labels(reason).inc()
        with self._http_lock:
            last, suppressed = self._http_refusals.get(reason, (None, 0))
            if last is not None and now - last < every:
                self._http_refusals[reason] = (last, suppressed + 1)
                return
            self._http_refusals[reason] = (now, 0)
        self._log.warning(
            "http: refused",
            reason=reason,
            status=status,
            peer=peer,
            detail=detail,
            suppressed=suppressed,
            suppressed_window_seconds=every,
        )

    # --- alerts in ---------------------------------------------------------------------------

    def alerts_received(
        self, peer: str, receiver: str, status: str, received: Received, firing_now: int
    ) -> None:
        self.metrics.alerts_received.labels("accepted").inc()
        self.metrics.alerts_firing.set(firing_now)
        self._log.info(
            "alerts: received",
            peer=peer,
            receiver=receiver,
            status=status,
            firing=received.firing,
            resolved=received.resolved,
            stale=received.stale,
            no_service=received.no_service,
            firing_now=firing_now,
        )

    def alerts_refused(self, result: str, peer: str, why: str, *, now: float) -> None:
        """Counted every time; logged at most once a minute per result (as http_refused)."""
        self.metrics.alerts_received.labels(result).inc()
        with self._http_lock:
            last, suppressed = self._http_refusals.get("alerts:" + result, (None, 0))
            if last is not None and now - last < 60.0:
                self._http_refusals["alerts:" + result] = (last, suppressed + 1)
                return
            self._http_refusals["alerts:" + result] = (now, 0)
        self._log.warning(
            "alerts: refused", result=result, peer=peer, why=why, suppressed=suppressed
        )

    # --- event stream -------------------------------------------------------------------------

    def stream_connected(self, since_nano: int | None, reconnect: bool) -> None:
        self.metrics.stream_connected.set(1)
        if reconnect:
            self.metrics.stream_reconnects.inc()
        self._log.info("event stream connected", resumed_from=since_nano, reconnect=reconnect)

    def stream_lost(self, error: str, retry_in: float) -> None:
        self.metrics.stream_connected.set(0)
        self._log.warning(
            "event stream lost; reconnecting", error=error, retry_in_seconds=round(retry_in, 2)
        )

    def event(self, etype: str) -> None:
        self.metrics.events.labels(etype).inc()

    def malformed_object(self, problem: str) -> None:
        self.metrics.objects_malformed.inc()
        self._log.error("engine object skipped: it could not be read", problem=problem)

    def event_malformed(self, error: str, raw: object) -> None:
        self.metrics.events_malformed.inc()
        self._log.error("malformed event skipped", error=error, raw=repr(raw)[:300])
