"""The swarm-wide limits' settings: --hold-while-alerts and --max-concurrent-actions."""

from __future__ import annotations

import pytest

from swarm_medic.config import load
from swarm_medic.core.errors import SettingsError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ()),
        ("http://prom:9090/,B,A", ("http://prom:9090", "A", "B")),
        (
            "https://prom.example/prometheus, NodeDown",
            ("https://prom.example/prometheus", "NodeDown"),
        ),
    ],
)
def test_hold_while_alerts_parses(text: str, expected: tuple[str, ...]) -> None:
    assert load({"hold_while_alerts": text}, env={}).safety.hold_while_alerts == expected


@pytest.mark.parametrize(
    "text", ["file:///etc/passwd,A", "prom:9090,A", "http://prom:9090", "http://p,bad name"]
)
def test_hold_while_alerts_refuses(text: str) -> None:
    with pytest.raises(SettingsError):
        load({"hold_while_alerts": text}, env={})


def test_max_concurrent_actions_zero_is_no_limit_and_negative_is_refused() -> None:
    assert load({"max_concurrent_actions": "0"}, env={}).safety.max_concurrent_actions == 0
    with pytest.raises(SettingsError):
        load({"max_concurrent_actions": "-1"}, env={})
