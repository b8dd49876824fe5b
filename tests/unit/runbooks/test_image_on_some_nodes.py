"""image-on-some-nodes: a service's image runs on some nodes and is rejected on others; which,
and the likely cause. repeated-rejection leaves those rejections to it, and only those."""

from __future__ import annotations

import pytest

from swarm_medic.core.model import Node, Service, Severity, Task
from swarm_medic.core.runbook import Context, Runbook, context
from swarm_medic.core.settings import Settings
from tests import builders as build
from tests.builders import NOW
from tests.unit.runbooks.kit import REGISTRY, detect

SPLIT: Runbook = REGISTRY.runbooks["image-on-some-nodes"]
REJECTED: Runbook = REGISTRY.runbooks["repeated-rejection"]
LOCAL = "shop/web:9.9"
PINNED = "registry.example.org/shop/web:9.9@sha256:" + "ab" * 32
NO_SUCH = f"No such image: {LOCAL}"


def nodes() -> list[Node]:
    return [build.node(f"n{i}", hostname=f"node{i}", addr=f"10.99.0.1{i}") for i in (1, 2, 3)]


def web(image: str = LOCAL) -> Service:
    return build.service("svc1", name="web", mode="global", replicas=None, image=image)


def running(tid: str, node_id: str, age: float = 3600.0, image: str = "") -> Task:
    return build.task(tid, node_id=node_id, timestamp=NOW - age, image=image)


def rejected(tid: str, node_id: str, age: float, err: str = NO_SUCH, image: str = "") -> Task:
    return build.task(
        tid,
        node_id=node_id,
        state="rejected",
        desired="shutdown",
        err=err,
        timestamp=NOW - age,
        image=image,
    )


def split_tasks(err: str = NO_SUCH) -> list[Task]:
    """Running on node1 for an hour; rejected on node2 and node3 every few seconds."""
    return [
        running("ok1", "n1"),
        rejected("r1", "n2", 5, err),
        rejected("r2", "n2", 10, err),
        rejected("r3", "n3", 7, err),
    ]


def ctx(tasks: list[Task], svc: Service | None = None) -> Context:
    snap = build.snapshot(nodes=nodes(), services=[svc or web()], tasks=tasks)
    return context(snap, NOW, Settings())


def test_the_nodes_that_have_the_image_and_those_that_cannot_get_it() -> None:
    c = ctx(split_tasks())
    (f,) = detect(SPLIT, c)
    assert f.key == f"image-on-some-nodes:svc1:{LOCAL}"
    assert f.summary == (
        f"web: image {LOCAL} runs on node1 and is rejected on node2, node3 (3 tasks: {NO_SUCH!r})"
    )
    assert (f.cause, f.severity) == ("local-only", Severity.WARNING)
    assert f.task_ids == ("r1", "r2", "r3")
    assert f.node_ids == ("n1", "n2", "n3")
    assert "Nodes that run it, so have it: node1. Nodes that cannot get it: node2, node3." in (
        f.advice
    )
    assert "(`docker build` / `docker load` on those nodes)" in f.advice
    assert (f.details["have"], f.details["cannot"]) == ("node1", "node2, node3")
    assert not f.actionable and SPLIT.plan(f, c) is None
    # one story: repeated-rejection leaves these rejections to this runbook
    assert detect(REJECTED, c) == []


def test_the_nodes_are_named_in_order_whatever_the_order_of_the_tasks() -> None:
    """Node ids are random, so their order is not their hostnames': the lab once got
    "rejected on node3, node2"."""
    # ids in the opposite order of the hostnames
    swapped = [
        build.node(i, hostname=h) for i, h in (("z1", "node1"), ("y2", "node2"), ("x3", "node3"))
    ]
    tasks = [
        running("ok1", "z1"),
        rejected("r1", "y2", 5),
        rejected("r2", "y2", 10),
        rejected("r3", "x3", 7),
    ]
    snap = build.snapshot(nodes=swapped, services=[web()], tasks=tasks)
    (f,) = detect(SPLIT, context(snap, NOW, Settings()))
    assert "is rejected on node2, node3 " in f.summary
    assert f.details["cannot"] == "node2, node3"


