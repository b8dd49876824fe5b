"""Notifications on the lab swarm: the story of a real fault, told to a JSON webhook, in order,
once, with one incident id.

A service whose task hangs in Starting (the healthcheck start period of labkit.hang_service) is
healed by the medic, started with `--notify json://127.0.0.1:PORT/hook` pointing at a receiver
in this test (the medic runs on this host: loopback reaches it). A second run reads the URL
from a file, as a docker secret would give it (SWARM_MEDIC_NOTIFY_FILE), in dry-run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.labkit import Lab, MedicProcess, hang_service, ts
from tests.netkit import Receiver
from tests.waiting import wait_until

pytestmark = pytest.mark.lab

Medic = Callable[..., MedicProcess]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def of(receiver: Receiver, service: str) -> list[dict[str, str]]:
    return [m for m in receiver.messages() if m.get("service") == service]


def seconds(took: str) -> float:
    """ "16.0s" or "1m05s" -> seconds."""
    minutes, _, rest = took.rpartition("m")
    return 60 * float(minutes or 0) + float(rest.rstrip("s"))


def test_the_story_of_a_healed_hang_arrives_in_order_once(
    lab: Lab, medic: Medic, tmp_path: Path, receiver: Receiver
) -> None:
    name = hang_service(lab, tmp_path, "notify")
    wait_until("task in Starting", lambda: lab.current_states(name) == ["Starting"], 30)
    m = medic("--notify", receiver.url(), runbook_stuck_task_after="starting=5s")

    healed = m.wait_for("verified: healed", 90, service=name)
    wait_until("3 messages", lambda: len(of(receiver, name)) >= 3, 15)
    time.sleep(6)  # three more scans: nothing more is told (the incident closed while verifying)

    story = of(receiver, name)
    assert [s["step"] for s in story] == ["finding", "action", "healed"], story
    assert {s["incident"] for s in story} == {healed["incident"]}
    finding, action, done = story
    assert finding["title"].startswith("swarm-medic: finding (warning) on " + name)
    assert finding["diagnosis"]
    assert action["title"].startswith("swarm-medic: action: force_update done on " + name)
    assert done["title"].startswith("swarm-medic: verified: healed on " + name)
    assert seconds(done["time to heal"]) == pytest.approx(healed["elapsed_seconds"], abs=1)
    # none failed or dropped: the log says nothing of notifications
    assert not [ln for ln in m.lines() if str(ln.get("event", "")).startswith("notification")]
    # the messages came after the steps they tell, each once
    assert ts(m.find("finding", service=name)[0]) <= ts(healed)
    assert lab.current_states(name) == ["Running"]


def test_dry_run_tells_what_it_would_do_from_a_secret_file(
    lab: Lab, medic: Medic, tmp_path: Path, receiver: Receiver
) -> None:
    name = hang_service(lab, tmp_path, "notify-dry")
    wait_until("task in Starting", lambda: lab.current_states(name) == ["Starting"], 30)
    secret = tmp_path / "notify-urls"
    secret.write_text(receiver.url() + "\n")  # as a docker secret holds it
    m = medic(runbook_stuck_task_after="starting=3s", dry_run="true", notify_file=str(secret))

    m.wait_for("decision: would force_update", 30, service=name)
    wait_until("2 messages", lambda: len(of(receiver, name)) >= 2, 15)
    time.sleep(6)
    story = of(receiver, name)
    assert [s["step"] for s in story] == ["finding", "would"], story
    assert len({s["incident"] for s in story}) == 1
    assert "would force_update (dry-run: nothing changed)" in story[1]["title"]
    assert lab.current_states(name) == ["Starting"]
