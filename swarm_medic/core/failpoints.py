"""Failpoints: named places where a fault-injection test can stop the daemon dead.

`MEDIC_FAILPOINT=after-claim` (or `after-act`) makes the executor log "failpoint reached" and
block there for good, so a test can SIGKILL the process at exactly that point and show what
the next instance does (tests/lab/test_kill_midway.py). Unset, as in every deployment, the
failpoint is a no-op. The variable is deliberately outside SWARM_MEDIC_*: it is not a setting.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping

ENV = "MEDIC_FAILPOINT"
POINTS = frozenset({"after-claim", "after-act"})


def from_env(
    say: Callable[[str], None], env: Mapping[str, str] | None = None
) -> Callable[[str], None]:
    armed = (os.environ if env is None else env).get(ENV, "")
    if armed not in POINTS:
        return lambda point: None

    def failpoint(point: str) -> None:
        if point == armed:
            say(point)
            threading.Event().wait()  # until the test kills the process

    return failpoint
