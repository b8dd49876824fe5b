"""swarm_medic.reach: probe plans from a snapshot, and the Reachability history."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import pytest

from swarm_medic.model import Node, Service, Snapshot, SwarmInfo, Task
from swarm_medic.reach import Cell, Reachability, plans, probe_port
from swarm_medic.settings import Settings

NOW = 1_700_000_000.0
NET_A = "neta0123456789abcdef"
NET_B = "netb0123456789abcdef"
ENABLE = {"swarm-medic.enable": "true"}
SETTINGS = Settings()  # scope opt-in, probe_grace 20 s


def node(nid: str, state: str = "ready") -> Node:
    return Node(
        id=nid,
        hostname=f"host-{nid}",
        role="worker",
        availability="active",
        state=state,
        addr=f"10.9.0.{nid[-1]}",
    )


def service(
    sid: str = "s1",
    *,
    name: str = "web",
    labels: Mapping[str, str] | None = None,
    ports: tuple[int, ...] = (80,),
    endpoint_mode: str = "vip",
    vips: tuple[tuple[str, str], ...] = (),
) -> Service:
    return Service(
        id=sid,
        name=name,
        version=1,
        labels=MappingProxyType(dict(ENABLE if labels is None else labels)),
        endpoint_mode=endpoint_mode,
        target_ports=ports,
        vips=vips,
    )


def task(
    tid: str,
    node_id: str,
    *,
    sid: str = "s1",
    nets: tuple[tuple[str, str], ...] = ((NET_A, "10.0.1.2"),),
    state: str = "running",
    age: float = 100.0,
) -> Task:
    return Task(
        id=tid,
        service_id=sid,
        slot=1,
        node_id=node_id,
        state=state,
        desired_state="running",
        timestamp=NOW - age,
        addresses=tuple((net, f"name-{net[:4]}", ip) for net, ip in nets),
    )


def snap(services: list[Service], tasks: list[Task], nodes: list[Node] | None = None) -> Snapshot:
    return Snapshot(
        taken_at=NOW,
        info=SwarmInfo("n1", "10.9.0.1", "active", True),
        nodes=tuple(nodes if nodes is not None else [node("n1"), node("n2"), node("n3")]),
        services=tuple(services),
        tasks=tuple(tasks),
    )


def tcp_targets(plan: Mapping[str, Any]) -> list[tuple[str, str, bool]]:
    return sorted((p["task"], p["net"], p["local"]) for p in plan["tcp"])


# --- probe_port -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "ports", "want"),
    [
        ({}, (8080, 9090), 8080),
        ({"swarm-medic.probe.port": "9000"}, (8080,), 9000),
        ({"swarm-medic.probe.port": "9000"}, (), 9000),
        ({"swarm-medic.probe.port": "http"}, (8080,), None),
        ({"swarm-medic.probe.port": "70000"}, (8080,), None),
        ({}, (), None),
    ],
)
def test_probe_port(labels: dict[str, str], ports: tuple[int, ...], want: int | None) -> None:
    assert probe_port(service(labels={**ENABLE, **labels}, ports=ports)) == want


# --- plans ----------------------------------------------------------------------------------


def test_only_services_in_scope_with_a_port_are_probed() -> None:
    services = [
        service("in", name="in"),
        service(
            "label-port", name="lp", labels={**ENABLE, "swarm-medic.probe.port": "81"}, ports=()
        ),
        service("not-opted-in", name="x1", labels={}),
        service("opted-out", name="x2", labels={"swarm-medic.enable": "false"}),
        service("self", name="x3", labels={**ENABLE, "swarm-medic.self": "true"}),
        service("no-port", name="x4", ports=()),
    ]
    tasks = [task(f"t-{s.id}", "n1", sid=s.id) for s in services]
    got = plans(snap(services, tasks), SETTINGS, NOW)
    assert {p["service"] for p in got["n1"]["tcp"]} == {"in", "label-port"}
    ports = {p["service"]: p["port"] for p in got["n1"]["tcp"]}
    assert ports == {"in": 80, "label-port": 81}


def test_scope_all_probes_services_without_the_label() -> None:
    s = service(labels={})
    got = plans(snap([s], [task("t1", "n1")]), Settings(scope="all"), NOW)
    assert tcp_targets(got["n1"]) == [("t1", NET_A, True)]


def test_tasks_younger_than_the_grace_and_not_running_are_not_probed() -> None:
    tasks = [
        task("old", "n1", age=SETTINGS.probe_grace + 1),
        task("young", "n1", age=SETTINGS.probe_grace - 1),
        task("starting", "n1", state="starting"),
    ]
    got = plans(snap([service()], tasks), SETTINGS, NOW)
    assert tcp_targets(got["n1"]) == [("old", NET_A, True)]


def test_each_node_probes_the_networks_it_has_a_task_on() -> None:
    tasks = [
        task("a1", "n1", nets=((NET_A, "10.0.1.2"),)),
        task("a2", "n2", nets=((NET_A, "10.0.1.3"), (NET_B, "10.0.2.3"))),
        task("b3", "n3", nets=((NET_B, "10.0.2.4"),)),
    ]
    got = plans(snap([service()], tasks), SETTINGS, NOW)
    assert tcp_targets(got["n1"]) == [("a1", NET_A, True), ("a2", NET_A, False)]
    assert tcp_targets(got["n2"]) == [
        ("a1", NET_A, False),
        ("a2", NET_A, True),
        ("a2", NET_B, True),
        ("b3", NET_B, False),
    ]
    assert tcp_targets(got["n3"]) == [("a2", NET_B, False), ("b3", NET_B, True)]
    probe = next(p for p in got["n1"]["tcp"] if p["task"] == "a2")
    assert probe == {
        "net": NET_A,
        "task": "a2",
        "service": "s1",
        "ip": "10.0.1.3",
        "port": 80,
        "local": False,
    }


def test_a_node_without_a_task_on_a_probed_network_is_asked_with_an_empty_plan() -> None:
    # every ready node answers each round (its task containers), probes or not
    got = plans(snap([service()], [task("a1", "n1"), task("a2", "n2")]), SETTINGS, NOW)
    assert sorted(got) == ["n1", "n2", "n3"]
    assert got["n3"] == {"tcp": [], "dns": [], "vip": []}


def test_one_dns_entry_per_service_and_network() -> None:
    web, api = service("s1", name="web"), service("s2", name="api")
    tasks = [
        task("w1", "n1", nets=((NET_A, "10.0.1.2"), (NET_B, "10.0.2.2"))),
        task("w2", "n1", nets=((NET_A, "10.0.1.3"),)),
        task("a1", "n1", sid="s2", nets=((NET_A, "10.0.1.9"),)),
    ]
    got = plans(snap([web, api], tasks), SETTINGS, NOW)
    dns = sorted((d["service"], d["net"], d["name"]) for d in got["n1"]["dns"])
    assert dns == [
        ("s1", NET_A, "tasks.web"),
        ("s1", NET_B, "tasks.web"),
        ("s2", NET_A, "tasks.api"),
    ]


def test_vip_entries_only_for_endpoint_mode_vip_on_the_nodes_networks() -> None:
    vip = service("s1", name="web", vips=((NET_A, "10.0.1.100"), (NET_B, "10.0.2.100")))
    rr = service("s2", name="rr", endpoint_mode="dnsrr", vips=((NET_A, "10.0.1.200"),))
    tasks = [task("w1", "n1"), task("r1", "n1", sid="s2", nets=((NET_A, "10.0.1.9"),))]
    got = plans(snap([vip, rr], tasks), SETTINGS, NOW)
    assert got["n1"]["vip"] == [{"net": NET_A, "service": "s1", "ip": "10.0.1.100", "port": 80}]


def test_down_nodes_get_no_plan_but_their_tasks_are_still_targets() -> None:
    nodes = [node("n1"), node("n2", state="down"), node("n3", state="unknown")]
    got = plans(snap([service()], [task("a1", "n1"), task("a2", "n2")], nodes), SETTINGS, NOW)
    assert sorted(got) == ["n1"]
    assert tcp_targets(got["n1"]) == [("a1", NET_A, True), ("a2", NET_A, False)]


# --- Reachability.record ----------------------------------------------------------------------


def tcp(t: str, ok: bool | None, error: str = "") -> dict[str, Any]:
    return {"net": NET_A, "task": t, "service": "s1", "ok": ok, "error": error}


def answer(*probes: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"tcp": list(probes), "dns": [], "vip": [], "errors": [], **extra}


S2 = snap([service()], [task("a1", "n1", nets=((NET_A, "10.0.1.2"),))])


def test_consecutive_failures_count_up_and_reset_on_success() -> None:
    r = Reachability()
    for i, ok in enumerate([False, False, False, True, False]):
        r.record(S2, {"n2": answer(tcp("a1", ok, "timeout"))}, NOW + i)
        if i == 2:
            assert r.tcp[("n2", "a1")] == Cell(False, "timeout", 3, NOW + 2)
    assert r.tcp[("n2", "a1")].fails == 1
    assert r.rounds == 5
    assert r.round_at == NOW + 4


def test_a_success_clears_the_error() -> None:
    r = Reachability()
    r.record(S2, {"n2": answer(tcp("a1", False, "refused"))}, NOW)
    r.record(S2, {"n2": answer(tcp("a1", True, ""))}, NOW + 1)
    assert r.tcp[("n2", "a1")] == Cell(True, "", 0, NOW + 1)


def test_from_nodes_lists_each_vantage_of_a_task() -> None:
    r = Reachability()
    r.record(
        S2,
        {"n1": answer(tcp("a1", True)), "n2": answer(tcp("a1", False, "timeout"))},
        NOW,
    )
    assert {n: c.ok for n, c in r.from_nodes("a1").items()} == {"n1": True, "n2": False}
    assert r.probes_last_round == 2


def test_an_answer_without_a_vantage_point_is_no_opinion() -> None:
    r = Reachability()
    r.record(S2, {"n2": answer(tcp("a1", None, "no vantage point"))}, NOW)
    assert r.tcp == {}
    assert r.probes_last_round == 0


def test_cells_of_tasks_no_longer_probed_are_dropped() -> None:
    r = Reachability()
    r.record(S2, {"n2": answer(tcp("a1", False), tcp("gone", False))}, NOW)
    assert set(r.tcp) == {("n2", "a1"), ("n2", "gone")}
    r.record(S2, {"n2": answer(tcp("a1", False))}, NOW + 1)
    assert set(r.tcp) == {("n2", "a1")}
    assert r.tcp[("n2", "a1")].fails == 2


def test_cells_of_a_node_that_did_not_answer_are_dropped() -> None:
    r = Reachability()
    r.record(S2, {"n2": answer(tcp("a1", False)), "n3": answer(tcp("a1", True))}, NOW)
    r.record(S2, {"n3": answer(tcp("a1", True))}, NOW + 1)
    assert set(r.tcp) == {("n3", "a1")}


def dns(ips: list[str] | None) -> dict[str, Any]:
    return {"net": NET_A, "service": "s1", "name": "tasks.web", "ips": ips, "error": ""}


DNS_SNAP = snap(
    [service()],
    [
        task("a1", "n1", nets=((NET_A, "10.0.1.2"),)),
        task("a2", "n2", nets=((NET_A, "10.0.1.3"),)),
        task("old", "n2", nets=((NET_A, "10.0.1.4"),), state="shutdown"),
    ],
)


def test_dns_that_agrees_with_the_running_tasks_has_no_since() -> None:
    r = Reachability()
    r.record(DNS_SNAP, {"n1": {"dns": [dns(["10.0.1.3", "10.0.1.2"])]}}, NOW)
    assert r.dns[("n1", "s1", NET_A)] == (("10.0.1.2", "10.0.1.3"), None)


def test_dns_disagreement_since_is_set_kept_and_cleared() -> None:
    r = Reachability()
    stale = {"n1": {"dns": [dns(["10.0.1.2", "10.0.1.4"])]}}  # 10.0.1.4 is a shut-down task
    r.record(DNS_SNAP, stale, NOW)
    assert r.dns[("n1", "s1", NET_A)] == (("10.0.1.2", "10.0.1.4"), NOW)
    r.record(DNS_SNAP, {"n1": {"dns": [dns(["10.0.1.2"])]}}, NOW + 15)  # another disagreement
    assert r.dns[("n1", "s1", NET_A)] == (("10.0.1.2",), NOW)  # since the first one
    r.record(DNS_SNAP, {"n1": {"dns": [dns(["10.0.1.2", "10.0.1.3"])]}}, NOW + 30)
    assert r.dns[("n1", "s1", NET_A)] == (("10.0.1.2", "10.0.1.3"), None)
    r.record(DNS_SNAP, stale, NOW + 45)
    assert r.dns[("n1", "s1", NET_A)][1] == NOW + 45  # a new disagreement starts afresh


def test_a_failed_dns_lookup_changes_nothing() -> None:
    r = Reachability()
    r.record(DNS_SNAP, {"n1": {"dns": [dns(["10.0.1.9"])]}}, NOW)
    r.record(DNS_SNAP, {"n1": {"dns": [dns(None)]}}, NOW + 15)
    assert r.dns[("n1", "s1", NET_A)] == (("10.0.1.9",), NOW)
    assert r.probes_last_round == 0


def test_vip_cells_count_failures() -> None:
    r = Reachability()
    vip = {"net": NET_A, "service": "s1", "ip": "10.0.1.100", "port": 80}
    for i in range(3):
        r.record(S2, {"n1": {"vip": [{**vip, "ok": False, "error": "timeout"}]}}, NOW + i)
    assert r.vip[("n1", "s1", NET_A)] == Cell(False, "timeout", 3, NOW + 2)
    r.record(S2, {"n1": {"vip": [{**vip, "ok": True, "error": ""}]}}, NOW + 3)
    assert r.vip[("n1", "s1", NET_A)].fails == 0


def test_ipvs_containers_and_errors_are_stored_per_node() -> None:
    r = Reachability()
    ctr = {"id": "c1", "task": "a1", "service": "s1", "state": "running"}
    r.record(
        S2,
        {
            "n1": answer(ipvs=True, containers=[ctr, "junk"], errors=["vantage c1: gone"]),
            "n2": answer(ipvs=False),
        },
        NOW,
    )
    assert r.ipvs == {"n1": True, "n2": False}
    assert r.containers == {"n1": [ctr], "n2": []}
    assert r.errors == {"n1": ["vantage c1: gone"], "n2": []}


def test_malformed_entries_are_skipped() -> None:
    r = Reachability()
    r.record(S2, {"n1": {"tcp": ["junk", 3], "dns": [None], "vip": ["x"]}}, NOW)
    assert (r.tcp, r.dns, r.vip, r.probes_last_round) == ({}, {}, {}, 0)


def test_dns_entries_no_longer_probed_are_forgotten() -> None:
    r = Reachability()
    r.record(DNS_SNAP, {"n2": {"dns": [dns(["10.0.1.2", "10.0.1.4"])]}}, NOW)
    assert ("n2", "s1", NET_A) in r.dns
    r.record(DNS_SNAP, {"n1": {"dns": [dns(["10.0.1.2", "10.0.1.3"])]}}, NOW + 15)
    assert ("n2", "s1", NET_A) not in r.dns


def test_vip_cells_no_longer_probed_are_forgotten() -> None:
    r = Reachability()
    vip = {"net": NET_A, "service": "s1", "ip": "10.0.1.100", "port": 80}
    r.record(S2, {"n1": {"vip": [{**vip, "ok": False, "error": "timeout"}]}}, NOW)
    r.record(S2, {"n1": {"vip": []}}, NOW + 15)
    assert ("n1", "s1", NET_A) not in r.vip
