"""nodes.agent.NodeAgent's prune (disk-pressure's action) on a FakeEngine whose data root fills
with what the engine holds: refusals, dry-run, the steps in order, stopping at the target, what
the engine says is in use skipped, one prune at a time, logs reported and never touched."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from swarm_medic.core.errors import Conflict
from swarm_medic.core.protocol import PRUNE_NODE, ActAnswer, ActRequest
from swarm_medic.core.prune import LogFile, Pruned
from swarm_medic.nodes.agent import AgentError, NodeAgent
from swarm_medic.nodes.health import Health
from swarm_medic.swarm.fake import FakeEngine

ME = "node-1"
GIB = 1 << 30
TOTAL = 100 * GIB
BASE = 50 * GIB  # what else fills the data root: never freed by a prune
CONTAINER = GIB  # a stopped container's writable layer
ROOT = "/var/lib/docker"


def statvfs(engine: FakeEngine) -> Callable[[str], os.statvfs_result]:
    """The data root's filesystem as what the engine holds fills it (1-byte blocks)."""

    def measure(path: str) -> os.statvfs_result:
        assert path == ROOT
        used = BASE + engine.build_cache
        used += sum(i["Size"] for i in engine._images.values())
        used += CONTAINER * len(engine._containers)
        free = TOTAL - used
        return os.statvfs_result((1, 1, TOTAL, free, free, 0, 0, 0, 0, 255))

    return measure


def inline(fn: Callable[[], None]) -> None:
    fn()


def hand(
    engine: FakeEngine,
    done: list[Pruned],
    *,
    spawn: Callable[[Callable[[], None]], None] = inline,
    dry_run: bool = False,
    sizes: dict[str, int] | None = None,
) -> NodeAgent:
    def log_size(path: str) -> int:
        if path not in (sizes or {}):
            raise FileNotFoundError(path)
        return (sizes or {})[path]

    return NodeAgent(
        engine,
        ME,
        spawn=spawn,
        dry_run=dry_run,
        on_pruned=done.append,
        health=Health(lambda: ROOT, statvfs=statvfs(engine)),
        log_size=log_size,
    )


def prune(target: int, keep: tuple[str, ...] = (), wanted: tuple[str, ...] = ()) -> ActRequest:
    return ActRequest(PRUNE_NODE, ME, ME, keep=keep, wanted=wanted, target=target)


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine(node_id=ME)


class Node:
    """A node as a prune finds it: what must stay, and what may go (20 GiB of it)."""

    def __init__(self, engine: FakeEngine) -> None:
        e = engine
        sid = e.add_service("web")
        self.running_task = e.add_task(sid, node_id=ME)
        self.wanted_task = e.add_task(sid, node_id=ME, state="complete", desired="running")
        self.old_task = e.add_task(sid, node_id=ME, state="shutdown", desired="shutdown")
        gb = GIB
        # named by a spec (spelled otherwise there), by a PreviousSpec only, and in use
        self.spec = e.add_image("web:2", size=gb, created=500)
        self.previous = e.add_image(digests=("web@sha256:" + "b" * 64,), size=gb, created=400)
        self.used = e.add_image("tool:1", size=gb, created=100)
        self.by_wanted = e.add_image("job:1", size=gb, created=110)
        # what may go: an old task's image, a dangling one, two unused tagged ones
        self.old = e.add_image("web:1", "web:one", size=5 * gb, created=200)
        self.dangling = e.add_image(size=4 * gb, created=50)
        self.unused_old = e.add_image("cache:1", size=4 * gb, created=10)
        self.unused_new = e.add_image("cache:2", size=4 * gb, created=300)
        self.up = e.add_container(self.running_task, image_id=self.used)
        self.wanted = e.add_container(self.wanted_task, state="exited", image_id=self.by_wanted)
        self.exited = e.add_container(self.old_task, state="exited", image_id=self.old)
        self.loose = e.add_container("", state="created", image_id=self.dangling)
        self.keep = ("docker.io/library/web:2@sha256:" + "a" * 64, "web@sha256:" + "b" * 64)
        self.wanted_tasks = (self.running_task, self.wanted_task)
        e.build_cache = 2 * gb


def test_a_prune_goes_step_by_step_and_never_touches_what_a_rollback_or_a_task_needs(
    engine: FakeEngine,
) -> None:
    n = Node(engine)
    done: list[Pruned] = []
    # 50 base + 2 cache + 21 images + 4 containers: 77% used; 0%: as far as it may go
    answer = hand(engine, done).act(prune(0, n.keep, n.wanted_tasks))
    assert answer.ok and not answer.dry_run and answer.node == ME
    assert "pruning from 77.0% toward 0% used" in answer.detail
    assert engine.build_prunes == 1
    assert sorted(engine.removed) == sorted([n.exited, n.loose])
    # dangling first, then unused oldest first; each image by its tags, the last one takes it
    assert engine.image_removals == [n.dangling, "cache:1", "web:1", "web:one", "cache:2"]
    left = {i.id for i in engine.images()}
    assert left == {n.spec, n.previous, n.used, n.by_wanted}
    assert {c.id for c in engine.all_containers()} == {n.up, n.wanted}
    (summary,) = done
    assert (summary.containers, summary.dangling, summary.images) == (1 + 1, 1, 3)
    assert summary.build_cache == 2 * GIB
    assert summary.freed == 2 * GIB + 2 * CONTAINER + 17 * GIB
    assert (summary.used_before, summary.used_after) == (77.0, 56.0)
    assert not summary.reached and summary.in_use == 0 and summary.errors == ()


