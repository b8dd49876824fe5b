"""unbalanced: a node that could run a converged service's tasks runs none while another runs
several; healthy churn (updates, scale-ups, restarts, scale-downs) is never judged."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from swarm_medic.core.errors import SettingsError
from swarm_medic.core.model import ActionKind, Finding, Node, Service, Severity, Target, Task
from swarm_medic.core.runbook import Runbook, Sightings, context
from swarm_medic.core.settings import Settings
from swarm_medic.pipeline import match
from tests import builders as build
from tests.builders import NOW
from tests.unit.runbooks.kit import REGISTRY

RB: Runbook = REGISTRY.runbooks["unbalanced"]
AFTER = 300.0  # the default `after`
REBALANCE = {"swarm-medic.enable": "true", "swarm-medic.rebalance": "true"}


def nodes(**overrides: Mapping[str, object]) -> list[Node]:
    """n1, n2, n3: ready, active workers; `n3={"availability": "drain"}` changes one."""
    return [
        build.node(n, hostname=f"node{n[1]}", **overrides.get(n, {}))  # type: ignore[arg-type]
        for n in ("n1", "n2", "n3")
    ]


def layout(*on: str, sid: str = "svc1", state: str = "running") -> list[Task]:
    """One task meant to run per entry, on that node: layout("n1", "n1", "n2")."""
    return [
        build.task(f"{sid}-{i}", sid=sid, node_id=n, slot=i + 1, state=state)
        for i, n in enumerate(on)
    ]


def service(replicas: int = 3, **kw: object) -> Service:
    return build.service("svc1", name="web", replicas=replicas, **kw)  # type: ignore[arg-type]


class Scans:
    """Scans of one medic: the same Sightings carried from one scan to the next."""

    def __init__(self, rb: Runbook = RB) -> None:
        self.rb = rb
        self.sightings = Sightings()

    def at(
        self,
        now: float,
        tasks: Sequence[Task],
        svc: Service | None = None,
        ns: Sequence[Node] | None = None,
    ) -> list[Finding]:
        snap = build.snapshot(
            nodes=ns if ns is not None else nodes(),
            services=[svc or service()],
            tasks=tasks,
            taken_at=now,
        )
        found = list(self.rb.detect(context(snap, now, Settings(), sightings=self.sightings)))
        self.sightings.end_scan()
        return found


def held(
    tasks: Sequence[Task], svc: Service | None = None, ns: Sequence[Node] | None = None
) -> list[Finding]:
    """Findings once the layout has been seen for `after`."""
    s = Scans()
    assert s.at(NOW, tasks, svc, ns) == []  # the clock starts at the first sighting
    return s.at(NOW + AFTER, tasks, svc, ns)


PILED = layout("n1", "n1", "n2")  # n3 came back and runs nothing


def test_an_empty_node_while_another_runs_two_is_reported_after_the_hold() -> None:
    s = Scans()
    assert s.at(NOW, PILED) == []
    assert s.at(NOW + AFTER - 1, PILED) == []
    (f,) = s.at(NOW + AFTER, PILED)

    assert f.key == "unbalanced:svc1"
    assert (f.cause, f.severity) == ("unbalanced", Severity.WARNING)
    assert f.target == Target.for_service("svc1")
    assert f.summary == (
        "web: node3 could run its tasks and runs none while node1 runs 2 (3 replicas), for 300s"
    )
    assert f.task_ids == ("svc1-0", "svc1-1")
    assert f.node_ids == ("n1", "n3")
    # not labelled: reported with the way to do it by hand, never acted on
    assert not f.actionable
    assert "`docker service update --force web`" in f.advice
    assert "swarm-medic.rebalance=true" in f.advice
    planned, failures = match.plan_all(
        REGISTRY.runbooks, [f], context(build.snapshot(), NOW, Settings())
    )
    assert planned == [(f, None)] and failures == []


def test_labelled_it_plans_a_force_update_of_that_service() -> None:
    svc = service(labels=REBALANCE, version=7)
    (f,) = held(PILED, svc)
    assert f.actionable
    snap = build.snapshot(nodes=nodes(), services=[svc], tasks=PILED)
    ((_, action),), failures = match.plan_all(
        REGISTRY.runbooks, [f], context(snap, NOW, Settings())
    )
    assert failures == []
    assert action is not None
    assert (action.kind, action.service_id, action.service_version) == (
        ActionKind.FORCE_UPDATE,
        "svc1",
        7,
    )


def test_the_label_must_say_true() -> None:
    (f,) = held(PILED, service(labels={"swarm-medic.rebalance": "yes please"}))
    assert not f.actionable


def test_the_key_is_stable_while_the_layout_changes() -> None:
    s = Scans()
    s.at(NOW, PILED)
    (a,) = s.at(NOW + AFTER, PILED)
    (b,) = s.at(NOW + AFTER + 15, layout("n2", "n2", "n1"))
    assert a.key == b.key


def test_the_after_setting() -> None:
    with pytest.raises(SettingsError, match="'after'"):
        RB.with_settings(after="0")
    s = Scans(RB.with_settings(after="5s"))
    assert s.at(NOW, PILED) == []
    assert len(s.at(NOW + 5, PILED)) == 1


# --- not unbalanced --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tasks", "svc", "ns"),
    [
        pytest.param(layout("n1", "n2", "n3"), None, None, id="spread"),
        pytest.param(layout("n1", "n1", "n2", "n2", "n3", "n3"), service(6), None, id="2-each"),
        pytest.param(layout("n1", "n1", "n2", "n3"), service(4), None, id="4-on-3-nodes"),
        pytest.param(layout("n1", "n2"), service(2), None, id="2-on-2-of-3"),
        pytest.param(PILED, None, nodes(n3={"availability": "drain"}), id="empty-is-drained"),
        pytest.param(PILED, None, nodes(n3={"availability": "pause"}), id="empty-is-paused"),
        pytest.param(PILED, None, nodes(n3={"state": "down"}), id="empty-is-down"),
        pytest.param(
            PILED,
            service(constraints=("node.labels.zone==eu",)),
            nodes(n1={"labels": {"zone": "eu"}}, n2={"labels": {"zone": "eu"}}),
            id="empty-does-not-fit-constraints",
        ),
        pytest.param(
            PILED,
            service(mem_gib=3),
            nodes(n3={"mem_gib": 2}),
            id="empty-has-no-room-for-the-reservation",
        ),
        pytest.param(layout("n1", "n1"), service(2, mode="global"), None, id="global"),
        pytest.param(layout("n1"), service(1), None, id="one-replica"),
    ],
)
def test_layouts_that_are_not_unbalanced(
    tasks: list[Task], svc: Service | None, ns: list[Node] | None
) -> None:
    assert held(tasks, svc, ns) == []


@pytest.mark.parametrize(
    ("tasks", "svc"),
    [
        pytest.param(PILED, service(update="updating"), id="rolling-update"),
        pytest.param(PILED, service(update="rollback_started"), id="rollback"),
        pytest.param(PILED, service(update="paused"), id="paused-update"),
        pytest.param(
            [*PILED, build.task("new1", node_id="n1", state="starting", slot=4)],
            service(4),
            id="scale-up-starting",
        ),
        pytest.param(
            [*PILED, build.task("new1", node_id="", state="pending", slot=4)],
            service(4),
            id="scale-up-pending",
        ),
        pytest.param(PILED, service(4), id="fewer-running-than-replicas"),
        pytest.param(
            [*layout("n1", "n1"), build.task("r", node_id="n2", state="failed")],
            None,
            id="a-restart",
        ),
        pytest.param(
            [*PILED, build.task("old", node_id="n3", desired="shutdown")],
            None,
            id="scale-down-still-stopping",
        ),
    ],
)
def test_healthy_churn_is_never_judged(tasks: list[Task], svc: Service | None) -> None:
    assert held(tasks, svc) == []


def test_completed_updates_are_judged() -> None:
    for state in ("completed", "rollback_completed"):
        assert len(held(PILED, service(update=state))) == 1


def test_a_stale_task_on_a_dead_node_is_not_churn() -> None:
    # n4 died: swarm shows its task desired shutdown but still "running" until it returns
    ns = [*nodes(), build.node("n4", hostname="node4", state="down")]
    tasks = [*PILED, build.task("stale", node_id="n4", desired="shutdown")]
    (f,) = held(tasks, None, ns)
    assert f.node_ids == ("n1", "n3")


def test_max_replicas_per_node_leaves_the_empty_node_eligible() -> None:
    (f,) = held(PILED, service(max_per_node=2))
    assert "node3" in f.summary


def test_churn_restarts_the_hold() -> None:
    s = Scans()
    s.at(NOW, PILED)
    assert s.at(NOW + 100, PILED, service(update="updating")) == []  # not asked: forgotten
    assert s.at(NOW + AFTER, PILED, service(update="completed")) == []  # clock starts again
    assert len(s.at(NOW + 2 * AFTER, PILED, service(update="completed"))) == 1


def test_docstring_promises_the_label() -> None:
    assert "swarm-medic.rebalance=true" in RB.doc


def test_more_replicas_than_nodes_with_one_node_empty_is_unbalanced() -> None:
    (f,) = held(layout("n1", "n1", "n2", "n2"), service(4))
    assert f.summary.startswith("web: node3 could run its tasks and runs none while node1 runs 2")
    assert "node2 runs 2" in f.summary
