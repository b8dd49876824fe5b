"""Which Engine API version is spoken: the newest both sides support, or a one-line refusal."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarm_medic.core import apiversion
from swarm_medic.core.apiversion import SUPPORTED_MAX, SUPPORTED_MIN, choose, parse
from swarm_medic.core.errors import EngineError, UnsupportedEngine


def answer(version: str, api: str, floor: str | None) -> dict[str, Any]:
    doc: dict[str, Any] = {"Version": version, "ApiVersion": api}
    if floor is not None:
        doc["MinAPIVersion"] = floor
    return doc


@pytest.mark.parametrize(
    ("doc", "spoken"),
    [
        (answer("20.10.24+dfsg1", "1.41", "1.12"), "1.41"),  # Debian 12
        (answer("27.5.1", "1.47", "1.24"), "1.47"),
        (answer("28.5.2", "1.51", "1.24"), "1.51"),
        (answer("28.5.2", "1.51", "1.44"), "1.51"),  # the lab's 28 with Engine 29's floor
        (answer("29.1.0", "1.52", "1.44"), "1.51"),  # newer than we know: our newest
        (answer("20.10.24", "1.41", None), "1.41"),  # an engine that says no floor
    ],
)
def test_the_newest_version_both_sides_speak_is_chosen(doc: dict[str, Any], spoken: str) -> None:
    got = choose(doc)
    assert got.api == spoken
    assert got.engine == doc["Version"]
    assert got.engine_api_max == doc["ApiVersion"]


def test_an_engine_older_than_ours_is_refused_naming_both_versions() -> None:
    with pytest.raises(UnsupportedEngine) as err:
        choose(answer("19.03.15", "1.40", "1.12"), "the Docker Engine at unix:///x.sock")
    text = str(err.value)
    assert "\n" not in text
    assert "unix:///x.sock runs Docker 19.03.15, whose newest API is 1.40" in text
    assert f"swarm-medic needs API {SUPPORTED_MIN} (Docker 20.10) or newer" in text
    assert "upgrade the engine" in text


def test_an_engine_whose_floor_is_above_our_newest_is_refused_asking_for_a_newer_medic() -> None:
    with pytest.raises(UnsupportedEngine) as err:
        choose(answer("31.0.0", "1.60", "1.55"))
    assert "accepts API 1.55 or newer only" in str(err.value)
    assert f"speaks API {SUPPORTED_MIN} to {SUPPORTED_MAX}: upgrade swarm-medic" in str(err.value)


@pytest.mark.parametrize(
    "doc",
    [None, [], "1.41", {"Version": "x"}, answer("x", "one.four", "1.12"), answer("x", "1.41", "1")],
)
def test_an_answer_that_is_not_a_version_is_an_engine_error(doc: Any) -> None:
    with pytest.raises(EngineError) as err:
        choose(doc)
    assert not isinstance(err.value, UnsupportedEngine)


versions = st.tuples(st.integers(1, 2), st.integers(0, 80)).map(lambda v: f"{v[0]}.{v[1]}")


@given(top=versions, floor=versions)
def test_whatever_the_engine_says_the_answer_is_in_both_ranges_or_a_refusal(
    top: str, floor: str
) -> None:
    lo, hi = parse(SUPPORTED_MIN), parse(SUPPORTED_MAX)
    try:
        got = choose(answer("v", top, floor))
    except UnsupportedEngine:
        # refused only when no version is in both ranges
        assert parse(top) < lo or parse(floor) > min(parse(top), hi)
        return
    spoken = parse(got.api)
    assert max(lo, parse(floor)) <= spoken <= min(hi, parse(top))
    assert spoken == min(hi, parse(top))  # the newest of them


def test_describe_names_the_engine_and_both_ranges() -> None:
    got = choose(answer("28.5.2", "1.51", "1.44"))
    assert got.describe() == (
        f"Docker 28.5.2, API 1.51 (engine 1.44-1.51, swarm-medic {SUPPORTED_MIN}-{SUPPORTED_MAX})"
    )
    assert apiversion.parse("1.41") == (1, 41)
