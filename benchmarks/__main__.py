"""Performance at scale: `python -m benchmarks` (a table) or `python -m benchmarks --json`;
`python -m benchmarks --compare [REV]`: this tree's figures beside REV's (default: the previous
release), measured in the same run (benchmarks/compare.py).

Measurements only: always exits 0, whatever the figures. See benchmarks/README.md for what
each figure means, its target and the machine the recorded figures come from.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import importlib.util
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import structlog
from prometheus_client import CollectorRegistry

from benchmarks import compare, ledger_bench, mtu_bench
from benchmarks.real_shape import dressed
from benchmarks.rss import not_in_image
from benchmarks.scan_bench import LEADER, NOW, build, naive_scan
from swarm_medic.core.model import Snapshot
from swarm_medic.core.runbook import TaskClock, context
from swarm_medic.core.settings import Settings
from swarm_medic.pipeline import match, observe, registry
from swarm_medic.pipeline.watch import Watcher
from swarm_medic.swarm import mapping
from swarm_medic.swarm.fake import FakeEngine
from swarm_medic.telemetry.journal import Journal
from swarm_medic.telemetry.metrics import Metrics

REPS, CHURN, EVENTS = 11, 100, 50_000
TARGETS: dict[str, tuple[str, float]] = {  # key -> (<= or >=, target)
    "scan_cpu_ms_10k": ("<=", 40.0),
    # one list per kind of object (info, nodes, services, tasks, networks, configs, secrets),
    # whatever the number of services
    "api_calls_per_scan": ("<=", 7.0),
    "events_per_s": (">=", 20_000.0),
    "rss_mib_10k": ("<=", 60.0),
    "probe_round_cpu_ms_100n": ("<=", 50.0),
    "probe_bytes_per_node_100n": ("<=", 64 * 1024.0),
    # every (node, task) pair within 60 s, then K - 1 = 2 confirmation rounds of 15 s
    "probe_find_s_worst_100n": ("<=", 90.0),
    "probe_node_cpu_ms_100n": ("<=", 200.0),
}
PROBE_KEYS = (
    "probe_round_cpu_ms_100n",
    "probe_bytes_per_node_100n",
    "probe_find_s_worst_100n",
    "probe_node_cpu_ms_100n",
    "probe_find_s_median_100n",
    *(
        f"{key}_{way}"
        for way in ("windows", "rotation", "full")
        for key in (
            "probe_round_cpu_ms_100n",
            "probe_bytes_per_node_100n",
            "probe_find_s_worst_100n",
            "probe_find_s_median_100n",
        )
    ),
)


def cpu_ms(fn: Callable[[], object], before: Callable[[], object] = lambda: None) -> list[float]:
    """CPU ms (time.process_time) of `fn`, REPS times; `before` runs untimed before each."""
    runs = []
    for _ in range(REPS):
        before()
        gc.collect()
        start = time.process_time()
        fn()
        runs.append((time.process_time() - start) * 1000)
    return runs


# --- scan --------------------------------------------------------------------------------------


def dict_snapshot(eng: FakeEngine) -> Snapshot:
    """The path before msgspec: API dicts (as requests' json() gives them) -> mapping.py."""
    bad: list[str] = []
    return Snapshot(
        taken_at=NOW,
        info=eng.info(),
        nodes=mapping.map_each(list(eng._nodes.values()), mapping.node_from_api, "node", bad),
        services=mapping.map_each(
            list(eng._services.values()), mapping.service_from_api, "service", bad
        ),
        tasks=mapping.map_each(list(eng._tasks.values()), mapping.task_from_api, "task", bad),
    )


def measure_scan() -> dict[str, Any]:
    eng, reg = build(1000), registry.load(registry.default_dirs())
    settings, clock = Settings(), TaskClock()
    running = sorted(tid for tid, t in eng._tasks.items() if t["Status"]["State"] == "running")
    rng = random.Random(7)
    eng.freeze()

    def churn() -> None:  # CHURN running tasks get a new Status.Timestamp, as tasks do
        for tid in rng.sample(running, CHURN):
            eng._tasks[tid]["Status"]["Timestamp"] = f"2023-11-14T22:1{rng.randint(0, 9)}:00Z"
        eng.freeze()  # untimed: the JSON is dockerd's to produce

    def cold() -> None:
        eng.freeze()
        eng._memos.clear()

    def scan(take: Callable[[], Snapshot]) -> Callable[[], None]:
        def run() -> None:
            snap = take()
            clock.observe(snap.tasks, NOW)
            match.run(reg, context(snap, NOW, settings, clock))

        return run

    def new_snap() -> Snapshot:
        return observe.take_snapshot(eng, NOW)

    def old_snap() -> Snapshot:
        return dict_snapshot(eng)

    new_snap()  # the memo holds the previous scan's answer, as in a running daemon
    fresh: list[Snapshot] = [new_snap()]

    def fresh_snapshot() -> None:
        fresh[0] = new_snap()

    out: dict[str, list[float]] = {
        "observe (bytes -> model), steady": cpu_ms(new_snap, churn),
        "observe (bytes -> model), cold": cpu_ms(new_snap, cold),
        "observe, dicts -> mapping.py (before)": cpu_ms(old_snap),
        "match (all runbooks)": cpu_ms(
            lambda: match.run(reg, context(fresh[0], NOW, settings, clock)), fresh_snapshot
        ),
        "scan: observe + clock + match, steady": cpu_ms(scan(new_snap), churn),
        "scan: observe + clock + match, cold": cpu_ms(scan(new_snap), cold),
        "scan: dicts -> mapping.py (before)": cpu_ms(scan(old_snap)),
    }
    a, b = new_snap(), dict_snapshot(eng)
    same = (a.info, a.nodes, a.services, a.tasks) == (b.info, b.nodes, b.services, b.tasks)
    before = eng.api_calls
    new_snap()
    calls = eng.api_calls - before
    return {"runs": out, "calls": calls, "naive": naive_scan(eng)[0], "same_model": same}


# --- events ------------------------------------------------------------------------------------


def realistic_events(n: int) -> list[dict[str, Any]]:
    """Container, service and node events shaped like /events (see tests/pipeline/test_watch)."""
    rng, sec, out = random.Random(11), 10**9, []
    actions = ["start", "die", "kill", "destroy", "create", "health_status: healthy"]
    for i in range(n):
        nano = 1_700_000_000 * sec + i * 997
        kind, svc = rng.random(), f"svc{rng.randint(0, 999):06d}"
        if kind < 0.7:
            action = rng.choice(actions)
            cid = f"{rng.getrandbits(128):032x}" * 2
            attrs = {
                "com.docker.swarm.node.id": f"node{rng.randint(0, 99):06d}",
                "com.docker.swarm.service.id": svc,
                "com.docker.swarm.service.name": f"app-{svc}",
                "com.docker.swarm.task.id": f"task{i:06d}",
                "image": "registry.example.com/team1/svc:4",
                "name": f"app-{svc}.1.task{i:06d}",
            }
            if action == "die":
                attrs["exitCode"] = "137"
            actor = {"ID": cid, "Attributes": attrs}
            out.append(
                {
                    "status": action,
                    "id": cid,
                    "from": attrs["image"],
                    "Type": "container",
                    "Action": action,
                    "Actor": actor,
                    "scope": "local",
                    "time": nano // sec,
                    "timeNano": nano,
                }
            )
        elif kind < 0.9:
            attrs = {"name": f"app-{svc}", "updatestate.new": "updating"}
            out.append(
                {
                    "Type": "service",
                    "Action": "update",
                    "Actor": {"ID": svc, "Attributes": attrs},
                    "scope": "swarm",
                    "time": nano // sec,
                    "timeNano": nano,
                }
            )
        else:
            attrs = {"name": f"wrk-{rng.randint(1, 97):03d}", "state.new": "ready"}
            out.append(
                {
                    "Type": "node",
                    "Action": "update",
                    "Actor": {"ID": f"node{rng.randint(0, 99):06d}", "Attributes": attrs},
                    "scope": "swarm",
                    "time": nano // sec,
                    "timeNano": nano,
                }
            )
    return out


def measure_events() -> list[float]:
    """Events per second through the boundary's event_from_api and Watcher.handle (dedup,
    metric, relevance)."""
    events = realistic_events(EVENTS)
    rates = []
    for _ in range(5):
        journal = Journal(Metrics(CollectorRegistry()), structlog.get_logger("bench"))
        woken: list[object] = []
        watcher = Watcher(FakeEngine(), journal, woken.append)
        gc.collect()
        start = time.process_time()
        for raw in events:
            watcher.handle(mapping.event_from_api(raw))
        rates.append(len(events) / (time.process_time() - start))
    return rates


# --- memory ------------------------------------------------------------------------------------


def measure_rss(*, real: bool) -> dict[str, Any]:
    """`real`: the answers dressed as a real engine's (benchmarks/real_shape.py)."""
    eng = build(1000)
    answers = dressed(eng.freeze()) if real else eng.freeze()
    # what the image does not install is not imported: the daemon's imports, not this venv's
    refused = ",".join(not_in_image(Path(__file__).parent.parent / "requirements/runtime.txt"))
    with tempfile.NamedTemporaryFile(suffix=".msgpack") as f:
        f.write(msgspec.msgpack.encode(answers))
        f.flush()
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.rss", f.name, LEADER, str(NOW), refused],
            capture_output=True,
            text=True,
            check=False,
            cwd=Path(__file__).resolve().parent.parent,
        )
    if done.returncode != 0:
        print(f"rss: the measuring process failed:\n{done.stderr}", file=sys.stderr)
        return {}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --- probes (benchmarks/probe_bench.py, written separately) ----------------------------------


