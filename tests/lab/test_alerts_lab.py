"""Alerts in, the whole chain for real on the single-node lab: a Prometheus rule over a lab
service's own metric fires, Alertmanager calls swarm-medic's POST /v1/alerts with its bearer
token (credentials_file), the medic force-updates the service, the new task's metric makes the
alert resolve, Alertmanager says so, and the incident is verified healed.

The service (busybox httpd) serves /metrics with the epoch its container started at, published
in host mode on a loopback port; the rule `LabStale` fires once that start is STALE_AFTER old.
Prometheus and Alertmanager (Debian's, scripts/monitoring.sh) listen on 127.0.0.1 only, and
the medic's port too.
"""

from __future__ import annotations

import os
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from tests.labkit import Lab, MedicProcess, prometheus_and_alertmanager, record_timing, ts
from tests.netkit import free_port
from tests.waiting import wait_until

pytestmark = pytest.mark.lab

PROM = "127.0.0.1:19190"
AM = "127.0.0.1:19193"
STALE_AFTER = 20
ALERT = "LabStale"
# busybox httpd sends no Content-Type for /metrics: Prometheus 3 (the lab's default,
# scripts/monitoring.sh) refuses such a scrape unless told the format; 2.x knows no such key
FALLBACK = (
    {}
    if os.environ.get("PROMETHEUS", "3") == "2.42"
    else {"fallback_scrape_protocol": "PrometheusText0.0.4"}
)
SERVE_METRICS = (
    "sh",
    "-c",
    "mkdir -p /www && "
    'echo "lab_started_timestamp_seconds $(date +%s)" > /www/metrics && '
    "exec httpd -f -p 80 -h /www",
)

Medic = Callable[..., MedicProcess]


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - loopback only
            return True
    except OSError:
        return False


@contextmanager
def lab_monitoring(
    work: Path, service: str, metrics_port: int, medic_port: int, token_file: Path
) -> Iterator[None]:
    rules = work / "lab-rules.yml"
    rules.write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {
                        "name": "lab",
                        "rules": [
                            {
                                "alert": ALERT,
                                "expr": f"time() - lab_started_timestamp_seconds > {STALE_AFTER}",
                                "labels": {"swarm_service": service, "severity": "warning"},
                                "annotations": {"summary": f"started over {STALE_AFTER}s ago"},
                            }
                        ],
                    }
                ]
            }
        )
    )
    prom = work / "prometheus.yml"
    prom.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(rules)],
                "alerting": {"alertmanagers": [{"static_configs": [{"targets": [AM]}]}]},
                "scrape_configs": [
                    {
                        "job_name": "lab-service",
                        "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}],
                        **FALLBACK,
                    }
                ],
            }
        )
    )
    am = work / "alertmanager.yml"
    am.write_text(
        yaml.safe_dump(
            {
                "route": {
                    "receiver": "swarm-medic",
                    "group_by": ["alertname", "swarm_service"],
                    "group_wait": "1s",
                    "group_interval": "1s",
                    "repeat_interval": "1h",
                },
                "receivers": [
                    {
                        "name": "swarm-medic",
                        "webhook_configs": [
                            {
                                "url": f"http://127.0.0.1:{medic_port}/v1/alerts",
                                "send_resolved": True,
                                "http_config": {
                                    "authorization": {"credentials_file": str(token_file)}
                                },
                            }
                        ],
                    }
                ],
            }
        )
    )
    with prometheus_and_alertmanager(
        listen=PROM, am_listen=AM, config=prom, am_config=am, storage=work / "data"
    ):
        yield


def test_an_alert_fires_the_service_is_force_updated_and_healed_when_it_resolves(
    lab: Lab, medic: Medic, tmp_path: Path
) -> None:
    token_file = tmp_path / "alerts-token"
    token_file.write_text(uuid.uuid4().hex + uuid.uuid4().hex + "\n")
    metrics_port, medic_port = free_port(), free_port()
    name = lab.create(
        "alert",
        "--publish",
        f"mode=host,target=80,published={metrics_port}",
        "--label",
        f"swarm-medic.on-alert.{ALERT}=force-update",
        command=SERVE_METRICS,
    )
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    wait_until("lab service serves its metric", lambda: answers(metrics_url), 60)
    version = lab.version(name)
    m = medic(
        http_addr="127.0.0.1",
        http_port=str(medic_port),
        alerts_token_file=str(token_file),
        verify_timeout="120s",
    )
    wait_until("medic port", lambda: answers(f"http://127.0.0.1:{medic_port}/metrics"), 30)

    with lab_monitoring(tmp_path, name, metrics_port, medic_port, token_file):
        t_start = time.time()
        got = m.wait_for("alerts: received", STALE_AFTER + 40, status="firing")
        assert got["firing"] >= 1
        finding = m.wait_for("finding", 15, runbook="on-alert", service=name)
        assert ALERT in finding["summary"]
        action = m.wait_for("action: force_update done", 20, service=name)
        assert action["incident"] == finding["incident"]
        assert action["service_version"] == version
        resolved = m.wait_for("alerts: received", 60, status="resolved")
        assert resolved["resolved"] >= 1
        healed = m.wait_for("verified: healed", 60, service=name)
        assert healed["incident"] == finding["incident"]
        assert f"{ALERT} resolved" in healed["detail"]
        assert not m.find("verified: NOT healed")
        assert not m.find("alerts: refused")
        assert lab.version(name) > version
        assert lab.current_states(name) == ["Running"]
        record_timing(
            runbook="on-alert",
            fault=f"Prometheus rule {ALERT} (container older than {STALE_AFTER}s)",
            threshold=STALE_AFTER,
            detect=round(ts(finding) - t_start, 1),
            heal=round(ts(healed) - ts(action), 1),
        )
