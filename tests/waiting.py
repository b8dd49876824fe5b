"""The one way tests wait for something: poll a condition until it holds or time runs out."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

FIRST_PAUSE = 0.002  # seconds: an in-process condition is usually met within a few of these


def wait_until(what: str, cond: Callable[[], Any], timeout: float = 1.0, every: float = 0.5) -> Any:
    """`cond()`'s first truthy value, polled until `timeout` seconds have passed.

    The pause between polls starts at FIRST_PAUSE and doubles up to `every`: in-process
    conditions are seen within milliseconds, and a slow one (a `docker` command on the lab)
    is not asked more than once every `every` seconds for long.
    """
    deadline = time.monotonic() + timeout
    pause = min(FIRST_PAUSE, every)
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(pause)
        pause = min(pause * 2, every)
