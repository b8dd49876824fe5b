"""The 3-node lab made whole before each module, and the overlay test service on it."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest

from tests.labkit import MULTILAB, image_id, on_node
from tests.multilab.kit import Web
from tests.waiting import wait_until


@pytest.fixture(scope="module", autouse=True)
def lab_whole(multilab_up: None) -> None:
    """Every node's dockerd up, in the swarm, Ready and active before each module
    (`multilab.sh heal`: a node a test killed and could not restore is started again, a
    drained one made active; a swarm that does not come back whole is rebuilt), so one test's
    fault never fails the modules after it."""
    done = subprocess.run(
        ["bash", str(MULTILAB), "heal"],
        capture_output=True,
        text=True,
        check=False,
        timeout=400,
        env={**os.environ, "MANAGERS": "3"},
    )
    if done.stderr.strip():
        print(done.stderr.strip())  # what was healed, in the test's captured output
    if done.returncode != 0:
        pytest.fail(f"scripts/multilab.sh heal failed:\n{done.stdout}\n{done.stderr}")


@pytest.fixture
def web(multilab_up: None) -> Iterator[Web]:
    tag = uuid.uuid4().hex[:6]
    net, name, vip = f"medic-ov-{tag}", f"medic-web-{tag}", f"medic-vip-{tag}"
    anchor = f"medic-anchor-{tag}"
    labels = [
        "--label",
        "medic.lab=1",
        "--label",
        "swarm-medic.enable=true",
        "--label",
        "swarm-medic.probe.port=80",
    ]
    on_node(1, "network", "create", "-d", "overlay", "--label", "medic.lab=1", net)
    common = ["-d", "--network", net, "--stop-grace-period", "1s", "--no-resolve-image", *labels]
    httpd = [image_id(), "httpd", "-f", "-p", "80", "-h", "/www"]
    on_node(
        1,
        "service",
        "create",
        "--name",
        name,
        "--replicas",
        "3",
        "--endpoint-mode",
        "dnsrr",
        *common,
        *httpd,
    )
    on_node(1, "service", "create", "--name", vip, "--replicas", "1", *common, *httpd)
    # A container on the overlay on every node that is not itself probed, as most real
    # overlays have: the agents prefer such vantage points over the tasks under test.
    on_node(
        1,
        "service",
        "create",
        "--name",
        anchor,
        "--mode",
        "global",
        "-d",
        "--network",
        net,
        "--stop-grace-period",
        "1s",
        "--no-resolve-image",
        "--label",
        "medic.lab=1",
        image_id(),
        "sleep",
        "3600",
    )
    w = Web(name, vip, net)
    wait_until(
        "web on every node", lambda: sorted(w.running_on()) == ["node1", "node2", "node3"], 60
    )
    wait_until(
        "an anchor on every node",
        lambda: len([t for t in w.tasks(anchor) if t["CurrentState"].startswith("Running")]) == 3,
        60,
    )
    yield w
    on_node(1, "service", "rm", name, vip, anchor, check=False)
    # the network goes once the tasks have: retried until removed (or gone), not 50 times
    for _ in range(50):
        if on_node(1, "network", "rm", net, check=False):
            break
        if not on_node(1, "network", "ls", "-q", "--filter", f"name={net}", check=False):
            break
        time.sleep(0.3)
