"""Helpers for tests on the real single-node lab swarm (scripts/lab.sh).

Every docker command is an argv list, never a shell string. Services are named
medic-<test>-<random> and labelled medic.lab=1, and removed when the test ends. Each medic
process gets its own ledger (a swarm config) so one test's action budget never leaks into
another's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks import lab
from benchmarks.lab import (
    IMAGE,
    MULTILAB,
    ROOT,
    LogLine,
    docker,
    image_id,
    in_node,
    node_pid,
    node_sock,
    on_node,
)
from tests.waiting import wait_until

# The lab's commands and the medic's process are benchmarks/lab.py's (the soak drives the lab
# too, and benchmarks never import tests); this module adds what only a test needs.
__all__ = [
    "IMAGE",
    "LAB",
    "MONITORING",
    "MULTILAB",
    "ROOT",
    "TIMINGS",
    "Lab",
    "LogLine",
    "MedicProcess",
    "docker",
    "hang_service",
    "image_id",
    "in_node",
    "lab_engines",
    "multilab",
    "node_pid",
    "node_sock",
    "on_node",
    "prometheus_and_alertmanager",
    "record_timing",
    "ts",
]

LAB = ROOT / "scripts" / "lab.sh"
MONITORING = ROOT / "scripts" / "monitoring.sh"
TIMINGS = Path(os.environ.get("SWARM_MEDIC_TIMINGS", ROOT / "build" / "lab-timings.jsonl"))


def lab_engines() -> str:
    """The engine a timing was measured on: the single-node lab's, or each node's of the
    multi-node lab (a mixed swarm shows both), asked of the engines themselves."""
    test = os.environ.get("PYTEST_CURRENT_TEST", "")
    if "multilab/" in test or "mixedlab/" in test:
        return " ".join(
            docker(
                "-H", node_sock(i), "version", "-f", "{{.Server.Version}}", check=False, timeout=10
            )
            or "down"
            for i in (1, 2, 3)
        )
    return docker("version", "-f", "{{.Server.Version}}", check=False, timeout=10) or "down"


def record_timing(**fields: Any) -> None:
    """Measured times go to a JSON-lines file that scripts/test.sh summarises, each with the
    engine it was measured on (timings differ between engines: 28 starts tasks slower)."""
    TIMINGS.parent.mkdir(parents=True, exist_ok=True)
    line = {"engine": fields.pop("engine", None) or lab_engines(), **fields}
    with TIMINGS.open("a") as fh:
        fh.write(json.dumps(line) + "\n")


@dataclass
class Lab:
    services: list[str] = field(default_factory=list)

    def create(
        self,
        prefix: str,
        *args: str,
        opt_in: bool = True,
        image: str = IMAGE,
        command: tuple[str, ...] = ("sleep", "3600"),
    ) -> str:
        name = f"medic-{prefix}-{uuid.uuid4().hex[:6]}"
        labels = ["--label", "medic.lab=1"]
        if opt_in:
            labels += ["--label", "swarm-medic.enable=true"]
        docker(
            "service",
            "create",
            "-d",
            "--name",
            name,
            "--no-resolve-image",
            "--stop-grace-period",
            "1s",
            *labels,
            *args,
            image,
            *command,
        )
        self.services.append(name)
        return name

    def tasks(self, name: str) -> list[dict[str, str]]:
        out = docker("service", "ps", name, "--no-trunc", "--format", "{{json .}}", check=False)
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def current_states(self, name: str) -> list[str]:
        """CurrentState words ('Running', 'Starting', ...) of tasks desired Running."""
        return [
            t["CurrentState"].split()[0] for t in self.tasks(name) if t["DesiredState"] == "Running"
        ]

    def inspect(self, name: str) -> dict[str, Any]:
        data: list[dict[str, Any]] = json.loads(docker("service", "inspect", name))
        return data[0]

    def version(self, name: str) -> int:
        return int(self.inspect(name)["Version"]["Index"])

    def update_state(self, name: str) -> str | None:
        status = self.inspect(name).get("UpdateStatus") or {}
        state = status.get("State")
        return str(state) if state else None

    def remove_all(self) -> None:
        if self.services:
            docker("service", "rm", *self.services, check=False)
            self.services.clear()

    @staticmethod
    def clear_leftovers() -> list[str]:
        """Services an earlier test or run left on the lab (every lab service and stack is
        named medic-*), removed with their containers, so that another test's remains never
        count as this test's findings. -> their names (a leak worth reading in the output)."""
        names = [
            n
            for n in docker("service", "ls", "--format", "{{.Name}}", check=False).split()
            if n.startswith("medic-")
        ]
        if not names:
            return []
        docker("service", "rm", *names, check=False)

        def gone() -> bool:
            left = docker(
                "ps", "-a", "--format", '{{.Label "com.docker.swarm.service.name"}}', check=False
            )
            return not set(left.split()) & set(names)

        wait_until("the leftover services' containers gone", gone, 60)
        return names


