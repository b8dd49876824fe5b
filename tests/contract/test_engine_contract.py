"""One contract, two engines: FakeEngine and DockerEngine on the real lab swarm.

The pipeline only ever sees the `Engine` interface; these tests pin down what it promises, so
that tests written against the fake say something true about the real swarm.
"""

from __future__ import annotations

import contextlib
import copy
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

import pytest

from swarm_medic.core.apiversion import SUPPORTED_MAX, SUPPORTED_MIN, parse
from swarm_medic.core.errors import Conflict, EngineError, NotFound
from swarm_medic.core.model import Event, FileRef, LedgerDoc, Node, Service
from swarm_medic.core.versions import FAMILY_LABEL
from swarm_medic.pipeline.observe import CALLS_PER_SCAN, take_snapshot
from swarm_medic.swarm import Change, Engine, cas
from swarm_medic.swarm.fake import FakeEngine


class World(Protocol):
    engine: Engine

    def create_service(self, labels: dict[str, str]) -> str: ...

    def tag(self, image: str, tag: str) -> None: ...

    def cleanup(self) -> None: ...


IMAGE = "medic/busybox:test"


@dataclass
class FakeWorld:
    engine: FakeEngine = field(default_factory=lambda: FakeEngine(node_id="n1"))

    def __post_init__(self) -> None:
        self.engine.add_node("node1", node_id="n1", leader=True)
        self.image = self.engine.add_image(IMAGE, digests=("medic/busybox@sha256:" + "e" * 64,))

    def create_service(self, labels: dict[str, str]) -> str:
        sid = self.engine.add_service(f"contract-{uuid.uuid4().hex[:6]}", labels=labels)
        tid = self.engine.add_task(sid, node_id="n1")
        path = f"/var/lib/docker/containers/{tid}/{tid}-json.log"
        self.engine.add_container(tid, image_id=self.image, log_path=path)
        return sid

    def tag(self, image: str, tag: str) -> None:
        found = next(i for i in self.engine._images.values() if image in (i["RepoTags"] or ()))
        found["RepoTags"].append(tag)

    def cleanup(self) -> None:
        self.engine.close()


@dataclass
class RealWorld:
    engine: Engine
    names: list[str] = field(default_factory=list)
    configs: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)

    def create_service(self, labels: dict[str, str]) -> str:
        from tests.labkit import docker

        name = f"medic-contract-{uuid.uuid4().hex[:6]}"
        args = [a for k, v in {"medic.lab": "1", **labels}.items() for a in ("--label", f"{k}={v}")]
        sid = docker(
            "service",
            "create",
            "-d",
            "-q",
            "--name",
            name,
            "--no-resolve-image",
            "--stop-grace-period",
            "1s",
            *args,
            IMAGE,
            "sleep",
            "3600",
        )
        self.names.append(name)
        return sid

    def tag(self, image: str, tag: str) -> None:
        from tests.labkit import docker

        docker("image", "tag", image, tag)
        self.tags.append(tag)

    def cleanup(self) -> None:
        from tests.labkit import docker

        if self.tags:
            docker("image", "rm", *self.tags, check=False)
        if self.names:
            docker("service", "rm", *self.names, check=False)
        if self.configs:
            docker("config", "rm", *self.configs, check=False)
        if self.secrets:
            docker("secret", "rm", *self.secrets, check=False)
        self.engine.close()


@pytest.fixture(params=["fake", pytest.param("real", marks=pytest.mark.lab)])
def world(request: pytest.FixtureRequest) -> Iterator[FakeWorld | RealWorld]:
    w: FakeWorld | RealWorld
    if request.param == "fake":
        w = FakeWorld()
    else:
        request.getfixturevalue("lab_up")
        from swarm_medic.swarm.engine import DockerEngine

        w = RealWorld(DockerEngine())
    # A new client asks the engine's version before its first request (once); the contract
    # below counts what comes after.
    w.engine.speaks()
    yield w
    w.cleanup()


