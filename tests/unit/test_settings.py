"""swarm_medic.config.load: flags, then SWARM_MEDIC_* env (or *_FILE), then defaults."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from swarm_medic.config import FILE_MAX_BYTES, load
from swarm_medic.core.errors import SettingsError
from swarm_medic.core.parsers import Duration
from swarm_medic.core.settings import SPECS, Settings, describe, value_of


def test_defaults_with_empty_env() -> None:
    s = load({}, {})
    assert s == Settings()
    assert s.safety.dry_run is False
    assert s.safety.scope == "opt-in"
    assert s.scan.scan_interval == 15.0
    assert s.safety.budget_per_hour == 3
    assert s.http.http_port == 9324
    assert s.engine.docker_host == ""


def test_unrelated_env_is_ignored() -> None:
    assert load({}, {"PATH": "/usr/bin", "HOME": "/root", "SWARM_MEDICX": "1"}) == Settings()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30.0), ("2m", 120.0), ("1h", 3600.0), ("45", 45.0), ("1.5m", 90.0), ("250ms", 0.25)],
)
def test_scan_interval_durations(text: str, seconds: float) -> None:
    assert load({}, {"SWARM_MEDIC_SCAN_INTERVAL": text}).scan.scan_interval == seconds


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2d", 2 * 86400.0),
        ("30d", 30 * 86400.0),
        ("1h30m", 5400.0),
        ("1m30s", 90.0),
        ("1d12h", 1.5 * 86400),
        ("1.5h", 5400.0),
        ("2h0m0s", 7200.0),
        ("1s500ms", 1.5),
    ],
)
def test_durations_take_days_and_compound_go_style(text: str, seconds: float) -> None:
    """What --help writes (1d, 30d) and what docker's own flags take (1h30m) are accepted."""
    assert load({"cooldown": text}, {}).safety.cooldown == seconds


@pytest.mark.parametrize("text", ["1h 30m", "h", "1x", "1hh", "30m1", "-1h", "1h-30m", "1.h"])
def test_a_duration_that_is_not_one_is_refused(text: str) -> None:
    message = settings_error({"cooldown": text}, {})
    assert "expected a duration such as 30, 30s, 5m, 1h30m or 2d" in message


@pytest.mark.parametrize(
    ("env", "field", "expected"),
    [
        ({"SWARM_MEDIC_DRY_RUN": "true"}, "dry_run", True),
        ({"SWARM_MEDIC_DRY_RUN": "0"}, "dry_run", False),
        ({"SWARM_MEDIC_SCOPE": "all"}, "scope", "all"),
        ({"SWARM_MEDIC_BUDGET_PER_HOUR": "5"}, "budget_per_hour", 5),
        ({"SWARM_MEDIC_HTTP_PORT": "0"}, "http_port", 0),
        ({"SWARM_MEDIC_SELF_SERVICES": "b, a,,a"}, "self_services", ("a", "b")),
        ({"DOCKER_HOST": "tcp://10.0.0.1:2376"}, "docker_host", "tcp://10.0.0.1:2376"),
    ],
)
def test_env_values(env: dict[str, str], field: str, expected: object) -> None:
    (spec,) = [s for s in SPECS if s.name == field]
    assert value_of(load({}, env), spec) == expected


def test_flags_win_over_env() -> None:
    s = load(
        {"scan_interval": "5s", "scope": "all", "dry_run": None},
        {
            "SWARM_MEDIC_SCAN_INTERVAL": "1h",
            "SWARM_MEDIC_SCOPE": "opt-in",
            "SWARM_MEDIC_DRY_RUN": "yes",
        },
    )
    assert s.scan.scan_interval == 5.0
    assert s.safety.scope == "all"
    assert s.safety.dry_run is True  # a flag left at None falls through to the environment


def test_flag_wins_over_file(tmp_path: Path) -> None:
    secret = tmp_path / "interval"
    secret.write_text("1h\n")
    s = load({"scan_interval": "7s"}, {"SWARM_MEDIC_SCAN_INTERVAL_FILE": str(secret)})
    assert s.scan.scan_interval == 7.0


