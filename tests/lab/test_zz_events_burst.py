"""dockerd SIGKILLed in the middle of a burst of 200 service updates: every event once.

The watcher resumes with `since` after the engine comes back; events of the same instant that
it already handled must not count twice, and none the engine emitted may be missed. The
ground truth is an independent listener: `docker events` connected from the start until the
engine dies, plus the new engine's own event log (`docker events --since --until`) after it.
The kill lands between the two halves of the burst (a second after the 100th update), so no
event is in flight on a socket when the engine dies: an event that never left the engine is
lost for every listener alike, and proves nothing.

Named test_zz_* so it runs after the other single-node lab tests: it kills the lab's engine.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import docker
import pytest
import structlog
from prometheus_client import CollectorRegistry

from swarm_medic.core.model import Event
from swarm_medic.pipeline.watch import Watcher
from swarm_medic.swarm.engine import DockerEngine
from swarm_medic.telemetry.journal import Journal
from swarm_medic.telemetry.metrics import Metrics
from tests.labkit import LAB, Lab, record_timing
from tests.waiting import wait_until

pytestmark = pytest.mark.lab
PID_FILE = Path("/run/swarm-medic-lab/dockerd.pid")  # written by scripts/lab.sh up
UPDATES = 200
Identity = tuple[int, str, str, str]


def identity(raw: dict[str, object]) -> Identity:
    actor = raw.get("Actor")
    actor_id = str(actor.get("ID")) if isinstance(actor, dict) else ""
    return (int(str(raw["timeNano"])), str(raw["Type"]), str(raw["Action"]), actor_id)


def parse_lines(text: str) -> list[Identity]:
    return [identity(json.loads(line)) for line in text.splitlines() if line.strip()]


def update(api: docker.APIClient, service: str, i: int) -> None:
    """One label change (a service update event), retried until the engine takes it."""
    for _ in range(300):
        try:
            current = api.inspect_service(service)
            spec = dict(current["Spec"])
            spec["Labels"] = {**(spec.get("Labels") or {}), "medic.burst": str(i)}
            url = api._url("/services/{0}/update", service)
            params = {"version": current["Version"]["Index"]}
            api._raise_for_status(api._post_json(url, data=spec, params=params))
        except (docker.errors.APIError, docker.errors.DockerException, OSError):
            time.sleep(0.2)  # the engine is down or its swarm not back yet
        else:
            return
    raise AssertionError(f"update {i} of {service} never went through")


def kill_engine() -> None:
    pid = int(PID_FILE.read_text())
    os.kill(pid, signal.SIGKILL)
    # a killed dockerd stays a zombie until reaped; a new one refuses to start meanwhile
    wait_until("the killed dockerd to be gone", lambda: not Path(f"/proc/{pid}").exists(), 30)
    done = subprocess.run(
        ["bash", str(LAB), "up"], capture_output=True, text=True, check=False, timeout=180
    )
    assert done.returncode == 0, done.stderr


def test_every_event_is_seen_once_across_an_engine_kill(lab: Lab) -> None:
    if not PID_FILE.is_file():
        pytest.skip("the engine was not started by scripts/lab.sh; not killing it")
    services = [lab.create(f"burst{i}", "--replicas", "0") for i in range(4)]
    # Only the burst's own services are compared: a restarted engine also emits late events of
    # services removed earlier (earlier tests' clean-up), which the watcher rightly sees but
    # the listener's before/after halves may straddle; they say nothing about this burst.
    ours = {lab.inspect(name)["ID"] for name in services}
    seen: list[Identity] = []
    lock = threading.Lock()

    def on_event(ev: Event) -> None:
        if ev.type == "service" and ev.identity[3] in ours:
            with lock:
                seen.append(ev.identity)

    journal = Journal(Metrics(CollectorRegistry()), structlog.get_logger("burst-test"))
    watcher = Watcher(DockerEngine(), journal, on_event, backoff_max=2.0)
    t0 = time.time_ns()
    watcher.start(since_nano=t0)
    listener = subprocess.Popen(
        ["docker", "events", "--filter", "type=service", "--format", "{{json .}}"],
        stdout=subprocess.PIPE,
        text=True,
    )
    wait_until("the watcher connected", lambda: watcher.connected, 15)
    time.sleep(1)  # the listener's stream is open too
    # the test's own client speaks this engine's version (20.10: 1.41; a 28 with Engine 29's
    # floor refuses 1.41), asked now, while the engine is up
    spoken = docker.APIClient(version="auto", timeout=10).api_version
    api = docker.APIClient(version=spoken, timeout=10)
    t_burst = time.time()
    try:
        for i in range(UPDATES // 2):
            update(api, services[i % len(services)], i)
        time.sleep(1)  # nothing in flight: see the module docstring
        t_kill = time.time_ns()
        kill_engine()
        before_kill, _ = listener.communicate(timeout=30)  # it ended with the engine
        api = docker.APIClient(version=spoken, timeout=10)
        for i in range(UPDATES // 2, UPDATES):
            update(api, services[i % len(services)], i)
        t_end = time.time_ns()
        after_restart = subprocess.run(
            [
                "docker",
                "events",
                "--filter",
                "type=service",
                "--format",
                "{{json .}}",
                "--since",
                f"{t_kill / 1e9:.9f}",
                "--until",
                f"{t_end / 1e9 + 1:.9f}",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        truth = [
            e
            for e in parse_lines(before_kill) + parse_lines(after_restart)
            if e[0] >= t0 and e[3] in ours
        ]
        assert len(truth) >= UPDATES, "the independent listener saw fewer events than updates"

        def caught_up() -> bool:
            with lock:
                return set(truth) <= set(seen)

        wait_until("the watcher to see every event", caught_up, 60)
        time.sleep(2)  # and nothing twice, even a little later
    finally:
        watcher.stop()
        if listener.poll() is None:
            listener.kill()
    with lock:
        got = [e for e in seen if e[0] <= t_end + 1_000_000_000]
    assert len(got) == len(set(got)), "an event was handled twice"
    assert set(got) == set(truth)
    record_timing(
        fault=f"dockerd SIGKILLed during a burst of {UPDATES} service updates",
        events_emitted=len(truth),
        events_seen=len(got),
        duplicates=len(got) - len(set(got)),
        burst_seconds=round(time.time() - t_burst, 1),
    )