def test_the_engine_says_what_it_speaks(world: FakeWorld | RealWorld) -> None:
    spoken = world.engine.speaks()
    lo, hi = parse(SUPPORTED_MIN), parse(SUPPORTED_MAX)
    assert world.engine.speaking == spoken
    assert lo <= parse(spoken.api) <= hi
    assert parse(spoken.api) == min(hi, parse(spoken.engine_api_max))  # the newest shared
    assert parse(spoken.engine_api_min) <= parse(spoken.api)
    assert world.engine.info().engine_version == spoken.engine != ""
    before = world.engine.api_calls
    assert world.engine.speaks() is spoken  # asked once, not per call
    assert world.engine.api_calls == before


def find(engine: Engine, sid: str) -> Service:
    svc = next((s for s in engine.services() if s.id == sid), None)
    assert svc is not None, f"service {sid} not listed"
    return svc


def test_snapshot_takes_a_constant_number_of_calls(world: FakeWorld | RealWorld) -> None:
    for _ in range(3):
        world.create_service({})
    snap = take_snapshot(world.engine, time.time())
    assert snap.api_calls == CALLS_PER_SCAN
    assert snap.info.control_available
    assert snap.is_leader, "the lab's only manager leads"
    assert len(snap.services) >= 3


def test_service_maps_name_labels_version(world: FakeWorld | RealWorld) -> None:
    sid = world.create_service({"swarm-medic.enable": "true"})
    svc = find(world.engine, sid)
    assert svc.name.startswith(("contract-", "medic-contract-"))
    assert svc.labels["swarm-medic.enable"] == "true"
    assert svc.version > 0
    assert (svc.mode, svc.replicas) == ("replicated", 1)
    assert svc.image.startswith("medic/busybox:test")
    assert svc.update_status is None
    assert not svc.has_previous_spec
    assert svc.previous_image == ""


def test_tasks_belong_to_their_service(world: FakeWorld | RealWorld) -> None:
    sid = world.create_service({})
    deadline = time.monotonic() + 20
    while not [t for t in world.engine.tasks() if t.service_id == sid]:
        assert time.monotonic() < deadline, "no task appeared"
        time.sleep(0.2)
    (task,) = [t for t in world.engine.tasks() if t.service_id == sid]
    assert task.desired_state == "running"
    assert task.slot == 1
    assert task.timestamp > 0


def test_force_update_is_compare_and_swap(world: FakeWorld | RealWorld) -> None:
    sid = world.create_service({})
    before = find(world.engine, sid)
    world.engine.force_update(sid, before.version)
    after = find(world.engine, sid)
    assert after.force_update == before.force_update + 1
    assert after.version > before.version
    assert after.has_previous_spec
    assert after.previous_image == before.image  # what a rollback runs: a prune keeps it
    with pytest.raises(Conflict):
        world.engine.force_update(sid, before.version)  # stale: someone changed it since
    assert find(world.engine, sid).force_update == after.force_update


def test_missing_service_is_not_found(world: FakeWorld | RealWorld) -> None:
    with pytest.raises(NotFound):
        world.engine.force_update("no-such-service-" + uuid.uuid4().hex[:6], 1)


def test_the_log_of_a_missing_task_is_an_engine_error(world: FakeWorld | RealWorld) -> None:
    # what the pipeline catches when a crashed task is gone before its log is read
    with pytest.raises(EngineError):
        world.engine.task_logs("no-such-task-" + uuid.uuid4().hex[:6], 20)


def own_node(engine: Engine) -> Node:
    me = engine.info().node_id
    node = next((n for n in engine.nodes() if n.id == me), None)
    assert node is not None, f"the engine's own node {me} is not listed"
    return node


def test_a_node_removal_is_decided_on_the_nodes_version(world: FakeWorld | RealWorld) -> None:
    me = own_node(world.engine)
    assert me.version > 0 and me.created_at > 0 and me.updated_at >= me.created_at
    with pytest.raises(Conflict):
        world.engine.remove_node(me.id, me.version + 1000)
    with pytest.raises(NotFound):
        world.engine.remove_node("nosuchnode" + uuid.uuid4().hex[:15], 1)
    assert me.id in {n.id for n in world.engine.nodes()}


