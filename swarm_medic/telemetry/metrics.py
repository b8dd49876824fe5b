"""Every metric swarm-medic exports, built on an injected registry (tests pass a fresh one).

Labels stay low-cardinality: runbook, action, verdict, reason, result, type. Service, task and
node IDs belong in the log line, never in a label. One exception, bounded by the faults open
now: `swarm_medic_incident_open_since_timestamp_seconds` names the service of each open
incident (its series ends when the incident closes), so a page can say which service.

Cost: a series exists once it has something to say. A labelled series appears at its first
count or value, never as a zero created up front for every runbook x reason x action (that was
~700 of an idle brain's 1,650 series, on every instance, workers included); the alerts count
a series that appears inside their window from 0 (deploy/prometheus/rules.py). Only the few
fixed label sets an alert reads with a plain `increase()` are created at 0 (`preinitialise`).
No `_created` series (prometheus_client's default doubles every counter and histogram).
"""

from __future__ import annotations

from enum import StrEnum

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
)

from swarm_medic.core.model import Result

# `_created` samples: one more series per counter and histogram child, which nothing here reads
# (Prometheus 2.x ignores them unless told otherwise). Process-wide, as prometheus_client has it.
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus_client 0.2x

ACTION_RESULTS = (Result.DONE, Result.CONFLICT, Result.FAILED, Result.UNREACHABLE)
VERIFY_RESULTS = (Result.HEALED, Result.NOT_HEALED)
EVENT_TYPES = ("service", "node", "container")
# POST /v1/alerts: taken in, wrong or missing token, not a webhook payload, alerts off
ALERT_RESULTS = ("accepted", "unauthorized", "bad_request", "disabled")
NOTIFY_RESULTS = ("sent", "failed", "dropped")
# What became of the incidents (swarm_medic_incident_outcomes_total's `outcome`): the steps the
# brain records in the ledger, from which `swarm-medic report` computes the same figures
INCIDENT_OUTCOMES = (
    "found",
    "fixed",
    "healed",
    "not_healed",
    "undone",
    "closed_no_human",
    "closed_by_someone",
)


