"""The incidents' record in the ledger, at its cap: what it costs every manager on every scan,
the leader on each write, and `report` (or the status page) each time it is asked.

    python -m benchmarks.ledger_bench           # a table
    python -m benchmarks.ledger_bench --json    # one JSON object

A measurement, never a gate: it always exits 0. The ledger holds 50 services' entries and
MAX_RECORDS incident records of a realistic size (acted on, judged, closed); each figure has
its baseline in the same run, the same ledger without the records (what a scan read before
records existed).
"""

from __future__ import annotations

import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from types import MappingProxyType

from swarm_medic.core.ledger import History, Ledger, encode
from swarm_medic.core.model import LedgerDoc
from swarm_medic.core.records import MAX_RECORDS, Closed, IncidentRecord
from swarm_medic.core.records import encode as encode_record
from swarm_medic.core.worth import compute

REPS = 21
NOW = 1_700_000_000.0
SERVICES = 50

RECORD = IncidentRecord(
    "",
    "stuck-task",
    NOW,
    key="stuck-task:xxxxxxxxxxxxxxxxxxxxxxxxx:hang",
    service_id="xxxxxxxxxxxxxxxxxxxxxxxxx",
    service="shop_checkout-api",
    closed=NOW + 30,
    acted=NOW + 1,
    last_acted=NOW + 1,
    actions=1,
    healed=NOW + 45,
)


def ledger_labels(records: int) -> dict[str, str]:
    history = encode(History(actions=((NOW, "stuck-task"),)))
    labels = {f"swarm-medic.svc.{i:025x}": history for i in range(SERVICES)}
    step = 7 * 86400 / max(1, records)
    for i in range(records):
        r = replace(
            RECORD,
            id=f"{i:012x}",
            found=NOW + i * step,
            service_id=f"{i % 40:025x}",
            closed=NOW + i * step + 30,
            acted=NOW + i * step + 1,
            last_acted=NOW + i * step + 1,
            healed=NOW + i * step + 45,
        )
        labels[f"swarm-medic.incident.{r.id}"] = encode_record(r)
    return labels


def cpu_ms(fn: Callable[[], object]) -> float:
    runs = []
    for _ in range(REPS):
        gc.collect()
        start = time.process_time()
        fn()
        runs.append((time.process_time() - start) * 1000)
    return round(statistics.median(runs), 3)


def answer(labels: dict[str, str]) -> bytes:
    """The engine's answer to the ledger's read (`GET /configs?filters=...`), as bytes."""
    spec = {"Name": "swarm-medic-ledger", "Labels": labels, "Data": "c3dhcm0tbWVkaWMgbGVkZ2VyCg=="}
    obj = {"ID": "x" * 25, "Version": {"Index": 1234}, "CreatedAt": "", "Spec": spec}
    return json.dumps([obj]).encode()


def read(body: bytes) -> Ledger:
    """What a scan does with it: the JSON decoded (requests' json()), then the Ledger."""
    (cfg,) = json.loads(body)
    return Ledger.from_doc(LedgerDoc(cfg["ID"], 1, MappingProxyType(cfg["Spec"]["Labels"])))


def measure() -> dict[str, float]:
    full = LedgerDoc("cfg", 1, MappingProxyType(ledger_labels(MAX_RECORDS)))
    bare = LedgerDoc("cfg", 1, MappingProxyType(ledger_labels(0)))
    full_body, bare_body = answer(dict(full.labels)), answer(dict(bare.labels))
    now = NOW + 7 * 86400
    one_close = [Closed(f"{MAX_RECORDS - 1:012x}", now)]
    return {
        "records": MAX_RECORDS,
        "answer_kib": round(len(full_body) / 1024, 1),
        "answer_kib_before": round(len(bare_body) / 1024, 1),
        # every manager, every scan: the answer decoded, the ledger read (records are not)
        "scan_read_ms": cpu_ms(lambda: read(full_body)),
        "scan_read_ms_before": cpu_ms(lambda: read(bare_body)),
        # the leader, writing one record: all decoded, pruned, encoded back
        "record_write_ms": cpu_ms(
            lambda: Ledger.from_doc(full).with_records(one_close).labels(now)
        ),
        # a claim (or the pause): no record changed, the records passed through
        "claim_write_ms": cpu_ms(
            lambda: (
                Ledger.from_doc(full).record_action("s", "stuck-task", now, 3, 60)[0].labels(now)
            )
        ),
        "write_ms_before": cpu_ms(
            lambda: (
                Ledger.from_doc(bare).record_action("s", "stuck-task", now, 3, 60)[0].labels(now)
            )
        ),
        # `report` and the status page: decode and compute the figures
        "report_ms": cpu_ms(lambda: compute(Ledger.from_doc(full).records(), now, 7 * 86400)),
    }


def main(argv: list[str]) -> int:
    got = measure()
    if "--json" in argv:
        print(json.dumps(got))
        return 0
    print(f"the ledger with {got['records']} incident records and {SERVICES} service entries")
    print(f"CPU ms: median of {REPS}")
    print(f"{'figure':<22} {'with records':>14} {'without (baseline)':>20}")
    rows = (
        ("answer KiB", "answer_kib", "answer_kib_before"),
        ("scan read ms", "scan_read_ms", "scan_read_ms_before"),
        ("claim write ms", "claim_write_ms", "write_ms_before"),
        ("record write ms", "record_write_ms", "write_ms_before"),
    )
    for what, key, base in rows:
        print(f"{what:<22} {got[key]:>14} {got[base]:>20}")
    print(f"{'report ms':<22} {got['report_ms']:>14} {'-':>20}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