def test_a_manager_is_never_removed(world: FakeWorld | RealWorld) -> None:
    # the lab's only node manages, is ready and leads: refused before any write
    refused: EngineError | None = None
    for _ in range(10):
        me = own_node(world.engine)
        assert me.role == "manager"
        try:
            world.engine.remove_node(me.id, me.version)
        except Conflict:
            time.sleep(0.2)  # its status moved the version between the list and the removal
        except EngineError as exc:
            refused = exc
            break
    assert refused is not None and not isinstance(refused, NotFound)
    assert "manager" in str(refused)
    assert me.id in {n.id for n in world.engine.nodes()}


def test_rollback_needs_a_previous_spec(world: FakeWorld | RealWorld) -> None:
    sid = world.create_service({})
    svc = find(world.engine, sid)
    with pytest.raises(EngineError) as err:
        world.engine.rollback(sid, svc.version)
    assert not isinstance(err.value, Conflict)
    assert err.value.status == 400
    assert "previous spec" in str(err.value)

    world.engine.force_update(sid, svc.version)
    # swarm's updater writes UpdateStatus right after an update, which moves the version by
    # itself: a Conflict here is the compare-and-swap working; read again and retry
    for _ in range(10):
        try:
            world.engine.rollback(sid, find(world.engine, sid).version)
            break
        except Conflict:
            time.sleep(0.2)
    rolled = find(world.engine, sid)
    assert rolled.force_update == svc.force_update  # back to the previous spec
    assert rolled.update_status is not None
    assert rolled.update_status.state.startswith("rollback")


def test_resume_posts_the_same_spec_again(world: FakeWorld | RealWorld) -> None:
    sid = world.create_service({})
    svc = find(world.engine, sid)
    world.engine.resume_update(sid, svc.version)
    after = find(world.engine, sid)
    assert after.version > svc.version
    assert after.force_update == svc.force_update  # nothing restarted for its own sake
    assert after.has_previous_spec  # swarm keeps the spec it replaced, as for any update


def test_ledger_create_read_update_conflict(world: FakeWorld | RealWorld) -> None:
    name = f"medic-contract-ledger-{uuid.uuid4().hex[:6]}"
    if isinstance(world, RealWorld):
        world.configs.append(name)
    eng = world.engine
    assert eng.read_ledger(name) is None
    eng.write_ledger(name, None, {"swarm-medic.svc.a": "1"})
    doc = eng.read_ledger(name)
    assert doc is not None
    assert dict(doc.labels) == {"swarm-medic.svc.a": "1"}
    with pytest.raises(Conflict):
        eng.write_ledger(name, None, {"x": "y"})  # created twice
    eng.write_ledger(name, doc, {"swarm-medic.svc.a": "2"})
    newer = eng.read_ledger(name)
    assert newer is not None
    assert newer.version > doc.version
    assert dict(newer.labels) == {"swarm-medic.svc.a": "2"}
    with pytest.raises(Conflict):
        eng.write_ledger(name, doc, {"swarm-medic.svc.a": "3"})  # stale version
    final = eng.read_ledger(name)
    assert final is not None
    assert dict(final.labels) == {"swarm-medic.svc.a": "2"}


