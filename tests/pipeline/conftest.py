"""Fixtures of the pipeline tests: a fresh metrics registry and a journal with captured logs."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from swarm_medic.telemetry.journal import Journal
from swarm_medic.telemetry.metrics import Metrics
from tests.pipeline.support import Logs


@pytest.fixture
def prom() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def logs() -> Logs:
    return Logs()


@pytest.fixture
def journal(prom: CollectorRegistry, logs: Logs) -> Journal:
    return Journal(Metrics(prom), logs.logger)
