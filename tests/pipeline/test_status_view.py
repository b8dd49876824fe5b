"""The status page's data from a real Medic (web/view.py): the brain's page is complete,
another node's page says where the brain is, and building it never waits on a scan."""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry

from swarm_medic.core.settings import HttpSettings, SafetySettings, Settings
from swarm_medic.pipeline import registry
from swarm_medic.pipeline.scan import Medic
from swarm_medic.swarm.fake import FakeEngine
from swarm_medic.telemetry.journal import Journal
from swarm_medic.telemetry.metrics import Metrics
from swarm_medic.web import view
from swarm_medic.web.status import render
from tests.builders import NOW as T0
from tests.pipeline.harness import ME, Harness, fix, stuck_service, swarm
from tests.pipeline.support import Logs

SETTINGS = Settings(safety=SafetySettings(dry_run=True), http=HttpSettings(http_port=9100))


def medic(fake: FakeEngine) -> Medic:
    return Medic(
        fake,
        SETTINGS,
        registry.load([registry.builtin_dir()]),
        Journal(Metrics(CollectorRegistry()), Logs().logger),
        clock=lambda: T0,
    )


def three_managers(me_leads: bool) -> FakeEngine:
    """Seen from m2; three managers, as two would be a manager-quorum incident of their own."""
    fake = FakeEngine(node_id="m2", now=T0)
    fake.add_node("manager-1", node_id="m1", leader=not me_leads)
    fake.add_node("manager-2", node_id="m2", leader=me_leads)
    fake.add_node("manager-3", node_id="m3")
    sid = fake.add_service("web", labels={"swarm-medic.enable": "true"})
    fake.add_task(sid, state="starting", node_id="m2", since=T0 - 400)
    return fake


def test_the_brain_sees_its_incidents() -> None:
    m = medic(three_managers(me_leads=True))
    m.scan()
    v = view.build(m, T0 + 1, version="x", pause="paused by ops")
    assert (v.role, v.node, v.brain, v.mode, v.pause) == (
        "leader",
        "manager-2",
        "manager-2",
        "dry-run",
        "paused by ops",
    )
    (inc,) = v.incidents
    assert (inc.runbook, inc.service) == ("stuck-task", "web")
    assert "starting" in inc.diagnosis
    assert v.brain_url == ""  # no link to itself


def test_a_manager_that_does_not_lead_points_to_the_brain() -> None:
    m = medic(three_managers(me_leads=False))
    m.scan()
    v = view.build(m, T0 + 1, version="x")
    assert (v.role, v.node, v.brain) == ("manager", "manager-2", "manager-1")
    assert v.brain_url == "http://127.0.0.1:9100/"
    assert v.incidents == ()  # the brain's page has them
    page = render(v)
    assert "The brain is <b>manager-1</b>" in page


def test_a_worker_says_the_brain_is_on_the_leader() -> None:
    fake = three_managers(me_leads=False)
    fake.manager = False
    m = medic(fake)
    m.scan()
    v = view.build(m, T0 + 1, version="x")
    assert (v.role, v.brain) == ("worker", "")
    assert "This node is a worker" in render(v)


def test_the_view_is_built_while_a_scan_holds_its_lock() -> None:
    m = medic(three_managers(me_leads=True))
    m.scan()
    with m._lock:  # a scan waiting on the engine
        done = threading.Event()

        def build() -> None:
            view.build(m, T0 + 1, version="x")
            done.set()

        threading.Thread(target=build, daemon=True).start()
        assert done.wait(5)


def test_the_brains_page_shows_what_the_healing_was_worth_from_the_ledger() -> None:
    """Read from the shared ledger as the scan last read it, as `report` reads it."""
    fake = swarm()
    h = Harness(fake)
    sid, tid = stuck_service(fake)
    h.scan(T0)
    fix(fake, sid, tid)
    h.scan(T0 + 5)
    h.scan(T0 + 16)  # verified healed; the record is written after the scan's ledger read
    h.scan(T0 + 30)
    v = view.build(h.medic, T0 + 31, version="x")
    assert v.worth is not None
    (st,) = v.worth.runbooks
    assert (st.runbook, st.found, st.fixed, st.healed, st.heal_p50) == ("stuck-task", 1, 1, 1, 16)
    page = render(v)
    assert "What the healing was worth" in page and "16s / 16s" in page
    # a manager that does not lead shows none: the brain's page has them
    fake._nodes[ME]["ManagerStatus"]["Leader"] = False
    fake.add_node("manager-2", node_id="mgr2", leader=True)
    h.scan(T0 + 45)
    assert view.build(h.medic, T0 + 46, version="x").worth is None
