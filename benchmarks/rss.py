"""The daemon's memory after 100 scans at 10k tasks, measured in a fresh process.

Run by `python -m benchmarks` as `python -m benchmarks.rss ANSWERS_FILE LEADER NOW REFUSED`:
it imports what `swarm-medic run` imports (swarm_medic.app and the real engine module), and none
of REFUSED (modules the image does not install), then builds a Medic (observe + match + policy +
journal, dry-run so the world does not change) over a FakeEngine that serves the 10k-task
world's JSON answers from ANSWERS_FILE (the bytes dockerd would send; the fake holds no dicts),
runs 100 scans and prints one JSON object of VmRSS figures in MiB.
"""

from __future__ import annotations

import gc
import importlib.abc
import json
import re
import sys
from pathlib import Path

import msgspec


def rss_mib() -> float:
    status = Path("/proc/self/status").read_text()
    found = re.search(r"VmRSS:\s+(\d+)\s+kB", status)
    return int(found.group(1)) / 1024 if found else float("nan")


def not_in_image(lock: Path) -> list[str]:
    """Top-level modules of installed distributions that the image does not install (not in
    requirements/runtime.txt). Found by the parent process: reading every distribution's
    metadata costs this process memory the figure must not include."""
    import importlib.metadata  # the parent's only: its import alone costs the child 3 MiB

    wanted = {
        re.sub(r"[-_.]+", "-", m[1]).lower()
        for m in re.finditer(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==", lock.read_text(), re.M)
    }
    wanted.add("swarm-medic")
    return sorted(
        top
        for top, dists in importlib.metadata.packages_distributions().items()
        if not any(re.sub(r"[-_.]+", "-", d).lower() in wanted for d in dists)
    )


class RuntimeOnly(importlib.abc.MetaPathFinder):
    """Refuses the modules `not_in_image` names: this venv has the dev tools too, and
    structlog imports `rich` (about 8 MiB) when it finds it, which the daemon in its image
    never does."""

    def __init__(self, refused: set[str]) -> None:
        self.refused = refused

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name.partition(".")[0] in self.refused:
            raise ModuleNotFoundError(f"{name}: not installed in the image", name=name)


def main(argv: list[str]) -> int:
    sys.meta_path.insert(0, RuntimeOnly(set(argv[3].split(",")) if len(argv) > 3 else set()))
    start = rss_mib()
    import structlog
    from prometheus_client import CollectorRegistry

    import swarm_medic.app
    import swarm_medic.swarm.engine  # `swarm-medic run` imports it: count it
    from swarm_medic.core.settings import SafetySettings, Settings
    from swarm_medic.pipeline import registry
    from swarm_medic.pipeline.scan import Medic
    from swarm_medic.swarm.fake import FakeEngine
    from swarm_medic.telemetry.journal import Journal
    from swarm_medic.telemetry.metrics import Metrics

    gc.collect()
    imports = rss_mib()
    answers: dict[str, bytes] = msgspec.msgpack.decode(Path(argv[0]).read_bytes())
    leader, now = argv[1], float(argv[2])
    # No console output: the log lines are rendered and dropped.
    structlog.configure(logger_factory=structlog.ReturnLoggerFactory())
    engine = FakeEngine(node_id=leader, now=now)
    engine.freeze(answers)
    answers_mib = sum(len(b) for b in answers.values()) / 2**20
    del answers
    metrics = Metrics(CollectorRegistry())
    journal = Journal(metrics, structlog.get_logger("swarm_medic"))
    medic = Medic(
        engine,
        Settings(safety=SafetySettings(dry_run=True)),
        registry.load(registry.default_dirs()),
        journal,
        clock=lambda: now,
    )
    medic.scan()
    one = rss_mib()
    for _ in range(99):
        medic.scan()
    gc.collect()
    after = rss_mib()
    snap = medic.state.snapshot
    print(
        json.dumps(
            {
                "python": round(start, 1),
                "imports": round(imports, 1),
                "answers_mib": round(answers_mib, 1),
                "after_1_scan": round(one, 1),
                "after_100_scans": round(after, 1),
                "tasks": len(snap.tasks) if snap else 0,
                "malformed": len(snap.malformed) if snap else 0,
                "app_module": swarm_medic.app.__name__,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
