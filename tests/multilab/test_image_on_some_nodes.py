"""image-on-some-nodes on the 3-node lab: an image that exists on one node only (tagged there,
never pushed: the lab has no registry) and a global service over the three nodes. It runs on
that node and is rejected for the image on the other two, again and again; a medic on the
leader names both sides and the likely cause, once, and repeated-rejection stays quiet about
those tasks. A service whose image is everywhere stays quiet.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.labkit import MedicProcess, image_id, node_sock, on_node, record_timing, ts
from tests.multilab.kit import leader_index, node_id
from tests.waiting import wait_until

pytestmark = pytest.mark.lab

Medic = Callable[..., MedicProcess]
HOME = 1  # the one node that has the image


@pytest.fixture
def only_here() -> Iterator[tuple[str, str, float]]:
    """A global service whose image exists on node HOME only -> (service, image, created)."""
    tag = uuid.uuid4().hex[:6]
    image = f"medic/only-here:{tag}"
    on_node(HOME, "tag", image_id(), image)
    name = f"medic-only-here-{tag}"
    created = time.time()
    on_node(
        leader_index(),
        "service",
        "create",
        "-d",
        "--name",
        name,
        "--mode",
        "global",
        "--stop-grace-period",
        "1s",
        "--label",
        "medic.lab=1",
        "--no-resolve-image",
        image,
        "sleep",
        "3600",
    )
    yield name, image, created
    on_node(leader_index(), "service", "rm", name, check=False)
    on_node(HOME, "image", "rm", image, check=False)


@pytest.fixture
def everywhere() -> Iterator[str]:
    """A global service whose image every node has (by id: no pull is tried)."""
    name = f"medic-everywhere-{uuid.uuid4().hex[:6]}"
    on_node(
        leader_index(),
        "service",
        "create",
        "-d",
        "--name",
        name,
        "--mode",
        "global",
        "--stop-grace-period",
        "1s",
        "--label",
        "medic.lab=1",
        "--no-resolve-image",
        image_id(),
        "sleep",
        "3600",
    )
    yield name
    on_node(leader_index(), "service", "rm", name, check=False)


def running_on(name: str) -> list[str]:
    out = on_node(
        leader_index(),
        "service",
        "ps",
        name,
        "--filter",
        "desired-state=running",
        "--format",
        "{{.Node}} {{.CurrentState}}",
    )
    return sorted(line.split()[0] for line in out.splitlines() if " Running" in line)


def test_an_image_on_one_node_is_named_with_the_nodes_that_cannot_get_it(
    only_here: tuple[str, str, float], everywhere: str, medic: Medic
) -> None:
    name, image, created = only_here
    wait_until(f"{name} running on node{HOME}", lambda: running_on(name) == [f"node{HOME}"], 60)
    wait_until(f"{everywhere} on every node", lambda: len(running_on(everywhere)) == 3, 60)
    m = medic(docker_host=node_sock(leader_index()))

    finding = m.wait_for("finding", 120, runbook="image-on-some-nodes")
    assert finding["service"] == name
    others = sorted(f"node{i}" for i in (1, 2, 3) if i != HOME)
    summary = str(finding["summary"])
    assert f"image {image} runs on node{HOME} and is rejected on {', '.join(others)}" in summary
    # a tag never pushed, with no digest: only where it was built or loaded
    assert finding["cause"] == "local-only"
    assert sorted(finding["nodes"]) == sorted(node_id(i) for i in (1, 2, 3))
    m.wait_for("decision: report only", 10, runbook="image-on-some-nodes")

    time.sleep(6)  # more rejections, three more scans
    assert len(m.find("finding", runbook="image-on-some-nodes")) == 1  # once per incident
    assert not m.find("finding", runbook="repeated-rejection", service=name)  # one story
    assert not m.find("finding", service=everywhere)  # the image is everywhere: quiet
    assert not m.find("action:")

    record_timing(
        runbook="image-on-some-nodes",
        fault="image tagged on one node only (never pushed), global service over 3 nodes",
        detect=round(ts(finding) - created, 1),
        detect_after_medic_start=round(ts(finding) - m.started, 1),
        action="none (report once)",
    )
