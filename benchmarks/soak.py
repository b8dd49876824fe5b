"""Soak: healthy churn on the 3-node lab must bring no finding of warning or more, no action.

Run: .venv/bin/python -m benchmarks.soak --minutes 1     (root; brings the 3-node lab up and
     tears it down again; scripts/test.sh runs the 2-minute form, benchmarks/README.md keeps the
     30-minute figure)

One swarm-medic per node, inside the node, acting (no dry-run), `scope=all`, probes on, while a
seeded random operator keeps changing services on an overlay: creates them, scales them up and
down, runs rolling updates start-first and stop-first with stop grace periods of up to 20 s
(busybox ignores SIGTERM, so each old task runs its whole grace), removes them, and drains a
node during a rolling update, then makes it active again. Beside them one service starts slow
but steady (healthy STEADY_START seconds after each start) and is rolled every STEADY_EVERY
seconds: the thresholds the medic learns of it (issue 22) must leave it alone. All of it is
what a healthy swarm does every day; none of it is a fault.

Counted as a failure: any finding of severity warning or critical, and any action, with one
exception that is not churn the medic mistook for a fault. Swarm may pause a rolling update when
the soak drains the node of a task of the new spec in its monitor window ("early termination");
the update is then really stuck until someone resumes it, and paused-update resumes it (cause
stopped-by-node, action resume_update). Those are listed apart, and a rollback of such an update
(the harm issue 6 describes) is a failure.

Exit status: 0 when both counts are 0, 1 otherwise (scripts/test.sh fails on it).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.lab import MULTILAB, MedicProcess, image_id, in_node, on_node

NODES = 3
MAX_SERVICES = 6
SETTLE = 45.0  # after the churn: swarm finishes stopping what it stops, medics keep watching
STEADY_START = 40  # seconds the steady service takes to become healthy, every time
STEADY_EVERY = 75.0  # a roll of it: each new task up STEADY_START s later


@dataclass
class Soak:
    rng: random.Random
    net: str
    image: str
    services: dict[str, int] = field(default_factory=dict)  # name -> replicas
    ops: Counter[str] = field(default_factory=Counter)
    drained: str = ""

    def create(self) -> None:
        name = f"medic-soak-{uuid.uuid4().hex[:6]}"
        replicas = self.rng.randint(1, 3)
        grace = self.rng.choice([1, 5, 10, 20])
        order = self.rng.choice(["start-first", "stop-first"])
        on_node(
            1,
            "service", "create", "-d", "--name", name,
            "--replicas", str(replicas),
            "--network", self.net,
            "--endpoint-mode", "dnsrr",
            "--no-resolve-image",
            "--stop-grace-period", f"{grace}s",
            "--update-order", order,
            "--update-parallelism", "1",
            "--update-delay", "2s",
            "--update-monitor", "2s",
            "--label", "medic.lab=1",
            "--label", "swarm-medic.probe.port=80",
            self.image, "httpd", "-f", "-p", "80", "-h", "/www",
        )  # fmt: skip
        self.services[name] = replicas
        self.ops["create"] += 1

    def steady(self) -> str:
        """The slow but steady service (not among the random operator's)."""
        name = f"medic-soak-steady-{uuid.uuid4().hex[:6]}"
        on_node(
            1,
            "service", "create", "-d", "--name", name,
            "--replicas", "1",
            "--no-resolve-image",
            "--stop-grace-period", "1s",
            "--health-cmd", "test -e /tmp/ready",
            "--health-interval", "2s",
            "--health-start-period", "5m",
            "--health-retries", "1",
            "--label", "medic.lab=1",
            self.image, "sh", "-c",
            f"sleep {STEADY_START}; touch /tmp/ready; exec sleep 86400",
        )  # fmt: skip
        self.ops["steady create"] += 1
        return name

    def roll_steady(self, name: str) -> None:
        on_node(1, "service", "update", "-d", "--force", name)
        self.ops["steady roll (40 s start)"] += 1

    def scale(self, name: str) -> None:
        replicas = max(1, self.services[name] + self.rng.choice([-2, -1, 1, 2]))
        replicas = min(replicas, 4)
        on_node(1, "service", "scale", "-d", f"{name}={replicas}")
        self.services[name] = replicas
        self.ops["scale"] += 1

    def update(self, name: str) -> None:
        order = self.rng.choice(["start-first", "stop-first"])
        on_node(
            1,
            "service", "update", "-d", "--no-resolve-image",
            "--update-order", order,
            "--env-add", f"SOAK={uuid.uuid4().hex[:6]}",
            name,
        )  # fmt: skip
        self.ops[f"rolling update {order}"] += 1

    def remove(self, name: str) -> None:
        on_node(1, "service", "rm", name)
        del self.services[name]
        self.ops["remove"] += 1

    def drain_during_update(self, name: str) -> None:
        self.update(name)
        time.sleep(self.rng.uniform(0.5, 3.0))
        node = f"node{self.rng.randint(2, NODES)}"
        on_node(1, "node", "update", "--availability", "drain", node)
        self.drained = node
        self.ops["drain during a rolling update"] += 1

    def reactivate(self) -> None:
        if self.drained:
            on_node(1, "node", "update", "--availability", "active", self.drained)
            self.drained = ""
            self.ops["node made active again"] += 1

    def step(self) -> None:
        if self.drained and self.rng.random() < 0.5:
            self.reactivate()
            return
        names = sorted(self.services)
        if len(names) < 2 or (len(names) < MAX_SERVICES and self.rng.random() < 0.25):
            self.create()
            return
        name = self.rng.choice(names)
        roll = self.rng.random()
        if roll < 0.3:
            self.scale(name)
        elif roll < 0.65:
            self.update(name)
        elif roll < 0.8 and not self.drained:
            self.drain_during_update(name)
        else:
            self.remove(name)


def lab(verb: str) -> None:
    done = subprocess.run(
        ["bash", str(MULTILAB), verb],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={**os.environ, "MANAGERS": "1"},
    )
    if done.returncode != 0:
        sys.exit(f"multilab.sh {verb} failed:\n{done.stderr}")


def medics(logdir: Path) -> list[MedicProcess]:
    secret = logdir / "secret"
    secret.write_text(uuid.uuid4().hex + uuid.uuid4().hex)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SWARM_MEDIC_") and k != "DOCKER_HOST"
    }
    env |= {
        "SWARM_MEDIC_SCOPE": "all",
        "SWARM_MEDIC_SCAN_INTERVAL": "3s",
        "SWARM_MEDIC_PROBE_INTERVAL": "3s",
        "SWARM_MEDIC_LOG_FORMAT": "json",
        "SWARM_MEDIC_HTTP_PORT": "9324",
        "SWARM_MEDIC_LEDGER_NAME": f"medic-soak-ledger-{uuid.uuid4().hex[:6]}",
        "SWARM_MEDIC_SECRET_FILE": str(secret),
    }
    return [
        MedicProcess(logdir / f"node{i}-medic.log", env, (), in_node(i))
        for i in range(1, NODES + 1)
    ]


