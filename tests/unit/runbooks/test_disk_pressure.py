"""disk-pressure: a node's data root (or a manager's raft folder) above the high watermark,
critical near full, cleared only below the low watermark; quiet below it."""

from __future__ import annotations

import dataclasses

import pytest

from swarm_medic.core.model import ActionKind, Finding, Severity
from swarm_medic.core.protocol import Disk
from swarm_medic.core.reach import Health, Reachability
from swarm_medic.core.runbook import Context, Runbook, Sightings, context
from swarm_medic.core.settings import Settings
from tests import builders as build
from tests.builders import NOW
from tests.unit.runbooks.kit import REGISTRY, detect

DISK: Runbook = REGISTRY.runbooks["disk-pressure"]
GIB = 1 << 30
ROOT = "/var/lib/docker"


def disk(used: float, total: int = 100 * GIB, what: str = "data-root", path: str = ROOT) -> Disk:
    return Disk(what, path, total, int(total * (100 - used) / 100))


SERVICES = (
    dataclasses.replace(
        build.service("s1", image="web:2@sha256:" + "a" * 64), previous_image="web:1"
    ),
    build.service("s2", image="job:7"),
)
TASKS = (
    build.task("t1", sid="s1", node_id="n2"),
    build.task("t2", sid="s1", node_id="n2", state="shutdown", desired="shutdown"),
    build.task("t3", sid="s2", node_id="n2", state="complete", desired="running"),
    build.task("t4", sid="s2", node_id="n1"),
    build.task("t5", sid="s1", node_id="n2", state="failed", desired="remove"),
)


def ctx(
    disks: dict[str, tuple[Disk, ...]], age: float = 5.0, sightings: Sightings | None = None
) -> Context:
    nodes = [
        build.node("n1", hostname="node1", role="manager", leader=True, addr="10.99.0.11"),
        build.node("n2", hostname="node2", addr="10.99.0.12"),
    ]
    snap = build.snapshot(nodes=nodes, me="n1", addr="10.99.0.11", services=SERVICES, tasks=TASKS)
    health = {n: Health(NOW - age, None, d) for n, d in disks.items()}
    return context(
        snap, NOW, Settings(), reach=Reachability(rounds=3, health=health), sightings=sightings
    )


@pytest.mark.parametrize(
    "disks",
    [
        pytest.param({}, id="nothing-said"),
        pytest.param({"n1": (disk(40), disk(60, what="raft", path=f"{ROOT}/swarm/raft"))}),
        pytest.param({"n2": (disk(89.9),)}, id="just-below-high"),
        pytest.param({"n3": (disk(99),)}, id="a-node-not-in-the-swarm"),
    ],
)
def test_quiet_below_the_high_watermark(disks: dict[str, tuple[Disk, ...]]) -> None:
    assert detect(DISK, ctx(disks)) == []


def test_a_reading_too_old_is_not_judged() -> None:
    assert detect(DISK, ctx({"n2": (disk(99),)}, age=700)) == []


def test_above_the_high_watermark_the_node_and_path_are_named() -> None:
    (f,) = detect(DISK, ctx({"n2": (disk(92),)}))
    assert (f.key, f.cause, f.severity, f.node_ids) == (
        "disk-pressure:n2:data-root",
        "disk-pressure",
        Severity.WARNING,
        ("n2",),
    )
    assert f.summary == (
        "the Docker data root /var/lib/docker on node2 (10.99.0.12, worker) is 92.0% used, "
        "8.0 GiB free of 100.0 GiB"
    )
    assert "PreviousSpec" in f.advice and "max-size" in f.advice and "docker system df" in f.advice
    assert not f.actionable and DISK.plan(f, ctx({})) is None


@pytest.mark.parametrize(
    ("d", "why"),
    [(disk(98), "over 97%"), (disk(95, total=10 * GIB), "under 1 GiB free")],
)
def test_critical_near_full(d: Disk, why: str) -> None:
    (f,) = detect(DISK, ctx({"n2": (d,)}))
    assert f.severity == Severity.CRITICAL, why


def test_a_managers_raft_folder_is_named_with_its_own_risk() -> None:
    raft = disk(93, what="raft", path=f"{ROOT}/swarm/raft")
    (f,) = detect(DISK, ctx({"n1": (disk(50), raft)}))
    assert f.key == "disk-pressure:n1:raft" and f.cause == "raft-disk"
    assert "raft folder /var/lib/docker/swarm/raft" in f.summary
    assert "raft log (WAL)" in f.advice