def test_ledger_cas_update_reads_and_changes_again_when_it_lost(
    world: FakeWorld | RealWorld,
) -> None:
    name = f"medic-contract-ledger-{uuid.uuid4().hex[:6]}"
    if isinstance(world, RealWorld):
        world.configs.append(name)
    eng = world.engine
    seen: list[LedgerDoc | None] = []

    def change(doc: LedgerDoc | None) -> Change[int]:
        seen.append(doc)
        if len(seen) == 1:  # another writer gets there between this read and its write
            eng.write_ledger(name, None, {"swarm-medic.svc.b": "1"})
        labels = {**(doc.labels if doc else {}), "swarm-medic.svc.a": str(len(seen))}
        return Change(labels, len(seen))

    assert eng.cas_update(name, change) == 2
    assert seen[0] is None and seen[1] is not None
    doc = eng.read_ledger(name)
    assert doc is not None
    assert dict(doc.labels) == {"swarm-medic.svc.b": "1", "swarm-medic.svc.a": "2"}

    assert eng.cas_update(name, lambda doc: Change(None, "no write")) == "no write"
    unchanged = eng.read_ledger(name)
    assert unchanged is not None and unchanged.version == doc.version

    beaten: list[LedgerDoc | None] = []

    def always_beaten(doc: LedgerDoc | None) -> Change[None]:
        beaten.append(doc)
        eng.write_ledger(name, doc, {"swarm-medic.svc.b": str(len(beaten))})
        return Change({"swarm-medic.svc.a": "lost"}, None)

    with pytest.raises(Conflict):
        eng.cas_update(name, always_beaten)
    assert len(beaten) == cas.ATTEMPTS
    final = eng.read_ledger(name)
    assert final is not None
    assert dict(final.labels) == {"swarm-medic.svc.b": str(cas.ATTEMPTS)}


def test_events_replay_from_since(world: FakeWorld | RealWorld) -> None:
    if isinstance(world, FakeWorld):
        since = int(world.engine.now * 1e9)
    else:
        since = time.time_ns() - 1_000_000_000  # the engine's clock is ours: same machine
    sid = world.create_service({})
    stream = world.engine.events(since)
    seen = []
    try:
        for ev in stream:
            assert isinstance(ev, Event), ev  # decoded behind the boundary
            seen.append(ev)
            if ev.type == "service" and ev.actor_id == sid:
                break
    finally:
        stream.close()
    ev = seen[-1]
    assert (ev.type, ev.action, ev.actor_id) == ("service", "create", sid)
    assert ev.time_nano >= since
    assert ev.attributes.get("name", "").endswith(find(world.engine, sid).name[-6:])


def _post(engine: Engine, sid: str, spec: dict[str, object]) -> EngineError | None:
    """Post `spec` at the service's current version -> the engine's refusal, None if taken.
    Swarm's updater moves the version by itself right after an update (UpdateStatus), so a
    lost compare-and-swap is read again rather than taken for the answer."""
    for _ in range(20):
        try:
            engine.update_service_spec(sid, engine.service_spec(sid).version, spec)
        except Conflict:
            time.sleep(0.2)
        except EngineError as exc:
            return exc
        else:
            return None
    raise AssertionError(f"service {sid} kept changing")


