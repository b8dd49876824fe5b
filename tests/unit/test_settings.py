"""swarm_medic.settings.load: flags, then SWARM_MEDIC_* env (or *_FILE), then defaults."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from swarm_medic.errors import SettingsError
from swarm_medic.settings import DEFAULT_STUCK_AFTER, Settings, describe, load


def test_defaults_with_empty_env() -> None:
    s = load({}, {})
    assert s == Settings()
    assert s.dry_run is False
    assert s.scope == "opt-in"
    assert s.scan_interval == 15.0
    assert s.budget_per_hour == 3
    assert s.http_port == 9324
    assert dict(s.stuck_after) == dict(DEFAULT_STUCK_AFTER)
    assert s.docker_host == ""


def test_unrelated_env_is_ignored() -> None:
    assert load({}, {"PATH": "/usr/bin", "HOME": "/root", "SWARM_MEDICX": "1"}) == Settings()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30.0), ("2m", 120.0), ("1h", 3600.0), ("45", 45.0), ("1.5m", 90.0), ("250ms", 0.25)],
)
def test_scan_interval_durations(text: str, seconds: float) -> None:
    assert load({}, {"SWARM_MEDIC_SCAN_INTERVAL": text}).scan_interval == seconds


@pytest.mark.parametrize(
    ("env", "field", "expected"),
    [
        ({"SWARM_MEDIC_DRY_RUN": "true"}, "dry_run", True),
        ({"SWARM_MEDIC_DRY_RUN": "0"}, "dry_run", False),
        ({"SWARM_MEDIC_SCOPE": "all"}, "scope", "all"),
        ({"SWARM_MEDIC_BUDGET_PER_HOUR": "5"}, "budget_per_hour", 5),
        ({"SWARM_MEDIC_HTTP_PORT": "0"}, "http_port", 0),
        ({"SWARM_MEDIC_SELF_SERVICES": "b, a,,a"}, "self_services", ("a", "b")),
        ({"SWARM_MEDIC_PAUSED_UPDATE_ACTION": "retry"}, "paused_update_action", "retry"),
        ({"DOCKER_HOST": "tcp://10.0.0.1:2376"}, "docker_host", "tcp://10.0.0.1:2376"),
    ],
)
def test_env_values(env: dict[str, str], field: str, expected: object) -> None:
    assert getattr(load({}, env), field) == expected


def test_flags_win_over_env() -> None:
    s = load(
        {"scan_interval": "5s", "scope": "all", "dry_run": None},
        {
            "SWARM_MEDIC_SCAN_INTERVAL": "1h",
            "SWARM_MEDIC_SCOPE": "opt-in",
            "SWARM_MEDIC_DRY_RUN": "yes",
        },
    )
    assert s.scan_interval == 5.0
    assert s.scope == "all"
    assert s.dry_run is True  # a flag left at None falls through to the environment


def test_flag_wins_over_file(tmp_path: Path) -> None:
    secret = tmp_path / "interval"
    secret.write_text("1h\n")
    s = load({"scan_interval": "7s"}, {"SWARM_MEDIC_SCAN_INTERVAL_FILE": str(secret)})
    assert s.scan_interval == 7.0


def test_value_from_file_is_stripped(tmp_path: Path) -> None:
    secret = tmp_path / "ledger-name"
    secret.write_text("medic-ledger-prod\n")
    s = load({}, {"SWARM_MEDIC_LEDGER_NAME_FILE": str(secret)})
    assert s.ledger_name == "medic-ledger-prod"


def test_docker_host_file(tmp_path: Path) -> None:
    secret = tmp_path / "host"
    secret.write_text("ssh://ops@manager-1\n")
    assert load({}, {"DOCKER_HOST_FILE": str(secret)}).docker_host == "ssh://ops@manager-1"


def test_value_and_file_both_set(tmp_path: Path) -> None:
    secret = tmp_path / "scope"
    secret.write_text("all")
    env = {"SWARM_MEDIC_SCOPE": "all", "SWARM_MEDIC_SCOPE_FILE": str(secret)}
    with pytest.raises(SettingsError, match="SWARM_MEDIC_SCOPE and SWARM_MEDIC_SCOPE_FILE"):
        load({}, env)


def test_unreadable_file_names_the_variable(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(SettingsError) as err:
        load({}, {"SWARM_MEDIC_COOLDOWN_FILE": str(missing)})
    assert "SWARM_MEDIC_COOLDOWN_FILE" in str(err.value)
    assert str(missing) in str(err.value)


def test_unknown_variable_is_named() -> None:
    with pytest.raises(SettingsError) as err:
        load({}, {"SWARM_MEDIC_SCAN_INTERVALL": "30s"})
    assert "unknown setting SWARM_MEDIC_SCAN_INTERVALL" in str(err.value)
    # the message also lists what is known
    assert "SWARM_MEDIC_SCAN_INTERVAL," in str(err.value)


def test_docker_host_is_not_a_swarm_medic_variable() -> None:
    with pytest.raises(SettingsError, match="SWARM_MEDIC_DOCKER_HOST"):
        load({}, {"SWARM_MEDIC_DOCKER_HOST": "tcp://x:2375"})


@pytest.mark.parametrize(
    ("env_var", "flag", "value"),
    [
        ("SWARM_MEDIC_SCOPE", "--scope", "bogus"),
        ("SWARM_MEDIC_DRY_RUN", "--dry-run", "maybe"),
        ("SWARM_MEDIC_HTTP_PORT", "--http-port", "70000"),
        ("SWARM_MEDIC_HTTP_PORT", "--http-port", "eighty"),
        ("SWARM_MEDIC_STUCK_AFTER", "--stuck-after", "zombie=3s"),
        ("SWARM_MEDIC_STUCK_AFTER", "--stuck-after", "pending"),
        ("SWARM_MEDIC_STUCK_AFTER", "--stuck-after", "pending=soon"),
        ("SWARM_MEDIC_BUDGET_PER_HOUR", "--budget-per-hour", "0"),
        ("SWARM_MEDIC_SCAN_INTERVAL", "--scan-interval", "5 minutes"),
        ("SWARM_MEDIC_LOG_LEVEL", "--log-level", "trace"),
    ],
)
def test_bad_env_value_names_variable_and_flag(env_var: str, flag: str, value: str) -> None:
    with pytest.raises(SettingsError) as err:
        load({}, {env_var: value})
    message = str(err.value)
    assert env_var in message
    assert flag in message
    assert repr(value) in message


def test_bad_flag_value_names_flag_and_variable() -> None:
    with pytest.raises(SettingsError) as err:
        load({"budget_per_hour": "-1"}, {})
    message = str(err.value)
    assert message.startswith("--budget-per-hour='-1' is not valid")
    assert "SWARM_MEDIC_BUDGET_PER_HOUR" in message


def test_stuck_after_override_merges_with_defaults() -> None:
    s = load({}, {"SWARM_MEDIC_STUCK_AFTER": "pending=30s, starting=2m"})
    expected = dict(DEFAULT_STUCK_AFTER)
    expected.update(pending=30.0, starting=120.0)
    assert dict(s.stuck_after) == expected
    assert s.stuck_after["preparing"] == 300.0  # untouched default
    assert DEFAULT_STUCK_AFTER["pending"] == 60.0  # the defaults themselves are not changed


def test_describe() -> None:
    dry = describe(load({}, {"SWARM_MEDIC_DRY_RUN": "1"}))
    assert dry.startswith("mode=DRY-RUN")
    assert "swarm-medic.enable=true" in dry
    live = describe(load({"scope": "all"}, {}))
    assert "DRY-RUN" not in live
    assert live.startswith("mode=ACT;")
    assert "except those labelled swarm-medic.enable=false" in live


def test_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SWARM_MEDIC_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SWARM_MEDIC_VERIFY_HOLD", "3s")
    assert load({}).verify_hold == 3.0
