"""orphan-container: healthy churn is never an orphan; a real orphan is found after its grace.

Before: the grace counted from the task's Status.Timestamp (when it started running, often
days ago), and the "task gone" and "task elsewhere" branches had none, so the old task of every
rolling update, scale-down and `docker service rm` was flagged (and force-removed) while swarm
was still stopping it. Now it counts from the medic's first sighting, plus the service's stop
grace period.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from swarm_medic.core.model import Service, Task
from swarm_medic.core.protocol import Container
from swarm_medic.core.reach import Reachability
from swarm_medic.core.runbook import Runbook, Sightings, TaskClock, context
from swarm_medic.core.settings import Settings
from tests import builders as build
from tests.builders import NOW as T0
from tests.unit.runbooks.kit import REGISTRY

DAYS_AGO = T0 - 3 * 86400
GRACE = 60.0  # the runbook's setting `grace`, by default
ORPHANS: Runbook = REGISTRY.runbooks["orphan-container"]
SID, TID, CID = "svc1", "task1", "ctr1"


def task(desired: str = "running", node_id: str = "n2", state: str = "running") -> Task:
    return build.task(
        TID, sid=SID, node_id=node_id, state=state, desired=desired, timestamp=DAYS_AGO
    )


@dataclass
class World:
    """One container on node n2, seen over consecutive scans."""

    tasks: Sequence[Task] = ()
    service: Service | None = field(default_factory=lambda: Service(SID, "db", 10))
    settings: Settings = field(default_factory=Settings)
    sightings: Sightings = field(default_factory=Sightings)

    swarm_made: bool = True
    stop_timeout: float | None = None  # swarm leaves it unset on its containers
    remembered: Service | None = None  # the service as the medic saw it before its removal

    def scan(self, now: float, *, container_state: str = "running") -> list[str]:
        snap = build.snapshot(
            nodes=(build.node("n1"), build.node("n2")),
            services=(self.service,) if self.service else (),
            tasks=self.tasks,
            taken_at=now,
        )
        reach = Reachability()
        reach.containers = {
            "n2": (
                Container(
                    id=CID,
                    task=TID,
                    service=SID,
                    state=container_state,
                    name=f"db.1.{TID}",
                    stop_timeout=self.stop_timeout,
                    swarm_made=self.swarm_made,
                ),
            )
        }
        seen = {SID: self.remembered} if self.remembered else {}
        ctx = context(
            snap,
            now,
            self.settings,
            TaskClock(),
            reach=reach,
            sightings=self.sightings,
            services_seen=seen,
        )
        found = [f.summary for f in ORPHANS.detect(ctx)]
        self.sightings.end_scan()
        return found


def first_flagged(w: World, until: float, every: float = 2.0) -> float | None:
    """Seconds after the first scan at which the container is first flagged, if ever."""
    t = 0.0
    while t <= until:
        if w.scan(T0 + t):
            return t
        t += every
    return None


def test_a_healthy_running_task_is_never_an_orphan() -> None:
    assert first_flagged(World(tasks=[task()]), 3600) is None


@pytest.mark.parametrize(
    ("what", "world", "stop_grace"),
    [
        ("rolling update: old task desired shutdown", World(tasks=[task("shutdown")]), 10.0),
        ("scale-down: task desired remove", World(tasks=[task("remove")]), 10.0),
        (
            "service rm: task and service gone, the medic saw the service",
            World(tasks=[], service=None, remembered=Service(SID, "db", 10)),
            10.0,
        ),
        (
            "service rm of a 45 s grace service the medic saw",
            World(tasks=[], service=None, remembered=Service(SID, "db", 9, stop_grace_period=45)),
            45.0,
        ),
        (
            "service rm before the medic ever saw the service",
            World(tasks=[], service=None),
            300.0,
        ),
        ("task rescheduled to another node", World(tasks=[task(node_id="n1")]), 10.0),
        (
            "a container with its own stop timeout (docker run --stop-timeout)",
            World(tasks=[task("shutdown")], stop_timeout=20),
            20.0,
        ),
        (
            "a database with a 5 minute stop grace period",
            World(tasks=[task("shutdown")], service=Service(SID, "db", 10, stop_grace_period=300)),
            300.0,
        ),
    ],
)
def test_churn_is_left_to_swarm_for_its_grace_then_flagged(
    what: str, world: World, stop_grace: float
) -> None:
    # the task itself started running days ago: that must not count
    flagged = first_flagged(world, 1200)
    assert flagged is not None, what
    assert GRACE + stop_grace <= flagged <= GRACE + stop_grace + 2.0, what


def test_the_grace_restarts_when_the_condition_goes_away() -> None:
    w = World(tasks=[task("shutdown")])
    assert w.scan(T0) == []
    assert w.scan(T0 + 60) == []
    w.tasks = [task("running")]  # e.g. a rollback brought the task back
    assert w.scan(T0 + 62) == []
    w.tasks = [task("shutdown")]
    assert w.scan(T0 + 100) == []  # 38 s after the restart, not 100 s after the first sighting
    assert w.scan(T0 + 100 + GRACE + 10) != []


def test_a_container_swarm_did_not_make_is_never_an_orphan() -> None:
    # e.g. run from a `docker commit` of a task container: its labels are copies
    assert first_flagged(World(tasks=[], service=None, swarm_made=False), 3600) is None


def test_a_stopped_container_is_not_an_orphan() -> None:
    w = World(tasks=[])
    for t in range(0, 600, 10):
        assert w.scan(T0 + t, container_state="exited") == []


def test_the_finding_says_how_long_and_what_grace() -> None:
    w = World(tasks=[], service=None, remembered=Service(SID, "db", 10))
    w.scan(T0)
    (summary,) = w.scan(T0 + 75)
    assert "its task no longer exists" in summary
    assert "seen like this for 75s (grace 70s)" in summary
