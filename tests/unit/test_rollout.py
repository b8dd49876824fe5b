"""`swarm-medic rollout` on the fake engine, and the pure rules under it (core.versions).

A world like one `docker stack deploy` leaves: a service `app_web` that reads config
`app_conf` (no labels) at /etc/app.conf and secret `app_pw` at /run/secrets/app_pw, with a
start-first rolling update that rolls back on failure, and more in its spec that a rollout must
leave exactly as it was.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarm_medic import cli
from swarm_medic.commands.rollout import ATTEMPTS, Rollout, Step, run
from swarm_medic.core.model import FileRef, Service, Stored
from swarm_medic.core.versions import (
    FAMILY_LABEL,
    KEYED_LABEL,
    MAX_BYTES,
    SHA256_LABEL,
    RolloutError,
    ServiceSpec,
    check_data,
    container_path,
    family_of,
    keyed_digest,
    refs_at,
    stack_items,
    stale_versions,
    swap,
    version_families,
    version_name,
)
from swarm_medic.swarm.fake import FakeEngine

GOOD = b"mode=good\nworkers=4\n"
BETTER = b"mode=good\nworkers=8\n"
PASSWORD = b"correct horse battery staple 1f9e"  # must never be printed
CONF_FILE = {"Name": "/etc/app.conf", "UID": "0", "GID": "0", "Mode": 0o440}
PW_FILE = {"Name": "app_pw", "UID": "1000", "GID": "1000", "Mode": 0o400}
VALID_NAME = re.compile(r"^[a-zA-Z0-9]+(?:[a-zA-Z0-9-_.]*[a-zA-Z0-9])?$")


KEY = b"k" * 32  # the channel secret, which names secret versions


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def keyed(data: bytes, family: str = "app_pw") -> str:
    return keyed_digest(KEY, family, data)


@dataclass
class World:
    fake: FakeEngine = field(default_factory=lambda: FakeEngine(node_id="n1"))
    out: io.StringIO = field(default_factory=io.StringIO)
    err: io.StringIO = field(default_factory=io.StringIO)
    slept: list[float] = field(default_factory=list)
    sid: str = ""
    conf: str = ""
    pw: str = ""

    def __post_init__(self) -> None:
        self.fake.add_node("node1", node_id="n1", leader=True)
        stack = {"com.docker.stack.namespace": "app"}
        self.conf = self.fake.add_stored("config", "app_conf", labels=stack, data=b"mode=old\n")
        self.pw = self.fake.add_stored("secret", "app_pw", labels=stack, data=b"old")
        self.sid = self.service("app_web", self.conf, self.pw)

    def service(self, name: str, conf: str, pw: str) -> str:
        return self.fake.add_service(
            name,
            replicas=2,
            labels={"com.docker.stack.namespace": "app", "team": "shop"},
            spec_extra={
                "UpdateConfig": {
                    "Parallelism": 1,
                    "Order": "start-first",
                    "FailureAction": "rollback",
                    "Monitor": 2_000_000_000,
                },
                "EndpointSpec": {"Mode": "dnsrr"},
            },
            template_extra={
                "ContainerSpec": {
                    "Image": "medic/busybox:test",
                    "Args": ["sh", "-c", "grep -q good /etc/app.conf && exec sleep 1d"],
                    "Env": ["A=1"],
                    "Configs": [
                        {"ConfigID": conf, "ConfigName": "app_conf", "File": dict(CONF_FILE)}
                    ],
                    "Secrets": [{"SecretID": pw, "SecretName": "app_pw", "File": dict(PW_FILE)}],
                },
                "RestartPolicy": {"Condition": "any"},
            },
        )

    def rollout(self, keep: int = 3) -> Rollout:
        return Rollout(self.fake, keep, lambda s: None, self.slept.append)

    def run(
        self,
        *argv: str,
        keep: int = 3,
        as_json: bool = False,
        stdin: Any = None,
        key: bytes = KEY,
    ) -> int:
        self.out.seek(0), self.out.truncate()
        self.err.seek(0), self.err.truncate()
        what, *operands = argv
        return run(
            what,
            list(operands),
            lambda: self.fake,
            keep=keep,
            as_json=as_json,
            out=self.out,
            err=self.err,
            sleep=self.slept.append,
            stdin=stdin,
            key=key,
        )

    def spec(self, sid: str = "") -> dict[str, Any]:
        return self.fake.raw_service(sid or self.sid)

    def config_ref(self, sid: str = "") -> dict[str, Any]:
        ref: dict[str, Any] = self.spec(sid)["Spec"]["TaskTemplate"]["ContainerSpec"]["Configs"][0]
        return ref

    def names(self, kind: str = "config") -> set[str]:
        listed = self.fake.configs() if kind == "config" else self.fake.secrets()
        return {o.name for o in listed}


@pytest.fixture
def world() -> World:
    return World()


def write(tmp_path: Path, data: bytes, name: str = "app.conf") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


# --- naming and checks (pure) -----------------------------------------------------------------


def test_a_version_is_named_by_family_and_content() -> None:
    assert version_name("app_conf", sha(GOOD)) == f"app_conf-{sha(GOOD)[:12]}"
    assert version_name("app_conf", sha(GOOD)) == version_name("app_conf", sha(GOOD))
    assert version_name("app_conf", sha(GOOD)) != version_name("app_conf", sha(BETTER))


@pytest.mark.parametrize("family", ["a" * 51, "a" * 52, "x" * 50 + "_-.y", "b" * 200])
def test_a_long_family_is_cut_to_a_name_the_engine_takes(family: str) -> None:
    name = version_name(family, sha(GOOD))
    assert len(name) <= 64
    assert VALID_NAME.match(name), name
    assert name.endswith(sha(GOOD)[:12])


def test_data_the_engine_would_refuse_is_refused_first() -> None:
    with pytest.raises(RolloutError, match="is empty"):
        check_data("config", b"", "f")
    with pytest.raises(RolloutError, match="smaller than 512000 bytes"):
        check_data("secret", b"x" * MAX_BYTES, "f")
    check_data("config", b"x" * (MAX_BYTES - 1), "f")


@pytest.mark.parametrize(
    ("kind", "file_name", "path"),
    [
        ("config", "/etc/app.conf", "/etc/app.conf"),
        ("config", "app_conf", "/app_conf"),  # stack deploy's short syntax
        ("secret", "app_pw", "/run/secrets/app_pw"),
        ("secret", "/run/secrets/app_pw", "/run/secrets/app_pw"),
        ("secret", "/etc/tls/key.pem", "/etc/tls/key.pem"),
    ],
)
def test_a_target_is_the_path_in_the_container(kind: str, file_name: str, path: str) -> None:
    assert container_path(kind, file_name) == path


def test_the_family_is_the_label_else_the_objects_name() -> None:
    made = Stored("config", "c2", "app_conf-0123456789ab", {FAMILY_LABEL: "app_conf"})
    assert family_of(made, "app_conf-0123456789ab") == "app_conf"
    assert family_of(Stored("config", "c1", "app_conf"), "app_conf") == "app_conf"
    assert family_of(None, "gone_conf") == "gone_conf"  # its object was removed meanwhile


def test_swap_changes_the_reference_at_the_target_only(world: World) -> None:
    svc = world.fake.service_spec("app_web")
    before = copy.deepcopy(svc.spec)
    out = swap(svc.spec, "config", "/etc/app.conf", "cfgNEW", "app_conf-new")
    assert svc.spec == before, "the spec read is not changed in place"
    ref = out["TaskTemplate"]["ContainerSpec"]["Configs"][0]
    assert ref == {"ConfigID": "cfgNEW", "ConfigName": "app_conf-new", "File": CONF_FILE}
    out["TaskTemplate"]["ContainerSpec"]["Configs"][0] = before["TaskTemplate"]["ContainerSpec"][
        "Configs"
    ][0]
    assert out == before


def test_no_reference_at_the_target_names_the_ones_there_are(world: World) -> None:
    svc = world.fake.service_spec("app_web")
    with pytest.raises(RolloutError) as err:
        refs_at(svc, "config", "/etc/other.conf")
    assert "app_web has no config at /etc/other.conf" in str(err.value)
    assert "/etc/app.conf (app_conf)" in str(err.value)
    with pytest.raises(RolloutError, match="its secrets: /run/secrets/app_pw"):
        refs_at(svc, "secret", "other")
    bare = ServiceSpec("s", "bare", 1, {"TaskTemplate": {"ContainerSpec": {}}})
    with pytest.raises(RolloutError, match="its configs: none"):
        refs_at(bare, "config", "/x")


# --- which versions are stale (pure) ----------------------------------------------------------


def version(oid: str, created: float, family: str = "app_conf", kind: str = "config") -> Stored:
    labels = MappingProxyType({FAMILY_LABEL: family, SHA256_LABEL: oid * 8})
    return Stored(kind, oid, f"{family}-{oid}", labels, created)


def uses(*ids: str, previous: tuple[str, ...] = (), kind: str = "config") -> Service:
    refs = tuple(FileRef(i, "", "/etc/app.conf") for i in ids)
    return Service(
        id=f"svc-{'-'.join(ids)}",
        name="web",
        version=1,
        configs=refs if kind == "config" else (),
        secrets=refs if kind == "secret" else (),
        previous_refs=previous,
    )


def test_in_use_previous_and_newest_k_are_kept_the_rest_is_stale() -> None:
    objs = [version(f"v{i}", 100.0 + i) for i in range(8)]  # v7 newest
    (fam,) = version_families(objs, [uses("v2", previous=("v1",))], keep=3)
    assert [o.id for o in fam.used] == ["v2", "v1"]
    assert [o.id for o in fam.kept] == ["v7", "v6", "v5"]
    assert [o.id for o in fam.stale] == ["v4", "v3", "v0"]


def test_a_version_named_by_a_spec_by_name_only_is_in_use() -> None:
    svc = Service("s", "web", 1, configs=(FileRef("", "app_conf-v0", "/x"),))
    assert stale_versions([version("v0", 1.0)], [svc], keep=0) == []


def test_keep_zero_leaves_only_what_services_use() -> None:
    objs = [version("a", 1.0), version("b", 2.0)]
    (fam,) = stale_versions(objs, [uses("b")], keep=0)
    assert [o.id for o in fam.stale] == ["a"]
    with pytest.raises(ValueError, match="0 or more"):
        version_families(objs, [], keep=-1)


def test_objects_without_the_family_label_are_never_versions() -> None:
    stack_made = Stored("config", "c1", "app_conf", MappingProxyType({}), 1.0)
    ledger = Stored("config", "c2", "swarm-medic-ledger", MappingProxyType({}), 2.0)
    assert version_families([stack_made, ledger], [], keep=0) == []


def test_families_are_per_kind_and_label() -> None:
    objs = [
        version("c1", 1.0),
        version("c2", 2.0),
        version("s1", 1.0, kind="secret"),
        version("s2", 2.0, kind="secret"),
        version("o1", 1.0, family="other"),
    ]
    fams = version_families(objs, [], keep=1)
    assert [(f.kind, f.name, [o.id for o in f.stale]) for f in fams] == [
        ("config", "app_conf", ["c1"]),
        ("config", "other", []),
        ("secret", "app_conf", ["s1"]),
    ]


@given(
    created=st.lists(st.integers(0, 20), min_size=0, max_size=8),
    used=st.sets(st.integers(0, 7)),
    previous=st.sets(st.integers(0, 7)),
    keep=st.integers(0, 4),
)
def test_stale_never_holds_what_a_spec_or_previous_spec_uses(
    created: list[int], used: set[int], previous: set[int], keep: int
) -> None:
    objs = [version(f"v{i}", float(c)) for i, c in enumerate(created)]
    svc = uses(*(f"v{i}" for i in sorted(used)), previous=tuple(f"v{i}" for i in previous))
    for fam in version_families(objs, [svc], keep):
        needed = {f"v{i}" for i in used | previous}
        assert not {o.id for o in fam.stale} & needed
        assert len(fam.kept) <= keep
        assert len(fam.used) + len(fam.kept) + len(fam.stale) == len(objs)
        if fam.stale:  # the kept are the newest unused: none older than a stale one
            assert len(fam.kept) == keep
            assert all(k.created_at >= s.created_at for k in fam.kept for s in fam.stale)


# --- one reference, on the fake engine ------------------------------------------------------


def test_new_content_is_created_labelled_and_swapped_in_one_versioned_update(
    world: World, tmp_path: Path
) -> None:
    before = world.spec()
    assert world.run("config", "app_web", "/etc/app.conf", write(tmp_path, GOOD)) == 0
    name = f"app_conf-{sha(GOOD)[:12]}"
    (made,) = [o for o in world.fake.configs() if o.name == name]
    assert dict(made.labels) == {FAMILY_LABEL: "app_conf", SHA256_LABEL: sha(GOOD)}
    assert world.fake.data[made.id] == GOOD
    assert world.fake.writes == [("update", world.sid, before["Version"]["Index"])]
    after = world.spec()
    assert world.config_ref() == {"ConfigID": made.id, "ConfigName": name, "File": CONF_FILE}
    assert after["PreviousSpec"] == before["Spec"]  # what a rollback goes back to
    # the rest of the spec as it was read: only the reference moved
    after["Spec"]["TaskTemplate"]["ContainerSpec"]["Configs"] = before["Spec"]["TaskTemplate"][
        "ContainerSpec"
    ]["Configs"]
    assert after["Spec"] == before["Spec"]
    lines = world.out.getvalue().splitlines()
    assert lines[0].startswith(f"created config {name} (id {made.id[:12]}, 20 bytes")
    assert lines[1] == (
        f"swapped service app_web config at /etc/app.conf from app_conf to {name} at version "
        f"{before['Version']['Index']}; it rolls by its update config (parallelism 1, "
        "start-first, on failure rollback)"
    )
    assert "app_conf (config): 1 in use, 0 kept for rollback, 0 removed" in lines[-1]
    assert "app_conf" in world.names()  # the stack's own object is never collected


def test_the_same_content_again_changes_nothing(world: World, tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    assert world.run("config", "app_web", "/etc/app.conf", path) == 0
    writes, version, names = list(world.fake.writes), world.spec()["Version"], world.names()
    assert world.run("config", world.sid, "/etc/app.conf", path) == 0  # by id this time
    assert world.fake.writes == writes
    assert world.spec()["Version"] == version
    assert world.names() == names
    assert world.out.getvalue().splitlines() == [
        f"reused config app_conf-{sha(GOOD)[:12]} "
        f"(id {world.config_ref()['ConfigID'][:12]}): it holds this content",
        f"unchanged: service app_web already uses config app_conf-{sha(GOOD)[:12]} at "
        "/etc/app.conf",
    ]


def test_a_later_rollout_stays_in_the_family_and_reuses_an_older_version(
    world: World, tmp_path: Path
) -> None:
    good, better = write(tmp_path, GOOD, "a"), write(tmp_path, BETTER, "b")
    assert world.run("config", "app_web", "/etc/app.conf", good) == 0
    world.fake.now += 10
    assert world.run("config", "app_web", "/etc/app.conf", better) == 0
    assert world.config_ref()["ConfigName"] == f"app_conf-{sha(BETTER)[:12]}"  # not nested
    world.fake.now += 10
    assert world.run("config", "app_web", "/etc/app.conf", good) == 0  # back to GOOD
    assert world.out.getvalue().startswith(f"reused config app_conf-{sha(GOOD)[:12]}")
    assert world.config_ref()["ConfigName"] == f"app_conf-{sha(GOOD)[:12]}"
    assert len(world.fake.writes) == 3


def test_a_name_taken_by_other_content_is_refused_and_nothing_changes(
    world: World, tmp_path: Path
) -> None:
    squatter = f"app_conf-{sha(GOOD)[:12]}"
    world.fake.add_stored("config", squatter, labels={SHA256_LABEL: sha(b"other")})
    before = world.spec()
    assert world.run("config", "app_web", "/etc/app.conf", write(tmp_path, GOOD)) == 1
    assert f"a config named {squatter} exists but is not this content" in world.err.getvalue()
    assert world.spec() == before


def test_a_lost_compare_and_swap_is_read_again_and_retried(world: World, tmp_path: Path) -> None:
    read_at = world.spec()["Version"]["Index"]
    world.fake.before_update.append(lambda: world.fake.touch_service(world.sid))
    assert world.run("config", "app_web", "/etc/app.conf", write(tmp_path, GOOD)) == 0
    assert world.fake.writes == [("update", world.sid, read_at + 1)]  # the second try, re-read
    assert world.slept == [0.5]
    assert world.config_ref()["ConfigName"] == f"app_conf-{sha(GOOD)[:12]}"


def test_a_service_that_keeps_changing_fails_clearly_after_the_retries(
    world: World, tmp_path: Path
) -> None:
    world.fake.before_update.extend([lambda: world.fake.touch_service(world.sid)] * ATTEMPTS)
    ref = world.config_ref()
    assert world.run("config", "app_web", "/etc/app.conf", write(tmp_path, GOOD)) == 1
    assert f"changed under every one of {ATTEMPTS} attempts" in world.err.getvalue()
    assert world.config_ref() == ref
    assert world.fake.writes == []
    assert world.slept == [0.5, 1.0, 1.5]


def test_someone_else_swapping_to_the_same_version_meanwhile_is_a_no_op(
    world: World, tmp_path: Path
) -> None:
    other = World()  # the same content rolled by a second operator at the same moment
    other.fake = world.fake

    def racer() -> None:
        assert other.rollout().reference("config", "app_web", "/etc/app.conf", GOOD, "f") == (
            "app_conf",
            f"app_conf-{sha(GOOD)[:12]}",
        )

    world.fake.before_update.append(racer)
    assert world.run("config", "app_web", "/etc/app.conf", write(tmp_path, GOOD)) == 0
    assert len(world.fake.writes) == 1  # the racer's
    assert "unchanged: service app_web already uses" in world.out.getvalue()


def test_gc_keeps_in_use_previous_and_newest_k_and_removes_the_rest(
    world: World, tmp_path: Path
) -> None:
    contents = [f"good {i}\n".encode() for i in range(7)]
    for i, data in enumerate(contents):
        world.fake.now += 10
        path = write(tmp_path, data, f"c{i}")
        assert world.run("config", "app_web", "/etc/app.conf", path, keep=2) == 0
    names = [f"app_conf-{sha(d)[:12]}" for d in contents]
    # spec: the last; PreviousSpec: the one before; then the 2 newest unused; the stack's own
    assert world.names() == {"app_conf", names[6], names[5], names[4], names[3]}


def test_gc_never_removes_what_only_another_services_previous_spec_uses(
    world: World, tmp_path: Path
) -> None:
    """The engine refuses to remove what a spec names but not what a PreviousSpec names: the
    collection itself must keep what `docker service rollback` of any service needs."""
    first = write(tmp_path, GOOD, "a")
    assert world.run("config", "app_web", "/etc/app.conf", first) == 0
    old = world.config_ref()["ConfigID"]
    api = world.service("app_api", old, world.pw)  # a second service on the first version
    world.fake.now += 10
    assert world.run("config", "app_api", "/etc/app.conf", write(tmp_path, BETTER, "b")) == 0
    world.fake.now += 10
    assert world.run("config", "app_web", "/etc/app.conf", write(tmp_path, b"good 3", "c")) == 0
    world.fake.now += 10
    assert world.run("config", "app_web", "/etc/app.conf", write(tmp_path, b"good 4", "d")) == 0
    # `old`: only app_api's PreviousSpec names it now; keep=0 keeps nothing else
    assert world.run("gc", keep=0) == 0
    assert old in {o.id for o in world.fake.configs()}
    prev = world.spec(api)["PreviousSpec"]["TaskTemplate"]["ContainerSpec"]["Configs"][0]
    assert prev["ConfigID"] == old
    assert f"app_conf-{sha(BETTER)[:12]}" in world.names()  # app_api's spec
    assert f"app_conf-{sha(b'good 3')[:12]}" in world.names()  # app_web's PreviousSpec


def test_a_version_in_use_since_the_listing_is_kept_by_the_engines_guard(world: World) -> None:
    late = world.fake.add_stored("config", "app_conf-000000000000", labels={FAMILY_LABEL: "x"})
    listed = world.fake.services()  # before app_late was made: the race
    world.fake.services = lambda: listed  # type: ignore[method-assign]
    world.service("app_late", late, world.pw)
    steps: list[Step] = []
    assert Rollout(world.fake, 0, steps.append).collect(kind="config") == 0
    assert [s.step for s in steps] == ["kept", "family"]
    assert "in use by the following service: app_late" in steps[0].text
    assert "app_conf-000000000000" in world.names()


# --- secrets: the same, and their content never shown -----------------------------------------


def test_a_secret_rolls_the_same_way_and_its_content_is_never_printed(
    world: World, tmp_path: Path
) -> None:
    path = write(tmp_path, PASSWORD, "pw")
    for target in ("app_pw", "/run/secrets/app_pw"):
        for as_json in (False, True):
            assert world.run("secret", "app_web", target, path, as_json=as_json) == 0
            shown = world.out.getvalue() + world.err.getvalue()
            assert PASSWORD.decode() not in shown
            assert str(len(PASSWORD)) not in shown  # not even its size
            assert sha(PASSWORD) not in shown  # the label holds it, the output does not
    ref = world.spec()["Spec"]["TaskTemplate"]["ContainerSpec"]["Secrets"][0]
    assert ref["SecretName"] == f"app_pw-{keyed(PASSWORD)[:12]}"
    assert ref["File"] == PW_FILE
    assert world.fake.data[ref["SecretID"]] == PASSWORD
    assert world.config_ref()["ConfigID"] == world.conf  # the config was not touched


def test_nothing_an_api_reader_sees_lets_a_weak_secret_be_guessed(
    world: World, tmp_path: Path
) -> None:
    # before: label swarm-medic.rollout.sha256 = sha256(content), and 12 hex of it in the name:
    # 'Summer2024!' fell to a dictionary of 1,968 guesses in 1 ms
    weak = b"Summer2024!"
    assert world.run("secret", "app_web", "app_pw", write(tmp_path, weak, "pw")) == 0
    (made,) = [o for o in world.fake.secrets() if o.name != "app_pw"]
    seen = made.name + " " + " ".join(f"{k}={v}" for k, v in made.labels.items())
    guesses = [f"{w}{y}{c}".encode() for w in ("Summer", "Winter", "Spring", "Autumn")
               for y in range(2000, 2041) for c in ("", "!", "?", "#", "1", "123")]  # fmt: skip
    assert weak in guesses and len(guesses) >= 984
    for guess in guesses:
        for digest_ in (
            sha(guess),
            hashlib.sha512(guess).hexdigest(),
            keyed_digest(b"", "", guess),
        ):
            assert digest_[:12] not in seen
    assert SHA256_LABEL not in made.labels
    assert made.labels[KEYED_LABEL] == keyed(weak)
    assert made.name == f"app_pw-{keyed(weak)[:12]}"


def test_a_secret_without_a_key_is_refused_and_nothing_changes(
    world: World, tmp_path: Path
) -> None:
    before, names = world.spec(), world.names("secret")
    assert world.run("secret", "app_web", "app_pw", write(tmp_path, PASSWORD, "pw"), key=b"") == 1
    assert (
        "keyed digest" in world.err.getvalue() and "SWARM_MEDIC_SECRET_FILE" in world.err.getvalue()
    )
    assert world.spec() == before and world.names("secret") == names


def test_the_same_secret_twice_is_the_same_name_and_no_update(world: World, tmp_path: Path) -> None:
    path = write(tmp_path, PASSWORD, "pw")
    assert world.run("secret", "app_web", "app_pw", path) == 0
    writes = list(world.fake.writes)
    assert world.run("secret", "app_web", "app_pw", path) == 0
    assert world.fake.writes == writes
    assert "unchanged" in world.out.getvalue()
    # another key (the channel secret rotated): another name, one rolling update
    assert world.run("secret", "app_web", "app_pw", path, key=b"r" * 32) == 0
    assert world.fake.writes != writes


def test_secret_versions_of_the_old_scheme_are_still_adopted_and_collected(
    world: World, tmp_path: Path
) -> None:
    # an operator upgrading has versions named and labelled by the plain sha256
    old_name = f"app_pw-{sha(PASSWORD)[:12]}"
    labels = {FAMILY_LABEL: "app_pw", SHA256_LABEL: sha(PASSWORD)}
    old = world.fake.add_stored("secret", old_name, labels=labels, data=PASSWORD)
    svc = world.fake.add_service(
        "app_old",
        template_extra={
            "ContainerSpec": {
                "Image": "medic/busybox:test",
                "Secrets": [{"SecretID": old, "SecretName": old_name, "File": dict(PW_FILE)}],
            }
        },
    )
    assert world.run("secret", "app_old", "app_pw", write(tmp_path, PASSWORD, "pw"), keep=0) == 0
    ref = world.fake.raw_service(svc)["Spec"]["TaskTemplate"]["ContainerSpec"]["Secrets"][0]
    assert ref["SecretName"] == f"app_pw-{keyed(PASSWORD)[:12]}"  # adopted into its family
    # still a version of its family: kept while the previous spec (a rollback) names it ...
    assert "family app_pw (secret): 2 in use" in world.out.getvalue()
    # ... and collected once nothing does
    unused_name = f"app_pw-{sha(b'older')[:12]}"
    world.fake.add_stored(
        "secret", unused_name, labels={FAMILY_LABEL: "app_pw", SHA256_LABEL: sha(b"older")}
    )
    assert world.run("gc", keep=0) == 0
    assert unused_name not in world.names("secret")
    assert f"removed secret {unused_name}" in world.out.getvalue()


def test_a_secret_from_stdin(world: World) -> None:
    assert world.run("secret", "app_web", "app_pw", "-", stdin=io.BytesIO(PASSWORD)) == 0
    assert PASSWORD.decode() not in world.out.getvalue()
    ref = world.spec()["Spec"]["TaskTemplate"]["ContainerSpec"]["Secrets"][0]
    assert world.fake.data[ref["SecretID"]] == PASSWORD


def test_a_refused_secret_says_why_without_its_content(world: World, tmp_path: Path) -> None:
    big = PASSWORD * (MAX_BYTES // len(PASSWORD) + 1)
    assert world.run("secret", "app_web", "app_pw", write(tmp_path, big, "big")) == 1
    assert "must be smaller than 512000 bytes" in world.err.getvalue()
    assert PASSWORD.decode() not in world.err.getvalue() + world.out.getvalue()


# --- what is refused, and how it is said -----------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (("config", "nosuch", "/etc/app.conf", "GOOD"), "service nosuch not found"),
        (("config", "app_web", "/etc/nope.conf", "GOOD"), "app_web has no config at /etc/nope"),
        (("secret", "app_web", "/etc/app.conf", "GOOD"), "has no secret at /etc/app.conf"),
        (("config", "app_web", "/etc/app.conf", "MISSING"), "cannot read"),
        (("config", "app_web", "/etc/app.conf", "EMPTY"), "is empty"),
        (("config", "app_web", "/etc/app.conf", "BIG"), "smaller than 512000 bytes"),
        (("config", "app_web", "/etc/app.conf", "DIR"), "cannot read"),
    ],
)
def test_errors_exit_1_with_a_reason_and_change_nothing(
    world: World, tmp_path: Path, argv: tuple[str, ...], said: str
) -> None:
    files = {
        "GOOD": write(tmp_path, GOOD),
        "MISSING": str(tmp_path / "missing"),
        "EMPTY": write(tmp_path, b"", "empty"),
        "BIG": write(tmp_path, b"x" * MAX_BYTES, "big"),
        "DIR": str(tmp_path),
    }
    before, names = world.spec(), world.names()
    assert world.run(*argv[:3], files[argv[3]]) == 1
    assert said in world.err.getvalue()
    assert world.spec() == before
    assert world.names() == names


def test_a_bad_file_is_refused_before_the_engine_is_asked(tmp_path: Path) -> None:
    asked: list[bool] = []

    def factory() -> FakeEngine:
        asked.append(True)
        return FakeEngine()

    err = io.StringIO()
    code = run(
        "config",
        ["web", "/x", write(tmp_path, b"", "e")],
        factory,
        keep=3,
        as_json=False,
        out=io.StringIO(),
        err=err,
    )
    assert (code, asked) == (1, [])


@pytest.mark.parametrize("name", ["a/b", "../x", "", "-x", "x?y=1"])
def test_a_service_name_that_is_not_one_is_a_usage_error(world: World, name: str) -> None:
    assert world.run("config", name, "/etc/app.conf", "f") == 2
    assert world.fake.api_calls == 0


def test_json_lists_every_step(world: World, tmp_path: Path) -> None:
    assert world.run("config", "app_web", "/etc/app.conf", write(tmp_path, GOOD), as_json=True) == 0
    doc = json.loads(world.out.getvalue())
    assert doc["ok"] is True and doc["error"] is None
    assert [s["step"] for s in doc["steps"]] == ["created", "swapped", "family"]
    swapped = doc["steps"][1]
    assert swapped["service"] == "app_web" and swapped["from"] == "app_conf"
    assert swapped["to"] == f"app_conf-{sha(GOOD)[:12]}"
    assert world.run("config", "nosuch", "/x", write(tmp_path, GOOD), as_json=True) == 1
    assert json.loads(world.out.getvalue())["ok"] is False


# --- the stack-wide form ----------------------------------------------------------------------

COMPOSE = """
version: "3.8"
services:
  web:
    image: medic/busybox:test
    configs:
      - source: conf
        target: /etc/app.conf
    secrets:
      - pw
  worker:
    image: medic/busybox:test
    configs:
      - conf
      - ext
