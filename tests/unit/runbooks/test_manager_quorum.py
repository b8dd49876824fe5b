"""manager-quorum: unreachable managers, the quorum margin and even manager counts."""

from __future__ import annotations

from dataclasses import replace

import pytest

from swarm_medic.core.model import Finding, Node, Severity, Target
from swarm_medic.core.runbook import Runbook, context
from swarm_medic.core.settings import Settings
from tests import builders as build
from tests.unit.runbooks.kit import REGISTRY

RB: Runbook = REGISTRY.runbooks["manager-quorum"]


def manager(nid: str, reachability: str = "reachable", *, state: str = "ready") -> Node:
    return replace(
        build.node(nid, hostname=nid, role="manager", state=state, leader=nid == "m1"),
        reachability=reachability,
    )


def worker(nid: str) -> Node:
    return build.node(nid, hostname=nid)  # reachability "" like the engine's workers


def managers(total: int, gone: int = 0, how: str = "unreachable") -> list[Node]:
    """`total` managers m1..mN, the last `gone` of them not reachable (and down)."""
    return [
        manager(f"m{i}", how, state="down") if i > total - gone else manager(f"m{i}")
        for i in range(1, total + 1)
    ]


def found(nodes: list[Node]) -> dict[str, Finding]:
    snap = build.snapshot(nodes=nodes, me="m1")
    return {f.cause: f for f in RB.detect(context(snap, build.NOW, Settings()))}


@pytest.mark.parametrize(
    ("total", "gone", "expected"),
    [
        pytest.param(1, 0, {}, id="one-manager-by-choice"),
        pytest.param(3, 0, {}, id="3-healthy"),
        pytest.param(5, 0, {}, id="5-healthy"),
        pytest.param(5, 1, {"unreachable": Severity.WARNING}, id="5-one-gone-margin-1"),
        pytest.param(
            3,
            1,
            {"unreachable": Severity.CRITICAL, "no-margin": Severity.CRITICAL},
            id="3-one-gone-margin-0",
        ),
        pytest.param(
            5,
            2,
            {"unreachable": Severity.CRITICAL, "no-margin": Severity.CRITICAL},
            id="5-two-gone-margin-0",
        ),
        pytest.param(
            2,
            0,
            {"no-margin": Severity.CRITICAL, "even-managers": Severity.WARNING},
            id="2-healthy-no-margin",
        ),
        pytest.param(4, 0, {"even-managers": Severity.WARNING}, id="4-healthy-margin-1"),
        pytest.param(
            4,
            1,
            {
                "unreachable": Severity.CRITICAL,
                "no-margin": Severity.CRITICAL,
                "even-managers": Severity.WARNING,
            },
            id="4-one-gone",
        ),
        pytest.param(3, 2, {"unreachable": Severity.CRITICAL}, id="3-two-gone-quorum-lost"),
    ],
)
def test_findings_by_managers_and_reachability(
    total: int, gone: int, expected: dict[str, Severity]
) -> None:
    got = found([*managers(total, gone), worker("w1"), worker("w2")])
    assert {c: f.severity for c, f in got.items()} == expected
    assert all(not f.actionable and f.service_id == "" for f in got.values())


def test_one_of_three_unreachable_names_it_and_the_margin() -> None:
    got = found([*managers(3, 1), worker("w1")])

    gone = got["unreachable"]
    assert gone.key == "manager-quorum:unreachable"
    assert gone.node_ids == ("m3",)
    assert gone.target == Target.for_node("m3")
    assert "m3 (unreachable, node down)" in gone.summary
    assert "2 of 3 managers reachable, quorum 2: 0 more manager loss(es) survivable" in (
        gone.summary
    )
    assert gone.details["survivable"] == "0"
    # the recovery steps, in words
    for step in (
        "Bring m3 back",
        "`docker node demote NODE`",
        "`docker node rm --force NODE`",
        "`docker node promote`",
        "--force-new-cluster",
        "must `docker swarm leave --force` and join again",
    ):
        assert step in gone.advice, step

    margin = got["no-margin"]
    assert margin.key == "manager-quorum:no-margin"
    assert margin.summary.startswith("one more manager loss and the swarm has no leader")
    assert margin.node_ids == ("m1", "m2", "m3")
    assert "Bring m3 back" in margin.advice


def test_a_lost_quorum_says_so() -> None:
    (gone,) = found(managers(3, 2)).values()
    assert "the quorum is lost" in gone.summary
    assert gone.node_ids == ("m2", "m3")


def test_two_healthy_managers_are_told_to_add_a_third() -> None:
    got = found(managers(2))
    assert "Promote a healthy worker" in got["no-margin"].advice
    assert "to 3 managers" in got["no-margin"].advice
    even = got["even-managers"]
    assert even.key == "manager-quorum:even"
    assert "2 managers, an even number" in even.summary


@pytest.mark.parametrize("how", ["unknown", ""])
def test_a_manager_of_unknown_reachability_is_not_counted_as_reachable(how: str) -> None:
    got = found(managers(3, 1, how))
    assert got["unreachable"].node_ids == ("m3",)
    assert "no-margin" in got


def test_workers_do_not_count_and_are_never_named() -> None:
    nodes = [*managers(3), *(replace(worker(f"w{i}"), state="down") for i in range(5))]
    assert found(nodes) == {}


def test_keys_do_not_depend_on_which_manager_or_the_order() -> None:
    first = found([*managers(5, 1), worker("w1")])
    later = found(list(reversed([*managers(5, 2), worker("w1")])))
    assert first["unreachable"].key == later["unreachable"].key
    assert later["unreachable"].node_ids == ("m4", "m5")


def test_it_never_acts() -> None:
    assert RB.plan_fn is None
    assert RB.settings == ()
