"""`swarm-medic rollout` on the real swarm, as an operator runs it (the CLI in a subprocess).

One service of 2 replicas reads config /etc/app.conf and secret app_pw, made the way an
operator makes them (`docker config create`, no labels); its tasks exit 3 unless the config
says "good", and it updates one task at a time, start-first, rolling back on failure. Then:

1. new good content: a version `<family>-<12 hex>` is created and swapped in; while the roll
   runs, 2 tasks are Running at every poll; the update completes; the new task reads it;
2. the same content again: nothing to do, the service's version does not move;
3. a new secret: rolled the same way, the new task reads it, the CLI never shows it;
4. another good content; `rollout gc --keep 0` right after keeps what the spec and the
   PreviousSpec (a rollback's target) name, and the objects made without the family label;
5. a bad content: swarm rolls the failing update back by itself to the previous config;
6. `swarm-medic check`: the stale-config-versions runbook names what gc would remove;
7. `rollout gc --keep 1` removes it, keeping the newest unused version and the spec's.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from swarm_medic.core.versions import keyed_digest
from tests.labkit import ROOT, Lab, docker, image_id, record_timing
from tests.waiting import wait_until

pytestmark = pytest.mark.lab

PASSWORD = f"lab-secret-{uuid.uuid4().hex}"  # shown nowhere, checked everywhere
CHANNEL_SECRET = "lab-channel-secret-" + "c" * 32


def rollout(*args: str) -> tuple[int, dict[str, Any], str]:
    """`swarm-medic rollout ARGS --json` -> (exit status, its JSON, stdout + stderr)."""
    # the settings refuse SWARM_MEDIC_* variables they do not know (SWARM_MEDIC_LAB...)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_MEDIC_")}
    env["SWARM_MEDIC_SECRET"] = CHANNEL_SECRET  # names secret versions (a keyed digest)
    done = subprocess.run(
        [sys.executable, "-m", "swarm_medic.cli", "rollout", *args, "--json"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    doc: dict[str, Any] = json.loads(done.stdout) if done.stdout.strip() else {}
    return done.returncode, doc, done.stdout + done.stderr


def check(*args: str) -> dict[str, Any]:
    """`swarm-medic check --json ARGS` (exit 1: findings) -> its JSON."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_MEDIC_")}
    done = subprocess.run(
        [sys.executable, "-m", "swarm_medic.cli", "check", "--json", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode in (0, 1), done.stdout + done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


def version_of(family: str, data: bytes, kind: str = "config") -> str:
    if kind == "secret":
        return f"{family}-{keyed_digest(CHANNEL_SECRET.encode(), family, data)[:12]}"
    return f"{family}-{hashlib.sha256(data).hexdigest()[:12]}"


def refs(lab: Lab, name: str, which: str = "Spec") -> dict[str, str]:
    """File.Name -> the config or secret name the service's Spec (or PreviousSpec) has there."""
    spec = lab.inspect(name).get(which) or {}
    container = spec["TaskTemplate"]["ContainerSpec"]
    out = {r["File"]["Name"]: r["ConfigName"] for r in container.get("Configs") or ()}
    out |= {r["File"]["Name"]: r["SecretName"] for r in container.get("Secrets") or ()}
    return out


def read_in_task(name: str, path: str) -> str:
    """`cat PATH` in the newest running container of the service (single-node lab: local)."""
    ids = docker("ps", "-q", "--filter", f"label=com.docker.swarm.service.name={name}", "--latest")
    return docker("exec", ids.split()[0], "cat", path)


def update_started(lab: Lab, name: str) -> str:
    return str((lab.inspect(name).get("UpdateStatus") or {}).get("StartedAt") or "")


def roll_completes(lab: Lab, name: str, before: str, timeout: float = 40) -> int:
    """Polls until the update started after `before` (UpdateStatus.StartedAt) completed ->
    the fewest tasks seen Running meanwhile."""
    fewest = 99

    def done() -> bool:
        nonlocal fewest
        fewest = min(fewest, lab.current_states(name).count("Running"))
        status = lab.inspect(name).get("UpdateStatus") or {}
        assert status.get("State") not in ("paused", "rollback_started", "rollback_completed")
        return status.get("State") == "completed" and status.get("StartedAt") != before

    wait_until(f"update of {name} completed", done, timeout, every=0.2)
    return fewest


def stored_names(kind: str, prefix: str) -> set[str]:
    out = docker(kind, "ls", "--filter", f"name={prefix}", "--format", "{{.Name}}")
    return set(out.split())


def test_rollout_rolls_no_op_rolls_back_and_collects(lab: Lab, tmp_path: Path) -> None:
    t0 = time.monotonic()
    prefix = f"medic-ro-{uuid.uuid4().hex[:6]}"
    conf, pw = f"{prefix}_conf", f"{prefix}_pw"
    v1, good, better, bad = b"good 1\n", b"good 2\n", b"good 3\n", b"broken\n"
    files = {}
    for key, data in {"v1": v1, "good": good, "better": better, "bad": bad}.items():
        files[key] = tmp_path / key
        files[key].write_bytes(data)
    (tmp_path / "pw1").write_text("first password")
    (tmp_path / "pw2").write_text(PASSWORD)
    docker("config", "create", "--label", "medic.lab=1", conf, str(files["v1"]))
    docker("secret", "create", "--label", "medic.lab=1", pw, str(tmp_path / "pw1"))
    try:
        name = lab.create(
            "ro",
            "--replicas",
            "2",
            "--update-parallelism",
            "1",
            "--update-order",
            "start-first",
            "--update-monitor",
            "2s",
            "--update-failure-action",
            "rollback",
            "--rollback-order",
            "start-first",
            "--rollback-monitor",
            "1s",
            "--config",
            f"source={conf},target=/etc/app.conf",
            "--secret",
            f"source={pw},target=app_pw",
            opt_in=False,
            command=("sh", "-c", "grep -q good /etc/app.conf || exit 3; exec sleep 3600"),
        )
        wait_until("2 tasks running", lambda: lab.current_states(name) == ["Running"] * 2, 30)

        # 1. new good content: created, swapped, rolled with 2 running throughout
        before = update_started(lab, name)
        code, doc, shown = rollout("config", name, "/etc/app.conf", str(files["good"]))
        assert code == 0, shown
        assert [s["step"] for s in doc["steps"]] == ["created", "swapped", "family"]
        assert refs(lab, name)["/etc/app.conf"] == version_of(conf, good)
        labels = json.loads(
            docker("config", "inspect", "-f", "{{json .Spec.Labels}}", version_of(conf, good))
        )
        assert labels["swarm-medic.rollout.family"] == conf
        assert labels["swarm-medic.rollout.sha256"] == hashlib.sha256(good).hexdigest()
        t_roll = time.monotonic()
        assert roll_completes(lab, name, before) >= 2, "a task went down in a start-first roll"
        rolled_in = time.monotonic() - t_roll
        assert read_in_task(name, "/etc/app.conf") == good.decode().strip()

        # 2. the same content again: nothing to do
        version = lab.version(name)
        code, doc, shown = rollout("config", name, "/etc/app.conf", str(files["good"]))
        assert code == 0, shown
        assert [s["step"] for s in doc["steps"]] == ["reused", "unchanged"]
        assert lab.version(name) == version

        # 3. a secret, the same way; its content never shown
        before = update_started(lab, name)
        code, doc, shown = rollout("secret", name, "app_pw", str(tmp_path / "pw2"))
        assert code == 0, shown
        assert PASSWORD not in shown
        assert refs(lab, name)["app_pw"] == version_of(pw, PASSWORD.encode(), "secret")
        assert roll_completes(lab, name, before) >= 2
        assert read_in_task(name, "/run/secrets/app_pw") == PASSWORD

        # 4. another good content; gc right after keeps what a rollback needs: the version
        # the PreviousSpec names, though no task runs it any more
        before = update_started(lab, name)
        code, _, shown = rollout("config", name, "/etc/app.conf", str(files["better"]))
        assert code == 0, shown
        roll_completes(lab, name, before)
        assert refs(lab, name, "PreviousSpec")["/etc/app.conf"] == version_of(conf, good)
        code, doc, shown = rollout("gc", "--keep", "0")
        assert code == 0, shown
        assert {conf, version_of(conf, good), version_of(conf, better)} <= stored_names(
            "config", prefix
        )

        # 5. a bad content: the update fails and swarm rolls back to the previous config by
        # itself (failure action rollback); swarmkit then clears the PreviousSpec
        code, _, shown = rollout("config", name, "/etc/app.conf", str(files["bad"]))
        assert code == 0, shown  # the swap itself is fine; the tasks are not
        t_bad = time.monotonic()
        wait_until(
            "the failing update rolled back",
            lambda: lab.update_state(name) == "rollback_completed",
            40,
            every=0.5,
        )
        rolled_back_in = time.monotonic() - t_bad
        assert refs(lab, name)["/etc/app.conf"] == version_of(conf, better)
        wait_until("2 tasks running", lambda: lab.current_states(name) == ["Running"] * 2, 30)

        # 6. the stale-config-versions runbook, in a one-shot check, names exactly what gc
        # keeping 1 is about to remove
        stale = [
            f
            for f in check("--runbook-setting", "stale-config-versions.keep=1")["findings"]
            if f["runbook"] == "stale-config-versions" and f["key"].endswith(f":config:{conf}")
        ]
        assert len(stale) == 1, stale
        assert version_of(conf, good) in stale[0]["summary"]
        assert version_of(conf, bad) not in stale[0]["summary"]
        assert stale[0]["skip_reason"] == "no_action"

        # 7. gc keeping 1: the spec's version stays, the newest unnamed one (bad) is kept for
        # a manual rollback, the older unnamed one (good) goes; unlabelled objects never go
        code, doc, shown = rollout("gc", "--keep", "1")
        assert code == 0, shown
        configs = stored_names("config", prefix)
        assert version_of(conf, good) not in configs
        assert {conf, version_of(conf, better), version_of(conf, bad)} <= configs
        assert {pw, version_of(pw, PASSWORD.encode(), "secret")} <= stored_names("secret", prefix)
        assert PASSWORD not in shown
    finally:
        lab.remove_all()
        for kind in ("config", "secret"):
            names = stored_names(kind, prefix)
            if names:
                docker(kind, "rm", *sorted(names), check=False)
    record_timing(
        test="rollout config/secret (2 replicas, start-first, monitor 2s)",
        roll=round(rolled_in, 1),
        rollback=round(rolled_back_in, 1),
        total=round(time.monotonic() - t0, 1),
    )


STACK_FILE = """\
version: "3.8"
services:
  web:
    image: {image}
    command: ["sh", "-c", "grep -q good /etc/app.conf || exit 3; exec sleep 3600"]
    stop_grace_period: 1s
    configs:
      - source: app
        target: /etc/app.conf
    deploy:
      replicas: 1
      update_config: {{parallelism: 1, order: start-first, monitor: 2s}}
configs:
  app:
    file: ./app.conf
"""


def test_rollout_stack_rolls_what_changed_in_a_stack_file(lab: Lab, tmp_path: Path) -> None:
    """The stack-wide form: a stack deployed with `docker stack deploy`, its config file then
    edited: `rollout stack` swaps the new content in for the stack's service."""
    stack = f"medic-rs-{uuid.uuid4().hex[:6]}"
    (tmp_path / "app.conf").write_text("good v1\n")
    compose = tmp_path / "stack.yml"
    compose.write_text(STACK_FILE.format(image=image_id()))
    svc = f"{stack}_web"
    try:
        docker("stack", "deploy", "--resolve-image", "never", "-c", str(compose), stack)
        wait_until("the stack's task running", lambda: lab.current_states(svc) == ["Running"], 30)
        # the first run adopts the stack's own object: the same content as a version of its
        # family (a config made elsewhere carries no checksum to compare with); the second
        # run has nothing to do and the service's version does not move
        before = update_started(lab, svc)
        code, _, shown = rollout("stack", stack, str(compose))
        assert code == 0, shown
        assert refs(lab, svc)["/etc/app.conf"] == version_of(f"{stack}_app", b"good v1\n")
        roll_completes(lab, svc, before)
        version = lab.version(svc)
        code, _, shown = rollout("stack", stack, str(compose))
        assert code == 0, shown
        assert lab.version(svc) == version

        new = b"good v2\n"
        (tmp_path / "app.conf").write_bytes(new)
        before = update_started(lab, svc)
        code, _, shown = rollout("stack", stack, str(compose))
        assert code == 0, shown
        assert refs(lab, svc)["/etc/app.conf"] == version_of(f"{stack}_app", new)
        assert roll_completes(lab, svc, before) >= 1
        assert read_in_task(svc, "/etc/app.conf") == new.decode().strip()
    finally:
        docker("stack", "rm", stack, check=False)
        wait_until("the stack's service gone", lambda: not lab.tasks(svc), 30)
        names = stored_names("config", stack)
        if names:
            docker("config", "rm", *sorted(names), check=False)