class HttpRefusal(StrEnum):
    """Why the HTTP port refused a request or a connection: the `reason` label of
    swarm_medic_http_refused_total, so a short closed list. Declared with the metric, as the
    other label values are; the port's head parser and server raise it."""

    BAD_REQUEST = "bad_request"
    REQUEST_LINE_TOO_LONG = "request_line_too_long"
    HEADERS_TOO_LARGE = "headers_too_large"
    HTTP_VERSION = "http_version"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    TRANSFER_ENCODING = "transfer_encoding"
    LENGTH_REQUIRED = "length_required"
    BAD_CONTENT_LENGTH = "bad_content_length"
    BODY_TOO_LARGE = "body_too_large"
    INCOMPLETE = "incomplete"
    HEAD_TIMEOUT = "head_timeout"
    BODY_TIMEOUT = "body_timeout"
    WRITE_TIMEOUT = "write_timeout"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    TOO_MANY_FROM_ADDRESS = "too_many_from_address"
    EVICTED = "evicted"
    UNAUTHORIZED = "unauthorized"
    BUSY = "busy"
    HANDLER_TIMEOUT = "handler_timeout"
    INTERNAL_ERROR = "internal_error"


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.info = Info(
            "swarm_medic",
            "Version, mode and scope of this instance, and the engine and Engine API version "
            "it speaks",
            registry=r,
        )
        self._info: dict[str, str] = {}
        self.scans = Counter(
            "swarm_medic_scans_total", "Scans by result (ok, error)", ["result"], registry=r
        )
        self.scan_seconds = Histogram(
            "swarm_medic_scan_duration_seconds",
            "Wall time of one observe+match+decide scan",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.api_calls = Counter(
            "swarm_medic_engine_api_calls_total", "Docker Engine API requests made", registry=r
        )
        self.last_scan = Gauge(
            "swarm_medic_last_scan_timestamp_seconds",
            "Unix time of the last successful scan",
            registry=r,
        )
        self.snapshot_objects = Gauge(
            "swarm_medic_snapshot_objects", "Objects in the last snapshot", ["kind"], registry=r
        )
        self.leader = Gauge(
            "swarm_medic_leader",
            "1 if this instance is on the leader manager (it acts)",
            registry=r,
        )
        self.incidents_opened = Counter(
            "swarm_medic_incidents_total",
            "Incidents opened (a fault first seen)",
            ["runbook"],
            registry=r,
        )
        self.incidents_open = Gauge(
            "swarm_medic_incidents_open", "Incidents open now", ["runbook"], registry=r
        )
        self.incident_open_since = Gauge(
            "swarm_medic_incident_open_since_timestamp_seconds",
            "When the oldest open incident of a runbook on a service opened, by the medic's "
            "stance on it (acting, gave_up, held, report_only); gone when it closes",
            ["runbook", "service", "state"],
            registry=r,
        )
        self.incident_oldest = Gauge(
            "swarm_medic_incident_oldest_open_seconds",
            "Age of the oldest incident open now, per runbook (0: none open)",
            ["runbook"],
            registry=r,
        )
        self.decisions = Counter(
            "swarm_medic_decisions_total",
            "Decisions on incidents, counted when an incident's decision changes",
            ["runbook", "verdict", "reason"],
            registry=r,
        )
        self.actions = Counter(
            "swarm_medic_actions_total",
            "Actions carried out, by result",
            ["runbook", "action", "result"],
            registry=r,
        )
        self.remediations = Counter(
            "swarm_medic_remediations_total",
            "Verified outcomes of actions",
            ["runbook", "result"],
            registry=r,
        )
        self.time_to_heal = Histogram(
            "swarm_medic_time_to_heal_seconds",
            "From action to verified healed",
            ["runbook"],
            buckets=(1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600),
            registry=r,
        )
        self.incident_outcomes = Counter(
            "swarm_medic_incident_outcomes_total",
            "What became of the incidents, counted by the brain as it records them (act mode): "
            "found; fixed (a first action carried out); healed, not_healed (a fix's verdict); "
            "undone (a heal followed within 10 min by another incident of its service); "
            "closed_no_human, closed_by_someone (someone else changed or removed its service)",
            ["runbook", "outcome"],
            registry=r,
        )
        self.incident_time_to_heal = Histogram(
            "swarm_medic_incident_time_to_heal_seconds",
            "From an incident's finding to its fix verified healed (the brain, act mode)",
            ["runbook"],
            buckets=(15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 21600),
            registry=r,
        )
        self.runbook_errors = Counter(
            "swarm_medic_runbook_errors_total",
            "Runbooks that raised during a scan",
            ["runbook"],
            registry=r,
        )
        self.runbook_load_errors = Gauge(
            "swarm_medic_runbook_load_errors", "Runbook files that failed to load", registry=r
        )
        self.circuits_opened = Counter(
            "swarm_medic_circuit_breaker_trips_total",
            "Times a service's circuit breaker opened",
            ["runbook"],
            registry=r,
        )
        self.circuits_open = Gauge(
            "swarm_medic_circuit_breakers_open",
            "Services whose circuit breaker is open now",
            registry=r,
        )
        self.stream_connected = Gauge(
            "swarm_medic_event_stream_connected",
            "1 while the Engine event stream is connected",
            registry=r,
        )
        self.stream_reconnects = Counter(
            "swarm_medic_event_stream_reconnects_total",
            "Event stream (re)connections after a loss",
            registry=r,
        )
        self.events = Counter(
            "swarm_medic_events_total", "Engine events received", ["type"], registry=r
        )
        self.objects_malformed = Counter(
            "swarm_medic_engine_objects_malformed_total",
            "Nodes, services or tasks the engine listed that could not be read (skipped)",
            registry=r,
        )
        self.probe_rounds = Counter(
            "swarm_medic_probe_rounds_total", "Overlay probe rounds run by the brain", registry=r
        )
        self.probes = Counter(
            "swarm_medic_probes_total",
            "Overlay probes (TCP, DNS, VIP) answered by nodes",
            registry=r,
        )
        self.probes_failing = Gauge(
            "swarm_medic_probes_failing", "Task probes that failed in the last round", registry=r
        )
        self.probe_round_seconds = Histogram(
            "swarm_medic_probe_round_duration_seconds",
            "Wall time of one probe round",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        # Per vantage node, so a dashboard shows reachability node by node (the brain's view).
        self.probe_pairs = Gauge(
            "swarm_medic_probe_pairs",
            "Node-to-task probe pairs by vantage node and the state of their last probe",
            ["node", "state"],
            registry=r,
        )
        # Counted on the node whose hand pruned (disk-pressure): its own data root.
        self.pruned_bytes = Counter(
            "swarm_medic_pruned_bytes",
            "Bytes freed on this node's data root by prunes its instance carried out at the "
            "brain's request (disk-pressure.prune), as its filesystem measured them",
            registry=r,
        )
        # Counted on the node that answers: proves the brain reaches this node's instance.
        self.probe_plans_served = Counter(
            "swarm_medic_probe_plans_served_total",
            "Probe plans from the brain that this node's instance answered",
            registry=r,
        )
        self.channel_refused = Counter(
            "swarm_medic_channel_refused_total",
            "Brain-to-node requests refused (bad signature, stale, replayed)",
            registry=r,
        )
        # One series whatever the swarm's size: which node speaks what is in the log, once.
        self.channel_downgraded = Counter(
            "swarm_medic_channel_downgraded_total",
            "Brain-to-node exchanges with an instance of the previous release, which speaks the "
            "previous protocol (a rolling upgrade under way); counted by the newer side",
            registry=r,
        )
        self.http_refused = Counter(
            "swarm_medic_http_refused_total",
            "HTTP requests and connections refused or cut off, by reason",
            ["reason"],
            registry=r,
        )
        self.paused = Gauge(
            "swarm_medic_paused",
            "1 while swarm-medic is paused swarm-wide (`swarm-medic pause`): no action anywhere",
            registry=r,
        )
        self.storm = Gauge(
            "swarm_medic_storm",
            "1 while too much is failing at once (--storm-share): one storm incident, no action "
            "anywhere",
            registry=r,
        )
        self.remediations_in_progress = Gauge(
            "swarm_medic_remediations_in_progress",
            "Remediations under way in the swarm (acted on, being verified): alerts elsewhere "
            "may be silenced meanwhile",
            registry=r,
        )
        self.alerts_hold = Gauge(
            "swarm_medic_alerts_hold",
            "1 while a --hold-while-alerts alert fires or Prometheus could not say: no action",
            registry=r,
        )
        self.events_malformed = Counter(
            "swarm_medic_events_malformed_total", "Engine events that could not be read", registry=r
        )
        self.alerts_received = Counter(
            "swarm_medic_alerts_received_total",
            "Alertmanager notifications on POST /v1/alerts, by result",
            ["result"],
            registry=r,
        )
        self.alerts_firing = Gauge(
            "swarm_medic_alerts_firing",
            "Alerts this instance holds as firing (Alertmanager's word, by POST /v1/alerts)",
            registry=r,
        )
        self.notifications = Counter(
            "swarm_medic_notifications_total",
            "Notification deliveries (message x receiver): sent, failed after retries, or "
            "dropped because the queue was full",
            ["result"],
            registry=r,
        )

    def set_info(self, **fields: str) -> None:
        """Merge fields into swarm_medic_info (the engine's are learnt after the start)."""
        self._info.update(fields)
        self.info.info(dict(self._info))

    def preinitialise(self) -> None:
        """The fixed label sets an alert reads with a plain increase() exist at 0 from start.
        Per-runbook series are not created here: they appear when they first count."""
        self.scans.labels("ok")
        self.scans.labels("error")
        for res in ALERT_RESULTS:
            self.alerts_received.labels(res)
        for why in HttpRefusal:
            self.http_refused.labels(why.value)


_SUFFIX = {"counter": "_total", "info": "_info", "gauge": "", "histogram": ""}


def catalogue() -> list[tuple[str, str, tuple[str, ...], str]]:
    """(exported name, type, label names, help) of every metric, in declaration order: the
    README's list (swarm_medic/readme.py)."""
    m = Metrics(CollectorRegistry())
    out = []
    for metric in vars(m).values():
        if not hasattr(metric, "describe"):
            continue  # not a metric (the info fields kept for set_info)
        (family,) = metric.describe()
        # the label names are not public in prometheus_client; every metric class has them
        labels = tuple(getattr(metric, "_labelnames", ()))
        out.append((family.name + _SUFFIX[family.type], family.type, labels, family.documentation))
    return out
