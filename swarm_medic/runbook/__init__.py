"""The runbook API: what a runbook defines and what it is given (built-in, or an operator's).

A runbook is a Python file: the built-in ones in runbooks/ (installed as swarm_medic.runbooks),
an operator's in --runbooks-dir (loaded by path; a file whose name starts with "_" is
skipped). It imports this module, the contract, and if it likes `swarm_medic.runbook.helpers`
(functions over the snapshot and the probe results: which tasks run, which nodes fit, which
config versions are stale). It defines:

    a module docstring                       required: its first line is the summary, then
                                             symptom, cause, what the medic does, risks
    NAME = "replicas-zero"                   required, unique
    detect(ctx) -> Iterable[Finding]         required: what is wrong
    plan(finding, ctx) -> Action | None      optional: absent = report only
    NEEDS = (PROBES,)                        optional: what it reads beyond the snapshot
    SETTINGS = (Setting(...), ...)           optional: its own settings, with defaults
    standing(ctx) -> Iterable[(subject, text)]
                                             optional: what it holds per subject now, for
                                             people (`check`, `swarm-medic runbooks NAME`)

Both functions are pure: no I/O, no clock, no randomness; everything is in `ctx`:

    ctx.snapshot        the swarm as observed this scan (Snapshot: nodes, services, tasks,
                        networks, configs and secrets (Stored: metadata only);
                        .service(id), .task(id), .node(id), .tasks_of(service_id))
    ctx.now             the scan's time (seconds since the epoch)
    ctx.age(task)       how long the task has been in its current state
    ctx.since(key)      when the medic first saw the condition `key` (held on every scan since;
                        the key as a finding's, see below)
    ctx.held(key)       whether the condition `key` was held on the last scan, without asking
                        it (a hysteresis: hold it between two thresholds only if it held)
    ctx.services_seen   services seen in the last hour, removed ones included
    ctx.learned_threshold(service id, state, ceiling)
                        how long that service's tasks may sit in a state before running, as
                        its own history says (p90 x 3, with a floor, at most `ceiling`), and
                        how many tasks it is learned from; None while it has too little
    ctx.settings        this runbook's own settings, parsed: ctx.settings.grace
    ctx.probes          the overlay and published-port probe results (Probes); only with
                        NEEDS = (PROBES,)
    ctx.alerts          the alerts Alertmanager says fire (Alerts: .firing, a tuple of Alert
                        with name, service, labels, annotations, summary; .firing_for(name,
                        service name, service id)); only with NEEDS = (ALERTS,)

States are the engine's text; TaskState, UpdateState and NodeState name them, and
PRE_RUNNING_STATES, LIVE_STATES (not ended), ENDED_STATES, UPDATE_IN_FLIGHT, UPDATE_PAUSED and
UPDATE_SETTLED (a service never updated has no update_status) group them:
`t.state in LIVE_STATES`, `t.state == TaskState.RUNNING`.

A Finding says what is wrong. Make it with Finding.for_service(service, summary, cause, ...),
.for_task(task, service, ...), .for_node(node, ...) or .about(key, ...): they fill in the ids,
names and target from the object. `key` names the incident (the same fault must give the same
key on every scan: it is reported once and acted on under one cooldown); it is the object's id
unless given (key=f"{svc.id}:{cause}"), and the runbook's NAME is put in front of it for you,
as it is in front of the keys given to ctx.since. `target` says what it is about
(Target.for_task / for_node / for_container / for_service / for_alert), `actionable` whether
`plan` may help; any field of Finding can be given by name. `plan` reads `finding.target`
(never strings in `details`, which are for people) and returns an Action from the
constructors below, or None. Whatever it returns, the safety policy decides: opt-in scope,
cooldown, budget, circuit breaker, dry-run. An action must name the finding's service (and,
node-local, one of its tasks and nodes) or it is refused; `remove_node(node, why)` and
`prune_node(node, keep, wanted, target, why)` name no service: their finding must be about that
node (Finding.for_node), and the node's history takes the place of a service's for cooldown,
budget and breaker.

NEEDS. A runbook that reads probe results declares NEEDS = (PROBES,): where there are none
(an instance that is not the brain, `swarm-medic check`) it is not run, which is not an error.
One that reads alerts declares NEEDS = (ALERTS,): it runs where alerts are taken in
(--alerts-token set), not in `swarm-medic check`. A fix planned for a finding whose target
is `Target.for_alert(name)` is healed only once that alert has resolved too.

SETTINGS. A runbook declares its own settings as Setting(name, parser, default text, help):
ready-made parsers are Duration(low, high), Count(high), choice(...), parse_bool and
parse_duration. The operator sets them with `--runbook-setting NAME.KEY=VALUE` (repeatable) or
SWARM_MEDIC_RUNBOOK_<NAME>_<KEY> (upper case, dashes as underscores; the flag wins); each value
is checked at start, and an unknown runbook or key, or a bad value, stops the start with a
message naming both. A runbook sees its own settings only, never the daemon's (so never the
channel's secret). `swarm-medic runbooks NAME` shows the text and the settings with their
current values.

Anything not in `__all__` (here and in helpers) is not part of the API and may change.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from swarm_medic.core.alerts import Alert, Alerts
from swarm_medic.core.model import (
    ENDED_STATES,
    LIVE_STATES,
    PRE_RUNNING_STATES,
    UPDATE_IN_FLIGHT,
    UPDATE_PAUSED,
    UPDATE_SETTLED,
    Action,
    ActionKind,
    Finding,
    Node,
    NodeState,
    Service,
    Severity,
    Snapshot,
    Stored,
    Target,
    TargetKind,
    Task,
    TaskState,
    UpdateState,
    UpdateStatus,
)
from swarm_medic.core.parsers import (
    DAY,
    HOUR,
    MINUTE,
    Count,
    Duration,
    choice,
    parse_bool,
    parse_duration,
)
from swarm_medic.core.protocol import Container
from swarm_medic.core.reach import Cell, Reachability
from swarm_medic.core.runbook import (
    ALERTS,
    PROBES,
    Context,
    Probes,
    Setting,
    Values,
    force_update,
    prune_node,
    remove_node,
    remove_orphan,
    replace_task,
    resume_update,
    retry_update,
    rollback,
)

__all__ = [
    "ALERTS",
    "DAY",
    "ENDED_STATES",
    "HOUR",
    "LIVE_STATES",
    "MINUTE",
    "PRE_RUNNING_STATES",
    "PROBES",
    "UPDATE_IN_FLIGHT",
    "UPDATE_PAUSED",
    "UPDATE_SETTLED",
    "Action",
    "ActionKind",
    "Alert",
    "Alerts",
    "Cell",
    "Container",
    "Context",
    "Count",
    "Duration",
    "Finding",
    "Node",
    "NodeState",
    "Probes",
    "Reachability",
    "Service",
    "Setting",
    "Severity",
    "Snapshot",
    "Stored",
    "Target",
    "TargetKind",
    "Task",
    "TaskState",
    "UpdateState",
    "UpdateStatus",
    "Values",
    "choice",
    "force_update",
    "parse_bool",
    "parse_duration",
    "prune_node",
    "remove_node",
    "remove_orphan",
    "replace_task",
    "resume_update",
    "retry_update",
    "rollback",
]

if not TYPE_CHECKING:
    # Runbooks written before the helpers had a module of their own import them from here:
    # they still load. Hidden from type checkers, so that an author's mypy points to helpers.

    def __getattr__(name: str) -> object:
        from swarm_medic.runbook import helpers

        if name not in helpers.__all__:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        warnings.warn(
            f"import {name} from swarm_medic.runbook.helpers, not swarm_medic.runbook",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(helpers, name)
