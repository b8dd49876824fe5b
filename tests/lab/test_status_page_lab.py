"""The status page of a real `swarm-medic run` on the lab swarm, read in chromium.

A real stuck-task incident (a task hung in Starting, not opted in, so it stays open and is only
reported): the medic's own page at 127.0.0.1:<port>/ must show it under "Open incidents" with
its diagnosis and incident id, say this node is the brain, and log no console error. The
screenshot is kept in the test's tmp dir (the README's comes from the FakeEngine test,
tests/pipeline/test_status_browser.py, which is the same every run).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from tests.browserkit import chromium, console_problems
from tests.labkit import Lab, MedicProcess, hang_service
from tests.netkit import free_port
from tests.waiting import wait_until

pytestmark = pytest.mark.lab

Medic = Callable[..., MedicProcess]


def test_the_page_shows_a_real_stuck_task_incident(lab: Lab, medic: Medic, tmp_path: Path) -> None:
    name = hang_service(lab, tmp_path, "page", once=False, opt_in=False)
    wait_until("task in Starting", lambda: lab.current_states(name) == ["Starting"], 30)
    port = free_port()
    m = medic(runbook_stuck_task_after="starting=3s", http_port=str(port), http_addr="127.0.0.1")
    finding = m.wait_for("finding", 30, runbook="stuck-task", service=name)

    with chromium() as browser:

        def shown() -> str:
            browser.get(f"http://127.0.0.1:{port}/")
            text: str = browser.find_element(By.TAG_NAME, "body").text
            return text if finding["incident"] in text else ""

        text = wait_until("the incident on the page", shown, 20, every=1.0)
        assert "This node is the brain" in text
        assert "scope opt-in" in text
        row = browser.find_element(By.XPATH, f"//td[text()={name!r}]/..").text
        assert "stuck-task" in row
        assert finding["diagnosis"] in row
        assert finding["incident"] in row
        assert console_problems(browser) == []
        browser.save_screenshot(str(tmp_path / "status-page-lab.png"))
