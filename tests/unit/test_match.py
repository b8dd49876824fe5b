"""match.plan_all: an operator's runbook whose action is not about its own finding is refused.

The runbooks are real files in a temporary --runbooks-dir, loaded through registry.load, as
an operator's would be.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from swarm_medic.core.model import Action, Node, Service, Snapshot, SwarmInfo, Task
from swarm_medic.core.runbook import Context, RunbookFailure, TaskClock
from swarm_medic.core.runbook import context as scan_context
from swarm_medic.core.settings import Settings
from swarm_medic.pipeline import match, registry
from tests.builders import NOW

HEADER = '''
"""An operator's runbook that plans something else than what it found."""

from swarm_medic.runbook import Action, ActionKind, Finding

NAME = "rogue"


def detect(ctx):
    yield Finding(
        runbook=NAME,
        key="rogue:front",
        summary="front looks odd",
        cause="odd",
        service_id="svc-front",
        service_name="front",
        task_ids=("task-front",),
        node_ids=("node-1",),
        actionable=True,
    )


def plan(finding, ctx):
'''


def load_rogue(tmp_path: Path, body: str) -> registry.Registry:
    (tmp_path / "rogue.py").write_text(HEADER + textwrap.indent(textwrap.dedent(body), "    "))
    reg = registry.load([tmp_path])
    assert reg.errors == []
    return reg


def context() -> Context:
    snap = Snapshot(
        NOW,
        SwarmInfo("node-1", "10.0.0.1", "active", True),
        (Node("node-1", "n1", "manager", "active", "ready", leader=True),),
        (Service("svc-front", "front", 5), Service("svc-victim", "victim", 7)),
        (
            Task("task-front", "svc-front", 1, "node-1", "running", "running"),
            Task("task-victim", "svc-victim", 1, "node-1", "running", "running"),
        ),
    )
    return scan_context(snap, NOW, Settings(), TaskClock())


def plan(reg: registry.Registry) -> tuple[Action | None, list[RunbookFailure]]:
    ctx = context()
    found = match.run(reg, ctx)
    planned, failures = match.plan_all(reg.runbooks, found.findings, ctx)
    ((_, action),) = planned
    return action, failures


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (
            'return Action(ActionKind.FORCE_UPDATE, "svc-victim", "victim", 7, "why not")',
            "plan refused: its action names service 'svc-victim' but its finding is about "
            "'svc-front'",
        ),
        (
            'return Action(ActionKind.REPLACE_TASK, "svc-front", "front", 5, "x",\n'
            '              task_id="task-victim", node_id="node-1")',
            "plan refused: its replace_task names task 'task-victim', not one of its finding's",
        ),
        (
            'return Action(ActionKind.REMOVE_ORPHAN, "svc-front", "front", 5, "x",\n'
            '              task_id="task-front", node_id="node-9")',
            "plan refused: its remove_orphan names node 'node-9', not one of its finding's",
        ),
        ('return "force_update svc-victim"', "plan refused: returned str, not an Action or None"),
    ],
)
def test_a_plan_off_its_finding_is_refused_as_the_runbook_s_failure(
    tmp_path: Path, body: str, why: str
) -> None:
    action, failures = plan(load_rogue(tmp_path, body))

    assert action is None
    assert failures == [RunbookFailure("rogue", why)]


@pytest.mark.parametrize(
    "body",
    [
        'return Action(ActionKind.FORCE_UPDATE, finding.service_id, "front", 5, "ok")',
        'return Action(ActionKind.REPLACE_TASK, "svc-front", "front", 5, "ok",\n'
        '              task_id="task-front", node_id="node-1")',
        "return None",
    ],
)
def test_a_plan_about_its_own_finding_passes(tmp_path: Path, body: str) -> None:
    action, failures = plan(load_rogue(tmp_path, body))

    assert failures == []
    assert action is None or action.service_id == "svc-front"
