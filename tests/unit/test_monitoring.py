"""deploy/prometheus, deploy/grafana: the alerts' metadata, their runbook anchors, the rule
tests' coverage, the dashboard's JSON and PromQL. (promtool check/test of the rules themselves,
and of the dashboard's PromQL in tests/monitoring: the "promtool, amtool" phase of
scripts/test.sh.)"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from swarm_medic.telemetry import metrics
from tests.dashboard import generator, may_be_empty, queries, rules_generator

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
RUNBOOK_BASE = "https://github.com/swarm-medic/swarm-medic/blob/main/"
SEVERITIES = {"critical", "warning", "info"}


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def alerts() -> list[dict[str, Any]]:
    doc = load(DEPLOY / "prometheus" / "alerts.yml")
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives a file's headings: lower case, punctuation dropped, spaces -."""
    out: set[str] = set()
    for line in markdown.splitlines():
        m = re.match(r"#{1,6}\s+(.*)", line)
        if m:
            text = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower())
            out.add(text.replace(" ", "-"))
    return out


ALERT_NAMES = [a["alert"] for a in alerts()]


def test_there_are_alerts_and_names_are_unique() -> None:
    assert len(ALERT_NAMES) >= 10
    assert len(set(ALERT_NAMES)) == len(ALERT_NAMES)


@pytest.mark.parametrize("rule", alerts(), ids=ALERT_NAMES)
def test_every_alert_follows_the_mixin_conventions(rule: dict[str, Any]) -> None:
    assert re.fullmatch(r"SwarmMedic[A-Z][A-Za-z]+", rule["alert"])
    assert rule["labels"]["severity"] in SEVERITIES
    ann = rule["annotations"]
    for key in ("summary", "description", "runbook_url"):
        assert ann.get(key, "").strip(), f"{rule['alert']}: no {key}"
    # one stable scheme: deploy/README.md#<alert name in lower case>
    assert ann["runbook_url"] == f"{RUNBOOK_BASE}deploy/README.md#{rule['alert'].lower()}"
    # every selector is for the job deploy/prometheus.yml scrapes, or a recording rule that is
    assert 'job="swarm-medic"' in rule["expr"] or re.search(
        r"\b\w+:swarm_medic_\w+:\w+", rule["expr"]
    )


def rules_of(path: Path) -> list[dict[str, Any]]:
    return [r for g in load(path)["groups"] for r in g["rules"]]


@pytest.mark.parametrize("name", ["alerts.yml", "recording.yml"])
def test_every_aggregation_keeps_the_cluster_apart(name: str) -> None:
    """Two swarms in one Prometheus are judged apart: every `by`/`on` names the cluster
    label (monitoring-mixin convention), and so does every recording rule's level."""
    for rule in rules_of(DEPLOY / "prometheus" / name):
        for clause in re.findall(r"\b(?:by|on) \(([^)]*)\)", rule["expr"]):
            labels = {x.strip() for x in clause.split(",") if x.strip()}
            # `unless on ()`: the "no engine job either" half of SwarmMedicAbsent
            assert not labels or "cluster" in labels, (rule.get("alert") or rule["record"], clause)
        if "record" in rule and not rule["record"].startswith("instance:"):
            assert rule["record"].startswith("cluster"), rule["record"]


def test_the_rules_are_generated_and_the_cluster_label_and_selectors_are_configurable(
    tmp_path: Path,
) -> None:
    gen = rules_generator()
    assert gen.main(["--check"]) == 0, "run: python deploy/prometheus/rules.py"
    args = ["--cluster-label", "swarm", "--medic-selector", 'job=~"medic-.*"', "--out"]
    assert gen.main([*args, str(tmp_path)]) == 0
    for name in ("alerts.yml", "recording.yml"):
        text = (tmp_path / name).read_text()
        exprs = " ".join(r["expr"] for r in rules_of(tmp_path / name))
        assert "cluster" not in exprs.replace("cluster:", "").replace("cluster_", ""), name
        assert 'job="swarm-medic"' not in exprs and "by (swarm" in exprs, name
        assert text.startswith("# GENERATED")


def test_severity_pages_only_for_what_a_person_must_do() -> None:
    """Critical (the pager) is a service's fault the medic could not fix; the medic's own
    troubles are warnings (the swarm is up; the ledger's compare-and-swap prevents a double
    action), and a path broken for 10 minutes is one too, not info."""
    severity = {a["alert"]: a["labels"]["severity"] for a in alerts()}
    assert [n for n, s in severity.items() if s == "critical"] == ["SwarmMedicIncidentUnfixed"]
    for name in ("SwarmMedicNoBrain", "SwarmMedicSplitBrain", "SwarmMedicProbesFailing"):
        assert severity[name] == "warning"
    assert "SwarmMedicIncidentOpenTooLong" not in severity


