"""The project's own errors. Each message says what went wrong and what to do next."""

from __future__ import annotations


class SwarmMedicError(Exception):
    """Base of every error swarm-medic raises on purpose."""


class SettingsError(SwarmMedicError):
    """A setting is wrong. The message names the setting (flag and environment variable)."""


class EngineError(SwarmMedicError):
    """The Docker Engine refused or failed a request (after retries, where retrying helps)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class EngineUnavailable(EngineError):
    """The engine could not be reached (socket gone, dockerd restarting, timeouts)."""


class NotAManager(EngineError):
    """This engine is a swarm worker (or not in a swarm): it cannot list services and tasks."""


class NotFound(EngineError):
    """The object is gone (removed between the scan and the action)."""


class Conflict(EngineError):
    """Compare-and-swap lost: the object changed since we read its Version.Index."""


class UnsupportedEngine(EngineError):
    """The engine and swarm-medic share no Engine API version: said in one line, not retried."""


class ApiVersionRefused(EngineError):
    """The engine refused the API version spoken (it was replaced by another version under
    us): negotiate again and retry."""
