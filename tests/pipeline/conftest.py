"""Fixtures of the pipeline tests: a fresh metrics registry, a journal with captured logs, and
room for many open sockets."""

from __future__ import annotations

import resource
from collections.abc import Iterator

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


@pytest.fixture
def many_files() -> Iterator[None]:
    """Room for 500 client sockets here and 500 in the server, which inherits the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4096 if hard == resource.RLIM_INFINITY else min(4096, hard)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
