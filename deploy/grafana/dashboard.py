"""Generates deploy/grafana/swarm-medic.json, the swarm-medic dashboard, with Grafana's own
grafana-foundation-sdk (its builders are generated from Grafana's schema, so what they build
is what Grafana reads; `pip install -e '.[dev]'` installs it).

    python deploy/grafana/dashboard.py            # rewrite swarm-medic.json
    python deploy/grafana/dashboard.py --check    # exit 1 if the committed JSON is stale

The datasource is the `${datasource}` template variable (type datasource), never a fixed uid,
so the dashboard imports into any Grafana. `$cluster` picks the swarm (the label the rules
aggregate by, deploy/prometheus/rules.py). `queries()` gives every panel's PromQL with
Grafana's variables replaced by real values, for checking them against a real Prometheus
(tests/dashboard.py); `may_be_empty()` the ones whose series appear only once something
happened (a notification, a runbook error: no series of zeros is exported before).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus, stat, statetimeline, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

OUT = Path(__file__).with_name("swarm-medic.json")
UID = "swarm-medic"
DS = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
SEL = 'cluster=~"$cluster", job="$job", instance=~"$instance"'  # the chosen medics' series
CL = 'cluster=~"$cluster"'  # recording rules keep the cluster label only
RATE = "$__rate_interval"
STATUS_PORT = 9324  # the stack's MEDIC_PORT: the brain's status page is GET / there

# Expressions whose series appear only once something has happened (lazily created series).
_LAZY: set[str] = set()


def q(expr: str, legend: str = "", *, instant: bool = False, lazy: bool = False) -> Any:
    if lazy:
        _LAZY.add(expr)
    t = prometheus.Dataquery().expr(expr).legend_format(legend).datasource(DS)
    if instant:
        t = t.instant().format(PromQueryFormat.TABLE)
    return t


def states(*pairs: tuple[str, str, str]) -> list[Any]:
    """A value mapping: (value, text, colour) for each state a 0/1 series can be in."""
    options = {
        v: model.ValueMappingResult(text=t, color=c, index=i) for i, (v, t, c) in enumerate(pairs)
    }
    return [model.ValueMap(options=options)]


UP = states(("0", "down", "red"), ("1", "up", "green"))
LEADER = states(("0", "follower", "transparent"), ("1", "leader (brain)", "blue"))
STREAM = states(("0", "disconnected", "red"), ("1", "connected", "green"))
PAUSED = states(("0", "acting", "green"), ("1", "PAUSED", "orange"))
HOLD = states(("0", "free", "green"), ("1", "HELD", "orange"))


def timeline(title: str, about: str, targets: list[Any], mappings: list[Any], w: int) -> Any:
    p = (
        statetimeline.Panel()
        .title(title)
        .description(about)
        .datasource(DS)
        .mappings(mappings)
        .show_value(common.VisibilityMode.NEVER)
        .span(w)
        .height(6)
    )
    for i, t in enumerate(targets):
        p = p.with_target(t.ref_id(chr(ord("A") + i)))
    return p


def series(title: str, about: str, targets: list[Any], unit: str = "short", w: int = 8) -> Any:
    p = timeseries.Panel().title(title).description(about).datasource(DS).unit(unit)
    p = p.span(w).height(8)
    for i, t in enumerate(targets):
        p = p.with_target(t.ref_id(chr(ord("A") + i)))
    return p


def figure(title: str, about: str, targets: list[Any], w: int = 6, unit: str = "short") -> Any:
    p = stat.Panel().title(title).description(about).datasource(DS).unit(unit).span(w).height(8)
    for i, t in enumerate(targets):
        p = p.with_target(t.ref_id(chr(ord("A") + i)))
    return p


def grid(title: str, about: str, target: Any, w: int = 12) -> Any:
    return (
        table.Panel()
        .title(title)
        .description(about)
        .datasource(DS)
        .with_target(target.ref_id("A"))
        .show_header(True)
        # an instant table: the sample's time says nothing, the labels and the value do
        .with_transformation(
            model.DataTransformerConfig(
                id_val="organize", options={"excludeByName": {"Time": True, "__name__": True}}
            )
        )
        .span(w)
        .height(8)
    )


def merged(title: str, about: str, columns: list[tuple[str, Any]], w: int = 16) -> Any:
    """A table of instant queries joined on their labels (runbook), a column each."""
    p = table.Panel().title(title).description(about).datasource(DS).show_header(True)
    names = {}
    for i, (name, target) in enumerate(columns):
        ref = chr(ord("A") + i)
        p = p.with_target(target.ref_id(ref))
        names[f"Value #{ref}"] = name
    p = p.with_transformation(model.DataTransformerConfig(id_val="merge", options={}))
    p = p.with_transformation(
        model.DataTransformerConfig(
            id_val="organize",
            options={"excludeByName": {"Time": True}, "renameByName": names},
        )
    )
    return p.span(w).height(8)


def outcomes(outcome: str, by: str = "runbook") -> str:
    """An incident step counted over the dashboard's time range (by the brain, act mode)."""
    return (
        f"sum by ({by}) (increase(swarm_medic_incident_outcomes_total"
        f'{{{SEL}, outcome=~"{outcome}"}}[$__range]))'
    )


