"""observe: one snapshot per scan, in a constant number of Engine API calls; and the schedule.

info, nodes, services, tasks, networks, configs and secrets: seven calls whatever the size of
the swarm (never one call per service). The schedule is an APScheduler 3.x interval job with
jitter; the watcher and the verifier pull the next run forward with `wake()`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

from swarm_medic.core.errors import NotAManager
from swarm_medic.core.model import Snapshot
from swarm_medic.swarm import SwarmReader

CALLS_PER_SCAN = 7


def take_snapshot(engine: SwarmReader, now: float) -> Snapshot:
    before = engine.api_calls
    info = engine.info()
    if not info.control_available:
        raise NotAManager(
            f"this engine (node {info.node_id or '?'}, swarm state {info.local_state}) is not "
            f"a swarm manager: services and tasks can only be observed on a manager"
        )
    nodes = engine.nodes()
    services = engine.services()
    tasks = engine.tasks()
    networks, configs, secrets = engine.networks(), engine.configs(), engine.secrets()
    malformed = tuple(engine.malformed)
    engine.malformed.clear()
    return Snapshot(
        taken_at=now,
        info=info,
        nodes=nodes,
        services=services,
        tasks=tasks,
        api_calls=engine.api_calls - before,
        malformed=malformed,
        networks=networks,
        configs=configs,
        secrets=secrets,
    )


class Schedule:
    """Runs `job` every `interval` s (+ jitter), never two at once, earlier when woken."""

    JOB_ID = "scan"

    def __init__(self, job: Callable[[], Any], interval: float, jitter: float) -> None:
        self._scheduler = BackgroundScheduler(
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone="UTC",
        )
        self._scheduler.add_job(
            job,
            "interval",
            seconds=interval,
            jitter=jitter or None,
            id=self.JOB_ID,
            next_run_time=datetime.now().astimezone(),
        )

    def start(self) -> None:
        self._scheduler.start()

    def wake(self, delay: float = 0.5) -> None:
        """Run the next scan within `delay` s (a burst of events coalesces into one scan)."""
        job = self._scheduler.get_job(self.JOB_ID)
        if job is None:
            return
        when = datetime.now().astimezone() + timedelta(seconds=delay)
        if job.next_run_time is None or job.next_run_time > when:
            job.modify(next_run_time=when)

    def stop(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)
