"""What one instance costs Prometheus: the samples of its /metrics, counted as a scrape sees
them, for a worker and for the brain, with every built-in runbook loaded and no incident.

Issue 18 measured 1,653 series on an idle brain (on the lab), most of them zeros created up
front for every runbook x reason x action, each counter doubled by `_created`; some 80,000 for
50 nodes. The bound: at most 150 on a worker and 400 on the brain. The figures are printed
(`pytest -s`) so a change in cost shows in the test's output, not only when it crosses a bound.
"""

from __future__ import annotations

import http.client

from prometheus_client import CollectorRegistry

from swarm_medic.app import App
from swarm_medic.core.settings import Settings
from swarm_medic.pipeline import registry as registry_mod
from swarm_medic.swarm.fake import FakeEngine
from swarm_medic.telemetry.http import serve
from tests.builders import NOW as T0

WORKER_BOUND = 150
BRAIN_BOUND = 400


def a_swarm(me: str, *, role: str) -> FakeEngine:
    """Three managers and two workers, healthy services with running tasks: no fault."""
    fake = FakeEngine(node_id=me, now=T0)
    fake.add_node("manager-1", node_id="mgr1", leader=True)
    for i in (2, 3):
        fake.add_node(f"manager-{i}", node_id=f"mgr{i}")
    for i in (1, 2):
        fake.add_node(f"worker-{i}", node_id=f"wrk{i}", role="worker")
    fake.manager = role == "manager"  # a worker's engine refuses the manager-only calls
    for name in ("web", "api", "db"):
        sid = fake.add_service(name, labels={"swarm-medic.enable": "true"})
        for node in ("mgr1", "wrk1"):
            fake.add_task(sid, state="running", node_id=node, since=T0 - 3600)
    return fake


def scrape(app: App) -> list[str]:
    """The sample lines of GET /metrics on the App's own HTTP server (loopback, port 0)."""
    server = serve("127.0.0.1", 0, app.prom, app.health)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", int(server.server_address[1]), timeout=5)
        conn.request("GET", "/metrics")
        body = conn.getresponse().read().decode()
        conn.close()
    finally:
        server.shutdown()
        server.server_close()
    return [ln for ln in body.splitlines() if ln and not ln.startswith("#")]


def idle_instance(me: str, *, role: str) -> tuple[App, list[str]]:
    fake = a_swarm(me, role=role)
    app = App(Settings(http_port=0), lambda: fake, CollectorRegistry())
    assert not app.runbooks.errors
    builtin = {
        p.stem.replace("_", "-")
        for p in registry_mod.builtin_dir().glob("*.py")
        if not p.name.startswith("_")
    }
    assert set(app.runbooks.runbooks) == builtin  # every built-in runbook is loaded
    app.banner()
    now = [T0]
    app.medic.clock = lambda: now[0]
    for i in range(3):  # scans as the daemon's schedule runs them: nothing is wrong
        now[0] = fake.now = T0 + 15 * i
        app.medic.scan()
    assert not app.medic.open_incidents
    return app, scrape(app)


def families(samples: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for ln in samples:
        name = ln.split("{")[0].split(" ")[0]
        out[name] = out.get(name, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def test_a_worker_and_the_brain_stay_within_their_series_budget() -> None:
    worker_app, worker = idle_instance("wrk1", role="worker")
    assert worker_app.medic.state.role == "worker"
    brain_app, brain = idle_instance("mgr1", role="manager")
    assert brain_app.medic.state.role == "leader"

    print(f"\nseries on an idle worker: {len(worker)} (bound {WORKER_BOUND})")
    print(f"series on an idle brain:  {len(brain)} (bound {BRAIN_BOUND})")
    print("brain, biggest families:", list(families(brain).items())[:6])

    assert len(worker) <= WORKER_BOUND, families(worker)
    assert len(brain) <= BRAIN_BOUND, families(brain)
    for samples in (worker, brain):
        assert not [s for s in samples if "_created" in s.split(" ")[0]]
        # nothing says "0 of something that never happened" per runbook
        assert not [s for s in samples if s.startswith("swarm_medic_actions_total")]
        assert not [s for s in samples if s.startswith("swarm_medic_decisions_total")]
