"""ip-exhaustion: an overlay subnet with no free address (tasks stuck, often with no error)
or nearly full; never acts."""

from __future__ import annotations

from dataclasses import replace

import pytest

from runbooks.ip_exhaustion import larger_prefix, usable
from swarm_medic.core.errors import SettingsError
from swarm_medic.core.model import Finding, Network, Service, Severity, Task
from swarm_medic.core.runbook import Runbook, context
from swarm_medic.core.settings import Settings
from tests import builders as build
from tests.builders import NOW
from tests.unit.runbooks.kit import REGISTRY

RB: Runbook = REGISTRY.runbooks["ip-exhaustion"]
NET = "net-small"


def network(
    subnets: tuple[str, ...] = ("10.77.3.0/29",),
    *,
    nid: str = NET,
    name: str = "small",
    driver: str = "overlay",
    ingress: bool = False,
) -> Network:
    return Network(nid, name, driver=driver, scope="swarm", subnets=subnets, ingress=ingress)


def svc(sid: str = "svc1", *, replicas: int = 8, on: str = NET, **kw: object) -> Service:
    base = build.service(sid, name=f"web-{sid}", replicas=replicas, endpoint_mode="dnsrr", **kw)  # type: ignore[arg-type]
    return replace(base, networks=(on,))


def running(n: int, *, sid: str = "svc1", node: str = "n1", first: int = 2) -> list[Task]:
    """n running tasks with addresses 10.77.3.<first>... on NET."""
    return [
        build.task(
            f"{sid}-r{i}",
            sid=sid,
            node_id=node,
            addresses=((NET, "small", f"10.77.3.{first + i}"),),
        )
        for i in range(n)
    ]


def waiting(n: int, *, age: float = 60.0, state: str = "new", sid: str = "svc1") -> list[Task]:
    """n tasks with no address yet, `age` seconds in `state` (swarm's "created", no error)."""
    return [
        build.task(
            f"{sid}-w{i}",
            sid=sid,
            node_id="",
            state=state,
            message="created",
            timestamp=NOW - age,
        )
        for i in range(n)
    ]


def scan(
    tasks: list[Task],
    services: list[Service] | None = None,
    networks: tuple[Network, ...] | None = None,
    rb: Runbook = RB,
) -> list[Finding]:
    snap = replace(
        build.snapshot(
            nodes=[build.node("n1"), build.node("n2")],
            services=services if services is not None else [svc()],
            tasks=tasks,
        ),
        networks=networks if networks is not None else (network(),),
    )
    return list(rb.detect(context(snap, NOW, Settings())))


# --- the lab's case: a /29 and 8 replicas, 3 tasks left in `new` with no error ---------------


def test_a_full_slash_29_with_tasks_stuck_in_new_is_critical_with_the_numbers() -> None:
    (f,) = scan(running(5) + waiting(3))

    assert f.key == f"ip-exhaustion:{NET}:exhausted"
    assert f.cause == "exhausted"
    assert f.severity is Severity.CRITICAL
    assert not f.actionable
    assert f.task_ids == ("svc1-w0", "svc1-w1", "svc1-w2")
    assert "overlay small (10.77.3.0/29) has no free address" in f.summary
    assert (
        "6 of 5 usable addresses in use (5 by tasks, 0 VIPs, 1 load-balancer endpoints" in f.summary
    )
    assert "3 task(s) of web-svc1 stuck in new for up to 60s" in f.summary
    assert f.details["usable"] == "5"
    assert f.details["services"] == "web-svc1 5"
    assert "`docker network create --driver overlay --subnet A.B.C.0/24 NEW`" in f.advice
    assert "`docker service update --network-add NEW --network-rm small web-svc1`" in f.advice


REJECTED = "node is missing network attachments, ip addresses may be exhausted"


def rejected(n: int, *, age: float = 20.0, err: str = REJECTED) -> list[Task]:
    """n tasks the node rejected `age` s ago, as 20.10 does once the subnet is full."""
    return [
        build.task(
            f"svc1-x{i}",
            sid="svc1",
            node_id="n1",
            state="rejected",
            desired="shutdown",
            err=err,
            timestamp=NOW - age,
        )
        for i in range(n)
    ]


def test_rejections_saying_addresses_may_be_exhausted_are_the_fault_while_tasks_churn() -> None:
    # 20.10 on the lab: tasks new -> preparing -> rejected, again and again; at any moment
    # fewer addresses may be held than the subnet has, and no task has waited `after` yet
    (f,) = scan(running(2) + waiting(3, age=3.0) + rejected(4))
    assert f.key == f"ip-exhaustion:{NET}:exhausted"
    assert f.severity is Severity.CRITICAL
    assert f"4 task(s) of web-svc1 rejected: {REJECTED!r}" in f.summary
    assert f.details["rejected"] == "4"
    assert f.node_ids == ("n1",)


def test_old_rejections_and_other_errors_are_not_evidence() -> None:
    assert scan(running(2) + rejected(4, age=600.0)) == []
    assert scan(running(2) + rejected(4, err="No such image: app:1")) == []


def test_the_key_is_the_same_while_the_stuck_tasks_change() -> None:
    first = scan(running(5) + waiting(3))
    later = scan(running(5) + waiting(1, sid="svc1") + waiting(2, sid="svc1", state="pending"))
    assert [f.key for f in first] == [f.key for f in later]


