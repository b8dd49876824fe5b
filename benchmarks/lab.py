"""Driving the lab from outside the tests: `docker` on the single-node lab or on a node of the
3-node lab (scripts/multilab.sh), a command inside a node, the test image, and `swarm-medic run`
as an operator runs it with its JSON log read back. The soak and the lab tests share it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MULTILAB = ROOT / "scripts" / "multilab.sh"
IMAGE = "medic/busybox:test"

LogLine = dict[str, Any]


def docker(*args: str, check: bool = True, timeout: float = 60) -> str:
    done = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def node_sock(i: int) -> str:
    """The Engine socket of multi-node lab node I, as seen from the host."""
    return f"unix:///run/medic/n{i}/run/docker.sock"


def on_node(i: int, *args: str, check: bool = True) -> str:
    return docker("-H", node_sock(i), *args, check=check)


def image_id() -> str:
    """The test image by ID: a task referring to an image by ID never tries a pull, so the
    multi-node lab needs no route out (and sends nothing out)."""
    return docker("image", "inspect", IMAGE, "--format", "{{.Id}}")


def node_pid(i: int) -> str:
    """The pid of multi-node lab node I's dockerd: its namespaces are the node's."""
    return (Path("/run/medic") / f"n{i}.pid").read_text().strip()


def in_node(i: int) -> tuple[str, ...]:
    """argv prefix that runs a command inside node I (its mount, network and UTS namespaces),
    as a global service's task with the socket and netns folder mounted would see the node."""
    return ("nsenter", "-t", node_pid(i), "-m", "-n", "-u", "--")


class MedicProcess:
    """`swarm-medic run` as an operator runs it, its JSON log read back line by line."""

    def __init__(
        self,
        log_path: Path,
        env: dict[str, str],
        args: tuple[str, ...] = (),
        prefix: tuple[str, ...] = (),
    ) -> None:
        self.log_path = log_path
        self.env = env  # what an operator's CLI next to it needs (same ledger, same engine)
        self._log = log_path.open("w")
        self.started = time.time()
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, "-m", "swarm_medic.cli", "run", *args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
            # a group of its own, stopped whole: a wrapper (faketime forks the medic and waits
            # for it) must not leave the medic running, holding the node's port, after stop()
            start_new_session=True,
        )

    def lines(self) -> list[LogLine]:
        out: list[LogLine] = []
        for raw in self.log_path.read_text().splitlines():
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError:
                obj = {"event": "<non-json>", "raw": raw}
            if isinstance(obj, dict):
                out.append(obj)
        return out

    def find(self, event: str, **match: Any) -> list[LogLine]:
        return [
            ln
            for ln in self.lines()
            if str(ln.get("event", "")).startswith(event)
            and all(ln.get(k) == v for k, v in match.items())
        ]

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.log_path.read_text().splitlines()[-n:])

    def stop(self) -> int:
        """SIGTERM to the medic's whole process group, SIGKILL to what is left after 20 s;
        returns once none of the group runs."""
        group = self.proc.pid
        self._signal(group, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while self._alive(group) and time.monotonic() < deadline:
            time.sleep(0.1)
        if self._alive(group):
            self._signal(group, signal.SIGKILL)
            while self._alive(group) and time.monotonic() < deadline + 10:
                time.sleep(0.1)
        self.proc.wait()
        self._log.close()
        return int(self.proc.returncode)

    def _alive(self, group: int) -> bool:
        self.proc.poll()  # reaps the leader once it exits, so it no longer counts
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    @staticmethod
    def _signal(group: int, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, sig)