def heal_quantile(q: float, by: str = "runbook") -> str:
    return (
        f"histogram_quantile({q}, sum by ({by}, le) "
        f"(increase(swarm_medic_incident_time_to_heal_seconds_bucket{{{SEL}}}[$__range])))"
    )


def worth_row(d: Any) -> Any:
    """`swarm-medic report` from the metrics: the same definitions (README), over the time
    range, from the brain's counters (Prometheus's percentiles are bucket estimates)."""
    d = d.with_row(dash.Row("What the healing was worth (in the time range)"))
    per = [
        ("found", q(outcomes("found"), instant=True, lazy=True)),
        ("fixed", q(outcomes("fixed"), instant=True, lazy=True)),
        ("healed", q(outcomes("healed"), instant=True, lazy=True)),
        ("did not hold", q(outcomes("not_healed|undone"), instant=True, lazy=True)),
        ("time to heal p50", q(heal_quantile(0.5), instant=True, lazy=True)),
        ("time to heal p95", q(heal_quantile(0.95), instant=True, lazy=True)),
        (
            "closed, no human",
            q(
                f"{outcomes('closed_no_human')} / {outcomes('found')}",
                instant=True,
                lazy=True,
            ),
        ),
        ("harm", q(f"{outcomes('undone')} / {outcomes('healed')}", instant=True, lazy=True)),
    ]
    d = d.with_panel(
        merged(
            "Incidents found, fixed, healed, per runbook",
            "Incidents found in the time range, fixed (the medic carried out an action), "
            "verified healed, fixes that did not hold (judged not healed, or a heal undone), "
            "time to heal from the finding (p50/p95, bucket estimates), the share closed "
            "with no human action, and the harm rate (heals undone over heals). "
            "`swarm-medic report --since` computes the same from the ledger.",
            per,
        )
    )
    d = d.with_panel(
        figure(
            "Closed with no human action",
            "Incidents closed while nobody but the medic changed their service (by its fix or "
            "by swarm itself), over the incidents found.",
            [
                q(
                    f"{outcomes('closed_no_human', 'cluster')} / {outcomes('found', 'cluster')}",
                    "{{cluster}}",
                    lazy=True,
                )
            ],
            w=4,
            unit="percentunit",
        )
    )
    return d.with_panel(
        figure(
            "Harm rate",
            "Heals undone (another incident of the service within 10 min of the heal) over heals.",
            [
                q(
                    f"{outcomes('undone', 'cluster')} / {outcomes('healed', 'cluster')}",
                    "{{cluster}}",
                    lazy=True,
                )
            ],
            w=4,
            unit="percentunit",
        )
    )


