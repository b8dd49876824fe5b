"""Stand-ins for the Docker SDK, so DockerEngine runs without dockerd: the errors the SDK
raises for an Engine answer, an APIClient method that fails then answers, and an engine whose
API version is already settled."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

import docker.errors
import pytest
import requests

from swarm_medic.swarm.engine import DockerEngine

NOWHERE = "unix:///nonexistent.sock"


def response(status: int, message: str) -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r.reason = HTTPStatus(status).phrase
    r.url = "http+docker://localhost/v1.41/services/svc1/update"
    r.headers["Content-Type"] = "application/json"
    r._content = json.dumps({"message": message}).encode()
    return r


def api_error(status: int, message: str) -> Exception:
    """The exception the Docker SDK raises for this Engine answer."""
    try:
        docker.errors.create_api_error_from_http_exception(
            requests.exceptions.HTTPError(response=response(status, message))
        )
    except docker.errors.APIError as exc:
        err: Exception = exc
        return err
    raise AssertionError("the SDK did not raise")


# What Docker 28.5.2 answers to GET /version (the fields negotiation reads)
VERSION_28 = {"Version": "28.5.2", "ApiVersion": "1.51", "MinAPIVersion": "1.24"}


def negotiated(engine: DockerEngine, monkeypatch: pytest.MonkeyPatch) -> DockerEngine:
    """The engine as after its first request: the version asked (of a stand-in answering as
    Docker 28 does) and settled, no request counted, so a test sees only its own calls."""
    monkeypatch.setattr(engine._api, "version", lambda api_version=True: dict(VERSION_28))
    engine.speaks()
    engine.api_calls = 0
    return engine


class Calls:
    """Stands in for an APIClient method: raises the queued errors, then returns `result`."""

    def __init__(self, *errors: Exception, result: Any = None) -> None:
        self.errors = list(errors)
        self.result = result
        self.args: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.args.append((args, kwargs))
        if self.errors:
            raise self.errors.pop(0)
        return self.result

    @property
    def count(self) -> int:
        return len(self.args)
