"""The status page (GET /) in a real headless browser (tests/browserkit.py: Debian's chromium
driven by Selenium).

A real Medic on the FakeEngine (built-in runbooks, policy, executor, verifier, probe rounds
through a scripted agent) makes real incidents, a healed fix and a failed one, an open circuit
breaker and a probe matrix with a failing cell; the daemon's HTTP server serves the page on
127.0.0.1.
The browser must show all of it, colour the matrix, log no console error, and run no script
from a hostile service name. The screenshot goes to the test's tmp dir, and to
docs/status-page.png (the README's) when SWARM_MEDIC_SCREENSHOT=1.
"""

from __future__ import annotations

import http.client
import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from selenium import webdriver
from selenium.webdriver.common.by import By

from swarm_medic import __version__
from swarm_medic.core.ledger import PREFIX, History, encode
from swarm_medic.core.parsers import Share
from swarm_medic.core.settings import HttpSettings, ProbeSettings, SafetySettings, Settings
from swarm_medic.nodes.rounds import Prober
from swarm_medic.pipeline import registry
from swarm_medic.pipeline.scan import Medic
from swarm_medic.swarm.fake import FakeEngine
from swarm_medic.telemetry.journal import Journal
from swarm_medic.telemetry.metrics import Metrics
from swarm_medic.web import view
from swarm_medic.web.http import Server, serve
from swarm_medic.web.status import Page
from tests.browserkit import chromium, console_problems
from tests.builders import NOW as T0
from tests.pipeline.harness import NET, ScriptedAgent
from tests.pipeline.support import Logs

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "status-page.png"
ENABLE = {"swarm-medic.enable": "true"}
EVIL = "<script>document.title='pwned'</script>"
SETTINGS = Settings(
    # most services of the page's swarm fail at once: the storm guard off (share 1) to act
    safety=SafetySettings(verify_hold=0.0, storm_share=Share(1.0)),
    probes=ProbeSettings(probe_interval=1.0, probe_failures=2, probe_grace=0.0),
    http=HttpSettings(http_port=9100),
)


def _stuck(fake: FakeEngine, name: str, labels: dict[str, str]) -> tuple[str, str]:
    sid = fake.add_service(name, labels=labels)
    return sid, fake.add_task(sid, state="starting", node_id="n1", since=T0 - 400)


def cluster() -> tuple[Medic, list[float]]:
    """The brain on node1 after a few scans: see the module docstring for what it holds."""
    fake = FakeEngine(node_id="n1", now=T0)
    fake.add_node("manager-1", node_id="n1", leader=True)
    fake.add_node("worker-1", node_id="n2", role="worker")
    web = fake.add_service("web", replicas=3, labels={**ENABLE, "swarm-medic.probe.port": "80"})
    tids = []
    for i, node in enumerate(("n1", "n1", "n2"), start=2):
        tid = fake.add_task(web, node_id=node, slot=i - 1, since=T0 - 100)
        fake._tasks[tid]["NetworksAttachments"] = [
            {"Network": {"ID": NET, "Spec": {"Name": "ov"}}, "Addresses": [f"10.0.1.{i}/24"]}
        ]
        tids.append(tid)
    api, api_task = _stuck(fake, "api", ENABLE)  # to be healed
    _stuck(fake, EVIL, {})  # not opted in: an open incident, reported only
    db, _ = _stuck(fake, "db", ENABLE)  # its breaker is open: an open incident, no action
    history = History(open_until=T0 + 900, open_reason="2 fixes in a row not healed")
    fake.write_ledger(SETTINGS.safety.ledger_name, None, {PREFIX + db: encode(history)})

    ids = itertools.count(1)
    agent = ScriptedAgent(fake)
    agent.dead.add(tids[1])  # a task on node1 that does not answer from node1
    now = [T0]
    medic = Medic(
        fake,
        SETTINGS,
        registry.load([registry.builtin_dir()]),
        Journal(Metrics(CollectorRegistry()), Logs().logger),
        clock=lambda: now[0],
        make_id=lambda: f"inc-{next(ids)}",  # the screenshot is the same every run
        prober=Prober(
            SETTINGS.probes,
            agent,
            port=SETTINGS.http.http_port,
            scope=SETTINGS.safety,
            clock=lambda: now[0],
        ),
    )
    medic.scan()  # api: force update
    fake.set_task_state(api_task, "shutdown", desired="shutdown")
    fake.add_task(api, state="running", node_id="n1")
    fake.set_update_status(api, "completed")
    for at in (T0 + 4, T0 + 8, T0 + 12):
        now[0] = at
        medic.scan()
    return medic, now


