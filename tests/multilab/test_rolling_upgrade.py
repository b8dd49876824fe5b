"""A rolling upgrade of the medic keeps healing (issue 17, section 2), on the 3-node lab.

The previous release is built in the test from its commit (PREVIOUS: main before standing probe
duties, protocol 2) with its own scripts/image.sh, and deployed as operators deploy it
(deploy/swarm-medic.yml, acting). Then `docker service update --image` this tree's image, one
node at a time with a minute between nodes: for minutes the brain and the nodes run different
releases. While they do, an overlay fault (eth0 down inside a web task, on a node whose medic
runs the other release than the brain's) is found and healed exactly once, and no exchange
between an old and a new instance is refused: no "refused brain-to-node request" line, no
version refused, on either side. The update completes; `docker service rollback` then brings
the previous release back node by node, and the medic keeps working: healthy on every node,
every node probed again.

The stack file is this tree's; it is the one the previous release shipped too (unchanged since
PREVIOUS), so the same deploy runs both. The tests run in order on one deployment.

Runtime: about 6 to 8 minutes on the lab, over half of it the update's own pace (two 60 s
delays and three health checks), plus the previous image's build the first time (its image is
kept, by revision label, for the next run).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from tests.labkit import ROOT, docker, on_node, record_timing, ts
from tests.multilab import stack
from tests.multilab.kit import Web, container_pid, in_container_netns
from tests.waiting import wait_until

pytestmark = pytest.mark.lab

# the release before standing probe duties: its instances speak protocol 2, and send every node
# a positional plan each round (the release before it, 05c28ee, spoke protocol 1: two back now)
PREVIOUS = "89637ef"
PREVIOUS_IMAGE = "swarm-medic:previous"
UPDATE_DELAY = "60s"
REFUSALS = ("refused brain-to-node request", "refused a peer's protocol")


def git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()


def build_previous() -> str:
    """The previous release's image, built by its own scripts/image.sh from a temporary
    checkout of its commit; kept by its revision label, so a second run builds nothing."""
    try:
        commit = git("rev-parse", "--verify", f"{PREVIOUS}^{{commit}}")
    except subprocess.CalledProcessError:
        pytest.fail(f"commit {PREVIOUS} (the previous release) is not in this clone: fetch it")
    built = docker(
        "image",
        "inspect",
        "-f",
        '{{index .Config.Labels "org.opencontainers.image.revision"}}',
        PREVIOUS_IMAGE,
        check=False,
    )
    if built != commit:
        with tempfile.TemporaryDirectory(prefix="medic-previous-") as tmp:
            tree = Path(tmp) / "tree"
            git("worktree", "add", "--detach", str(tree), commit)
            try:
                done = subprocess.run(
                    ["bash", str(tree / "scripts" / "image.sh")],
                    env={**os.environ, "IMAGE": PREVIOUS_IMAGE},
                    capture_output=True,
                    text=True,
                    timeout=900,
                    check=False,
                )
            finally:
                git("worktree", "remove", "--force", str(tree))
        assert done.returncode == 0, f"{PREVIOUS}'s image.sh failed:\n{done.stdout}\n{done.stderr}"
    stack.load_image(PREVIOUS_IMAGE)
    return stack.image_id(PREVIOUS_IMAGE)


def protocols() -> dict[int, int | None]:
    """Node -> the protocol its medic says in /healthz (1 if it says none, as releases before
    versions; None: no answer, a task being replaced)."""
    out: dict[int, int | None] = {}
    for i in stack.NODES:
        try:
            _, body = stack.http_get(i, "/healthz")
            out[i] = int(json.loads(body).get("protocol", 1))
        except (OSError, ValueError):
            out[i] = None
    return out


def brain() -> int:
    """The node whose instance is the brain (the leader's)."""
    leaders = [i for i in stack.NODES if (stack.metric(i, "swarm_medic_leader") or 0) == 1]
    assert len(leaders) == 1, leaders
    return leaders[0]


def update_state() -> str:
    raw = on_node(1, "service", "inspect", "-f", "{{json .UpdateStatus}}", stack.SERVICE)
    status = json.loads(raw) if raw and raw != "null" else {}
    return str((status or {}).get("State", ""))


def refusals(since: float) -> list[stack.LogLine]:
    """Every line since `since` that says an exchange between instances was refused: by a
    node (its signature check, or a protocol too far), or by the brain (a node's answer in a
    protocol it will not read, or the node's refusal of its request)."""
    lines = [ln for ln in stack.logs() if ts(ln) >= since]
    said = [ln for e in REFUSALS for ln in stack.find(lines, e)]
    unprobed = stack.find(lines, "node not probed this round")
    said += [
        ln
        for ln in unprobed
        if "speaks protocol" in str(ln.get("error")) or "HTTP 4" in str(ln.get("error"))
    ]
    return said


def refused_counters() -> dict[int, float | None]:
    return {i: stack.metric(i, "swarm_medic_channel_refused_total") for i in stack.NODES}


@pytest.fixture(scope="module")
def releases(multilab_up: None) -> Iterator[tuple[str, str]]:
    """(previous image ID, this tree's image ID); the previous release deployed, acting."""
    stack.remove()  # an interrupted earlier run
    t0 = time.monotonic()
    previous = build_previous()
    stack.load_image(stack.IMAGE)
    current = stack.image_id()
    assert previous != current
    built = round(time.monotonic() - t0, 1)
    stack.create_secret()
    stack.deploy(previous, dry_run=False)
    wait_until(
        "the previous release healthy on every node",
        lambda: stack.healthy_everywhere(previous),
        180,
        1,
    )
    record_timing(stack="previous release", built_and_loaded=built)
    yield previous, current
    stack.remove()


def test_the_previous_release_runs_everywhere_and_says_its_protocol(
    releases: tuple[str, str],
) -> None:
    assert protocols() == {1: 2, 2: 2, 3: 2}
    brain()  # one brain
    # its start-up lines say it: what an operator sees of the release before
    starts = stack.find(stack.logs(), "swarm-medic ")
    assert len(starts) >= 3 and all(s.get("protocol") == 2 for s in starts), starts


@pytest.mark.timeout(900)
def test_an_upgrade_under_way_heals_a_fault_once_and_refuses_no_exchange(
    releases: tuple[str, str], web: Web
) -> None:
    _, current = releases
    t_update = time.time()
    on_node(
        1,
        "service",
        "update",
        "--detach",
        "--no-resolve-image",
        "--image",
        current,
        "--update-parallelism",
        "1",
        "--update-delay",
        UPDATE_DELAY,
        stack.SERVICE,
    )

    # mixed: the first node runs this tree's release, healthy, the others the previous one
    def mixed() -> dict[int, int | None] | None:
        now = protocols()
        return now if {2, 3} <= set(now.values()) else None

    spoken = wait_until("one node upgraded, the others not yet", mixed, 180, 2)
    t_mixed = time.time()
    the_brain = brain()
    brain_speaks = spoken[the_brain]
    # the fault on a node whose medic speaks the other protocol: its hand answers across them
    node = next(i for i in stack.NODES if i != the_brain and spoken[i] not in (None, brain_speaks))
    task = web.running_on()[f"node{node}"]
    in_container_netns(container_pid(node, task), "ip", "link", "set", "eth0", "down")
    t_fault = time.time()

    healed = stack.wait_for_line("verified: healed", 180, service=web.name)
    assert task not in web.running_on().values()
    still_mixed = {2, 3} <= set(protocols().values())
    lines = stack.logs()
    acts = [
        a for a in stack.find(lines, "action: replace_task done") if task in (a.get("tasks") or [])
    ]
    assert len(acts) == 1, acts  # healed exactly once, by one instance
    assert len(stack.find(lines, "hand: retiring", task=task)) == 1
    assert healed["incident"] == acts[0]["incident"]
    assert stack.find(lines, "finding", runbook="unreachable-endpoint", service=web.name)
    assert not refusals(t_update), refusals(t_update)
    assert not any(refused_counters().values()), refused_counters()

    # the update goes on by itself to every node, and completes (not rolled back)
    wait_until("the update on every node", lambda: stack.healthy_everywhere(current), 420, 2)
    wait_until("the update completed", lambda: update_state() == "completed", 120, 2)
    t_done = time.time()
    assert protocols() == {1: 3, 2: 3, 3: 3}
    assert not refusals(t_update), refusals(t_update)
    lines = [ln for ln in stack.logs() if ts(ln) >= t_update]
    # an older peer was said, by the newer side, once per peer and change, not every round
    # (the mix lasted dozens of probe rounds; a new instance says what it hears once)
    older = stack.find(lines, "peer speaks an older protocol")
    assert older, "no instance said it heard an older peer"
    assert all(ln["theirs"] == 2 and ln["ours"] == 3 for ln in older), older
    assert len(older) <= 12, older
    assert len(acts) == len(
        [
            a
            for a in stack.find(stack.logs(), "action: replace_task done")
            if task in (a.get("tasks") or [])
        ]
    )
    record_timing(
        stack="rolling upgrade",
        fault="eth0 down in a task, brain and hand on different releases",
        still_mixed_when_healed=still_mixed,
        fault_to_healed=round(ts(healed) - t_fault, 1),
        update_to_mixed=round(t_mixed - t_update, 1),
        update_to_done=round(t_done - t_update, 1),
    )


@pytest.mark.timeout(600)
def test_a_rollback_of_the_medic_leaves_it_working(releases: tuple[str, str]) -> None:
    previous, _ = releases
    t_rollback = time.time()
    on_node(1, "service", "rollback", "--detach", stack.SERVICE)
    wait_until(
        "the previous release back on every node",
        lambda: stack.healthy_everywhere(previous),
        300,
        2,
    )
    wait_until("the rollback completed", lambda: update_state() == "rollback_completed", 120, 2)
    assert protocols() == {1: 2, 2: 2, 3: 2}
    the_brain = brain()

    # every other node's fresh instance serves the brain's probe plans again
    def served(i: int) -> bool:
        return (stack.metric(i, "swarm_medic_probe_plans_served_total") or 0) > 0

    for i in stack.NODES:
        if i != the_brain:
            wait_until(f"node{i} probed again", partial(served, i), 60, 1)
    assert not refusals(t_rollback), refusals(t_rollback)
    assert not any(refused_counters().values()), refused_counters()
    for i in stack.NODES:
        code, body = stack.http_get(i, "/healthz")
        assert code == 200, body
    record_timing(stack="rollback of the medic", rolled_back=round(time.time() - t_rollback, 1))