Seen = list[tuple[int, dict[str, object]]]


def judge(procs: list[MedicProcess]) -> tuple[Seen, Seen, Seen]:
    """-> (findings of warning or more, actions, pauses by the soak's drain and their resumes)"""
    bad_findings: Seen = []
    bad_actions: Seen = []
    resumed: Seen = []
    for i, p in enumerate(procs, start=1):
        for line in p.lines():
            event = str(line.get("event", ""))
            drained_pause = line.get("runbook") == "paused-update" and (
                line.get("cause") == "stopped-by-node" or line.get("action") == "resume_update"
            )
            if event == "finding" and line.get("severity") in ("warning", "critical"):
                (resumed if drained_pause else bad_findings).append((i, line))
            elif event.startswith("action:"):
                (resumed if drained_pause else bad_actions).append((i, line))
    return bad_findings, bad_actions, resumed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    ap.add_argument("--minutes", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=20261126)
    ap.add_argument("--keep-logs", action="store_true", help="print where the logs are")
    args = ap.parse_args(argv)

    t0 = time.monotonic()
    lab("down")
    lab("up")
    logdir = Path(tempfile.mkdtemp(prefix="medic-soak-"))
    soak = Soak(random.Random(args.seed), f"medic-soak-net-{uuid.uuid4().hex[:6]}", image_id())
    on_node(1, "network", "create", "-d", "overlay", "--label", "medic.lab=1", soak.net)
    procs = medics(logdir)
    try:
        started = time.monotonic()
        steady = soak.steady()
        rolled = started
        steps = 0
        while time.monotonic() - started < args.minutes * 60:
            soak.step()
            steps += 1
            if time.monotonic() - rolled >= STEADY_EVERY:
                soak.roll_steady(steady)
                rolled = time.monotonic()
            time.sleep(soak.rng.uniform(1.0, 4.0))
        soak.reactivate()
        time.sleep(SETTLE)
        alive = [p.proc.poll() is None for p in procs]
    finally:
        for p in procs:
            p.stop()
        lab("down")
    bad_findings, bad_actions, resumed = judge(procs)
    findings, actions = len(bad_findings), len(bad_actions)
    summary = {
        "minutes": args.minutes,
        "seed": args.seed,
        "steps": steps,
        "operations": dict(soak.ops),
        "findings_warning_or_more": findings,
        "actions": actions,
        # one incident each: its finding and its resume_update action
        "paused_by_drain_and_resumed": len({line.get("incident") for _, line in resumed}),
        "medics_alive_at_end": all(alive),
        "wall_seconds": round(time.monotonic() - t0, 1),
    }
    print(json.dumps(summary, indent=2))
    for kind, seen in (("finding", bad_findings), ("action", bad_actions), ("resumed", resumed)):
        for node, line in seen:
            print(f"  {kind} on node{node}: {line.get('event')} {line.get('summary', '')}"[:300])
    if args.keep_logs:
        print(f"logs: {logdir}")
    ok = findings == 0 and actions == 0 and all(alive)
    print("soak: PASS (no finding of warning or more, no action)" if ok else "soak: FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
