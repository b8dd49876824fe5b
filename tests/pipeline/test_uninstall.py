"""`swarm-medic uninstall` on the fake engine: a dry run lists what swarm-medic left and changes
nothing; a real run refuses while the medic runs, then removes the ledger, its secrets, the
rollout versions no service uses and the swarm-medic.* service labels, keeping (and saying)
what a service still uses."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from swarm_medic import cli
from swarm_medic.swarm.fake import FakeEngine

LEDGER = "swarm-medic-ledger"
Use = Callable[[FakeEngine], FakeEngine]  # the CLI then talks to this fake


def secret_ref(sid: str, name: str) -> dict[str, object]:
    file = {"Name": name, "UID": "0", "GID": "0", "Mode": 0o400}
    return {"SecretID": sid, "SecretName": name, "File": file}


def config_ref(cid: str, name: str, target: str) -> dict[str, object]:
    file = {"Name": target, "UID": "0", "GID": "0", "Mode": 0o444}
    return {"ConfigID": cid, "ConfigName": name, "File": file}


def swarm(*, medic: bool) -> FakeEngine:
    """A swarm after a while of swarm-medic: its stack (when `medic`), the channel secret and
    a notification secret, the ledger, two rollout versions of app_conf (one in use by web),
    web opted in, and things that are not swarm-medic's."""
    fake = FakeEngine(node_id="mgr1")
    fake.add_node("manager-1", node_id="mgr1", leader=True)
    channel = fake.add_stored("secret", "swarm-medic-secret")
    fake.add_stored("secret", "swarm-medic-notify")
    fake.add_stored("config", LEDGER, labels={"swarm-medic.svc.x": "{}"})
    family = {"swarm-medic.rollout.family": "app_conf", "swarm-medic.rollout.sha256": "ab"}
    fake.add_stored("config", "app_conf-aaaaaaaaaaaa", labels=family)
    used = fake.add_stored("config", "app_conf-bbbbbbbbbbbb", labels=family)
    fake.add_stored("config", "app_conf")  # the stack's own: not swarm-medic's
    fake.add_stored("secret", "db_password")
    if medic:
        fake.add_service(
            "medic_swarm-medic",
            replicas=None,
            labels={"swarm-medic.self": "true", "com.docker.stack.namespace": "medic"},
            template_extra={
                "ContainerSpec": {
                    "Image": "swarm-medic:0.1.0",
                    "Secrets": [secret_ref(channel, "swarm-medic-secret")],
                }
            },
        )
    fake.add_service(
        "web",
        labels={"swarm-medic.enable": "true", "swarm-medic.action": "report", "team": "a"},
        template_extra={
            "ContainerSpec": {
                "Image": "nginx",
                "Configs": [config_ref(used, "app_conf-bbbbbbbbbbbb", "/etc/app.conf")],
            }
        },
    )
    fake.add_service("db", labels={"team": "b"})
    return fake


@pytest.fixture
def use(monkeypatch: pytest.MonkeyPatch) -> Use:
    for var in [v for v in os.environ if v.startswith("SWARM_MEDIC_")] + ["DOCKER_HOST"]:
        monkeypatch.delenv(var, raising=False)

    def engine(fake: FakeEngine) -> FakeEngine:
        monkeypatch.setattr(cli, "_engine_factory", lambda settings: lambda: fake)
        return fake

    return engine


def names(fake: FakeEngine) -> set[str]:
    return {o.name for o in (*fake.configs(), *fake.secrets())}


EVERYTHING = {
    "swarm-medic-secret",
    "swarm-medic-notify",
    LEDGER,
    "app_conf-aaaaaaaaaaaa",
    "app_conf-bbbbbbbbbbbb",
    "app_conf",
    "db_password",
}


def test_a_dry_run_lists_everything_and_changes_nothing(
    use: Use, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = swarm(medic=True)
    use(fake)
    assert cli.main(["uninstall", "--dry-run"]) == 0
    out = capsys.readouterr().out
    lines = [line.split(maxsplit=2)[:2] for line in out.splitlines()[1:]]
    assert lines == [
        ["service", "medic_swarm-medic"],
        ["config", "app_conf-aaaaaaaaaaaa"],
        ["config", "app_conf-bbbbbbbbbbbb"],
        ["config", LEDGER],
        ["secret", "swarm-medic-notify"],
        ["secret", "swarm-medic-secret"],
        ["labels", "web"],
    ]
    assert "dry run: nothing removed" in out.splitlines()[0]
    assert "docker stack rm medic" in out
    assert "app_conf-bbbbbbbbbbbb" in out and "in use by web" in out
    assert "swarm-medic.action, swarm-medic.enable" in out
    assert "db_password" not in out and " app_conf " not in out and "db " not in out
    assert names(fake) == EVERYTHING
    assert fake.service_spec("web").spec["Labels"]["swarm-medic.enable"] == "true"


def test_nothing_is_removed_while_the_medic_runs(
    use: Use, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = swarm(medic=True)
    use(fake)
    assert cli.main(["uninstall"]) == cli.EXIT_FAILED
    assert "the medic still runs (medic_swarm-medic)" in capsys.readouterr().out
    assert names(fake) == EVERYTHING


def test_once_the_stack_is_gone_everything_unused_goes(
    use: Use, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = swarm(medic=False)
    use(fake)
    web_before = fake.service_spec("web")

    # the version web still uses is kept, and the command says so with its exit code
    assert cli.main(["uninstall"]) == cli.EXIT_FAILED
    out = capsys.readouterr().out
    assert "config app_conf-bbbbbbbbbbbb: kept: in use by web" in out
    assert f"config {LEDGER}: removed" in out
    assert "labels web: labels removed" in out
    assert names(fake) == {"app_conf-bbbbbbbbbbbb", "app_conf", "db_password"}
    web = fake.service_spec("web")
    assert web.spec["Labels"] == {"team": "a"}  # the operator's other labels stay
    assert web.spec["TaskTemplate"] == web_before.spec["TaskTemplate"]  # no task restarts
    assert fake.service_spec("db").spec["Labels"] == {"team": "b"}

    # web moved back to its stack's object: the version goes too, and then nothing is left
    spec = dict(web.spec)
    spec["TaskTemplate"] = {**spec["TaskTemplate"], "ContainerSpec": {"Image": "nginx"}}
    fake.update_service_spec(web.id, web.version, spec)
    assert cli.main(["uninstall"]) == 0
    assert "config app_conf-bbbbbbbbbbbb: removed" in capsys.readouterr().out
    assert cli.main(["uninstall"]) == 0
    assert capsys.readouterr().out == "nothing of swarm-medic is left in this swarm\n"
    assert names(fake) == {"app_conf", "db_password"}


def test_another_ledger_name_is_the_ledger(use: Use, capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeEngine(node_id="mgr1")
    fake.add_node("manager-1", node_id="mgr1", leader=True)
    fake.add_stored("config", "medic-history")
    use(fake)
    assert cli.main(["uninstall", "--dry-run", "--ledger-name", "medic-history"]) == 0
    assert "medic-history" in capsys.readouterr().out
