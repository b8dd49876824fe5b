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

import pytest

from swarm_medic.core.protocol import PROTOCOL
from swarm_medic.nodes.channel import sign
from tests.labkit import image_id, node_pid, on_node, record_timing, ts
from tests.multilab.kit import (
    SWARM_ALONE,
    NodeMedics,
    Web,
    container_pid,
    first_finding,
    heal_and_check,
    in_container_netns,
    overlay_ips,
    swarm_alone,
)
from tests.waiting import wait_until

pytestmark = pytest.mark.lab


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
    # named as swarm names a task container: the hand refuses any other (a copy, say)
    name = f"{web.name}.1.{gone_task}"
    args += ["--label", f"com.docker.swarm.task.name={name}", "--name", name]
    cid = on_node(3, "run", "-d", *args, image_id(), "sleep", "3600")
    time.sleep(SWARM_ALONE)
    assert on_node(3, "inspect", "-f", "{{.State.Running}}", cid) == "true"  # swarm: no idea
    # grace: 2 s of ours plus the service's 1 s stop grace period, from the first sighting
    medics = node_medics(runbook_orphan_container_grace="2s")
    brain, finding = first_finding(medics, "orphan-container", 30)
    assert cid[:12] in str(finding["summary"]) and "no longer exists" in str(finding["summary"])
    action = brain.wait_for("action: remove_orphan done", 15)
    healed = brain.wait_for("verified: healed", 30, runbook="orphan-container")
    assert not on_node(3, "ps", "-aq", "--filter", f"id={cid}")
    hand = next(m for m in medics if m.find("hand: task container stopped and removed"))
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
    medics = node_medics(log_level="debug")
    medics[1].wait_for("event stream connected", 20)
    time.sleep(1)
    task = web.running_on()["node2"]
    service_id = on_node(1, "service", "inspect", "-f", "{{.ID}}", web.name)
    url = "http://10.99.0.12:9324/v1/act"  # node2's instance, on the lab bridge
    body = json.dumps(
        {"kind": "remove_task_container", "task": task, "service": service_id}
    ).encode()
    node2 = on_node(2, "info", "-f", "{{.Swarm.NodeID}}").strip()
    node3 = on_node(3, "info", "-f", "{{.Swarm.NodeID}}").strip()
    forged = sign(b"not-the-secret", "POST", "/v1/act", body, time.time(), node=node2)
    assert post(url, body, {"Content-Type": "application/json", **forged}) == 401
    assert post(url, body, {"Content-Type": "application/json"}) == 401  # unsigned

    secret = next(
        iter(sorted(p.read_bytes() for p in medics[0].log_path.parent.glob("channel-secret")))
    )
    probe_body = json.dumps({"protocol": PROTOCOL}).encode()  # one without is protocol 1's
    signed = sign(secret.strip(), "POST", "/v1/probe", probe_body, time.time(), node=node2)
    probe_url = "http://10.99.0.12:9324/v1/probe"
    assert post(probe_url, probe_body, {"Content-Type": "application/json", **signed}) == 200
    assert post(probe_url, probe_body, {"Content-Type": "application/json", **signed}) == 401
    # node3's genuine request, replayed to node2: refused (the signature names node3)
    for_node3 = sign(secret.strip(), "POST", "/v1/probe", probe_body, time.time(), node=node3)
    assert post(probe_url, probe_body, {"Content-Type": "application/json", **for_node3}) == 401
    # Each refusal is counted; the log says the first and then at most one a minute (a stream
    # of forged requests must not bury the log): which refusal is which is in tests/unit.
    refused = medics[1].find("refused brain-to-node request")
    assert [r["why"] for r in refused] == ["bad signature (wrong secret or altered request)"]
    # only ever a lab node's address on the lab bridge (10.99.0.0/24)
    with urllib.request.urlopen("http://10.99.0.12:9324/metrics", timeout=5) as resp:
        scraped = resp.read().decode()
    assert "swarm_medic_channel_refused_total 4.0" in scraped.splitlines()
    assert web.running_on().get("node2") == task  # nothing was removed

    # What probing costs on this lab (3 nodes, 3 services on one overlay), from the brain
    brain = medics[0]  # node1 leads
    wait_until("5 probe rounds", lambda: len(brain.find("probe round")) >= 5, 30)
    rounds = brain.find("probe round")[1:]  # the first round meets agents still starting
    probes = sorted(int(str(r["probes"])) for r in rounds)
    cpu = sorted(float(str(r["cpu_seconds"])) for r in rounds)
    wall = sorted(float(str(r["seconds"])) for r in rounds)
    record_timing(
        measure="probe cost per round (brain)",
        rounds=len(rounds),
        probes=probes[len(probes) // 2],
        cpu_seconds=cpu[len(cpu) // 2],
        wall_seconds=wall[len(wall) // 2],
    )


GOSSIP = (
    ("tcp", "INPUT", "--dport"),
    ("udp", "INPUT", "--dport"),
    ("tcp", "OUTPUT", "--dport"),
    ("udp", "OUTPUT", "--dport"),
)


def gossip_rules(node: int, verb: str) -> None:
    """Add (-I) or delete (-D) DROP rules for the gossip port 7946 in node I's namespace:
    the control plane (2377) still works, the node stays Ready, its networkdb goes stale."""
    pid = node_pid(node)
    for proto, chain, port in GOSSIP:
        subprocess.run(
            [
                "nsenter",
                "-t",
                pid,
                "-n",
                "iptables",
                verb,
                chain,
                "-p",
                proto,
                port,
                "7946",
                "-j",
                "DROP",
            ],
            check=True,
            capture_output=True,
        )


def test_stale_dns_on_a_gossip_partitioned_node(web: Web, node_medics: NodeMedics) -> None:
    gossip_rules(3, "-I")
    try:
        # a new task whose service discovery record node3 can no longer learn
        on_node(1, "service", "scale", "-d", f"{web.name}=4")
        wait_until(
            "4 web tasks",
            lambda: len([t for t in web.tasks() if t["CurrentState"].startswith("Running")]) == 4,
            60,
        )
        time.sleep(SWARM_ALONE)  # swarm alone: node3's answer stays wrong
        # K so large that unreachable-endpoint stays quiet: this test is about DNS
        medics = node_medics(runbook_stale_dns_grace="4s", probe_failures="100")
        brain, finding = first_finding(medics, "stale-dns", 60, service=web.name)
        # Both sides go stale: the others drop node3's records when memberlist declares it
        # dead, node3 never learns the new task. Which node's answer is checked first varies.
        assert "missing" in str(finding["diagnosis"])
        assert any(f"node{i}:" in str(finding["diagnosis"]) for i in (1, 2, 3))
        brain.wait_for("decision: report only", 10, runbook="stale-dns")
        assert not brain.find("action:")
    finally:
        gossip_rules(3, "-D")
    t_back = time.time()
    resolved = brain.wait_for("resolved", 120, runbook="stale-dns")
    record_timing(
        runbook="stale-dns",
        fault="gossip (7946) cut on node3, service scaled",
        swarm_alone=f">{SWARM_ALONE:.0f}s stale",
        detect=round(ts(finding) - brain.started, 1),
        action="none (report)",
        resolved_after_gossip_back=round(ts(resolved) - t_back, 1),
    )


def test_dry_run_only_reports_an_unreachable_task(web: Web, node_medics: NodeMedics) -> None:
    task = web.running_on()["node2"]
    in_container_netns(container_pid(2, task), "ip", "link", "set", "eth0", "down")
    medics = node_medics(dry_run="true")
    brain, finding = first_finding(medics, "unreachable-endpoint", 40, service=web.name)
    assert finding["cause"] == "container"
    brain.wait_for("decision: would replace_task", 10, service=web.name)
    time.sleep(6)  # more rounds: still only words
    assert not [ln for m in medics for ln in m.find("action:")]
    assert not [ln for m in medics for ln in m.find("hand:")]
    assert web.running_on().get("node2") == task  # nothing was replaced