def test_alertmanager_inhibits_per_cluster_and_one_cause_pages_once() -> None:
    am = load(DEPLOY / "alertmanager.yml")
    assert "cluster" in am["route"]["group_by"] and "service" in am["route"]["group_by"]
    for rule in am["inhibit_rules"]:
        assert "cluster" in rule["equal"], rule
    unfixed = [
        r for r in am["inhibit_rules"] if "SwarmMedicIncidentUnfixed" in str(r["source_matchers"])
    ]
    assert unfixed and "SwarmMedicCircuitBreakerOpen" in str(unfixed[0]["target_matchers"])


def test_the_engines_job_says_each_nodes_availability() -> None:
    """SwarmMedicMissingOnNode looks at active nodes only: the label must be relabelled."""
    config = load(DEPLOY / "prometheus.yml")
    (dockerd,) = [j for j in config["scrape_configs"] if j["job_name"] == "dockerd"]
    relabel = {r.get("target_label"): r for r in dockerd["relabel_configs"]}
    assert relabel["node_availability"]["source_labels"] == ["__meta_dockerswarm_node_availability"]
    for job in config["scrape_configs"]:
        assert "cluster" in {r.get("target_label") for r in job["relabel_configs"]}, job["job_name"]


@pytest.mark.parametrize("rule", alerts(), ids=ALERT_NAMES)
def test_every_runbook_url_anchor_exists_in_the_doc_it_points_to(rule: dict[str, Any]) -> None:
    url = rule["annotations"]["runbook_url"]
    path, _, anchor = url.removeprefix(RUNBOOK_BASE).partition("#")
    doc = ROOT / path
    assert doc.is_file(), url
    assert anchor in github_anchors(doc.read_text()), f"{url}: no heading with that anchor"


def test_the_rules_name_the_job_prometheus_yml_scrapes() -> None:
    config = load(DEPLOY / "prometheus.yml")
    jobs = {j["job_name"] for j in config["scrape_configs"]}
    assert "swarm-medic" in jobs
    assert set(config["rule_files"]) == {"prometheus/recording.yml", "prometheus/alerts.yml"}


def test_every_alert_has_a_rule_test_that_fires_and_one_that_stays_quiet() -> None:
    fires: set[str] = set()
    quiet: set[str] = set()
    for path in (DEPLOY / "prometheus" / "tests").glob("*.yml"):
        for t in load(path)["tests"]:
            for case in t.get("alert_rule_test", []):
                (fires if case.get("exp_alerts") else quiet).add(case["alertname"])
                for exp in case.get("exp_alerts") or []:
                    assert set(exp["exp_annotations"]) >= {"summary", "description", "runbook_url"}
                    assert "severity" in exp["exp_labels"]
    assert set(ALERT_NAMES) - fires == set(), "alerts with no firing test"
    assert set(ALERT_NAMES) - quiet == set(), "alerts with no quiet test"


# --- the Grafana dashboard -------------------------------------------------------------------


def test_the_committed_dashboard_is_the_generated_one() -> None:
    committed = (DEPLOY / "grafana" / "swarm-medic.json").read_text()
    assert committed == generator().render(), "run: python deploy/grafana/dashboard.py"


def test_the_dashboard_asks_for_its_datasource_never_names_one() -> None:
    d = json.loads((DEPLOY / "grafana" / "swarm-medic.json").read_text())
    (var,) = [v for v in d["templating"]["list"] if v["name"] == "datasource"]
    assert var["type"] == "datasource"
    assert var["query"] == "prometheus"
    for p in d["panels"]:
        for obj in (p, *p.get("targets", [])):
            if "datasource" in obj:
                assert obj["datasource"]["uid"] == "${datasource}", p["title"]


def test_every_panel_has_queries_and_they_have_no_grafana_variables_left() -> None:
    q = queries()
    d = json.loads((DEPLOY / "grafana" / "swarm-medic.json").read_text())
    assert set(q) == {p["title"] for p in d["panels"] if p["type"] != "row"}
    for title, exprs in q.items():
        for e in exprs:
            assert "$" not in e, f"{title}: {e}"


def test_the_dashboard_is_what_grafanas_schema_types_read_back() -> None:
    """Built with grafana-foundation-sdk (types generated from Grafana's schema); read back
    through the same types, nothing is lost or renamed."""
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models.dashboard import Dashboard

    d = json.loads((DEPLOY / "grafana" / "swarm-medic.json").read_text())
    back = json.loads(json.dumps(Dashboard.from_json(d), cls=JSONEncoder))
    for key in ("uid", "title", "tags", "templating", "annotations", "links"):
        assert back[key] == d[key] or key == "templating", key
    assert [p["title"] for p in back["panels"]] == [p["title"] for p in d["panels"]]
    assert [v["name"] for v in back["templating"]["list"]] == [
        v["name"] for v in d["templating"]["list"]
    ]


