"""A real Prometheus and Alertmanager (Debian packages, scripts/monitoring.sh) watching the
deployed stack on the 3-node lab, with the repository's own configuration files.

What differs from deploy/ and why, nothing else:
- discovery talks to node1's Engine socket as the host sees it (/run/medic/n1/...);
- scrapes, rule evaluation and discovery every 2-3 s instead of 15-30 s, and every alert's
  `for` shortened to 2 s: a test cannot wait the minutes production alerts wait (the `for`
  durations themselves are tested by promtool, deploy/prometheus/tests);
- Alertmanager's waits are 1-2 s and its receivers are this test's webhook on loopback.
Prometheus and Alertmanager listen on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from tests.labkit import ROOT, node_sock, prometheus_and_alertmanager
from tests.netkit import Receiver

PROM = "127.0.0.1:19090"
AM = "127.0.0.1:19093"


class Webhook(Receiver):
    """Alertmanager's webhook receiver: every payload it is sent, any path."""

    def alerts(self, status: str = "firing") -> list[dict[str, Any]]:
        return [a for p in self.payloads for a in p.get("alerts", []) if a["status"] == status]


def _lab_prometheus_config(work: Path) -> Path:
    doc = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    doc["global"].update(scrape_interval="2s", evaluation_interval="2s")
    for job in doc["scrape_configs"]:
        for sd in job.get("dockerswarm_sd_configs", []):
            sd.update(host=node_sock(1), refresh_interval="3s")
    doc["alerting"]["alertmanagers"] = [{"static_configs": [{"targets": [AM]}]}]
    rules = []
    for name in doc["rule_files"]:
        group_doc = yaml.safe_load((ROOT / "deploy" / name).read_text())
        for group in group_doc["groups"]:
            for rule in group["rules"]:
                if "for" in rule:
                    rule["for"] = "2s"
        out = work / Path(name).name
        out.write_text(yaml.safe_dump(group_doc, sort_keys=False))
        rules.append(str(out))
    doc["rule_files"] = rules
    path = work / "prometheus.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _lab_alertmanager_config(work: Path, webhook: str) -> Path:
    doc = yaml.safe_load((ROOT / "deploy" / "alertmanager.yml").read_text())
    doc["route"].update(group_wait="1s", group_interval="2s")
    for receiver in doc["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = webhook + urllib.parse.urlsplit(hook["url"]).path
    path = work / "alertmanager.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@contextmanager
def running(work: Path) -> Iterator[Webhook]:
    with (
        Webhook() as hook,
        prometheus_and_alertmanager(
            listen=PROM,
            am_listen=AM,
            config=_lab_prometheus_config(work),
            am_config=_lab_alertmanager_config(work, hook.base),
            storage=work / "data",
        ),
    ):
        yield hook


def api(path: str, **params: str) -> Any:
    url = f"http://{PROM}/api/v1/{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=10) as r:  # noqa: S310 - loopback
        body = json.loads(r.read())
    assert body["status"] == "success", body
    return body["data"]


def query(expr: str) -> list[dict[str, Any]]:
    data = api("query", query=expr)
    result: list[dict[str, Any]] = data["result"] if data["resultType"] == "vector" else []
    return result


def query_range(expr: str, seconds: float, step: str = "5s") -> list[dict[str, Any]]:
    """The series `expr` had over the last `seconds`, as Grafana's time-series panels ask."""
    now = time.time()
    data = api("query_range", query=expr, start=f"{now - seconds:.3f}", end=f"{now:.3f}", step=step)
    result: list[dict[str, Any]] = data["result"]
    return result


def value(expr: str) -> float | None:
    """The single value of an expression that sums to one sample, or None when it has none."""
    rows = query(f"sum({expr})")
    return float(rows[0]["value"][1]) if rows else None


def targets(job: str) -> dict[str, str]:
    """instance -> health of the job's active targets."""
    active = api("targets", state="active")["activeTargets"]
    return {t["labels"]["instance"]: t["health"] for t in active if t["labels"]["job"] == job}