# A container whose healthcheck cannot pass during a 1 h start period keeps its task in
# Starting: the "hung start" of moby#37067. The first container of the service hangs; the
# second one (after a restart) finds the marker on the bind mount and becomes healthy, like a
# hang that a restart cures.
HEALTH = (
    "--health-cmd",
    "test -e /tmp/ready",
    "--health-interval",
    "1s",
    "--health-start-period",
    "1h",
    "--health-retries",
    "1",
)
HANG_ONCE = (
    "sh",
    "-c",
    "if [ -e /state/started ]; then touch /tmp/ready; "
    "else touch /state/started; fi; exec sleep 3600",
)
HANG_ALWAYS = ("sleep", "3600")


def hang_service(
    lab: Lab, tmp_path: Path, prefix: str, *, once: bool = True, opt_in: bool = True
) -> str:
    state = tmp_path / f"state-{prefix}"
    state.mkdir()
    return lab.create(
        prefix,
        "--mount",
        f"type=bind,src={state},dst=/state",
        *HEALTH,
        opt_in=opt_in,
        command=HANG_ONCE if once else HANG_ALWAYS,
    )


class MedicProcess(lab.MedicProcess):
    """A medic process a test waits on: a line it must log, or the test fails showing the log."""

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`swarm-medic ARGS` as an operator runs it beside this medic, with its settings (its
        ledger, its engine); the caller judges the exit status."""
        return subprocess.run(
            [sys.executable, "-m", "swarm_medic.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )

    def wait_for(self, event: str, timeout: float, **match: Any) -> LogLine:
        def found() -> LogLine | None:
            assert self.proc.poll() is None, f"swarm-medic exited: {self.tail()}"
            hits = self.find(event, **match)
            return hits[0] if hits else None

        try:
            hit: LogLine = wait_until(f"log line {event!r} {match}", found, timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- medic log tail ---\n{self.tail()}") from None
        return hit


def ts(line: LogLine) -> float:
    """Epoch seconds of a log line's ISO timestamp."""
    return datetime.fromisoformat(str(line["timestamp"]).replace("Z", "+00:00")).timestamp()


def multilab(*args: str) -> None:
    done = subprocess.run(
        ["bash", str(MULTILAB), *args], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, f"multilab.sh {' '.join(args)}: {done.stderr}"


def _monitoring(*args: str) -> None:
    done = subprocess.run(
        ["bash", str(MONITORING), *args], capture_output=True, text=True, check=False, timeout=180
    )
    assert done.returncode == 0, f"monitoring.sh {args[0]}: {done.stdout}\n{done.stderr}"


@contextmanager
def prometheus_and_alertmanager(
    *, listen: str, am_listen: str, config: Path, am_config: Path, storage: Path
) -> Iterator[None]:
    """A real Prometheus and Alertmanager (scripts/monitoring.sh, loopback), down afterwards;
    one pair at a time on this machine (the script's state folder is shared)."""
    _monitoring("down")
    try:
        _monitoring(
            "up",
            "--listen",
            listen,
            "--am-listen",
            am_listen,
            "--config",
            str(config),
            "--am-config",
            str(am_config),
            "--storage",
            str(storage),
        )
        yield
    finally:
        _monitoring("down")
