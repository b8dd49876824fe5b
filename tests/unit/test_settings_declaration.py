"""Each setting declared once: the groups of `Settings`, `SPECS`, `--help` and the README table
agree."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, fields
from typing import Any

import pytest

from swarm_medic.config import add_arguments
from swarm_medic.core.parsers import parse_bool
from swarm_medic.core.settings import (
    GROUPS,
    SPECS,
    HttpSettings,
    NotifySettings,
    ProbeSettings,
    SafetySettings,
    Settings,
    env_name,
    flag_name,
    group,
    groups_of,
    setting,
    show_default,
    specs_of,
    value_of,
)
from swarm_medic.readme import settings_table


def test_settings_and_specs_agree_one_to_one() -> None:
    defaults = Settings()
    assert [f.name for f in fields(Settings)] == list(GROUPS)
    declared = [f.name for g in fields(Settings) for f in fields(getattr(defaults, g.name))]
    assert declared == [s.name for s in SPECS]
    for spec in SPECS:
        assert value_of(defaults, spec) == spec.default, spec.name
        assert spec.group in GROUPS, spec.name


def test_names_are_unique_across_flags_and_variables() -> None:
    assert len({flag_name(s) for s in SPECS}) == len(SPECS)
    assert len({env_name(s) for s in SPECS}) == len(SPECS)


@pytest.mark.parametrize("spec", [s for s in SPECS if not s.hidden], ids=lambda s: s.name)
def test_the_shown_default_parses_back_to_the_default(spec: Any) -> None:
    # what README and --help print is what one could type, and it means the default
    assert spec.parse(show_default(spec)) == spec.default


def test_a_hidden_setting_never_shows_its_default() -> None:
    hidden = [s for s in SPECS if s.hidden]
    # the notification URLs carry tokens
    # and so do Prometheus's credentials for the alerts hold
    assert [s.name for s in hidden] == [
        "hold_basic_auth",
        "hold_bearer_token",
        "secret",
        "status_token",
        "alerts_token",
        "notify",
    ]

    @dataclass(frozen=True)
    class WithDefault:
        token: str = setting("token", str, "0123456789abcdef" * 2, "a token", hidden=True)

    (spec,) = specs_of(WithDefault)
    assert show_default(spec) == ""
    assert "0123456789abcdef" not in repr(WithDefault())
    assert "secret=" not in repr(Settings(probes=ProbeSettings(secret="s" * 40)))
    assert "alerts_token=" not in repr(Settings(http=HttpSettings(alerts_token="t" * 40)))
    notify = NotifySettings(notify=("slack://xoxb-token/C0123",))
    assert "xoxb" not in repr(Settings(notify=notify))


def help_of() -> str:
    parser = argparse.ArgumentParser(prog="swarm-medic run")
    add_arguments(parser)
    return parser.format_help()


def test_help_has_one_group_per_settings_group_in_order() -> None:
    text = help_of()
    headers = {text.index(f"\n{name} settings:\n"): name for name in GROUPS}
    assert list(headers) == sorted(headers)  # in the order of GROUPS
    for spec in SPECS:
        flag_at = text.index(f"  {flag_name(spec)} ")
        assert headers[max(at for at in headers if at < flag_at)] == spec.group, spec.name


def test_help_names_range_default_and_variable() -> None:
    text = " ".join(help_of().split())
    assert "[range 100ms to 1d; default 15s; env SWARM_MEDIC_SCAN_INTERVAL]" in text
    assert "[env SWARM_MEDIC_SECRET]" in text  # a hidden setting: no default shown
    assert "[env DOCKER_HOST]" in text


def test_the_table_has_a_row_per_setting() -> None:
    rows = settings_table().splitlines()
    assert rows[0] == "| flag | env | default | group | meaning |"
    assert len(rows) == 2 + len(SPECS)
    for row, spec in zip(rows[2:], SPECS, strict=True):
        assert row.startswith(f"| `{flag_name(spec)}` | `{env_name(spec)}` | ")
        assert f" | {spec.group} | " in row


# --- a declaration that is wrong fails when the module is imported -----------------------


def test_a_field_without_setting_is_refused() -> None:
    @dataclass(frozen=True)
    class Plain:
        dry_run: bool = False

    with pytest.raises(TypeError, match=r"Plain\.dry_run is not declared with setting"):
        specs_of(Plain)


def test_a_name_that_is_not_the_field_s_is_refused() -> None:
    @dataclass(frozen=True)
    class Misnamed:
        dry_run: bool = setting("dryrun", parse_bool, False, "x")

    with pytest.raises(TypeError, match=r"declared as setting\('dryrun'"):
        specs_of(Misnamed)


def test_a_group_not_declared_with_group_is_refused() -> None:
    # a setting's group is the class it is declared in: only a root field can be wrong
    @dataclass(frozen=True)
    class Ungrouped:
        safety: SafetySettings = field(default_factory=SafetySettings)

    with pytest.raises(TypeError, match=r"Ungrouped\.safety is not declared with group"):
        groups_of(Ungrouped)


def test_the_specs_come_group_by_group_in_the_order_of_the_groups() -> None:
    # what keeps `--help` and the README table grouped: each group's settings in one run
    order = list(GROUPS)
    positions = [order.index(s.group) for s in SPECS]
    assert positions == sorted(positions)
    assert {s.group for s in SPECS} == set(GROUPS)

    @dataclass(frozen=True)
    class Two:
        first: SafetySettings = group(SafetySettings, "the first")
        second: ProbeSettings = group(ProbeSettings, "the second")

    assert list(groups_of(Two)) == ["first", "second"]