def test_tasks_still_being_allocated_are_not_stuck_yet() -> None:
    assert scan(running(5) + waiting(3, age=10.0)) == []


def test_the_after_setting() -> None:
    fast = RB.with_settings(after="5s")
    assert [f.cause for f in scan(running(5) + waiting(3, age=10.0), rb=fast)] == ["exhausted"]


def test_tasks_stuck_on_a_network_with_room_are_not_this_runbook() -> None:
    # pending for a constraint, with a /24 mostly free: stuck-task explains those
    assert (
        scan(running(5) + waiting(3, state="pending"), networks=(network(("10.77.3.0/24",)),)) == []
    )


def test_a_healthy_small_network_is_quiet() -> None:
    assert scan(running(3), [svc(replicas=3)]) == []


# --- nearly full -----------------------------------------------------------------------------


def nearly(n: int) -> list[Finding]:
    # a /27: 29 usable; n tasks on one node + that node's load-balancer endpoint + a VIP
    vip = replace(svc(replicas=n), vips=((NET, "10.77.3.1"),), endpoint_mode="vip")
    return scan(running(n), [vip], (network(("10.77.3.0/27",)),))


def test_a_network_past_the_full_percentage_is_a_warning() -> None:
    (f,) = nearly(25)  # 27 of 29: 93 %
    assert (f.key, f.cause, f.severity) == (
        f"ip-exhaustion:{NET}:nearly-full",
        "nearly-full",
        Severity.WARNING,
    )
    assert "is nearly full: 27 of 29 usable addresses in use (25 by tasks, 1 VIPs" in f.summary
    assert f.details["used_percent"] == "93"
    assert f.task_ids == ()


def test_below_the_full_percentage_nothing() -> None:
    assert nearly(23) == []  # 25 of 29: 86 %


def test_the_full_setting() -> None:
    vip = replace(svc(replicas=25), vips=((NET, "10.77.3.1"),))
    rb = RB.with_settings(full="95")
    assert scan(running(25), [vip], (network(("10.77.3.0/27",)),), rb=rb) == []


@pytest.mark.parametrize("bad", ["0", "101", "ninety"])
def test_full_must_be_a_percentage(bad: str) -> None:
    with pytest.raises(SettingsError, match="ip-exhaustion"):
        RB.with_settings(full=bad)


@pytest.mark.parametrize("bad", ["0", "31d", "soon"])
def test_after_must_be_a_sane_duration(bad: str) -> None:
    with pytest.raises(SettingsError, match="'after'"):
        RB.with_settings(after=bad)


# --- what holds an address -------------------------------------------------------------------


def test_ended_tasks_free_their_addresses_and_stopping_ones_still_hold_them() -> None:
    old = running(3, first=10)
    ended = [replace(t, state="shutdown", desired_state="shutdown") for t in old[:2]]
    stopping = [replace(old[2], desired_state="shutdown")]  # still running, being stopped
    (f,) = scan(running(4) + ended + stopping + waiting(3))
    assert f.details["tasks"] == "5"  # 4 + the one still stopping


def test_vips_and_load_balancer_endpoints_of_every_node_count() -> None:
    a = replace(svc("a", replicas=2), vips=((NET, "10.77.3.6"),))
    b = svc("b", replicas=4)
    tasks = (
        running(2, sid="a", node="n1")
        + running(2, sid="b", node="n2", first=4)
        + waiting(2, sid="b")
    )
    (f,) = scan(tasks, [a, b])
    assert (f.details["tasks"], f.details["vips"], f.details["lb_endpoints"]) == ("4", "1", "2")
    assert f.details["used"] == "7"
    assert f.details["services"] == "web-a 3, web-b 2"
    assert "2 task(s) of web-b stuck" in f.summary


def test_a_service_naming_its_network_by_name_is_on_it() -> None:
    (f,) = scan(running(5) + waiting(3), [svc(on="small")])
    assert f.cause == "exhausted"


def test_several_subnets_are_summed() -> None:
    two = network(("10.77.3.0/29", "10.77.4.0/29"))
    assert scan(running(5) + waiting(3), networks=(two,)) == []  # 10 usable, 6 used


@pytest.mark.parametrize(
    "net",
    [
        pytest.param(network(("fd00:77::/125",)), id="ipv6-only"),
        pytest.param(network(()), id="no-subnet"),
        pytest.param(network(driver="bridge"), id="not-overlay"),
        pytest.param(network(ingress=True), id="ingress"),
    ],
)
def test_networks_it_does_not_judge(net: Network) -> None:
    assert scan(running(5) + waiting(3), networks=(net,)) == []


def test_usable_addresses_and_the_larger_subnet_advised() -> None:
    assert usable(("10.0.0.0/24",)) == 253
    assert usable(("10.0.0.0/29", "10.0.1.0/29")) == 10
    assert usable(("10.0.0.0/31", "10.0.0.4/32")) == 0
    assert usable(("fd00::/64", "not a subnet")) is None
    assert larger_prefix(9) == 24
    assert larger_prefix(300) == 22
    assert larger_prefix(0) == 24


def test_it_never_acts() -> None:
    assert RB.plan_fn is None
