"""Which Engine API version to speak: the newest both the engine and swarm-medic support.

The engine says its range in `GET /version` (`ApiVersion`, the newest it speaks, and
`MinAPIVersion`, the oldest it still accepts: 1.24 on Docker 20.10-28, 1.44 on Engine 29).
swarm-medic's range is what the lab proved: 1.41 (Debian 12's Docker 20.10) to 1.51 (Docker
28.5). Above our newest the engine may send fields we never read and drop ones we do (API 1.52
drops the old event fields), so a newer engine is spoken to at our newest, as docker's own
CLI does; below our oldest, swarm features we read (service `PreviousSpec`, job modes, ...)
are missing, so such an engine is refused, in one line naming both ranges.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from swarm_medic.core.errors import EngineError, UnsupportedEngine

SUPPORTED_MIN = "1.41"  # Docker 20.10 (Debian 12's docker.io)
SUPPORTED_MAX = "1.51"  # Docker 28.x; Engine 29 (1.52, floor 1.44) is spoken to at 1.51
# An engine that does not say its floor predates MinAPIVersion (API 1.25, Docker 1.13).
_FLOOR_UNSAID = "1.12"


def parse(text: str) -> tuple[int, int]:
    """'1.41' -> (1, 41); anything else is a ValueError naming it."""
    major, dot, minor = text.strip().partition(".")
    if not dot or not major.isdigit() or not minor.isdigit() or len(text) > 16:
        raise ValueError(f"not an API version: {text[:20]!r}")
    return int(major), int(minor)


def _text(v: tuple[int, int]) -> str:
    return f"{v[0]}.{v[1]}"


@dataclass(frozen=True)
class Speaking:
    """The engine at the other end and the API version spoken to it."""

    engine: str  # the engine's version, e.g. "28.5.2"
    api: str  # the version spoken, e.g. "1.51"
    engine_api_min: str
    engine_api_max: str

    def describe(self) -> str:
        return (
            f"Docker {self.engine or '?'}, API {self.api} "
            f"(engine {self.engine_api_min}-{self.engine_api_max}, "
            f"swarm-medic {SUPPORTED_MIN}-{SUPPORTED_MAX})"
        )

    def fields(self) -> dict[str, str]:
        return {
            "engine_version": self.engine,
            "api_version": self.api,
            "engine_api_min": self.engine_api_min,
            "engine_api_max": self.engine_api_max,
        }


def choose(answer: Any, where: str = "the Docker Engine") -> Speaking:
    """`GET /version`'s answer -> what to speak, or UnsupportedEngine / EngineError."""
    if not isinstance(answer, dict):
        raise EngineError(f"{where}: its /version answer is not an object")
    engine = str(answer.get("Version") or "")[:64]
    try:
        top = parse(str(answer.get("ApiVersion") or ""))
        floor = parse(str(answer.get("MinAPIVersion") or _FLOOR_UNSAID))
    except ValueError as exc:
        raise EngineError(f"{where} (Docker {engine or '?'}): /version: {exc}") from None
    ours_min, ours_max = parse(SUPPORTED_MIN), parse(SUPPORTED_MAX)
    spoken = min(top, ours_max)
    if top < ours_min:
        raise UnsupportedEngine(
            f"{where} runs Docker {engine or '?'}, whose newest API is {_text(top)}; swarm-medic "
            f"needs API {SUPPORTED_MIN} (Docker 20.10) or newer, up to {SUPPORTED_MAX}: "
            "upgrade the engine"
        )
    if floor > spoken:
        raise UnsupportedEngine(
            f"{where} runs Docker {engine or '?'}, which accepts API {_text(floor)} or newer "
            f"only; this swarm-medic speaks API {SUPPORTED_MIN} to {SUPPORTED_MAX}: "
            "upgrade swarm-medic"
        )
    return Speaking(engine, _text(spoken), _text(floor), _text(top))