configs:
  conf:
    file: ./conf/app.conf
  ext:
    external: true
secrets:
  pw:
    file: pw.txt
"""


def test_stack_items_read_short_and_long_syntax() -> None:
    import yaml

    items, skipped = stack_items(yaml.safe_load(COMPOSE), "app")
    assert [(i.service, i.kind, i.source, i.target, i.file) for i in items] == [
        ("app_web", "config", "conf", "/etc/app.conf", "./conf/app.conf"),
        ("app_web", "secret", "pw", "/run/secrets/pw", "pw.txt"),
        ("app_worker", "config", "conf", "/conf", "./conf/app.conf"),
    ]
    assert [(s.service, s.source, s.why) for s in skipped] == [("app_worker", "ext", "external")]


@pytest.mark.parametrize(
    ("doc", "said"),
    [
        ({"services": {"web": {"configs": ["nope"]}}}, "top-level configs: does not define"),
        ({"services": {"web": {"configs": "conf"}}}, "must be a list"),
        ({"services": ["web"]}, "services must be a mapping"),
        (
            {"services": {"web": {"configs": ["c"]}}, "configs": {"c": {"file": "${DIR}/c"}}},
            "holds a variable",
        ),
        ({"services": {"web": {"secrets": [{"target": "x"}]}}}, "has a source"),
    ],
)
def test_stack_items_refuse_what_they_cannot_read(doc: object, said: str) -> None:
    with pytest.raises(RolloutError, match=re.escape(said)):
        stack_items(doc, "app")


STACK = """
services:
  web:
    configs:
      - source: app_conf
        target: /etc/app.conf
    secrets:
      - app_pw
  worker:
    configs:
      - app_conf
      - ext