def test_value_from_file_is_stripped(tmp_path: Path) -> None:
    secret = tmp_path / "ledger-name"
    secret.write_text("medic-ledger-prod\n")
    s = load({}, {"SWARM_MEDIC_LEDGER_NAME_FILE": str(secret)})
    assert s.safety.ledger_name == "medic-ledger-prod"


def test_docker_host_file(tmp_path: Path) -> None:
    secret = tmp_path / "host"
    secret.write_text("ssh://ops@manager-1\n")
    assert load({}, {"DOCKER_HOST_FILE": str(secret)}).engine.docker_host == "ssh://ops@manager-1"


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
    assert load({}).safety.verify_hold == 3.0


# --- hostile or broken values: each one stops the start with a message naming the setting ---

SECRET = "s3cr3t-" + "x" * 25  # 32 bytes: the shortest secret accepted


def settings_error(flags: dict[str, str | None], env: dict[str, str]) -> str:
    with pytest.raises(SettingsError) as err:
        load(flags, env)
    return str(err.value)


def test_a_duration_of_309_digits_is_not_infinity() -> None:
    message = settings_error({}, {"SWARM_MEDIC_COOLDOWN": "9" * 309})
    assert "SWARM_MEDIC_COOLDOWN" in message
    assert "--cooldown" in message
    assert "finite" in message


@pytest.mark.parametrize(
    ("flag", "env_var"),
    [
        ("--scan-interval", "SWARM_MEDIC_SCAN_INTERVAL"),
        ("--verify-timeout", "SWARM_MEDIC_VERIFY_TIMEOUT"),
        ("--verify-hold", "SWARM_MEDIC_VERIFY_HOLD"),
        ("--cooldown", "SWARM_MEDIC_COOLDOWN"),
        ("--breaker-reset", "SWARM_MEDIC_BREAKER_RESET"),
        ("--api-timeout", "SWARM_MEDIC_API_TIMEOUT"),
        ("--probe-interval", "SWARM_MEDIC_PROBE_INTERVAL"),
        ("--probe-timeout", "SWARM_MEDIC_PROBE_TIMEOUT"),
        ("--probe-grace", "SWARM_MEDIC_PROBE_GRACE"),
    ],
)
@pytest.mark.parametrize("value", ["0", "0s", "0ms", "800h"])
def test_intervals_and_timeouts_must_be_in_their_range(flag: str, env_var: str, value: str) -> None:
    message = settings_error({}, {env_var: value})
    assert message.startswith(f"{env_var}={value!r} is not valid ({flag} / {env_var})")


def test_scan_jitter_may_be_zero_but_not_more_than_an_hour() -> None:
    assert load({}, {"SWARM_MEDIC_SCAN_JITTER": "0"}).scan.scan_jitter == 0.0
    assert "--scan-jitter" in settings_error({}, {"SWARM_MEDIC_SCAN_JITTER": "61m"})


def test_the_range_is_in_the_message() -> None:
    message = settings_error({"verify_timeout": "0"}, {})
    assert "expected a duration from 1s to 1d" in message


def test_every_default_is_inside_its_own_range() -> None:
    defaults = Settings()
    for spec in SPECS:
        if isinstance(spec.parse, Duration):
            value = value_of(defaults, spec)
            assert spec.parse.low <= value <= spec.parse.high, spec.name


@pytest.mark.parametrize(
    ("env_var", "value"),
    [
        ("SWARM_MEDIC_BUDGET_PER_HOUR", "101"),
        ("SWARM_MEDIC_PROBE_FAILURES", "1" * 400),
    ],
)
def test_counts_have_an_upper_bound(env_var: str, value: str) -> None:
    assert env_var in settings_error({}, {env_var: value})


def test_a_binary_secret_file_is_refused_clearly(tmp_path: Path) -> None:
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"\xff\xfe\x00\x01" + bytes(range(128, 200)))
    message = settings_error({}, {"SWARM_MEDIC_SECRET_FILE": str(secret)})
    assert "SWARM_MEDIC_SECRET_FILE" in message
    assert "--secret" in message
    assert "not UTF-8 text (a binary file?" in message
    assert str(secret) in message