def test_the_dashboard_answers_3am_questions() -> None:
    d = json.loads((DEPLOY / "grafana" / "swarm-medic.json").read_text())
    panels = {p["title"]: p for p in d["panels"]}
    # which services have open incidents, and the medic's stance on each
    table = panels["Open incidents, by service"]
    assert table["type"] == "table"
    assert "swarm_medic_incident_age_seconds" in table["targets"][0]["expr"]
    # pause, alerts hold, notifications, alerts in
    for title in ("Paused swarm-wide", "Alerts hold (--hold-while-alerts)"):
        assert panels[title]["type"] == "state-timeline"
    assert "swarm_medic_notifications_total" in str(panels["Notifications, by result"])
    assert "swarm_medic_alerts_received_total" in str(panels["Alerts in (POST /v1/alerts)"])
    # every state timeline says its states in words and colours
    for p in d["panels"]:
        if p["type"] == "state-timeline":
            (mapping,) = p["fieldConfig"]["defaults"]["mappings"]
            assert mapping["type"] == "value" and set(mapping["options"]) == {"0", "1"}, p["title"]
    # a cluster variable every medic query uses; annotations where it acted; the status page
    names = [v["name"] for v in d["templating"]["list"]]
    assert "cluster" in names
    for title, exprs in queries({"$cluster": "CLUSTER"}).items():
        for e in exprs:
            assert 'cluster=~"CLUSTER"' in e, (title, e)
    (acted,) = d["annotations"]["list"]
    assert "swarm_medic_actions_total" in acted["expr"]
    assert any("${brain}" in link["url"] for link in d["links"])


def test_the_worth_row_computes_reports_figures_from_the_brains_metrics() -> None:
    """Every outcome a query asks for is one the daemon counts (a typo would be an empty
    panel, never an error), and each figure of `report` has its column."""
    d = json.loads((DEPLOY / "grafana" / "swarm-medic.json").read_text())
    titles = [p["title"] for p in d["panels"]]
    row = titles.index("What the healing was worth (in the time range)")
    table = d["panels"][row + 1]
    assert table["type"] == "table"
    (organize,) = [t for t in table["transformations"] if t["id"] == "organize"]
    columns = set(organize["options"]["renameByName"].values())
    assert columns == {
        "found",
        "fixed",
        "healed",
        "did not hold",
        "time to heal p50",
        "time to heal p95",
        "closed, no human",
        "harm",
    }
    exprs = [e for t in titles[row + 1 : row + 4] for e in queries()[t]]
    asked = {o for e in exprs for m in re.findall(r'outcome=~"([^"]+)"', e) for o in m.split("|")}
    assert asked == set(metrics.INCIDENT_OUTCOMES) - {"closed_by_someone"}
    assert any("swarm_medic_incident_time_to_heal_seconds_bucket" in e for e in exprs)
    assert all(e in may_be_empty() for e in exprs)  # series appear once the brain records one


def test_the_monitoring_stack_mounts_files_that_exist_under_defined_configs() -> None:
    """The offline half of `docker stack config -c deploy/monitoring.yml` (run by the lab)."""
    stack = load(DEPLOY / "monitoring.yml")
    assert stack["version"] == "3.8"
    for name, c in stack["configs"].items():
        assert (DEPLOY / c["file"]).is_file(), name
    used = {c["source"] for s in stack["services"].values() for c in s.get("configs", [])}
    assert used == set(stack["configs"])
    for s in stack["services"].values():
        assert ":" in s["image"] and not s["image"].endswith(":latest"), s["image"]
    provider = load(DEPLOY / "grafana" / "provisioning" / "dashboards" / "swarm-medic.yml")
    path = provider["providers"][0]["options"]["path"]
    targets = [c["target"] for c in stack["services"]["grafana"]["configs"]]
    assert f"{path}/swarm-medic.json" in targets


# --- the README's list of metrics (tests/unit/test_readme.py: README.md has it as generated) ---


def test_the_list_names_every_metric_as_a_scrape_shows_it() -> None:
    reg = CollectorRegistry()
    m = metrics.Metrics(reg)
    m.scans.labels("ok").inc()
    listed = {name for name, *_ in metrics.catalogue()}
    assert len(listed) == len([v for v in vars(m).values() if hasattr(v, "describe")])
    assert {"swarm_medic_scans_total", "swarm_medic_info", "swarm_medic_leader"} <= listed
    exported = {s.name for fam in reg.collect() for s in fam.samples}
    assert "swarm_medic_scans_total" in exported
    assert {n for n in listed if n.startswith("swarm_medic_scan")} >= {
        "swarm_medic_scans_total",
        "swarm_medic_scan_duration_seconds",
    }
