"""Port 9324 kept between the swarm's nodes (issue 16, section 7), on the 3-node lab.

The shipped stack is deployed (dry-run), then the DOCKER-USER rules of deploy/README.md
("4c. Keep the port between the swarm's nodes") are applied inside every node: NEW connections
to the published port 9324 are accepted from the three nodes' addresses and from the node's own
containers (docker_gwbridge: the medic probes its own node's published port) only. Then:

* the brain's signed requests still pass: every node that is not the brain keeps serving its
  probe plans (`swarm_medic_probe_plans_served_total` grows);
* another address is refused: a connection from 10.99.0.99 (a second address put on node1's
  own interface for the test) to node2:9324 gets no answer, while the same request from
  node1's own address (10.99.0.11) is answered; before the rules, 10.99.0.99 was answered too;
* nothing else is dropped: the DROP rule of node1 and node3 counts no packet.

All traffic stays on the lab's own network (10.99.0.0/24, inside the lab's namespaces). The
rules and the extra address are removed afterwards.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.labkit import node_pid, record_timing
from tests.multilab import stack
from tests.multilab.kit import Web
from tests.waiting import wait_until

pytestmark = pytest.mark.lab

OUTSIDER = "10.99.0.99"  # not a node: a second address on node1's interface, for the test


def in_node_net(i: int, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run argv in node I's network namespace only (the host's files, the node's network)."""
    return subprocess.run(
        ["nsenter", "-t", node_pid(i), "-n", "--", *argv],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def rules() -> list[list[str]]:
    """The rules of deploy/README.md 4c, in the order they are inserted (-I: each goes first)."""
    match = ["-p", "tcp", "-m", "conntrack", "--ctstate", "NEW", "--ctorigdstport"]
    out = [["DOCKER-USER", *match, str(stack.PORT), "-j", "DROP"]]
    port = str(stack.PORT)
    for j in stack.NODES:
        source = ["-s", stack.node_addr(j)]
        out.append(["DOCKER-USER", *match[:2], *source, *match[2:], port, "-j", "RETURN"])
    # the node's own containers (the medic's published-port probes of its own node)
    out.append(["DOCKER-USER", "-i", "docker_gwbridge", *match, port, "-j", "RETURN"])
    return out


def asked_from(i: int, source: str, to: int, path: str = "/healthz") -> str:
    """From inside node I, bound to `source`: GET http://node<to>:9324<path> -> its status
    line, or 'no answer: ...' when the connection is refused or times out."""
    code = (
        "import socket,sys\n"
        f"s=socket.socket(); s.settimeout(3); s.bind(({source!r},0))\n"
        "try:\n"
        f"    s.connect(({stack.node_addr(to)!r},{stack.PORT}))\n"
        f"    s.sendall(b'GET {path} HTTP/1.1\\r\\nHost: t\\r\\n\\r\\n')\n"
        "    print(s.recv(200).split(b'\\r\\n')[0].decode())\n"
        "except OSError as e:\n"
        "    print('no answer:', type(e).__name__)\n"
    )
    done = in_node_net(i, sys.executable, "-c", code)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def metric_from_node1(to: int, name: str) -> float:
    code = (
        "import urllib.request\n"
        f"print(urllib.request.urlopen('http://{stack.node_addr(to)}:{stack.PORT}/metrics',"
        " timeout=5).read().decode())\n"
    )
    done = in_node_net(1, sys.executable, "-c", code)
    assert done.returncode == 0, done.stderr
    values = [
        float(line.rsplit(" ", 1)[1])
        for line in done.stdout.splitlines()
        if line.startswith(name) and line[len(name) : len(name) + 1] in (" ", "{")
    ]
    return sum(values)


@pytest.fixture(scope="module")
def deployed(multilab_up: None) -> Iterator[str]:
    stack.remove()  # an interrupted earlier run
    stack.load_image(stack.IMAGE)
    image = stack.image_id()
    stack.create_secret()
    stack.deploy(image, dry_run=True)
    wait_until("one healthy medic task per node", lambda: stack.healthy_everywhere(image), 120, 1)
    yield image
    stack.remove()


@pytest.fixture
def outsider() -> Iterator[str]:
    added = in_node_net(1, "ip", "addr", "add", f"{OUTSIDER}/24", "dev", "eth0")
    assert added.returncode == 0, added.stderr
    yield OUTSIDER
    in_node_net(1, "ip", "addr", "del", f"{OUTSIDER}/24", "dev", "eth0")


@pytest.fixture
def firewalled() -> Iterator[None]:
    applied: list[tuple[int, list[str]]] = []
    try:
        for i in stack.NODES:
            for rule in rules():
                done = in_node_net(i, "iptables", "-I", *rule)
                assert done.returncode == 0, done.stderr
                applied.append((i, rule))
        yield
    finally:
        for i, rule in reversed(applied):
            in_node_net(i, "iptables", "-D", *rule)


def dropped(i: int) -> int:
    """Packets node I's DROP rule (the last of the chain) has dropped."""
    listed = in_node_net(i, "iptables", "-L", "DOCKER-USER", "-v", "-n", "-x").stdout
    drops = [ln.split() for ln in listed.splitlines() if " DROP " in f" {ln} "]
    assert len(drops) == 1, listed
    return int(drops[0][0])


def seen() -> str:
    """What a failure needs: every node's counters and DOCKER-USER packet counts."""
    out = []
    for i in stack.NODES:
        names = ("swarm_medic_probe_plans_served_total", "swarm_medic_channel_refused_total")
        out.append(f"node{i}: " + ", ".join(f"{n}={metric_from_node1(i, n)}" for n in names))
        out.append(in_node_net(i, "iptables", "-L", "DOCKER-USER", "-v", "-n").stdout)
    worried = [ln for ln in stack.logs() if ln.get("level") in ("warning", "error")]
    out += [json.dumps(ln)[:300] for ln in worried[-15:]]
    return "\n".join(out)


def test_docker_user_rules_keep_9324_to_the_nodes_and_the_brain_still_passes(
    deployed: str, outsider: str, web: Web, request: pytest.FixtureRequest
) -> None:
    # `web` (3 probed httpd tasks and an anchor on every node, tests/multilab/conftest.py) gives
    # the brain something to probe: with nothing to probe it sends no plan at all
    before = asked_from(1, outsider, 2)
    assert before.startswith("HTTP/1.1 200"), before  # reachable from anywhere, by default

    request.getfixturevalue("firewalled")
    t0 = time.monotonic()
    refused = asked_from(1, outsider, 2)
    allowed = asked_from(1, stack.node_addr(1), 2)
    assert refused.startswith("no answer"), refused
    assert allowed.startswith("HTTP/1.1 200"), allowed

    brain = [i for i in stack.NODES if metric_from_node1(i, "swarm_medic_leader") == 1]
    assert len(brain) == 1, brain
    others = [i for i in stack.NODES if i != brain[0]]
    served = {i: metric_from_node1(i, "swarm_medic_probe_plans_served_total") for i in others}

    def grown() -> bool:
        now = {i: metric_from_node1(i, "swarm_medic_probe_plans_served_total") for i in others}
        return all(now[i] >= served[i] + 2 for i in others)

    what = "every other node served the brain's probe plans through the rules"
    try:
        wait_until(what, grown, 60, 1)
    except AssertionError as e:
        raise AssertionError(f"{e}\nbrain: node{brain[0]}, before: {served}\n{seen()}") from None
    # nothing of the swarm's own was dropped: only the outsider's connections to node2
    for i in stack.NODES:
        if i != 2:
            assert dropped(i) == 0, seen()
    refused_channel = sum(metric_from_node1(i, "swarm_medic_channel_refused_total") for i in others)
    assert refused_channel == 0
    record_timing(
        test="DOCKER-USER rules on 9324 (3 nodes)",
        brain_passed_after_rules_seconds=round(time.monotonic() - t0, 1),
    )