def test_a_binary_file_of_any_setting_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "scope"
    path.write_bytes(b"\x80all")
    message = settings_error({}, {"SWARM_MEDIC_SCOPE_FILE": str(path)})
    assert "SWARM_MEDIC_SCOPE_FILE" in message
    assert "--scope" in message


def test_an_empty_secret_file_does_not_turn_the_channel_off(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("\n")
    message = settings_error({}, {"SWARM_MEDIC_SECRET_FILE": str(secret)})
    assert "SWARM_MEDIC_SECRET_FILE" in message
    assert "--secret / SWARM_MEDIC_SECRET" in message
    assert "empty" in message


@pytest.mark.parametrize(
    ("flags", "env"),
    [
        ({"secret": "x"}, {}),
        ({}, {"SWARM_MEDIC_SECRET": "x"}),
        ({}, {"SWARM_MEDIC_SECRET": SECRET[:-1]}),
        ({}, {"SWARM_MEDIC_SECRET": ""}),
        ({"secret": ""}, {}),
    ],
)
def test_a_short_or_empty_secret_is_refused_and_not_echoed(
    flags: dict[str, str | None], env: dict[str, str]
) -> None:
    message = settings_error(flags, env)
    assert "--secret" in message
    assert "SWARM_MEDIC_SECRET" in message
    assert "<hidden>" in message
    assert "xxxx" not in message  # the value itself is never printed


def test_a_secret_from_a_file_keeps_today_s_stripping(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text(SECRET + "\n")
    assert load({}, {"SWARM_MEDIC_SECRET_FILE": str(secret)}).probes.secret == SECRET
    assert load({"secret": SECRET}, {}).probes.secret == SECRET
    assert load({}, {"SWARM_MEDIC_SECRET": "é" * 16}).probes.secret == "é" * 16  # 32 bytes in UTF-8


def test_an_env_secret_that_is_not_utf8_is_refused() -> None:
    # os.environ carries undecodable bytes as lone surrogates
    message = settings_error({}, {"SWARM_MEDIC_SECRET": "\udcff" * 40})
    assert "not valid UTF-8" in message


def test_a_file_path_with_a_nul_byte_names_the_variable() -> None:
    message = settings_error({}, {"SWARM_MEDIC_COOLDOWN_FILE": "/tmp/x\x00y"})
    assert "SWARM_MEDIC_COOLDOWN_FILE" in message


def test_a_huge_file_is_not_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "big"
    path.write_bytes(b"1" * (FILE_MAX_BYTES + 1))
    message = settings_error({}, {"SWARM_MEDIC_COOLDOWN_FILE": str(path)})
    assert "larger than" in message


def test_notify_urls_from_a_secret_file_in_order_each_once(tmp_path: Path) -> None:
    urls = tmp_path / "notify"
    urls.write_text("slack://a/b/c,\n json://127.0.0.1:8080/hook  slack://a/b/c\n")
    s = load({}, {"SWARM_MEDIC_NOTIFY_FILE": str(urls)})
    assert s.notify.notify == ("slack://a/b/c", "json://127.0.0.1:8080/hook")
    assert "slack://" not in repr(s)  # hidden: the URLs carry tokens
    assert load({"notify": "json://h/p"}, {}).notify.notify == ("json://h/p",)
    assert load({}, {}).notify.notify == ()
    s = load({}, {"SWARM_MEDIC_NOTIFY_MIN_SEVERITY": "critical", "SWARM_MEDIC_NOTIFY_REMIND": "5m"})
    assert (s.notify.notify_min_severity, s.notify.notify_remind) == ("critical", 300.0)


def test_a_notify_url_without_a_scheme_is_refused_and_not_echoed() -> None:
    message = settings_error({}, {"SWARM_MEDIC_NOTIFY": "json://ok/x,xoxb-secret-token"})
    assert "URL #2 has no scheme" in message
    assert "<hidden>" in message
    assert "xoxb" not in message
    assert "critical" in settings_error({}, {"SWARM_MEDIC_NOTIFY_MIN_SEVERITY": "loud"})