def test_it_clears_only_below_the_low_watermark() -> None:
    sightings = Sightings()
    seen = []
    for used in (88, 91, 88, 86, 84, 88):
        found: list[Finding] = detect(DISK, ctx({"n2": (disk(used),)}, sightings=sightings))
        seen.append(len(found))
        sightings.end_scan()
    # 88 before it crossed: quiet; 91: found; 88 and 86 still held; 84 cleared; 88 quiet again
    assert seen == [0, 1, 1, 1, 0, 0]


def test_the_watermarks_are_settings() -> None:
    loud = DISK.with_settings(high="1")  # the lab's fault: any real data root is over it
    assert len(detect(loud, ctx({"n2": (disk(5),)}))) == 1
    assert detect(DISK, ctx({"n2": (disk(5),)})) == []


@pytest.mark.parametrize(("text", "value"), [("1G", GIB), ("512M", 512 << 20), ("100", 100)])
def test_the_free_setting_reads_sizes(text: str, value: int) -> None:
    assert DISK.with_settings(free=text).values["free"] == value


def test_a_bad_size_is_refused() -> None:
    with pytest.raises(Exception, match="disk-pressure"):
        DISK.with_settings(free="lots")


# --- the prune (disk-pressure.prune=yes) --------------------------------------------------------

PRUNING = DISK.with_settings(prune="yes")


def test_by_default_it_reports_and_says_how_to_let_it_prune() -> None:
    (f,) = detect(DISK, ctx({"n2": (disk(92),)}))
    assert not f.actionable and "disk-pressure.prune=yes" in f.advice
    assert DISK.values["prune"] is False


def test_with_prune_a_data_root_over_high_is_pruned_toward_low_by_its_node() -> None:
    c = ctx({"n2": (disk(92),)})
    (f,) = detect(PRUNING, c)
    assert f.actionable and "prunes this data root" in f.advice
    action = PRUNING.plan(f, c)
    assert action is not None and action.kind is ActionKind.PRUNE_NODE
    assert (action.node_id, action.subject, action.service_id) == ("n2", "n2", "")
    assert action.prune is not None
    # every image a Spec or PreviousSpec names, of every service (not only the node's)
    assert action.prune.keep == ("job:7", "web:1", "web:2@sha256:" + "a" * 64)
    # the node's tasks still meant to run (a complete one too), not shutdown or remove
    assert action.prune.wanted == ("t1", "t3")
    assert action.prune.target == 85
    assert "92.0% used: prune toward 85%" in action.reason


@pytest.mark.parametrize(
    ("d", "why"),
    [
        (disk(93, what="raft", path=f"{ROOT}/swarm/raft"), "a raft folder on another filesystem"),
        (disk(88), "held between low and high: reported, not pruned again"),
    ],
)
def test_what_is_never_pruned(d: Disk, why: str) -> None:
    sightings = Sightings()
    if why.startswith("held"):
        detect(PRUNING, ctx({"n2": (disk(91),)}, sightings=sightings))
        sightings.end_scan()
    c = ctx({"n2": (disk(50), d) if d.what == "raft" else (d,)}, sightings=sightings)
    (f,) = detect(PRUNING, c)
    assert not f.actionable, why  # match.plan_all asks plan() of an actionable finding only
    if d.what == "raft":
        assert PRUNING.plan(f, c) is None, why


def test_the_low_watermark_is_the_target_and_never_above_high() -> None:
    rb = PRUNING.with_settings(high="80", low="95")
    c = ctx({"n2": (disk(92),)})
    (f,) = detect(rb, c)
    action = rb.plan(f, c)
    assert action is not None and action.prune is not None and action.prune.target == 80


def test_a_small_disk_short_of_free_space_is_pruned_to_leave_it_free() -> None:
    # 60% used of 2 GiB is under every watermark, but 0.8 GiB free is short of the 1 GiB floor
    c = ctx({"n2": (disk(60, total=2 * GIB),)})
    (f,) = detect(PRUNING, c)
    action = PRUNING.plan(f, c)
    assert action is not None and action.prune is not None and action.prune.target == 50
    assert "prune toward 50% (leaving 1.0 GiB free)" in action.reason
    # smaller than the floor itself: everything it may prune
    c = ctx({"n2": (disk(10, total=GIB // 2),)})
    (f,) = detect(PRUNING, c)
    action = PRUNING.plan(f, c)
    assert action is not None and action.prune is not None and action.prune.target == 0


def test_a_keep_list_larger_than_a_request_carries_is_no_prune() -> None:
    many = tuple(build.service(f"s{i}", image=f"img{i}:1") for i in range(9000))
    c = ctx({"n2": (disk(92),)})
    c = dataclasses.replace(c, snapshot=dataclasses.replace(c.snapshot, services=many))
    (f,) = detect(PRUNING, c)
    with pytest.raises(ValueError, match="no prune of node n2: 9000 images to keep"):
        PRUNING.plan(f, c)
