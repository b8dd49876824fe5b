"""disk-pressure's prune (opt-in) on a node whose data root is a small filesystem of its own:
the spare node (multilab.sh spare-up: node 9, a single-node swarm, its data root a 512 MiB
ext4 file), so filling it fills nothing else.

The trap the issue names: a service updated from image P to image C keeps P only in its
PreviousSpec; P's old task container is stopped, and once that container is gone nothing on the
node uses P. `docker image prune -a` would remove it, and `docker service rollback` would then
need a pull (no registry here: it would fail). The medic's prune removes the stopped container
of a task no longer wanted, and unused images, but never P.

1. Below the high watermark, with unused images on the node and prune on, the medic prunes
   nothing (the opposite test).
2. Unused images fill the filesystem over the high watermark; swarm alone leaves it full.
3. With prune on, the medic finds it, prunes on the node below the low watermark, keeps P and C,
   and `docker service rollback` then runs P again.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest

from tests.labkit import image_id, in_node, multilab, on_node, record_timing, ts
from tests.multilab.kit import NodeMedics
from tests.waiting import wait_until

pytestmark = pytest.mark.lab

SPARE = 9
MIB = 512
HIGH, LOW = 60, 45  # percent used: the watermarks set for this test
QUIET = 6.0  # three scans at the fixture's 2 s


@pytest.fixture
def spare(multilab_up: None) -> Iterator[None]:
    multilab("spare-up", str(MIB))
    try:
        yield
    finally:
        multilab("spare-down")


def used() -> int:
    out = subprocess.run(
        [*in_node(SPARE), "df", "-P", f"/var/lib/medic/n{SPARE}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return int(out.splitlines()[-1].split()[4].rstrip("%"))


def images() -> dict[str, str]:
    """image id -> its first tag ("" : none) on the spare node."""
    out = on_node(
        SPARE, "image", "ls", "-a", "--no-trunc", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}"
    )
    return dict(line.split(" ", 1) for line in out.splitlines() if line.strip())


def committed(tag: str, megabytes: int) -> str:
    """An image of the test image plus `megabytes` of random data, made on the spare node by
    running a container and committing it (no build, no registry); -> its id."""
    name = f"medic-mk-{uuid.uuid4().hex[:6]}"
    on_node(
        SPARE,
        "run",
        "--name",
        name,
        image_id(),
        "dd",
        "if=/dev/urandom",
        "of=/junk",
        "bs=1M",
        f"count={megabytes}",
    )
    on_node(SPARE, "commit", name, tag)
    on_node(SPARE, "rm", name)
    return on_node(SPARE, "image", "inspect", "--format", "{{.Id}}", tag)


def running_image(service: str) -> str:
    out = on_node(
        SPARE,
        "service",
        "ps",
        service,
        "--filter",
        "desired-state=running",
        "--format",
        "{{.CurrentState}}",
    )
    if not out.startswith("Running"):
        return ""
    return on_node(
        SPARE,
        "service",
        "inspect",
        "--format",
        "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
        service,
    )


def test_a_full_data_root_is_pruned_and_a_rollback_still_runs(
    spare: None, node_medics: NodeMedics
) -> None:
    previous = committed("medic/prev:1", 16)
    current = committed("medic/cur:1", 1)
    svc = f"medic-prune-{uuid.uuid4().hex[:6]}"
    common = ["-d", "--no-resolve-image", "--stop-grace-period", "1s"]
    on_node(SPARE, "service", "create", "--name", svc, *common, previous, "sleep", "3600")
    wait_until("the previous image running", lambda: running_image(svc) == previous, 60)
    on_node(SPARE, "service", "update", *common, "--image", current, svc)
    wait_until("the current image running", lambda: running_image(svc) == current, 60)
    stopped = on_node(SPARE, "ps", "-aq", "--filter", "status=exited").split()
    assert stopped, "the previous task's container is kept stopped, as swarm keeps it"

    # 1. unused images, but below the high watermark: nothing is pruned, prune on or not
    committed("medic/junk:0", 40)
    assert used() < HIGH, used()
    settings = {
        "runbook_disk_pressure_high": str(HIGH),
        "runbook_disk_pressure_low": str(LOW),
        # the watermarks decide here: the default 1 GiB floor is more than this disk holds
        "runbook_disk_pressure_free": "8M",
        "runbook_disk_pressure_prune": "yes",
    }
    (quiet,) = node_medics(nodes=(SPARE,), **settings)
    time.sleep(QUIET)
    assert not quiet.find("finding", runbook="disk-pressure"), quiet.tail(20)
    assert not quiet.find("action:"), quiet.tail(20)
    quiet.stop()

    # 2. filled over the high watermark with unused images: swarm alone leaves it so
    n = 1
    while used() <= HIGH + 3:
        committed(f"medic/junk:{n}", 48)
        n += 1
    full = used()
    time.sleep(4)
    assert used() >= full - 1, "something else freed the space"
    t_full = time.time()

    # 3. prune on: found, pruned below the low watermark, P and C kept, rollback runs P
    (medic,) = node_medics(nodes=(SPARE,), **settings)
    finding = medic.wait_for("finding", 60, runbook="disk-pressure")
    pruned = medic.wait_for("hand: pruned", 90)
    after = used()
    left = images()
    assert after <= LOW, (after, pruned)
    assert previous in left and current in left, left
    assert sum(1 for tag in left.values() if tag.startswith("medic/junk:")) < n, left
    assert not set(stopped) & set(on_node(SPARE, "ps", "-aq").split()), (
        "the stopped task container stays"
    )
    assert len(medic.find("hand: pruned")) == 1
    healed = medic.wait_for("verified: healed", 30, runbook="disk-pressure")
    on_node(SPARE, "service", "rollback", "-d", svc)
    wait_until("the rollback runs the previous image", lambda: running_image(svc) == previous, 60)
    record_timing(
        runbook="disk-pressure",
        fault=f"a {MIB} MiB data root filled to {full}% with unused images (prune on)",
        swarm_alone="nothing freed",
        detect=round(ts(finding) - medic.started, 1),
        fault_to_pruned=round(ts(pruned) - t_full, 1),
        pruned_to_verified=round(ts(healed) - ts(pruned), 1),
        used_after=f"{after}%",
        rollback="ran the PreviousSpec image",
    )
