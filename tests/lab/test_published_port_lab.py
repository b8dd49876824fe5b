"""published-port on the real single-node lab: a published port dead at the node's address
while the service's task runs.

The node's address is the swarm's advertise address, 127.0.0.1 here. On loopback a host-mode
port is served by the engine's userland proxy alone (docker's nat OUTPUT rule skips
127.0.0.0/8), so killing that `docker-proxy` process kills the port at 127.0.0.1 while the
container, its task and its iptables DNAT rule all stay: the mapping is gone and swarm does
not notice. The proxy is a child of dockerd that nothing restarts (dockerd only reaps it when
the container stops), so the port stays dead until the task is replaced.

Ingress mode needs IPVS, which this kernel does not have: such a port never answers here,
and the finding must say the node has no IPVS.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable
from functools import partial
from itertools import pairwise
from pathlib import Path

import pytest

from tests.labkit import Lab, MedicProcess, docker, record_timing, ts
from tests.netkit import free_port
from tests.waiting import wait_until

pytestmark = pytest.mark.lab

HTTPD = ("httpd", "-f", "-p", "80", "-h", "/www")
PROBES = {"probe_interval": "2s", "probe_grace": "1s", "log_level": "debug"}
K = 3  # --probe-failures, by default

Medic = Callable[..., MedicProcess]


def node_address() -> str:
    addr = docker("node", "inspect", "self", "--format", "{{.Status.Addr}}")
    # the medic probes the address swarm reports; the fault below only works on loopback
    assert addr.startswith("127."), f"the lab node's address is {addr!r}, not loopback"
    return addr


def answers(addr: str, port: int) -> bool:
    try:
        with socket.create_connection((addr, port), timeout=1):
            return True
    except OSError:
        return False


def proxy_pids(port: int) -> list[int]:
    """Pids of the docker-proxy processes serving host port `port` (read from /proc: their
    argv has `-host-port PORT`; one per address family). A killed one that dockerd has not
    reaped is a zombie with an empty cmdline: not listed."""
    want = str(port).encode()
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # gone meanwhile
        if not argv or os.path.basename(argv[0]) != b"docker-proxy":
            continue
        if any(a == b"-host-port" and v == want for a, v in pairwise(argv)):
            out.append(int(entry.name))
    return sorted(out)


def running_tasks(lab: Lab, name: str) -> list[str]:
    return [t["ID"] for t in lab.tasks(name) if t["CurrentState"].startswith("Running")]


def test_a_host_port_whose_proxy_died_is_reported(lab: Lab, medic: Medic) -> None:
    addr, port = node_address(), free_port()
    name = lab.create(
        "pport-host", "--publish", f"mode=host,target=80,published={port}", command=HTTPD
    )
    wait_until(f"{name} running", partial(running_tasks, lab, name), 30)
    wait_until(f"{addr}:{port} answers", partial(answers, addr, port), 20)
    (task,) = running_tasks(lab, name)
    m = medic(**PROBES)
    m.wait_for("probe round", 20)

    pids = proxy_pids(port)
    assert pids, f"no docker-proxy serves port {port}: is the engine's userland proxy off?"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    t_fault = time.time()
    wait_until("the proxies gone", lambda: proxy_pids(port) == [], 5)

    # swarm alone: the task keeps running, the same one, and the port stays dead
    def found() -> bool:
        assert running_tasks(lab, name) == [task], "swarm replaced or lost the task"
        assert not answers(addr, port), "the port came back by itself"
        return bool(m.find("finding", runbook="published-port", service=name))

    wait_until("published-port finding", found, K * 2 + 20, every=1.0)
    (f,) = m.find("finding", runbook="published-port", service=name)
    assert f["cause"] == "host-mapping"
    assert (
        f"published port {port}/tcp (host mode) of {name} does not answer at {addr}"
        in (f["summary"])
    )
    assert f"docker service update --force {name}" in f["diagnosis"]
    assert m.find("action:") == []
    record_timing(
        runbook="published-port",
        fault="docker-proxy of a host-mode port killed",
        swarm_alone="task kept running, port stayed dead",
        detect=round(ts(f) - t_fault, 1),
        actions=0,
    )


def test_an_ingress_port_on_a_kernel_without_ipvs_is_reported_as_such(
    lab: Lab, medic: Medic
) -> None:
    if os.path.exists("/proc/net/ip_vs"):
        pytest.skip("this kernel has IPVS: the routing mesh may work here")
    addr, port = node_address(), free_port()
    name = lab.create(
        "pport-mesh", "--publish", f"mode=ingress,target=80,published={port}", command=HTTPD
    )
    wait_until(f"{name} running", partial(running_tasks, lab, name), 30)
    m = medic(**PROBES)
    t_start = time.time()

    def found() -> bool:
        assert running_tasks(lab, name), "the task stopped running"
        assert not answers(addr, port), "the routing mesh answers without IPVS?"
        return bool(m.find("finding", runbook="published-port", service=name))

    wait_until("published-port finding", found, K * 2 + 25, every=1.0)
    (f,) = m.find("finding", runbook="published-port", service=name)
    assert f["cause"] == "no-ipvs"
    assert f"(ingress mode) of {name} does not answer at {addr}" in f["summary"]
    assert f["diagnosis"].startswith(
        f"node {docker('node', 'inspect', 'self', '--format', '{{.Description.Hostname}}')} "
        "has no IPVS (no /proc/net/ip_vs): the routing mesh cannot work there; publish with "
        "mode=host or load the ip_vs module"
    )
    record_timing(
        runbook="published-port",
        fault="ingress-mode port on a kernel without IPVS",
        swarm_alone="task running, port never answers",
        detect=round(ts(f) - t_start, 1),
        actions=0,
    )
