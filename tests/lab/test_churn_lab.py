"""Healthy churn on the real swarm never looks like a fault (the opposite tests).

A rolling update, a scale-down and a `docker service rm` each leave containers that swarm is
still stopping (here for 20 s: busybox ignores SIGTERM, so each runs its whole stop grace
period). Before issue 6 the orphan-container runbook counted its grace from the task's start
and force-removed every one of them. A container copied with `docker commit` carries a task's
labels; it is never taken for that task. The medic runs acting, with scope=all.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from functools import partial

import pytest

from tests.labkit import Lab, MedicProcess, docker, record_timing
from tests.waiting import wait_until

pytestmark = pytest.mark.lab

STOP_GRACE = 20
SLOW_STOP = ("--stop-grace-period", f"{STOP_GRACE}s", "--update-parallelism", "2")


Medic = Callable[..., MedicProcess]


def running(lab: Lab, name: str) -> bool:
    return "Running" in lab.current_states(name)


def desired_running(*services: str) -> set[str]:
    out = docker(
        "service", "ps", *services, "--no-trunc", "-q", "--filter", "desired-state=running"
    )
    return set(out.split())


def containers(label: str) -> dict[str, str]:
    """Running containers of the lab's services with `label`: id -> task id."""
    out = docker(
        "ps",
        "--no-trunc",
        "--filter",
        f"label={label}",
        "--format",
        '{{.ID}} {{.Label "com.docker.swarm.task.id"}}',
    )
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


def test_rolling_update_scale_down_and_removal_are_left_to_swarm(lab: Lab, medic: Medic) -> None:
    tag = f"medic.churn={uuid.uuid4().hex[:8]}"
    label = ("--container-label", tag)
    upd = lab.create("churn-upd", "--replicas", "2", *SLOW_STOP, *label, opt_in=False)
    down = lab.create("churn-down", "--replicas", "2", *SLOW_STOP, *label, opt_in=False)
    gone = lab.create("churn-rm", "--replicas", "1", *SLOW_STOP, *label, opt_in=False)
    for name in (upd, down, gone):
        wait_until(f"{name} running", partial(running, lab, name), 30)
    wait_until("5 containers", lambda: len(containers(tag)) == 5, 30)

    # a copy of a task's container: `docker commit` keeps its swarm labels
    (copied,) = [cid for cid in containers(tag)][:1]
    image = f"medic/copy:{uuid.uuid4().hex[:8]}"
    docker("commit", copied, image)
    copy = docker("run", "-d", "--label", "medic.lab=1", image, "sleep", "3600")
    try:
        m = medic(
            scope="all",
            runbook_orphan_container_grace="5s",
            probe_interval="2s",
            probe_grace="1s",
            log_level="debug",
        )
        m.wait_for("probe round", 20)
        before = set(containers(tag)) - {copy}
        docker("service", "update", "-d", "--force", "--no-resolve-image", upd)
        docker("service", "scale", "-d", f"{down}=1")
        docker("service", "rm", gone)
        lab.services.remove(gone)
        t_churn = time.time()

        # swarm is stopping 3 containers (the update's old tasks, the scaled-down one, the
        # removed service's) for their whole grace period: still running, desired shut down
        time.sleep(6)
        keep = desired_running(upd, down)
        now = containers(tag)
        stopping = {c for c in before if c in now and now[c] not in keep}
        assert len(stopping) >= 3, f"the churn did not leave containers stopping: {now}"

        wait_until(
            "swarm to finish stopping them by itself",
            lambda: not stopping & set(containers(tag)),
            STOP_GRACE + 30,
        )
        took = time.time() - t_churn
        time.sleep(8)  # a few more rounds: the copy is still no task's orphan
        ours = {c[:12] for c in (*before, copy)}
        flagged = [
            f
            for f in m.find("finding", runbook="orphan-container")
            if any(c in str(f["summary"]) for c in ours)
        ]
        assert flagged == []
        assert m.find("action:") == []
        assert docker("inspect", "-f", "{{.State.Running}}", copy) == "true"
        record_timing(
            runbook="orphan-container",
            fault="none: rolling update, scale-down, service rm, 20 s stop grace; a commit copy",
            swarm_alone=f"stopped them in {took:.0f}s",
            findings=0,
            actions=0,
        )
    finally:
        docker("rm", "-f", copy, check=False)
        docker("rmi", "-f", image, check=False)
