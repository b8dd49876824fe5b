"""The stale-config-versions runbook: what `swarm-medic rollout gc` would remove, reported.

Snapshots are taken from the fake engine after real rollouts (`swarm_medic.rollout`), so the
runbook reads the same labels, PreviousSpec references and creation times the collection does.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from swarm_medic.core.errors import SettingsError
from swarm_medic.core.model import Finding, Severity
from swarm_medic.core.rollout import FAMILY_LABEL
from swarm_medic.core.runbook import Runbook, context
from swarm_medic.core.settings import Settings
from swarm_medic.pipeline.observe import take_snapshot
from swarm_medic.rollout import run
from swarm_medic.swarm.fake import FakeEngine
from tests.unit.runbooks.kit import REGISTRY

NAME = "stale-config-versions"


def runbook(keep: str | None = None) -> Runbook:
    rb = REGISTRY.runbooks[NAME]
    return rb if keep is None else rb.configure({"keep": ("test", keep)})


def detect(fake: FakeEngine, rb: Runbook | None = None) -> list[Finding]:
    snap = take_snapshot(fake, fake.now)
    rb = rb or runbook()
    return list(rb.detect(rb.bind(context(snap, fake.now, Settings()))))


def world() -> tuple[FakeEngine, str]:
    fake = FakeEngine(node_id="n1")
    fake.add_node("node1", node_id="n1", leader=True)
    conf = fake.add_stored("config", "app_conf")
    ref = {"ConfigID": conf, "ConfigName": "app_conf", "File": {"Name": "/etc/app.conf"}}
    sid = fake.add_service(
        "app_web", template_extra={"ContainerSpec": {"Image": "busybox", "Configs": [ref]}}
    )
    return fake, sid


def roll(fake: FakeEngine, tmp_path: Path, n: int, *, keep: int, start: int = 0) -> list[str]:
    """n rollouts of new contents, 10 s apart -> the version names, oldest first."""
    names = []
    for i in range(start, start + n):
        fake.now += 10
        data = f"content {i}\n".encode()
        (tmp_path / f"c{i}").write_bytes(data)
        out, err = io.StringIO(), io.StringIO()
        code = run(
            "config",
            ["app_web", "/etc/app.conf", str(tmp_path / f"c{i}")],
            lambda: fake,
            keep=keep,
            as_json=False,
            out=out,
            err=err,
        )
        assert code == 0, err.getvalue()
        names.append(f"app_conf-{hashlib.sha256(data).hexdigest()[:12]}")
    return names


def test_versions_beyond_keep_that_no_service_needs_are_reported(tmp_path: Path) -> None:
    fake, _ = world()
    names = roll(fake, tmp_path, 7, keep=100)  # a rollout that kept everything
    (f,) = detect(fake)
    # in use: the last (spec) and the one before (PreviousSpec); kept: the 3 newest others
    assert f.details["stale"] == ",".join(reversed(names[:2]))
    assert f.details["in_use"] == ",".join(reversed(names[5:]))
    assert f.details["kept"] == ",".join(reversed(names[2:5]))
    assert f.key == f"{NAME}:config:app_conf"
    assert f.target is None  # a family of objects: no service, task or node to name
    assert f.severity is Severity.INFO and not f.actionable
    assert f.summary.startswith("2 old config version(s) of app_conf no service uses: ")
    assert "`swarm-medic rollout gc --keep 3`" in f.advice


def test_what_is_reported_is_exactly_what_gc_removes(tmp_path: Path) -> None:
    fake, _ = world()
    roll(fake, tmp_path, 9, keep=100)
    (f,) = detect(fake, runbook(keep="2"))
    before = {o.name for o in fake.configs()}
    out = io.StringIO()
    assert run("gc", [], lambda: fake, keep=2, as_json=False, out=out, err=io.StringIO()) == 0
    assert before - {o.name for o in fake.configs()} == set(f.details["stale"].split(","))
    assert detect(fake, runbook(keep="2")) == []


def test_the_key_stays_the_same_as_more_versions_go_stale(tmp_path: Path) -> None:
    fake, _ = world()
    roll(fake, tmp_path, 6, keep=100)
    (first,) = detect(fake)
    roll(fake, tmp_path, 3, keep=100, start=6)
    (later,) = detect(fake)
    assert later.key == first.key
    assert later.summary != first.summary  # more of them, said in the words


@pytest.mark.parametrize("keep", [0, 3])
def test_healthy_rollouts_with_their_own_collection_report_nothing(
    tmp_path: Path, keep: int
) -> None:
    fake, _ = world()
    for i in range(6):
        roll(fake, tmp_path, 1, keep=keep, start=i)
        assert detect(fake, runbook(keep=str(keep))) == [], f"after rollout {i}"


def test_what_a_rollback_needs_is_never_reported(tmp_path: Path) -> None:
    """After a rollback the version rolled away from is only the PreviousSpec's: not reported."""
    fake, sid = world()
    names = roll(fake, tmp_path, 2, keep=100)
    fake.rollback(sid, fake.raw_service(sid)["Version"]["Index"])  # spec and previous swap
    assert detect(fake, runbook(keep="0")) == []
    assert {o.name for o in fake.configs()} >= set(names)


def test_objects_without_the_family_label_are_never_reported() -> None:
    fake, _ = world()
    for i in range(5):
        fake.add_stored("config", f"unrelated-{i}", created=fake.now - 100 * i)
        fake.add_stored("secret", f"app_pw_v{i}", created=fake.now - 100 * i)
    fake.add_stored("config", "swarm-medic-ledger")
    assert detect(fake, runbook(keep="0")) == []


def test_secret_families_are_reported_apart_from_config_families() -> None:
    fake, _ = world()
    for i in range(3):
        for kind in ("config", "secret"):
            fake.add_stored(kind, f"db-{i:012d}", labels={FAMILY_LABEL: "db"}, created=fake.now + i)
    found = detect(fake, runbook(keep="1"))
    assert sorted(f.key for f in found) == [f"{NAME}:config:db", f"{NAME}:secret:db"]
    assert all(f.details["stale"] == "db-000000000001,db-000000000000" for f in found)


def test_keep_is_a_whole_number_from_0() -> None:
    assert runbook().values.keep == 3
    assert runbook(keep="0").values.keep == 0
    for bad in ("-1", "x", "1001"):
        with pytest.raises(SettingsError, match="keep"):
            runbook(keep=bad)