def measure_probes() -> dict[str, float | None]:
    keys = PROBE_KEYS
    if importlib.util.find_spec("benchmarks.probe_bench") is None:
        print(
            "probes: benchmarks/probe_bench.py does not exist yet: reported as null",
            file=sys.stderr,
        )
        return dict.fromkeys(keys)
    try:
        got = importlib.import_module("benchmarks.probe_bench").measure()
        return {k: float(got[k]) if got.get(k) is not None else None for k in keys}
    except Exception as exc:  # noqa: BLE001 - a measurement: report what failed, exit 0
        print(
            f"probes: benchmarks/probe_bench.py failed: {exc!r}; reported as null", file=sys.stderr
        )
        return dict.fromkeys(keys)


# --- report ------------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model or platform.processor(),
        "python": platform.python_version(),
    }


def _shown(value: object) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{value:,}"


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    ap.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    ap.add_argument(
        "--compare",
        nargs="?",
        const="",
        metavar="REV",
        help="this tree beside REV, measured in one run (default REV: the newest tag reachable "
        "from HEAD, else PREVIOUS of tests/multilab/test_rolling_upgrade.py)",
    )
    ap.add_argument(
        "--runs", type=int, default=compare.RUNS, help="runs of each side with --compare"
    )
    args = ap.parse_args(argv)
    if args.compare is not None:
        root = Path(__file__).resolve().parent.parent
        return compare.main(root, args.compare or None, args.runs, TARGETS, as_json=args.json)
    as_json = args.json
    med = statistics.median
    scan = measure_scan()
    runs = scan["runs"]
    rates = measure_events()
    rss = measure_rss(real=True)
    rss_fake = measure_rss(real=False)
    probes = measure_probes()
    ledger = ledger_bench.measure()
    mtu = mtu_bench.measure()
    figures: dict[str, Any] = {
        "scan_cpu_ms_10k": round(med(runs["scan: observe + clock + match, steady"]), 2),
        "api_calls_per_scan": scan["calls"],
        "events_per_s": round(med(rates)),
        "rss_mib_10k": rss.get("after_100_scans"),
        **probes,
        # context for the figures above
        "scan_cpu_ms_10k_cold": round(med(runs["scan: observe + clock + match, cold"]), 2),
        "scan_cpu_ms_10k_before": round(med(runs["scan: dicts -> mapping.py (before)"]), 2),
        "match_cpu_ms_10k": round(med(runs["match (all runbooks)"]), 2),
        "api_calls_per_scan_naive": scan["naive"],
        "rss_mib_imports": rss.get("imports"),
        "rss_mib_10k_fake_shaped": rss_fake.get("after_100_scans"),
        "answers_mib_10k": rss.get("answers_mib"),
        # the ledger at its cap of incident records (benchmarks/ledger_bench.py)
        **{f"ledger_{k}": v for k, v in ledger.items()},
        # what overlay-mtu's probes add to a round at 100 nodes (benchmarks/mtu_bench.py)
        **{f"probe_{k}": v for k, v in mtu.items()},
        "machine": machine(),
    }
    if as_json:
        print(json.dumps(figures))
        return 0
    m = figures["machine"]
    print(f"machine: {m['nproc']} CPUs, {m['cpu']}, Python {m['python']}")
    print(
        "world: 100 nodes, 1000 services, 10000 tasks; "
        f"model from bytes == model from dicts: {scan['same_model']}"
    )
    print(f"\n{f'CPU ms (time.process_time), {REPS} reps':<44} {'median':>8} {'min':>8}")
    for label, r in runs.items():
        print(f"  {label:<42} {med(r):8.2f} {min(r):8.2f}")
    print(f"  steady: {CHURN} of 10000 tasks change between scans; cold: nothing decoded before")
    print(f"\n{'figure':<28} {'value':>12} {'target':>12}   baseline (same run)")
    baselines = {
        "scan_cpu_ms_10k": f"{figures['scan_cpu_ms_10k_before']} ms with dicts -> mapping.py; "
        f"{figures['scan_cpu_ms_10k_cold']} ms cold",
        "api_calls_per_scan": f"{scan['naive']} with one task list per service",
        "rss_mib_10k": f"{rss.get('imports')} MiB after the imports alone; "
        f"{rss_fake.get('after_100_scans')} MiB with the fake's lean answers",
        **{
            key: "; ".join(
                f"{_shown(figures.get(f'{key}_{way}'))} {said}"
                for way, said in (
                    ("windows", "windows of that size"),
                    ("rotation", "40-target rotation"),
                    ("full", "every pair"),
                )
            )
            for key in (
                "probe_round_cpu_ms_100n",
                "probe_bytes_per_node_100n",
                "probe_find_s_worst_100n",
            )
        },
        "probe_node_cpu_ms_100n": "one node's worst of 10 rounds (its list received, then "
        "its tasks / 4 a round, as real connects); median time to find "
        f"{_shown(figures.get('probe_find_s_median_100n'))} s",
    }
    for key, (op, target) in TARGETS.items():
        shown = _shown(figures.get(key))
        print(f"  {key:<26} {shown:>12} {op + f'{target:,.0f}':>12}   {baselines.get(key, '')}")
    print(
        f"\nthe ledger with {ledger['records']} incident records (baseline: none): the answer "
        f"{ledger['answer_kib']} KiB ({ledger['answer_kib_before']}), a scan's read "
        f"{ledger['scan_read_ms']} ms ({ledger['scan_read_ms_before']}), a claim's write "
        f"{ledger['claim_write_ms']} ms, a record's write {ledger['record_write_ms']} ms "
        f"({ledger['write_ms_before']}), report {ledger['report_ms']} ms"
    )
    print(
        f"\noverlay-mtu at 100 nodes: the brain's round (decode, fold, runbook) "
        f"{mtu['mtu_brain_ms_healthy']} ms with its fields, {mtu['mtu_brain_ms_without']} ms "
        f"without (baseline), {mtu['mtu_brain_ms_fault']} ms with one node's underlay losing "
        f"large packets; an answer {mtu['mtu_bytes_added_healthy']} bytes larger "
        f"({mtu['mtu_bytes_added_fault_worst']} for that node's); a node's echoes "
        f"{mtu['mtu_node_ms_per_namespace']} ms CPU per overlay namespace a round"
    )
    if rss:
        print(
            f"\nmemory (VmRSS, MiB): python {rss['python']}, after the daemon's imports "
            f"{rss['imports']}, after 1 scan {rss['after_1_scan']}, after 100 scans "
            f"{rss['after_100_scans']} (answers shaped like Engine 28's, held by the fake: "
            f"{rss['answers_mib']} MiB; the fake's own lean answers: "
            f"{rss_fake.get('answers_mib')} MiB, {rss_fake.get('after_100_scans')} MiB after "
            "100 scans)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