@pytest.fixture
def page_port() -> Iterator[int]:
    medic, now = cluster()
    page = Page(lambda: view.build(medic, now[0] + 3, version=__version__))
    server: Server = serve(
        "127.0.0.1", 0, CollectorRegistry(), lambda: (True, {"role": "leader"}), status=page
    )
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    with chromium() as driver:
        yield driver


def test_the_page_headers_forbid_scripts(page_port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", page_port, timeout=5)
    conn.request("GET", "/")
    resp = conn.getresponse()
    body = resp.read().decode()
    assert resp.status == 200
    assert resp.getheader("Content-Type") == "text/html; charset=utf-8"
    csp = resp.getheader("Content-Security-Policy")
    assert csp == "default-src 'none'; style-src 'unsafe-inline'"
    assert resp.getheader("Cache-Control") == "no-store"
    assert "<script" not in body


def test_the_brains_page_in_chromium(
    page_port: int, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    # the console log is really read: a page that fails to load is in it
    browser.get(f"http://127.0.0.1:{page_port}/nope")
    assert any("404" in e["message"] for e in console_problems(browser))

    browser.get(f"http://127.0.0.1:{page_port}/")
    text = browser.find_element(By.TAG_NAME, "body").text

    assert browser.title == "swarm-medic: leader on manager-1"  # the hostile name ran nothing
    for seen in (
        "mode ACT",
        "scope opt-in",
        "This node is the brain",
        "Open incidents (3)",
        EVIL,  # shown as text
        "2 fixes in a row not healed",  # the open breaker
        "Last remediations (2, newest first)",
        "Open circuit breakers (1)",
    ):
        assert seen in text, seen

    incidents = browser.find_elements(By.CSS_SELECTOR, "h2 + table tbody tr")
    runbooks = sorted(r.find_element(By.TAG_NAME, "td").text for r in incidents[:3])
    assert runbooks == ["stuck-task", "stuck-task", "unreachable-endpoint"]

    healed = browser.find_element(By.CSS_SELECTOR, "td.healed")
    assert healed.text == "healed"
    assert "199, 236, 208" in healed.value_of_css_property("background-color")  # green
    row = healed.find_element(By.XPATH, "..").text
    assert "api" in row and "force_update" in row and "4s" in row  # time to heal
    # the dead task's replacement could not be carried out (no container on its node): red
    failed = browser.find_element(By.CSS_SELECTOR, "td.failed").find_element(By.XPATH, "..")
    assert "replace_task" in failed.text and "no container of task" in failed.text

    # the matrix: node1 probed web's three tasks, one failing (red); node2 was never asked
    (failing,) = browser.find_elements(By.CSS_SELECTOR, "table.reach td.failing")
    assert failing.text == "2 ok, 1 failing"
    assert "248, 198, 201" in failing.value_of_css_property("background-color")  # red
    header = browser.find_element(By.CSS_SELECTOR, "table.reach tbody th").text
    assert header == "manager-1"

    assert console_problems(browser) == []

    browser.save_screenshot(str(tmp_path / "status-page.png"))
    if os.environ.get("SWARM_MEDIC_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(exist_ok=True)
        browser.save_screenshot(str(SCREENSHOT))
