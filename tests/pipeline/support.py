"""Helpers shared by the pipeline tests: captured logs, metric samples (polling: tests.waiting)."""

from __future__ import annotations

import logging
from typing import Any

import structlog
from prometheus_client import CollectorRegistry
from structlog.testing import LogCapture

LogEntry = dict[str, Any]


class Logs:
    """A structlog logger whose events are kept in memory (thread-safe enough: list.append)."""

    def __init__(self) -> None:
        self.capture = LogCapture()
        self.logger: Any = structlog.wrap_logger(
            None,
            processors=[self.capture],
            wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        )

    @property
    def entries(self) -> list[LogEntry]:
        return [dict(e) for e in self.capture.entries]

    def named(self, event: str) -> list[LogEntry]:
        """Entries whose event is exactly `event`."""
        return [e for e in self.entries if e["event"] == event]

    def starting(self, prefix: str) -> list[LogEntry]:
        """Entries whose event starts with `prefix`."""
        return [e for e in self.entries if str(e["event"]).startswith(prefix)]

    def events(self) -> list[str]:
        return [str(e["event"]) for e in self.entries]


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """A sample's value; a labelled sample that was never touched reads as 0."""
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value