@pytest.mark.parametrize("kind", ["config", "secret"])
def test_a_stored_object_is_swapped_into_a_spec_by_compare_and_swap(
    world: FakeWorld | RealWorld, kind: str
) -> None:
    """What `swarm-medic rollout` relies on: create, name taken, read the raw spec by id and
    by name, post it with a reference (compare-and-swap), the engine guarding the spec's
    references but not the PreviousSpec's against removal, and refusing unknown references."""
    eng = world.engine
    sid = world.create_service({})
    name = f"medic-contract-{kind}-{uuid.uuid4().hex[:6]}"
    if isinstance(world, RealWorld):
        (world.configs if kind == "config" else world.secrets).append(name)
    oid = eng.create_stored(kind, name, b"hello\n", {FAMILY_LABEL: "fam", "medic.lab": "1"})
    with pytest.raises(Conflict):
        eng.create_stored(kind, name, b"other\n", {})
    listed = {o.id: o for o in (eng.configs() if kind == "config" else eng.secrets())}
    assert listed[oid].name == name
    assert listed[oid].labels[FAMILY_LABEL] == "fam"
    assert listed[oid].created_at > 0

    svc = eng.service_spec(sid)
    assert eng.service_spec(svc.name).id == sid
    key, plural = ("Config", "Configs") if kind == "config" else ("Secret", "Secrets")
    target = "/etc/contract.conf" if kind == "config" else "contract_pw"
    spec = copy.deepcopy(dict(svc.spec))
    spec["TaskTemplate"]["ContainerSpec"][plural] = [
        {
            f"{key}ID": oid,
            f"{key}Name": name,
            "File": {"Name": target, "UID": "0", "GID": "0", "Mode": 0o444},
        }
    ]
    eng.update_service_spec(sid, svc.version, spec)
    after = find(eng, sid)
    refs = after.configs if kind == "config" else after.secrets
    assert refs == (FileRef(oid, name, target),)
    assert after.version > svc.version and after.has_previous_spec
    with pytest.raises(Conflict):
        eng.update_service_spec(sid, svc.version, spec)  # read before the update: stale

    with pytest.raises(EngineError) as in_use:
        eng.remove_stored(kind, oid)
    assert not isinstance(in_use.value, (Conflict, NotFound))
    assert in_use.value.status == 400 and "in use" in str(in_use.value)

    unknown = copy.deepcopy(spec)
    unknown["TaskTemplate"]["ContainerSpec"][plural][0][f"{key}ID"] = "nosuchobject0000000000000"
    refused = _post(eng, sid, unknown)
    assert refused is not None and refused.status == 400, refused

    without = copy.deepcopy(spec)
    without["TaskTemplate"]["ContainerSpec"][plural] = []
    assert _post(eng, sid, without) is None
    assert find(eng, sid).previous_refs == (oid,)  # only the PreviousSpec names it now...
    eng.remove_stored(kind, oid)  # ...and the engine lets it go: the rollout's GC must not
    with pytest.raises(NotFound):
        eng.remove_stored(kind, oid)


# --- what a prune reads and removes (disk-pressure) --------------------------------------------


def test_a_prune_sees_every_image_and_container_and_removes_nothing_in_use(
    world: FakeWorld | RealWorld,
) -> None:
    """What the node's hand relies on: the images with their tags, digests, age and size; every
    container with its state, task, image and log; a removal never forced, so that anything
    in use is the engine's 409 (Conflict), which the hand skips; a tag removed while another
    names the image only untags it."""
    eng = world.engine
    sid = world.create_service({})
    deadline = time.monotonic() + 30
    while True:
        tasks = {t.id for t in eng.tasks() if t.service_id == sid}
        mine = [c for c in eng.all_containers() if c.task_id in tasks and c.state == "running"]
        if mine:
            break
        assert time.monotonic() < deadline, "the service's container never ran on this node"
        time.sleep(0.3)
    (c,) = mine
    images = {i.id: i for i in eng.images()}
    assert c.image_id in images, "a running container's image is listed"
    image = images[c.image_id]
    assert IMAGE in image.tags and image.created > 0 and image.size > 0
    assert all(t != "<none>:<none>" for t in image.tags)
    assert c.log_driver != ""
    if c.log_driver == "json-file":
        assert c.log_path.endswith("-json.log")

    with pytest.raises(Conflict):
        eng.remove_container(c.id, force=False)  # it runs
    with pytest.raises(Conflict):
        eng.remove_image(IMAGE if len(image.tags) == 1 else image.id)  # a container uses it
    assert c.id in {x.id for x in eng.all_containers()}

    extra = f"medic/contract-{uuid.uuid4().hex[:6]}:x"
    world.tag(IMAGE, extra)
    assert extra in {t for i in eng.images() for t in i.tags}
    eng.remove_image(extra)  # untagged: IMAGE still names it
    after = {i.id: i for i in eng.images()}
    assert image.id in after and extra not in after[image.id].tags
    with pytest.raises(NotFound):
        eng.remove_image(f"medic/contract-none-{uuid.uuid4().hex[:6]}:x")

    # an engine without a builder says NotFound: the hand skips the step and says so
    with contextlib.suppress(NotFound):
        assert eng.prune_build_cache() >= 0
