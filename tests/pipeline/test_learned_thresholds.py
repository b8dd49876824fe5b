"""Thresholds learned per service, end to end on the fake swarm with DEFAULT settings.

A service whose tasks start in a few seconds and that rolled a few times has its hung start
found and acted on within 60 s of the hang (the default would wait 300 s); one whose starts
are slow but steady is never reported; what was learned is in the ledger for a new leader.
"""

from __future__ import annotations

from swarm_medic.core.learned import LEARNED_PREFIX, Book
from swarm_medic.swarm.fake import FakeEngine
from tests.builders import NOW as T0
from tests.pipeline.harness import ENABLE, LEDGER, ME, Harness, swarm

SCAN = 15.0  # the default scan interval


class Roller:
    """Rolls a service the way swarm does: the running task replaced by a new one that
    starts for `start` seconds, the medic scanning every SCAN seconds meanwhile."""

    def __init__(self, fake: FakeEngine, h: Harness, name: str) -> None:
        self.fake, self.h = fake, h
        self.sid = fake.add_service(name, labels=ENABLE)
        self.tid = fake.add_task(self.sid, state="running", node_id=ME, since=T0 - 3600)
        self.t = T0

    def scan(self) -> None:
        self.fake.now = self.t
        self.h.scan(self.t)

    def roll(self, start: float) -> None:
        self.fake.now = self.t
        self.fake.set_task_state(self.tid, "shutdown", desired="shutdown")
        self.tid = self.fake.add_task(
            self.sid, state="starting", node_id=ME, since=self.t, created=self.t - 1
        )
        began = self.t
        self.t += 1
        while self.t < began + start:
            self.scan()
            self.t += SCAN
        self.fake.now = began + start
        self.fake.set_task_state(self.tid, "running")
        self.t = began + start + 1
        self.scan()
        self.t += SCAN

    def hang(self) -> float:
        self.fake.now = self.t
        self.fake.set_task_state(self.tid, "shutdown", desired="shutdown")
        self.tid = self.fake.add_task(
            self.sid, state="starting", node_id=ME, since=self.t, created=self.t - 1
        )
        return self.t


def test_a_hung_start_of_a_fast_service_is_acted_on_within_60s_under_the_defaults() -> None:
    fake = swarm()
    h = Harness(fake)
    web = Roller(fake, h, "web")
    web.scan()
    web.t += SCAN
    for start in (2, 3, 5, 4, 3, 2):
        web.roll(start)
    hung_at = web.hang()
    while web.t <= hung_at + 60 and not h.logs.named("action: force_update done"):
        web.t += SCAN
        web.scan()
    (done,) = h.logs.named("action: force_update done")
    (finding,) = h.logs.named("finding")
    assert finding["service"] == "web"
    assert finding["cause"] == "hang"
    assert "starting after 20s (learned from" in finding["summary"]
    assert web.t - hung_at <= 60 - 10  # and the replaced task starts in seconds
    assert done["service"] == "web"

    # in the ledger, for a new leader
    doc = fake.read_ledger(LEDGER)
    assert doc is not None
    entry = Book.from_labels(doc.labels).by_service[web.sid]
    assert entry.count("starting") >= 6
    assert LEARNED_PREFIX + web.sid in doc.labels
    again = Harness(fake)
    again.scan(web.t + 1)
    again.scan(web.t + 2)
    assert again.medic.learned[web.sid].count("starting") == entry.count("starting")


def test_a_slow_but_steady_service_is_never_reported() -> None:
    fake = swarm()
    h = Harness(fake)
    slow = Roller(fake, h, "slow")
    slow.scan()
    slow.t += SCAN
    for start in (40, 42, 38, 41, 40, 39, 44, 40, 43):
        slow.roll(start)
    assert h.logs.named("finding") == []
    assert h.logs.named("action: force_update done") == []
    assert h.medic.learned[slow.sid].learned("starting") is not None


def test_the_ledger_is_not_written_every_scan() -> None:
    fake = swarm()
    h = Harness(fake)
    web = Roller(fake, h, "web")
    web.scan()
    web.t += SCAN
    web.roll(3)
    versions = []
    for _ in range(8):  # two minutes of scans with nothing new
        web.scan()
        web.t += SCAN
        doc = fake.read_ledger(LEDGER)
        versions.append(doc.version if doc else 0)
    assert len(set(versions)) == 1