def build() -> Any:
    _LAZY.clear()
    d = (
        dash.Dashboard("swarm-medic")
        .uid(UID)
        .description("swarm-medic: is it running, what it finds, what it does, does it heal")
        .tags(["swarm-medic", "docker-swarm"])
        .editable()
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("")
        .link(
            dash.DashboardLink("The brain's status page")
            .type(model.DashboardLinkType.LINK)
            .url(f"http://${{brain}}:{STATUS_PORT}/")
            .tooltip("GET / of the instance on the leader manager: incidents, fixes, breakers")
            .target_blank(True)
        )
        .annotation(
            dash.AnnotationQuery()
            .name("swarm-medic acted")
            .datasource(DS)
            .enable(True)
            .icon_color("orange")
            .expr(
                "sum by (runbook, action, result) (increase(swarm_medic_actions_total"
                f'{{{CL}, job="$job"}}[2m])) > 0'
            )
        )
    )
    for v in variables():
        d = d.with_variable(v)

    d = d.with_row(dash.Row("Now: what needs a person"))
    d = d.with_panel(
        grid(
            "Open incidents, by service",
            "Every fault open now, with its service, its runbook, how long it has been open and "
            "the medic's stance: acting (fixing it), gave_up (breaker open or budget spent: a "
            "person must fix it, SwarmMedicIncidentUnfixed pages), held (dry-run, not opted in, "
            "paused, alerts hold) or report_only (the runbook only reports it).",
            q(
                f"cluster_runbook_service_state:swarm_medic_incident_age_seconds:max{{{CL}}}",
                instant=True,
                lazy=True,
            ),
            w=16,
        ).unit("s")
    )
    d = d.with_panel(
        figure(
            "Report-only faults standing",
            "Faults the medic only reports (a node down, stale config versions, an unbalanced "
            "service, a full overlay): they never page; they are listed here until fixed.",
            [
                q(
                    "count(cluster_runbook_service_state:swarm_medic_incident_age_seconds:max"
                    f'{{{CL}, state="report_only"}})',
                    "standing",
                    lazy=True,
                )
            ],
            w=8,
        )
    )
    d = d.with_panel(
        timeline(
            "Paused swarm-wide",
            "swarm-medic pause: no action anywhere while PAUSED (SwarmMedicPausedTooLong).",
            [q(f"cluster:swarm_medic_paused:max{{{CL}}}", "{{cluster}}")],
            PAUSED,
            12,
        )
    )
    d = d.with_panel(
        timeline(
            "Alerts hold (--hold-while-alerts)",
            "HELD: a named Prometheus alert fires, or Prometheus could not be asked; no action "
            "meanwhile (SwarmMedicAlertsHoldStuck).",
            [q(f"cluster:swarm_medic_alerts_hold:max{{{CL}}}", "{{cluster}}")],
            HOLD,
            12,
        )
    )

    d = d.with_row(dash.Row("Medic health (one instance per node)"))
    d = d.with_panel(
        timeline(
            "Medic up, per node",
            "up of each node's swarm-medic scrape target.",
            [q(f"up{{{SEL}}}", "{{instance}}")],
            UP,
            12,
        )
    )
    d = d.with_panel(
        timeline(
            "On the leader (the brain), per node",
            "swarm_medic_leader: exactly one node should be the brain (alerts NoBrain, "
            "SplitBrain). The dashboard link opens the brain's status page.",
            [q(f"swarm_medic_leader{{{SEL}}}", "{{instance}}")],
            LEADER,
            12,
        )
    )
    d = d.with_panel(
        series(
            "Seconds since the last scan, per manager",
            "Workers never scan and are left out. Alert SwarmMedicScansStale above 180 s.",
            [q(f"time() - (swarm_medic_last_scan_timestamp_seconds{{{SEL}}} > 0)", "{{instance}}")],
            unit="s",
        )
    )
    d = d.with_panel(
        timeline(
            "Engine event stream",
            "Each instance's Engine event stream (it still scans on its timer without it).",
            [q(f"swarm_medic_event_stream_connected{{{SEL}}}", "{{instance}}")],
            STREAM,
            8,
        )
    )
    d = d.with_panel(
        grid(
            "Version and mode",
            "swarm_medic_info: version, mode (dry_run or act) and scope of each instance "
            "(SwarmMedicModeMismatch when they disagree for hours).",
            q(f"swarm_medic_info{{{SEL}}}", instant=True),
            w=8,
        )
    )

    d = d.with_row(dash.Row("Incidents and decisions"))
    d = d.with_panel(
        series(
            "Open incidents, per runbook",
            "Faults open now (the brain's count; max over the instances that report one).",
            [q(f"max by (runbook) (swarm_medic_incidents_open{{{SEL}}})", "{{runbook}}")],
        )
    )
    d = d.with_panel(
        series(
            "Decisions, by verdict and reason",
            "Counted when an incident's decision changes (act, would_act, skip and why).",
            [
                q(
                    "sum by (verdict, reason) "
                    f"(increase(swarm_medic_decisions_total{{{SEL}}}[{RATE}]))",
                    "{{verdict}} {{reason}}",
                )
            ],
        )
    )
    d = d.with_panel(
        figure(
            "Dry-run: would act (in the time range)",
            "Decisions swarm-medic would have carried out if it were not in dry-run.",
            [
                q(
                    "sum by (runbook) (increase(swarm_medic_decisions_total"
                    f'{{{SEL}, verdict="would_act"}}[$__range]))',
                    "{{runbook}}",
                    instant=True,
                )
            ],
            w=8,
        )
    )

    d = d.with_row(dash.Row("Actions, outcomes, time to heal"))
    d = d.with_panel(
        series(
            "Actions, by result",
            "Actions carried out: done, conflict, failed, unreachable (SwarmMedicActionsFailing).",
            [
                q(
                    "sum by (runbook, action, result) "
                    f"(increase(swarm_medic_actions_total{{{SEL}}}[{RATE}]))",
                    "{{runbook}} {{action}} {{result}}",
                )
            ],
        )
    )
    d = d.with_panel(
        figure(
            "Verified outcomes (in the time range)",
            "healed: the fix held; not_healed: it did not (SwarmMedicFixNotHeld).",
            [
                q(
                    "sum by (runbook, result) "
                    f"(increase(swarm_medic_remediations_total{{{SEL}}}[$__range]))",
                    "{{runbook}} {{result}}",
                    instant=True,
                )
            ],
            w=8,
        )
    )
    d = d.with_panel(
        series(
            "Time to heal p50 / p95, per runbook (1 h window)",
            "From action to verified healed. Heals are rare: a 1 h window.",
            [
                q(
                    "histogram_quantile(0.5, sum by (runbook, le) "
                    f"(rate(swarm_medic_time_to_heal_seconds_bucket{{{SEL}}}[1h])))",
                    "p50 {{runbook}}",
                ),
                q(
                    "histogram_quantile(0.95, sum by (runbook, le) "
                    f"(rate(swarm_medic_time_to_heal_seconds_bucket{{{SEL}}}[1h])))",
                    "p95 {{runbook}}",
                ),
            ],
            unit="s",
        )
    )
    d = d.with_panel(
        series(
            "Circuit breakers",
            "Services whose breaker is open now, and breaker trips per runbook.",
            [
                q(f"max(swarm_medic_circuit_breakers_open{{{SEL}}})", "open now"),
                q(
                    "sum by (runbook) "
                    f"(increase(swarm_medic_circuit_breaker_trips_total{{{SEL}}}[{RATE}]))",
                    "trips {{runbook}}",
                    lazy=True,
                ),
            ],
        )
    )
    d = d.with_panel(
        series(
            "Runbook errors",
            "Runbooks that raised during scans, and runbook files not loaded.",
            [
                q(
                    "sum by (runbook) "
                    f"(increase(swarm_medic_runbook_errors_total{{{SEL}}}[{RATE}]))",
                    "raised {{runbook}}",
                    lazy=True,
                ),
                q(
                    f"max by (instance) (swarm_medic_runbook_load_errors{{{SEL}}})",
                    "not loaded {{instance}}",
                ),
            ],
        )
    )

    d = worth_row(d)

    d = d.with_row(dash.Row("Telling people, and alerts in"))
    d = d.with_panel(
        series(
            "Notifications, by result",
            "Deliveries sent, failed after retries, or dropped (queue full) "
            "(SwarmMedicNotificationsFailing).",
            [
                q(
                    f"sum by (result) (increase(swarm_medic_notifications_total{{{SEL}}}[{RATE}]))",
                    "{{result}}",
                    lazy=True,
                )
            ],
            w=12,
        )
    )
    d = d.with_panel(
        series(
            "Alerts in (POST /v1/alerts)",
            "Alertmanager's posts by result (unauthorized: SwarmMedicAlertsUnauthorized), and "
            "the alerts each instance holds as firing.",
            [
                q(
                    "sum by (result) "
                    f"(increase(swarm_medic_alerts_received_total{{{SEL}}}[{RATE}]))",
                    "posts {{result}}",
                ),
                q(f"max by (instance) (swarm_medic_alerts_firing{{{SEL}}})", "firing {{instance}}"),
            ],
            w=12,
        )
    )

    d = d.with_row(dash.Row("Scans and their cost"))
    d = d.with_panel(
        series(
            "Scans per second, by result",
            "Successful and failed observe+match+decide scans.",
            [
                q(
                    f"sum by (instance, result) (rate(swarm_medic_scans_total{{{SEL}}}[{RATE}]))",
                    "{{instance}} {{result}}",
                )
            ],
            unit="ops",
        )
    )
    d = d.with_panel(
        series(
            "Scan duration p50 / p95",
            "Wall time of one scan, from swarm_medic_scan_duration_seconds.",
            [
                q(
                    "histogram_quantile(0.5, sum by (instance, le) "
                    f"(rate(swarm_medic_scan_duration_seconds_bucket{{{SEL}}}[{RATE}])))",
                    "p50 {{instance}}",
                ),
                q(
                    "histogram_quantile(0.95, sum by (instance, le) "
                    f"(rate(swarm_medic_scan_duration_seconds_bucket{{{SEL}}}[{RATE}])))",
                    "p95 {{instance}}",
                ),
            ],
            unit="s",
        )
    )
    d = d.with_panel(
        series(
            "Engine API calls per second",
            "Docker Engine API requests made by each instance.",
            [
                q(
                    "sum by (instance) "
                    f"(rate(swarm_medic_engine_api_calls_total{{{SEL}}}[{RATE}]))",
                    "{{instance}}",
                )
            ],
            unit="reqps",
        )
    )

    d = d.with_row(dash.Row("Overlay probes and the brain-to-node channel"))
    d = d.with_panel(
        series(
            "Probes: answered and failing",
            "Overlay probes answered by the nodes per second, and task probes that failed in "
            "the brain's last round (SwarmMedicProbesFailing).",
            [
                q(
                    f"sum by (instance) (rate(swarm_medic_probes_total{{{SEL}}}[{RATE}]))",
                    "answered/s {{instance}}",
                ),
                q(
                    f"max by (instance) (swarm_medic_probes_failing{{{SEL}}})",
                    "failing {{instance}}",
                ),
            ],
        )
    )
    d = d.with_panel(
        figure(
            "Reachability per vantage node",
            "The brain's view, node by node: node-to-task probe pairs whose last probe "
            "answered (ok) or failed, by the node that probed. A node with many failing pairs "
            "has a broken overlay side; a task failing from every node is the task's own fault.",
            [
                q(
                    f'sum by (node, state) (swarm_medic_probe_pairs{{{CL}, job="$job"}})',
                    "{{node}} {{state}}",
                    instant=True,
                )
            ],
            w=8,
        )
    )
    d = d.with_panel(
        series(
            "Refused: brain-to-node channel and HTTP",
            "Channel requests refused (bad signature, stale, replayed) and HTTP requests cut "
            "off, per node (SwarmMedicChannelRefused).",
            [
                q(
                    "sum by (instance) "
                    f"(increase(swarm_medic_channel_refused_total{{{SEL}}}[{RATE}]))",
                    "channel {{instance}}",
                ),
                q(
                    "sum by (instance, reason) "
                    f"(increase(swarm_medic_http_refused_total{{{SEL}}}[{RATE}]))",
                    "http {{reason}} {{instance}}",
                ),
            ],
        )
    )
    return d.build()


