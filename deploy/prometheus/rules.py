"""Generates deploy/prometheus/alerts.yml and recording.yml (the swarm-medic mixin).

    python deploy/prometheus/rules.py                  # rewrite both files, default config
    python deploy/prometheus/rules.py --check          # exit 1 if the committed files are stale
    python deploy/prometheus/rules.py --cluster-label swarm \\
        --medic-selector 'job="medic-a"' --dockerd-selector 'job="dockerd-a"' --out /etc/prom

The monitoring-mixin convention (kubernetes-mixin's `_config`): every rule selects its series
with a configurable selector and aggregates `by` a configurable cluster label, so that one
Prometheus (or Thanos, Mimir) holding several swarms judges each swarm on its own. The series
carry that label from the scrape (deploy/prometheus.yml sets `cluster`) or from each swarm's
Prometheus's `external_labels`; a swarm whose series carry no such label is one cluster ("").

Alerts follow the mixin too: CamelCase SwarmMedic* names, a `severity` (critical: a person must
act now; warning: a human should look today; info: worth knowing), `summary`, `description`
and a `runbook_url` pointing at the alert's own section of deploy/README.md. Every alert has a
firing and a quiet promtool case in tests/ (tests/unit/test_monitoring.py checks it).

Counters with labels are created by swarm-medic when they first count (no series of zeros on
every instance), so `increase()` alone would miss a series' first increments (it needs two
samples). `fresh_or_increase` counts a series created inside the window from 0.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
RUNBOOK_BASE = "https://github.com/swarm-medic/swarm-medic/blob/main/deploy/README.md#"

Rule = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Config:
    cluster_label: str = "cluster"
    medic_selector: str = 'job="swarm-medic"'
    dockerd_selector: str = 'job="dockerd"'
    # A pause without --for lasts until someone resumes; a day's work is the most it should take.
    pause_too_long: str = "4h"
    # --hold-while-alerts: a hold this long is a stuck alert or an unreachable Prometheus.
    hold_too_long: str = "30m"
    # Instances disagreeing on the mode: longer than a rolling update of the medic takes at
    # 50 nodes (parallelism 1, delay 10 s, monitor 60 s, ~20 s to start: ~75 min).
    mode_mismatch_for: str = "2h"
    # An incident the medic still acts on, open this long, is a fix that does not take.
    acting_too_long_seconds: int = 3600


def fresh_or_increase(metric: str, sel: str, window: str, by: str) -> str:
    """`increase` over `window` that also counts a labelled counter created inside the window
    (first sample > 0: the series appears when it first counts, with no zero before it)."""
    m = f"{metric}{{{sel}}}"
    return f"sum by ({by}) (({m} unless {m} offset {window}) or increase({m}[{window}]))"


def alert(
    name: str,
    expr: str,
    severity: str,
    summary: str,
    description: str,
    *,
    for_: str = "",
) -> Rule:
    rule: Rule = {"alert": name, "expr": expr}
    if for_:
        rule["for"] = for_
    rule["labels"] = {"severity": severity}
    rule["annotations"] = {
        "summary": summary,
        "description": description,
        "runbook_url": RUNBOOK_BASE + name.lower(),
    }
    return rule


def recording_rules(c: Config) -> list[Rule]:
    cl, m = c.cluster_label, c.medic_selector
    lazy = fresh_or_increase
    return [
        # How many instances say they are on the leader manager (the brain): 1 is healthy.
        {
            "record": "cluster:swarm_medic_leader:sum",
            "expr": f"sum by ({cl}) (swarm_medic_leader{{{m}}})",
        },
        # Seconds since each manager's last successful scan (workers never scan: left out).
        {
            "record": "instance:swarm_medic_last_scan_age_seconds",
            "expr": f"time() - (swarm_medic_last_scan_timestamp_seconds{{{m}}} > 0)",
        },
        # Instances per mode (dry_run, act): more than one mode is a half-done rollout.
        {
            "record": "cluster_mode:swarm_medic_info:count",
            "expr": f"count by ({cl}, mode) (swarm_medic_info{{{m}}})",
        },
        # The swarm-wide switches, as any instance that reads the ledger says them.
        {
            "record": "cluster:swarm_medic_paused:max",
            "expr": f"max by ({cl}) (swarm_medic_paused{{{m}}})",
        },
        {
            "record": "cluster:swarm_medic_alerts_hold:max",
            "expr": f"max by ({cl}) (swarm_medic_alerts_hold{{{m}}})",
        },
        # Open incidents by service, with the medic's stance (state: acting, gave_up, held,
        # report_only) and their age; every manager that scans reports what it sees.
        {
            "record": "cluster_runbook_service_state:swarm_medic_incident_age_seconds:max",
            "expr": (
                f"time() - min by ({cl}, runbook, service, state) "
                f"(swarm_medic_incident_open_since_timestamp_seconds{{{m}}})"
            ),
        },
        # What happened over windows the alerts use (lazily created counters counted from 0).
        {
            "record": "cluster_runbook_action_result:swarm_medic_actions:increase30m",
            "expr": lazy("swarm_medic_actions_total", m, "30m", f"{cl}, runbook, action, result"),
        },
        {
            "record": "cluster_runbook_result:swarm_medic_remediations:increase30m",
            "expr": lazy("swarm_medic_remediations_total", m, "30m", f"{cl}, runbook, result"),
        },
        {
            "record": "cluster_result:swarm_medic_notifications:increase30m",
            "expr": lazy("swarm_medic_notifications_total", m, "30m", f"{cl}, result"),
        },
        {
            "record": "cluster_runbook:swarm_medic_runbook_errors:increase15m",
            "expr": lazy("swarm_medic_runbook_errors_total", m, "15m", f"{cl}, runbook"),
        },
        {
            "record": "cluster_runbook_verdict_reason:swarm_medic_decisions:increase1h",
            "expr": lazy("swarm_medic_decisions_total", m, "1h", f"{cl}, runbook, verdict, reason"),
        },
        # Time to heal, from action to verified healed, per runbook. Heals are rare: 1 h window.
        {
            "record": "cluster_runbook:swarm_medic_time_to_heal_seconds:p50_1h",
            "expr": (
                f"histogram_quantile(0.5, sum by ({cl}, runbook, le) "
                f"(rate(swarm_medic_time_to_heal_seconds_bucket{{{m}}}[1h])))"
            ),
        },
        {
            "record": "cluster_runbook:swarm_medic_time_to_heal_seconds:p95_1h",
            "expr": (
                f"histogram_quantile(0.95, sum by ({cl}, runbook, le) "
                f"(rate(swarm_medic_time_to_heal_seconds_bucket{{{m}}}[1h])))"
            ),
        },
        # Verified outcomes over a day (healed, not_healed): the share of fixes that held.
        {
            "record": "cluster_runbook_result:swarm_medic_remediations:increase1d",
            "expr": lazy("swarm_medic_remediations_total", m, "1d", f"{cl}, runbook, result"),
        },
    ]


def alert_rules(c: Config) -> list[Rule]:
    cl, m, d = c.cluster_label, c.medic_selector, c.dockerd_selector
    return [
        # --- is the medic itself running? -------------------------------------------------
        alert(
            "SwarmMedicDown",
            f"up{{{m}}} == 0",
            "warning",
            "swarm-medic on a node does not answer scrapes.",
            "swarm-medic on {{ $labels.instance }} has not answered a scrape for 5 minutes: "
            "that node is not probed, and if it is the leader nothing is healed.",
            for_="5m",
        ),
        # A swarm whose engines answer and whose medic has no target (with several swarms,
        # absent() alone sees none missing), or no target at all and no engine job either.
        alert(
            "SwarmMedicAbsent",
            f"(count by ({cl}) (up{{{d}}} == 1) unless on ({cl}) count by ({cl}) (up{{{m}}})) "
            f"or (absent(up{{{m}}}) unless on () up{{{d}}})",
            "warning",
            "No swarm-medic target is discovered.",
            "Prometheus has found no swarm-medic target for 10 minutes: the stack is not "
            "deployed, or service discovery cannot reach a manager's Engine API. Nothing heals "
            "the swarm, which itself is not affected.",
            for_="10m",
        ),
        # swarm-medic is global: every node where swarm schedules tasks (availability active)
        # should have a medic target. A drained node has none by design; a paused node keeps
        # what runs but gets nothing new, by the operator's choice: neither is "missing".
        alert(
            "SwarmMedicMissingOnNode",
            f'(up{{{d}, node_availability="active"}} == 1) unless on ({cl}, instance) up{{{m}}}',
            "warning",
            "A swarm node runs no swarm-medic task.",
            "Node {{ $labels.instance }} is ready and active and its engine answers, but no "
            "swarm-medic task has run there for 5 minutes: nothing on it is probed or repaired.",
            for_="5m",
        ),
        # The ledger's compare-and-swap already stops a double action, and the swarm itself is
        # up: warnings. A failover takes a scan and a scrape (under a minute), hence 3 min.
        alert(
            "SwarmMedicNoBrain",
            "cluster:swarm_medic_leader:sum < 1",
            "warning",
            "No swarm-medic instance is on the leader; nothing is healed.",
            "For 3 minutes no swarm-medic instance has reported being on the leader manager, "
            "so no instance decides or acts.",
            for_="3m",
        ),
        alert(
            "SwarmMedicSplitBrain",
            "cluster:swarm_medic_leader:sum > 1",
            "warning",
            "More than one swarm-medic instance says it is on the leader.",
            "{{ $value }} instances have reported being on the leader manager for 3 minutes. "
            "An instance whose engine stopped answering keeps its last value: look for one "
            "whose scans are stale too.",
            for_="3m",
        ),
        # Managers only: workers never scan. 180 s = 12 missed scans at the default 15 s.
        alert(
            "SwarmMedicScansStale",
            f'time() - swarm_medic_last_scan_timestamp_seconds{{{m}, node_role="manager"}} > 180',
            "warning",
            "swarm-medic on a manager has not completed a scan for minutes.",
            "swarm-medic on {{ $labels.instance }} has not completed a scan for more than "
            "3 minutes: its engine does not answer, or every scan fails.",
            for_="2m",
        ),
        alert(
            "SwarmMedicEventStreamDisconnected",
            f"swarm_medic_event_stream_connected{{{m}}} == 0",
            "warning",
            "swarm-medic has lost the Engine event stream.",
            "swarm-medic on {{ $labels.instance }} has had no Engine event stream for "
            "5 minutes: it still scans on its timer, but reacts to changes later.",
            for_="5m",
        ),
        # --- is it healing? -----------------------------------------------------------------
        # The page: a service's fault the medic gave up on (circuit open, budget spent), or
        # still acts on after an hour without healing it. Report-only faults never page: they
        # are listed on the dashboard ("Open incidents, by service"). Read from the raw series,
        # not the recording rule: the age in the page must not lag by a rule evaluation.
        alert(
            "SwarmMedicIncidentUnfixed",
            f"time() - min by ({cl}, runbook, service) "
            f'(swarm_medic_incident_open_since_timestamp_seconds{{{m}, state="gave_up"}}) '
            f"or (time() - min by ({cl}, runbook, service) "
            f'(swarm_medic_incident_open_since_timestamp_seconds{{{m}, state="acting"}})) '
            f"> {c.acting_too_long_seconds}",
            "critical",
            "swarm-medic could not fix a service's fault.",
            "Service {{ $labels.service }}: the fault found by runbook {{ $labels.runbook }} "
            "has been open for {{ $value | humanizeDuration }} and swarm-medic could not fix "
            "it (its fixes did not hold, or its budget is spent). A person must fix it.",
            for_="5m",
        ),
        # max: every manager may report the ledger's count; one alert, not one per manager.
        alert(
            "SwarmMedicCircuitBreakerOpen",
            f"max by ({cl}) (swarm_medic_circuit_breakers_open{{{m}}}) > 0",
            "warning",
            "swarm-medic has stopped acting on a service whose fixes did not hold.",
            "{{ $value }} service(s) have an open circuit breaker: swarm-medic no longer acts "
            "on them until it resets. The fault needs a human.",
            for_="1m",
        ),
        # With the shipped --breaker-failures 1, a fix that does not hold opens the breaker at
        # once: the breaker's alert says it, this one stays quiet (inhibited in the rule
        # itself, so promtool tests it; breakers are counted per swarm, not per runbook).
        alert(
            "SwarmMedicFixNotHeld",
            f'cluster_runbook_result:swarm_medic_remediations:increase30m{{result="not_healed"}}'
            f" > 0 unless on ({cl}) "
            f"(max by ({cl}) (swarm_medic_circuit_breakers_open{{{m}}}) > 0)",
            "warning",
            "A swarm-medic fix did not hold.",
            "An action of runbook {{ $labels.runbook }} was verified NOT healed in the last "
            "30 minutes.",
        ),
        alert(
            "SwarmMedicActionsFailing",
            "cluster_runbook_action_result:swarm_medic_actions:increase30m"
            '{result=~"failed|conflict|unreachable"} > 0',
            "warning",
            "swarm-medic's actions are failing.",
            "Action {{ $labels.action }} of runbook {{ $labels.runbook }} ended "
            "{{ $labels.result }} {{ $value | humanize }} time(s) in the last 30 minutes: the "
            "fault it was for is still there.",
        ),
        # --- is it telling people? ----------------------------------------------------------
        alert(
            "SwarmMedicNotificationsFailing",
            'cluster_result:swarm_medic_notifications:increase30m{result=~"failed|dropped"} > 0',
            "warning",
            "swarm-medic's notifications are not delivered.",
            "{{ $value | humanize }} notification(s) {{ $labels.result }} in the last "
            "30 minutes: people are not told what swarm-medic finds and does.",
        ),
        # --- switches left on ---------------------------------------------------------------
        alert(
            "SwarmMedicPausedTooLong",
            "cluster:swarm_medic_paused:max == 1",
            "warning",
            "swarm-medic has been paused for hours.",
            f"swarm-medic has been paused swarm-wide for more than {c.pause_too_long}: "
            "nothing is healed. A pause without --for lasts until someone resumes it.",
            for_=c.pause_too_long,
        ),
        alert(
            "SwarmMedicAlertsHoldStuck",
            "cluster:swarm_medic_alerts_hold:max == 1",
            "warning",
            "swarm-medic has held every action for a long time (--hold-while-alerts).",
            f"For {c.hold_too_long} a --hold-while-alerts alert has fired, or Prometheus "
            "could not be asked: swarm-medic takes no action anywhere.",
            for_=c.hold_too_long,
        ),
        alert(
            "SwarmMedicModeMismatch",
            f"count by ({cl}) (cluster_mode:swarm_medic_info:count) > 1",
            "warning",
            "swarm-medic instances disagree on the mode (dry-run or act).",
            f"For {c.mode_mismatch_for}, some instances act and others are in dry-run: a "
            "rollout of the medic did not finish on every node.",
            for_=c.mode_mismatch_for,
        ),
        # --- is it configured right? --------------------------------------------------------
        alert(
            "SwarmMedicRunbookErrors",
            "cluster_runbook:swarm_medic_runbook_errors:increase15m > 0",
            "warning",
            "A swarm-medic runbook raised during scans.",
            "Runbook {{ $labels.runbook }} raised during scans in the last 15 minutes; the "
            "other runbooks still ran, this one found nothing.",
        ),
        alert(
            "SwarmMedicRunbookNotLoaded",
            f"swarm_medic_runbook_load_errors{{{m}}} > 0",
            "warning",
            "swarm-medic could not load some runbook files.",
            "swarm-medic on {{ $labels.instance }} could not load {{ $value }} runbook "
            "file(s); the faults they cover are not looked for.",
            for_="5m",
        ),
        alert(
            "SwarmMedicWouldAct",
            f"sum by ({cl}, runbook, reason) (cluster_runbook_verdict_reason:swarm_medic_decisions"
            f':increase1h{{verdict="would_act"}}) > 0',
            "info",
            "swarm-medic in dry-run would have acted.",
            "In the last hour swarm-medic (dry-run) would have acted for runbook "
            "{{ $labels.runbook }}: read its decision lines, then let it act.",
        ),
        # A path between nodes broken for 10 minutes and not healed: a human should look today.
        alert(
            "SwarmMedicProbesFailing",
            f"max by ({cl}) (swarm_medic_probes_failing{{{m}}}) > 0",
            "warning",
            "Overlay probes have been failing for 10 minutes.",
            "{{ $value }} task probe(s) failed in the brain's last round, for 10 minutes: an "
            "overlay path between nodes is broken and was not healed.",
            for_="10m",
        ),
        # --- is someone knocking? -----------------------------------------------------------
        alert(
            "SwarmMedicChannelRefused",
            f"sum by ({cl}, instance) "
            f"(increase(swarm_medic_channel_refused_total{{{m}}}[10m])) > 0",
            "warning",
            "swarm-medic refused brain-to-node requests.",
            "swarm-medic on {{ $labels.instance }} refused brain-to-node requests in the last "
            "10 minutes (bad signature, stale or replayed): a secret mismatch after a "
            "rotation, clocks apart, or someone knocking.",
        ),
        alert(
            "SwarmMedicAlertsUnauthorized",
            f"sum by ({cl}, instance) (increase(swarm_medic_alerts_received_total"
            f'{{{m}, result="unauthorized"}}[10m])) > 0',
            "warning",
            "POST /v1/alerts without the right token.",
            "swarm-medic on {{ $labels.instance }} refused {{ $value | humanize }} post(s) to "
            "/v1/alerts with a wrong or missing token in the last 10 minutes: Alertmanager's "
            "credentials_file does not hold --alerts-token, or someone is knocking.",
        ),
    ]


HEADER = """\
# GENERATED by deploy/prometheus/rules.py ({what}); edit that file, then run
#   python deploy/prometheus/rules.py
# Cluster label: `{cl}`. Selectors: swarm-medic {m}, dockerd {d}.
# Tested by tests/*.yml (promtool test rules deploy/prometheus/tests/*.yml).
"""


def _dump(doc: dict[str, Any]) -> str:
    text: str = yaml.safe_dump(doc, sort_keys=False, width=100, allow_unicode=True)
    return text


def render(c: Config) -> dict[str, str]:
    """File name -> text, for alerts.yml and recording.yml."""
    head = {
        "cl": c.cluster_label,
        "m": c.medic_selector,
        "d": c.dockerd_selector,
    }
    rec = {"groups": [{"name": "swarm-medic.rules", "rules": recording_rules(c)}]}
    alerts = {"groups": [{"name": "swarm-medic.alerts", "rules": alert_rules(c)}]}
    return {
        "recording.yml": HEADER.format(what="recording rules", **head) + _dump(rec),
        "alerts.yml": HEADER.format(what="alerts", **head) + _dump(alerts),
    }


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--cluster-label", default=Config.cluster_label)
    p.add_argument("--medic-selector", default=Config.medic_selector)
    p.add_argument("--dockerd-selector", default=Config.dockerd_selector)
    p.add_argument("--pause-too-long", default=Config.pause_too_long)
    p.add_argument("--hold-too-long", default=Config.hold_too_long)
    p.add_argument("--out", type=Path, default=HERE)
    p.add_argument("--check", action="store_true", help="exit 1 if the files are stale")
    a = p.parse_args(argv)
    c = Config(
        cluster_label=a.cluster_label,
        medic_selector=a.medic_selector,
        dockerd_selector=a.dockerd_selector,
        pause_too_long=a.pause_too_long,
        hold_too_long=a.hold_too_long,
    )
    stale = []
    for name, text in render(c).items():
        path = a.out / name
        if a.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.write_text(text)
    if stale:
        print(f"stale: {', '.join(stale)}; run python {__file__}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
