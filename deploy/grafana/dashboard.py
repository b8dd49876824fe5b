"""Generates deploy/grafana/swarm-medic.json, the swarm-medic dashboard (plain dicts).

    python deploy/grafana/dashboard.py            # rewrite swarm-medic.json
    python deploy/grafana/dashboard.py --check    # exit 1 if the committed JSON is stale

The datasource is the `${datasource}` template variable (type datasource), never a fixed uid,
so the dashboard imports into any Grafana. `queries()` gives every panel's PromQL with Grafana's
variables replaced by real values, for checking them against a real Prometheus (tests/dashboard.py).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).with_name("swarm-medic.json")
UID = "swarm-medic"
DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'job="$job", instance=~"$instance"'  # every series of the chosen medics

Panel = dict[str, Any]


def target(expr: str, legend: str = "", ref: str = "A", *, instant: bool = False) -> dict[str, Any]:
    t: dict[str, Any] = {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref}
    if instant:
        t["instant"], t["range"], t["format"] = True, False, "table"
    return t


def panel(
    kind: str,
    title: str,
    description: str,
    targets: list[dict[str, Any]],
    *,
    unit: str = "short",
    w: int = 8,
    h: int = 8,
    **extra: Any,
) -> Panel:
    p: Panel = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": [dict(t, refId=chr(ord("A") + i)) for i, t in enumerate(targets)],
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "gridPos": {"w": w, "h": h},
    }
    p.update(extra)
    return p


def row(title: str) -> Panel:
    return {
        "type": "row",
        "title": title,
        "collapsed": False,
        "panels": [],
        "gridPos": {"w": 24, "h": 1},
    }


def panels() -> list[Panel]:
    rate = "$__rate_interval"
    return [
        row("Medic health (one instance per node)"),
        panel(
            "state-timeline",
            "Medic up, per node",
            "up of each node's swarm-medic scrape target (1 answers, 0 does not).",
            [target(f"up{{{SEL}}}", "{{instance}}")],
            w=12,
        ),
        panel(
            "state-timeline",
            "On the leader (the brain), per node",
            "swarm_medic_leader: exactly one node should say 1 (alerts NoBrain / SplitBrain).",
            [target(f"swarm_medic_leader{{{SEL}}}", "{{instance}}")],
            w=12,
        ),
        panel(
            "timeseries",
            "Seconds since the last scan, per manager",
            "Workers never scan and are left out. Alert SwarmMedicScansStale above 180 s.",
            [
                target(
                    f"time() - (swarm_medic_last_scan_timestamp_seconds{{{SEL}}} > 0)",
                    "{{instance}}",
                )
            ],
            unit="s",
        ),
        panel(
            "state-timeline",
            "Engine event stream connected",
            "1 while each instance's Engine event stream is up.",
            [target(f"swarm_medic_event_stream_connected{{{SEL}}}", "{{instance}}")],
        ),
        panel(
            "table",
            "Version and mode",
            "swarm_medic_info: version, mode (dry_run or act) and scope of each instance.",
            [target(f"swarm_medic_info{{{SEL}}}", instant=True)],
        ),
        row("Scans and their cost"),
        panel(
            "timeseries",
            "Scans per second, by result",
            "Successful and failed observe+match+decide scans.",
            [
                target(
                    f"sum by (instance, result) (rate(swarm_medic_scans_total{{{SEL}}}[{rate}]))",
                    "{{instance}} {{result}}",
                )
            ],
            unit="ops",
        ),
        panel(
            "timeseries",
            "Scan duration p50 / p95",
            "Wall time of one scan, from swarm_medic_scan_duration_seconds.",
            [
                target(
                    "histogram_quantile(0.5, sum by (instance, le) "
                    f"(rate(swarm_medic_scan_duration_seconds_bucket{{{SEL}}}[{rate}])))",
                    "p50 {{instance}}",
                ),
                target(
                    "histogram_quantile(0.95, sum by (instance, le) "
                    f"(rate(swarm_medic_scan_duration_seconds_bucket{{{SEL}}}[{rate}])))",
                    "p95 {{instance}}",
                ),
            ],
            unit="s",
        ),
        panel(
            "timeseries",
            "Engine API calls per second",
            "Docker Engine API requests made by each instance.",
            [
                target(
                    "sum by (instance) "
                    f"(rate(swarm_medic_engine_api_calls_total{{{SEL}}}[{rate}]))",
                    "{{instance}}",
                )
            ],
            unit="reqps",
        ),
        row("Incidents and decisions"),
        panel(
            "timeseries",
            "Open incidents, per runbook",
            "Faults open now (the brain's count; max over the instances that report one).",
            [target(f"max by (runbook) (swarm_medic_incidents_open{{{SEL}}})", "{{runbook}}")],
        ),
        panel(
            "timeseries",
            "Oldest open incident, per runbook",
            "Age of the oldest incident open now. Alert SwarmMedicIncidentOpenTooLong above 1 h.",
            [
                target(
                    f"max by (runbook) (swarm_medic_incident_oldest_open_seconds{{{SEL}}})",
                    "{{runbook}}",
                )
            ],
            unit="s",
        ),
        panel(
            "timeseries",
            "Decisions, by verdict and reason",
            "Counted when an incident's decision changes (act, would_act, skip and why).",
            [
                target(
                    "sum by (verdict, reason) "
                    f"(increase(swarm_medic_decisions_total{{{SEL}}}[{rate}]))",
                    "{{verdict}} {{reason}}",
                )
            ],
        ),
        panel(
            "stat",
            "Dry-run: would act (in the time range)",
            "Decisions swarm-medic would have carried out if it were not in dry-run.",
            [
                target(
                    "sum by (runbook) (increase(swarm_medic_decisions_total"
                    f'{{{SEL}, verdict="would_act"}}[$__range]))',
                    "{{runbook}}",
                    instant=True,
                )
            ],
            w=6,
        ),
        row("Actions, outcomes, time to heal"),
        panel(
            "timeseries",
            "Actions, by result",
            "Actions carried out: done, conflict, failed, unreachable.",
            [
                target(
                    "sum by (runbook, action, result) "
                    f"(increase(swarm_medic_actions_total{{{SEL}}}[{rate}]))",
                    "{{runbook}} {{action}} {{result}}",
                )
            ],
        ),
        panel(
            "bargauge",
            "Verified outcomes (in the time range)",
            "healed: the fix held; not_healed: it did not (alert SwarmMedicFixNotHeld).",
            [
                target(
                    "sum by (runbook, result) "
                    f"(increase(swarm_medic_remediations_total{{{SEL}}}[$__range]))",
                    "{{runbook}} {{result}}",
                    instant=True,
                )
            ],
        ),
        panel(
            "timeseries",
            "Time to heal p50 / p95, per runbook (1 h window)",
            "From action to verified healed. Heals are rare: a 1 h window.",
            [
                target(
                    "histogram_quantile(0.5, sum by (runbook, le) "
                    f"(rate(swarm_medic_time_to_heal_seconds_bucket{{{SEL}}}[1h])))",
                    "p50 {{runbook}}",
                ),
                target(
                    "histogram_quantile(0.95, sum by (runbook, le) "
                    f"(rate(swarm_medic_time_to_heal_seconds_bucket{{{SEL}}}[1h])))",
                    "p95 {{runbook}}",
                ),
            ],
            unit="s",
        ),
        panel(
            "timeseries",
            "Circuit breakers",
            "Services whose breaker is open now, and breaker trips per runbook.",
            [
                target(f"max(swarm_medic_circuit_breakers_open{{{SEL}}})", "open now"),
                target(
                    "sum by (runbook) "
                    f"(increase(swarm_medic_circuit_breaker_trips_total{{{SEL}}}[{rate}]))",
                    "trips {{runbook}}",
                ),
            ],
        ),
        panel(
            "timeseries",
            "Runbook errors",
            "Runbooks that raised during scans, and runbook files not loaded.",
            [
                target(
                    "sum by (runbook) "
                    f"(increase(swarm_medic_runbook_errors_total{{{SEL}}}[{rate}]))",
                    "raised {{runbook}}",
                ),
                target(
                    f"max by (instance) (swarm_medic_runbook_load_errors{{{SEL}}})",
                    "not loaded {{instance}}",
                ),
            ],
        ),
        row("Overlay probes and the brain-to-node channel"),
        panel(
            "timeseries",
            "Probes: answered and failing",
            "Overlay probes answered by the nodes per second, and task probes that failed in "
            "the brain's last round.",
            [
                target(
                    f"sum by (instance) (rate(swarm_medic_probes_total{{{SEL}}}[{rate}]))",
                    "answered/s {{instance}}",
                ),
                target(
                    f"max by (instance) (swarm_medic_probes_failing{{{SEL}}})",
                    "failing {{instance}}",
                ),
            ],
        ),
        panel(
            "bargauge",
            "Reachability per vantage node",
            "The brain's view, node by node: node-to-task probe pairs whose last probe "
            "answered (ok) or failed, by the node that probed. A node with many failing pairs "
            "has a broken overlay side; a task failing from every node is the task's own fault.",
            [
                target(
                    'sum by (node, state) (swarm_medic_probe_pairs{job="$job"})',
                    "{{node}} {{state}}",
                    instant=True,
                )
            ],
        ),
        panel(
            "timeseries",
            "Probe round duration p95",
            "Wall time of one probe round of the brain.",
            [
                target(
                    "histogram_quantile(0.95, sum by (instance, le) "
                    f"(rate(swarm_medic_probe_round_duration_seconds_bucket{{{SEL}}}[{rate}])))",
                    "{{instance}}",
                )
            ],
            unit="s",
        ),
        panel(
            "timeseries",
            "Refused: brain-to-node channel and HTTP",
            "Channel requests refused (bad signature, stale, replayed) and HTTP requests cut "
            "off, per node. Alert SwarmMedicChannelRefused.",
            [
                target(
                    "sum by (instance) "
                    f"(increase(swarm_medic_channel_refused_total{{{SEL}}}[{rate}]))",
                    "channel {{instance}}",
                ),
                target(
                    "sum by (instance, reason) "
                    f"(increase(swarm_medic_http_refused_total{{{SEL}}}[{rate}]))",
                    "http {{reason}} {{instance}}",
                ),
            ],
        ),
    ]


def layout(ps: list[Panel]) -> list[Panel]:
    """ids and positions: left to right, a new line when the width is full, rows alone."""
    x = y = line_h = 0
    for i, p in enumerate(ps, start=1):
        p["id"] = i
        g = p["gridPos"]
        if p["type"] == "row" or x + g["w"] > 24:
            x, y, line_h = 0, y + line_h, 0
        g["x"], g["y"] = x, y
        x, line_h = x + g["w"], max(line_h, g["h"])
        if p["type"] == "row":
            x, y, line_h = 0, y + g["h"], 0
    return ps


def variables() -> list[dict[str, Any]]:
    return [
        {
            "name": "datasource",
            "label": "Prometheus",
            "type": "datasource",
            "query": "prometheus",
            "current": {},
            "hide": 0,
            "refresh": 1,
        },
        {
            "name": "job",
            "label": "Job",
            "type": "custom",
            "query": "swarm-medic",
            "current": {"text": "swarm-medic", "value": "swarm-medic"},
            "options": [{"selected": True, "text": "swarm-medic", "value": "swarm-medic"}],
            "hide": 2,
        },
        {
            "name": "instance",
            "label": "Node",
            "type": "query",
            "datasource": DS,
            "query": {"query": 'label_values(up{job="$job"}, instance)', "refId": "instance"},
            "definition": 'label_values(up{job="$job"}, instance)',
            "includeAll": True,
            "allValue": ".*",
            "multi": True,
            "current": {"text": "All", "value": "$__all"},
            "refresh": 2,
            "sort": 1,
            "hide": 0,
        },
    ]


def dashboard() -> dict[str, Any]:
    return {
        "uid": UID,
        "title": "swarm-medic",
        "description": "swarm-medic: is it running, what it finds, what it does, does it heal",
        "tags": ["swarm-medic", "docker-swarm"],
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": 39,
        "time": {"from": "now-6h", "to": "now"},
        "timezone": "",
        "templating": {"list": variables()},
        "annotations": {"list": []},
        "links": [],
        "panels": layout(panels()),
        "version": 1,
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2, sort_keys=True) + "\n"


# Values for Grafana's variables when a query runs outside Grafana.
SUBSTITUTE = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "1h",
    "$job": "swarm-medic",
    "$instance": ".*",
}


def queries(values: dict[str, str] | None = None) -> dict[str, list[str]]:
    """Panel title -> its PromQL expressions, with Grafana's variables replaced."""
    vals = SUBSTITUTE | (values or {})
    pattern = re.compile("|".join(re.escape(k) for k in sorted(vals, key=len, reverse=True)))
    out: dict[str, list[str]] = {}
    for p in dashboard()["panels"]:
        exprs = [pattern.sub(lambda m: vals[m.group(0)], t["expr"]) for t in p.get("targets", [])]
        if exprs:
            out[p["title"]] = exprs
    return out


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