def variables() -> list[Any]:
    return [
        dash.DatasourceVariable("datasource")
        .label("Prometheus")
        .type("prometheus")
        .hide(model.VariableHide.DONT_HIDE),
        dash.QueryVariable("cluster")
        .label("Swarm")
        .datasource(DS)
        .query('label_values(up{job="$job"}, cluster)')
        .include_all(True)
        .all_value(".*")
        .multi(False)
        .refresh(model.VariableRefresh.ON_DASHBOARD_LOAD)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .current(model.VariableOption(text="All", value="$__all")),
        dash.ConstantVariable("job").value("swarm-medic"),
        dash.QueryVariable("instance")
        .label("Node")
        .datasource(DS)
        .query('label_values(up{job="$job", cluster=~"$cluster"}, instance)')
        .include_all(True)
        .all_value(".*")
        .multi(True)
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .current(model.VariableOption(text="All", value="$__all")),
        # the instance on the leader manager: its hostname, for the status page link
        dash.QueryVariable("brain")
        .label("Brain")
        .datasource(DS)
        .query(f'query_result(swarm_medic_leader{{job="$job", {CL}}} == 1)')
        .regex('/instance="([^"]+)"/')
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .hide(model.VariableHide.HIDE_VARIABLE),
    ]


def _pruned(value: Any) -> Any:
    """Without the SDK's unset fields (null): Grafana fills a missing field with its default,
    but takes a null as a value (a panel's `options: null` is not its plugin's defaults)."""
    if isinstance(value, dict):
        return {k: _pruned(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value


def dashboard() -> dict[str, Any]:
    doc: dict[str, Any] = _pruned(json.loads(json.dumps(build(), cls=JSONEncoder)))
    return doc


def render() -> str:
    return json.dumps(dashboard(), indent=2, sort_keys=True) + "\n"


# Values for Grafana's variables when a query runs outside Grafana.
SUBSTITUTE = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "1h",
    "$job": "swarm-medic",
    "$instance": ".*",
    "$cluster": ".*",
}


def _substitute(values: dict[str, str] | None) -> Any:
    vals = SUBSTITUTE | (values or {})
    pattern = re.compile("|".join(re.escape(k) for k in sorted(vals, key=len, reverse=True)))
    return lambda expr: pattern.sub(lambda m: vals[m.group(0)], expr)


def queries(values: dict[str, str] | None = None) -> dict[str, list[str]]:
    """Panel title -> its PromQL expressions, with Grafana's variables replaced."""
    sub = _substitute(values)
    out: dict[str, list[str]] = {}
    for p in dashboard()["panels"]:
        exprs = [sub(t["expr"]) for t in p.get("targets", [])]
        if exprs:
            out[p["title"]] = exprs
    return out


def may_be_empty(values: dict[str, str] | None = None) -> set[str]:
    """The expressions (variables replaced) whose series exist only once something happened."""
    build()
    sub = _substitute(values)
    return {sub(e) for e in _LAZY}


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if OUT.read_text() != text:
            print(f"{OUT} is stale: run python {__file__}", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