@pytest.mark.parametrize(
    ("err", "image", "cause", "says"),
    [
        (
            "pull access denied for shop/web, repository does not exist or may require "
            "'docker login': denied: requested access to the resource is denied",
            LOCAL,
            "registry-auth",
            "`docker service update --with-registry-auth web`",
        ),
        (
            "Head https://registry.example.org/v2/shop/web/manifests/9.9: unauthorized: "
            "authentication required",
            PINNED,
            "registry-auth",
            "credentials expired",
        ),
        (
            "manifest for registry.example.org/shop/web:9.9 not found: manifest unknown",
            LOCAL,
            "not-pushed",
            f"`docker push {LOCAL}`",
        ),
        (f"No such image: {PINNED}", PINNED, "cannot-pull", "could not pull it"),
        (NO_SUCH, LOCAL, "local-only", "exists only where it was built or loaded"),
    ],
)
def test_the_likely_cause_comes_from_the_error_and_the_reference(
    err: str, image: str, cause: str, says: str
) -> None:
    (f,) = detect(SPLIT, ctx(split_tasks(err), web(image)))
    assert f.cause == cause
    assert says in f.advice


@pytest.mark.parametrize(
    "tasks",
    [
        pytest.param([running("a", "n1"), running("b", "n2"), running("c", "n3")], id="healthy"),
        pytest.param(
            # the default threshold is 3 rejections within 10 minutes
            [running("ok1", "n1"), rejected("r1", "n2", 5), rejected("r2", "n3", 700)],
            id="below-threshold-in-window",
        ),
        pytest.param(
            [
                running("ok1", "n1"),
                *(rejected(f"m{i}", "n2", 5 + i, "bind source") for i in (1, 2, 3)),
            ],
            id="not-an-image-error",
        ),
        pytest.param(
            # a rolling update to an image no node has: the old image runs everywhere, so
            # nothing says any node has the new one
            [
                running("o1", "n1", image="shop/web:9.8"),
                running("o2", "n2", image="shop/web:9.8"),
                *(rejected(f"r{i}", "n3", 5 + i, image=LOCAL) for i in (1, 2, 3)),
            ],
            id="update-to-an-image-no-node-has",
        ),
        pytest.param([rejected(f"r{i}", f"n{i}", 5 + i) for i in (1, 2, 3)], id="no-node-runs-it"),
        pytest.param(
            # node1 ran it, then was rejected for it: it lost the image (a prune)
            [running("ok1", "n1"), *(rejected(f"r{i}", f"n{i}", 5 + i) for i in (1, 2, 3))],
            id="the-only-runner-lost-it",
        ),
    ],
)
def test_no_split(tasks: list[Task]) -> None:
    assert detect(SPLIT, ctx(tasks)) == []


@pytest.mark.parametrize(
    "tasks",
    [
        pytest.param([rejected(f"r{i}", f"n{i}", 5 + i) for i in (1, 2, 3)], id="nowhere"),
        pytest.param(
            [
                running("o1", "n1", image="shop/web:9.8"),
                *(rejected(f"r{i}", "n3", 5 + i, image=LOCAL) for i in (1, 2, 3)),
            ],
            id="update-in-flight",
        ),
        pytest.param(
            [
                running("ok1", "n1", age=10_000),
                *(rejected(f"m{i}", "n2", 5 + i, "bind source") for i in (1, 2, 3)),
            ],
            id="other-error",
        ),
    ],
)
def test_what_is_not_a_split_is_still_repeated_rejections(tasks: list[Task]) -> None:
    (f,) = detect(REJECTED, ctx(tasks))
    assert len(f.task_ids) == 3


def test_threshold_and_window_are_settings() -> None:
    tasks = [running("ok1", "n1"), rejected("r1", "n2", 5), rejected("r2", "n3", 700)]
    rb = SPLIT.with_settings(threshold="2", window="15m")
    (f,) = detect(rb, ctx(tasks))
    assert f.task_ids == ("r1", "r2")
