"""Overlay faults on the 3-node lab, with one swarm-medic per node (inside the node).

Each test injects its fault for real inside a task's network namespace (nsenter into the
container's pid, no docker exec), shows swarm alone leaves it broken, then shows the brain
finds it within K probe rounds, classifies it, and that the task's node's hand replaces it and
it answers from every node again.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from swarm_medic.channel import sign
from tests.labkit import (
    MedicProcess,
    image_id,
    on_node,
    record_timing,
    ts,
    wait_until,
)

pytestmark = pytest.mark.lab
NodeMedics = Callable[..., list[MedicProcess]]
SWARM_ALONE = 8.0  # seconds we watch swarm do nothing about the fault
K = 2  # SWARM_MEDIC_PROBE_FAILURES in the node_medics fixture


@dataclass
class Web:
    name: str
    vip: str
    network: str

    def tasks(self, service: str | None = None) -> list[dict[str, str]]:
        out = on_node(
            1,
            "service",
            "ps",
            service or self.name,
            "--no-trunc",
            "--filter",
            "desired-state=running",
            "--format",
            "{{json .}}",
            check=False,
        )
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def running_on(self) -> dict[str, str]:
        """node hostname -> task id, for running tasks."""
        return {t["Node"]: t["ID"] for t in self.tasks() if t["CurrentState"].startswith("Running")}


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
    for _ in range(50):
        if not on_node(1, "network", "rm", net, check=False):
            time.sleep(0.3)


def container_pid(node: int, task_id: str) -> str:
    cid = on_node(node, "ps", "-q", "--filter", f"label=com.docker.swarm.task.id={task_id}")
    return on_node(node, "inspect", "-f", "{{.State.Pid}}", cid)


def in_container_netns(pid: str, *argv: str) -> None:
    subprocess.run(["nsenter", "-t", pid, "-n", *argv], check=True, capture_output=True)


def overlay_ips(node: int, network: str) -> list[str]:
    """IPs on `network` of every container of node `node`."""
    ips = []
    for cid in on_node(node, "ps", "-q").split():
        raw = on_node(node, "inspect", "-f", "{{json .NetworkSettings.Networks}}", cid)
        ips += [n["IPAddress"] for name, n in json.loads(raw).items() if name == network]
    return ips


def first_finding(
    medics: list[MedicProcess], runbook: str, timeout: float, **match: str
) -> tuple[MedicProcess, dict[str, object]]:
    def found() -> tuple[MedicProcess, dict[str, object]] | None:
        for m in medics:
            hits = m.find("finding", runbook=runbook, **match)
            if hits:
                return m, hits[0]
        return None

    try:
        hit: tuple[MedicProcess, dict[str, object]] = wait_until(
            f"{runbook} finding", found, timeout
        )
    except AssertionError as exc:
        tails = "\n".join(f"--- {m.log_path.name}\n{m.tail(15)}" for m in medics)
        raise AssertionError(f"{exc}\n{tails}") from None
    return hit


def actions(medics: list[MedicProcess], task: str) -> list[dict[str, object]]:
    return [ln for m in medics for ln in m.find("action:") if task in (ln.get("tasks") or [])]


def swarm_alone(web: Web, task: str, node: str) -> None:
    """Swarm does nothing about it: the same task stays Running on the same node."""
    time.sleep(SWARM_ALONE)
    assert web.running_on().get(node) == task, "swarm replaced the task by itself"


def heal_and_check(
    web: Web,
    medics: list[MedicProcess],
    task: str,
    *,
    cause: str,
    fault: str,
    t_fault: float,
) -> None:
    brain, finding = first_finding(medics, "unreachable-endpoint", K * 6 + 20, service=web.name)
    assert finding["tasks"] == [task]
    assert finding["cause"] == cause, finding["summary"]
    action = brain.wait_for("action: replace_task done", 15, service=web.name)
    healed = brain.wait_for("verified: healed", 60, service=web.name)
    assert "answer from every node" in str(healed["detail"])
    assert len(actions(medics, task)) == 1  # one instance acted, once
    assert task not in web.running_on().values()  # the broken task is gone
    record_timing(
        runbook="unreachable-endpoint",
        fault=fault,
        cause=cause,
        swarm_alone=f">{SWARM_ALONE:.0f}s broken",
        detect=round(ts(finding) - brain.started, 1),
        heal=round(ts(healed) - ts(action), 1),
        fault_to_healed=round(ts(healed) - t_fault, 1),
    )


def test_interface_down_in_a_task_is_replaced(web: Web, node_medics: NodeMedics) -> None:
    task = web.running_on()["node3"]
    in_container_netns(container_pid(3, task), "ip", "link", "set", "eth0", "down")
    t_fault = time.time()
    swarm_alone(web, task, "node3")
    medics = node_medics()
    heal_and_check(
        web,
        medics,
        task,
        cause="container",
        fault="overlay interface down inside the task",
        t_fault=t_fault,
    )
    # the VIP service: its VIP never answers on this kernel, the finding says why
    _, dead = first_finding(medics, "dead-vip", 30, service=web.vip)
    assert dead["cause"] == "no-ipvs" and "dnsrr" in str(dead["diagnosis"])


def test_port_dropped_inside_a_task_is_replaced(web: Web, node_medics: NodeMedics) -> None:
    task = web.running_on()["node2"]
    in_container_netns(
        container_pid(2, task),
        "iptables",
        "-I",
        "INPUT",
        "-p",
        "tcp",
        "--dport",
        "80",
        "-j",
        "DROP",
    )
    t_fault = time.time()
    swarm_alone(web, task, "node2")
    heal_and_check(
        web,
        node_medics(),
        task,
        cause="container",
        fault="DROP on the service port inside the task",
        t_fault=t_fault,
    )


def test_unreachable_from_one_node_only(web: Web, node_medics: NodeMedics) -> None:
    task = web.running_on()["node3"]
    pid = container_pid(3, task)
    for ip in overlay_ips(2, web.network):  # node2's side of the overlay only
        in_container_netns(pid, "iptables", "-I", "INPUT", "-s", ip, "-j", "DROP")
    t_fault = time.time()
    swarm_alone(web, task, "node3")
    heal_and_check(
        web,
        node_medics(),
        task,
        cause="some-nodes",
        fault="DROP from one node's overlay addresses",
        t_fault=t_fault,
    )


def test_orphan_container_is_removed(web: Web, node_medics: NodeMedics) -> None:
    node3 = on_node(3, "info", "--format", "{{.Swarm.NodeID}}")
    service_id = on_node(1, "service", "inspect", "-f", "{{.ID}}", web.name)
    gone_task = uuid.uuid4().hex[:25]  # a task id swarm never had (or long forgot)
    labels = {
        "com.docker.swarm.task.id": gone_task,
        "com.docker.swarm.service.id": service_id,
        "com.docker.swarm.service.name": web.name,
        "com.docker.swarm.node.id": node3,
    }
    args = [a for k, v in labels.items() for a in ("--label", f"{k}={v}")]
    cid = on_node(3, "run", "-d", *args, image_id(), "sleep", "3600")
    time.sleep(SWARM_ALONE)
    assert on_node(3, "inspect", "-f", "{{.State.Running}}", cid) == "true"  # swarm: no idea
    medics = node_medics()
    brain, finding = first_finding(medics, "orphan-container", 30)
    assert cid[:12] in str(finding["summary"]) and "no longer exists" in str(finding["summary"])
    action = brain.wait_for("action: remove_orphan done", 15)
    healed = brain.wait_for("verified: healed", 30, runbook="orphan-container")
    assert not on_node(3, "ps", "-aq", "--filter", f"id={cid}")
    hand = next(m for m in medics if m.find("hand: removed"))
    assert hand is medics[2]  # node3's own instance removed it
    record_timing(
        runbook="orphan-container",
        fault="task container unknown to swarm",
        swarm_alone=f">{SWARM_ALONE:.0f}s running",
        detect=round(ts(finding) - brain.started, 1),
        heal=round(ts(healed) - ts(action), 1),
    )


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    # only ever a lab node's address on the lab bridge (10.99.0.0/24)
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_forged_and_replayed_requests_are_refused(
    web: Web, node_medics: NodeMedics, tmp_path: object
) -> None:
    medics = node_medics()
    medics[1].wait_for("event stream connected", 20)
    time.sleep(1)
    task = web.running_on()["node2"]
    service_id = on_node(1, "service", "inspect", "-f", "{{.ID}}", web.name)
    url = "http://10.99.0.12:9324/v1/act"  # node2's instance, on the lab bridge
    body = json.dumps(
        {"kind": "remove_task_container", "task": task, "service": service_id}
    ).encode()
    forged = sign(b"not-the-secret", "POST", "/v1/act", body, time.time())
    assert post(url, body, {"Content-Type": "application/json", **forged}) == 401
    assert post(url, body, {"Content-Type": "application/json"}) == 401  # unsigned

    secret = next(
        iter(sorted(p.read_bytes() for p in medics[0].log_path.parent.glob("channel-secret")))
    )
    probe_body = b"{}"
    signed = sign(secret.strip(), "POST", "/v1/probe", probe_body, time.time())
    probe_url = "http://10.99.0.12:9324/v1/probe"
    assert post(probe_url, probe_body, {"Content-Type": "application/json", **signed}) == 200
    assert post(probe_url, probe_body, {"Content-Type": "application/json", **signed}) == 401
    refused = medics[1].find("refused brain-to-node request")
    assert [r["why"] for r in refused][:3] == [
        "bad signature (wrong secret or altered request)",
        "unsigned request",
        "replayed request (nonce already used)",
    ]
    assert web.running_on().get("node2") == task  # nothing was removed