configs:
  app_conf:
    file: ./conf/app.conf
  ext:
    external: true
secrets:
  app_pw:
    file: pw.txt
"""


def test_a_stack_rolls_each_reference_then_collects_once(world: World, tmp_path: Path) -> None:
    # what stack deploy makes of the worker's short syntax: File.Name app_conf, i.e. /app_conf
    ref = {"ConfigID": world.conf, "ConfigName": "app_conf", "File": {"Name": "app_conf"}}
    worker = world.fake.add_service(
        "app_worker",
        template_extra={"ContainerSpec": {"Image": "medic/busybox:test", "Configs": [ref]}},
    )
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "app.conf").write_bytes(GOOD)
    (tmp_path / "pw.txt").write_bytes(PASSWORD)
    (tmp_path / "stack.yml").write_text(STACK)
    assert world.run("stack", "app", str(tmp_path / "stack.yml")) == 0
    out = world.out.getvalue()
    assert PASSWORD.decode() not in out
    assert [line.split()[0] for line in out.splitlines()] == [
        "skipped",  # ext: external
        "created",  # app_conf-<GOOD>
        "swapped",  # app_web's config
        "created",  # app_pw-<keyed digest of PASSWORD>
        "swapped",  # app_web's secret
        "reused",  # app_conf-<GOOD> again, for app_worker
        "swapped",
        "family",  # one collection per family, at the end
        "family",
    ]
    version = f"app_conf-{sha(GOOD)[:12]}"
    assert world.config_ref()["ConfigName"] == version
    assert world.config_ref(worker)["ConfigName"] == version
    assert world.config_ref(worker)["File"] == {"Name": "app_conf"}
    writes = list(world.fake.writes)
    assert world.run("stack", "app", str(tmp_path / "stack.yml")) == 0  # again: nothing to do
    assert world.fake.writes == writes
    assert "unchanged: service app_worker" in world.out.getvalue()


@pytest.mark.parametrize(
    "text", ["[" * 100_000, "a:\n" + "".join(" " * i + "b:\n" for i in range(1, 3000))]
)
def test_a_compose_file_nested_too_deeply_is_an_error_not_a_crash(
    world: World, tmp_path: Path, text: str
) -> None:
    (tmp_path / "deep.yml").write_text(text)
    assert world.run("stack", "app", str(tmp_path / "deep.yml")) == 1
    assert "nested too deeply" in world.err.getvalue()


def test_a_stack_without_anything_to_roll_is_an_error(world: World, tmp_path: Path) -> None:
    (tmp_path / "s.yml").write_text("services:\n  web:\n    image: x\n")
    assert world.run("stack", "app", str(tmp_path / "s.yml")) == 1
    assert "no service uses a config or secret with a file:" in world.err.getvalue()
    (tmp_path / "bad.yml").write_text("services: [")
    assert world.run("stack", "app", str(tmp_path / "bad.yml")) == 1
    assert "is not YAML" in world.err.getvalue()


# --- the command line -------------------------------------------------------------------------


def test_the_cli_wires_rollout_and_its_usage_errors(
    world: World,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for var in [v for v in os.environ if v.startswith("SWARM_MEDIC_")]:
        monkeypatch.delenv(var)  # the settings refuse variables they do not know
    monkeypatch.setattr(cli, "_engine_factory", lambda settings: lambda: world.fake)
    path = write(tmp_path, GOOD)
    assert cli.main(["rollout", "config", "app_web", "/etc/app.conf", path, "--keep", "1"]) == 0
    assert "swapped service app_web" in capsys.readouterr().out
    assert cli.main(["rollout", "gc", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    for argv in (
        ["rollout"],
        ["rollout", "config", "app_web", "/etc/app.conf"],
        ["rollout", "gc", "--keep", "-1"],
        ["rollout", "config", "app_web", "/etc/app.conf", path, "--dry-run", "true"],
    ):
        assert cli.main(argv) == 2, argv  # a usage error: said, and exit 2 (no SystemExit)


def test_gc_with_nothing_to_look_at_says_so(world: World) -> None:
    assert world.run("gc") == 0
    assert world.out.getvalue() == "no versions made by `swarm-medic rollout` to look at\n"
    assert world.names() == {"app_conf"}