def test_it_stops_as_soon_as_the_data_root_is_at_the_target(engine: FakeEngine) -> None:
    n = Node(engine)
    done: list[Pruned] = []
    # 77% used: the build cache (2) brings it to 75, the containers to 73, the dangling image
    # to 69, the oldest unused image to 65: the target, so the rest stays
    hand(engine, done).act(prune(65, n.keep, n.wanted_tasks))
    assert engine.image_removals == [n.dangling, "cache:1"]
    assert n.old in {i.id for i in engine.images()}
    (summary,) = done
    assert summary.reached and summary.used_after == 65.0
    assert (summary.containers, summary.dangling, summary.images) == (2, 1, 1)


def test_nothing_is_removed_when_the_data_root_is_already_at_the_target(
    engine: FakeEngine,
) -> None:
    n = Node(engine)
    done: list[Pruned] = []
    hand(engine, done).act(prune(80, n.keep, n.wanted_tasks))
    assert engine.build_prunes == 0 and engine.removed == [] and engine.image_removals == []
    assert done[0].reached and done[0].freed == 0


def test_what_the_engine_says_is_in_use_is_skipped(
    engine: FakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = Node(engine)
    remove = engine.remove_image

    def busy(ref: str) -> None:
        if ref == "cache:1":  # a container started from it since the lists were read
            raise Conflict("remove image cache:1: in use", status=409)
        remove(ref)

    monkeypatch.setattr(engine, "remove_image", busy)
    done: list[Pruned] = []
    hand(engine, done).act(prune(0, n.keep, n.wanted_tasks))
    assert n.unused_old in {i.id for i in engine.images()}
    assert n.unused_new not in {i.id for i in engine.images()}  # the prune went on
    assert done[0].in_use == 1 and done[0].images == 2  # of 3


def test_an_engine_without_a_builder_is_said_and_the_rest_goes_on(engine: FakeEngine) -> None:
    n = Node(engine)
    engine.builder = False
    done: list[Pruned] = []
    hand(engine, done).act(prune(0, n.keep, n.wanted_tasks))
    assert done[0].build_cache is None
    assert done[0].notes == ("the engine has no builder: no build cache pruned",)
    assert done[0].images == 3


def test_one_prune_at_a_time(engine: FakeEngine) -> None:
    n = Node(engine)
    later: list[Callable[[], None]] = []
    done: list[Pruned] = []
    agent = hand(engine, done, spawn=later.append)
    first = agent.act(prune(0, n.keep, n.wanted_tasks))
    again = agent.act(prune(0, n.keep, n.wanted_tasks))
    assert first.ok and again.ok and "under way" in again.detail
    assert len(later) == 1 and engine.removed == []  # the answer did not wait for the prune
    later[0]()
    assert len(done) == 1 and engine.removed
    assert agent.act(prune(0, n.keep, n.wanted_tasks)).ok and len(later) == 2  # over: again


def test_a_node_in_dry_run_prunes_nothing_and_says_what_it_would(engine: FakeEngine) -> None:
    n = Node(engine)
    done: list[Pruned] = []
    answer = hand(engine, done, dry_run=True).act(prune(0, n.keep, n.wanted_tasks))
    assert answer == ActAnswer(ok=False, node=ME, dry_run=True, detail=answer.detail)
    assert "dry-run, nothing removed" in answer.detail
    assert "2 stopped container(s), 1 dangling image(s), 3 unused image(s)" in answer.detail
    assert engine.build_prunes == 0 and engine.removed == [] and engine.image_removals == []
    assert done == []


@pytest.mark.parametrize(
    ("request_", "why"),
    [
        (ActRequest(PRUNE_NODE, "node-2", "node-2", target=80), "asked of node node-1"),
        (ActRequest(PRUNE_NODE, ME, "other", target=80), "asked of node node-1"),
    ],
)
def test_a_prune_of_another_node_is_refused(
    engine: FakeEngine, request_: ActRequest, why: str
) -> None:
    Node(engine)
    with pytest.raises(AgentError, match=why):
        hand(engine, []).act(request_)
    assert engine.build_prunes == 0


def test_no_prune_where_the_data_root_cannot_be_measured(engine: FakeEngine) -> None:
    Node(engine)

    def broken(path: str) -> os.statvfs_result:
        raise PermissionError(13, "Permission denied")

    agent = NodeAgent(engine, ME, spawn=inline, health=Health(lambda: ROOT, statvfs=broken))
    with pytest.raises(AgentError, match=r"cannot be measured.*Permission denied"):
        agent.act(prune(0))
    assert engine.build_prunes == 0


def test_logs_are_reported_never_touched(engine: FakeEngine) -> None:
    n = Node(engine)
    path = "/var/lib/docker/containers/{0}/{0}-json.log"
    sizes = {}
    for k in range(7):
        cid = engine.add_container(
            n.running_task, image_id=n.used, log_path=path.format(k), name=f"big-{k}"
        )
        sizes[path.format(k)] = (k + 1) * GIB
        if k % 2:
            engine._containers[cid]["LogConfig"] = {
                "Type": "json-file",
                "Config": {"max-size": "10m"},
            }
    done: list[Pruned] = []
    hand(engine, done, sizes=sizes).act(prune(0, n.keep, n.wanted_tasks))
    (summary,) = done
    assert summary.largest_logs == tuple(
        LogFile(path.format(k), (k + 1) * GIB) for k in (6, 5, 4, 3, 2)
    )
    # running containers and the wanted one stay; those without max-size are named
    assert summary.unbounded_logs == 2 + 4
    assert summary.unbounded[:2] == (
        engine.container_detail(n.up).name,
        engine.container_detail(n.wanted).name,
    )
    assert len(summary.unbounded) == 5
