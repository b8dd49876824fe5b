"""Managers unreachable, or a raft quorum one manager loss away from having no leader.

Symptom: a manager's ManagerStatus.Reachability is not `reachable` (its engine died, its
machine is off, or the managers cannot reach each other); or the managers still reachable are
exactly the quorum (N//2+1 of N), so one more loss leaves the swarm with no leader; or the
swarm has an even number of managers. A swarm with one manager is a deliberate choice (it
has no quorum margin to lose) and is not a finding.

Cause: raft needs a majority of the managers to elect a leader and to accept any change
(moby#25432, moby#34384, moby#41250). With N managers the swarm survives N - (N//2+1) manager
losses: 3 survive 1, 5 survive 2; 4 survive 1 like 3 do, so an even count only adds a node to
every raft write. Once the quorum is lost the managers' API answers "The swarm does not have a
leader" and nothing can be scheduled, updated or removed (running tasks keep running).

What the medic does: reports, one incident each, (1) the managers not reachable, critical when
no more manager can be lost, (2) "one more manager loss and the swarm has no leader", (3) an
even number of managers; with the recovery steps in words. Bring the manager back first. If
it is gone for good, from a reachable manager: `docker node demote` it, `docker node rm
--force` it, and `docker node promote` a healthy worker to keep an odd count. Only when the
quorum is lost for good: `docker swarm init --force-new-cluster` on one surviving manager.
When the quorum is already lost the medic cannot scan at all (the API answers no leader): its
`scan failed` log line then says that the quorum is probably lost.

Risks: none; it never acts. Changing managers is a human's call: demoting or removing the
wrong one can cost the quorum it was meant to save.
"""

from __future__ import annotations

from collections.abc import Iterator

from swarm_medic.runbook import Context, Finding, Node, Severity

NAME = "manager-quorum"

FORCE_NEW_CLUSTER = (
    "Only if the quorum is lost for good (a majority of the managers will never come back): "
    "`docker swarm init --force-new-cluster --advertise-addr ADDR` on one surviving manager. "
    "It keeps that manager's copy of the swarm (services, tasks, networks, configs, secrets) "
    "and makes it the only manager: every other manager must `docker swarm leave --force` and "
    "join again, and whatever that manager had not yet replicated is lost."
)


def _names(nodes: list[Node]) -> str:
    return ", ".join(n.hostname or n.id for n in nodes)


def _recovery(gone: list[Node]) -> str:
    return (
        f"Bring {_names(gone)} back (start its engine, restore its network). If it is gone for "
        "good, from a reachable manager: `docker node demote NODE`, then `docker node rm "
        "--force NODE`, and `docker node promote` a healthy worker to keep an odd number of "
        "managers (never demote or remove a reachable manager while one is down: that can "
        f"cost the quorum). {FORCE_NEW_CLUSTER}"
    )


def detect(ctx: Context) -> Iterator[Finding]:
    managers = sorted(
        (n for n in ctx.snapshot.nodes if n.role == "manager"), key=lambda n: n.hostname or n.id
    )
    total = len(managers)
    if total <= 1:
        return  # one manager: no margin to lose, by choice
    gone = [n for n in managers if n.reachability != "reachable"]
    reachable = total - len(gone)
    quorum = total // 2 + 1
    survivable = reachable - quorum
    margin = f"{reachable} of {total} managers reachable, quorum {quorum}: " + (
        f"{survivable} more manager loss(es) survivable"
        if survivable >= 0
        else "the quorum is lost"
    )
    ids = tuple(n.id for n in managers)
    details = {
        "managers": str(total),
        "reachable": str(reachable),
        "quorum": str(quorum),
        "survivable": str(survivable),
    }
    if gone:
        states = ", ".join(
            f"{n.hostname or n.id} ({n.reachability or 'no status'}, node {n.state})" for n in gone
        )
        yield Finding.for_node(
            gone[0],
            key="unreachable",
            summary=f"{len(gone)} manager(s) not reachable: {states}; {margin}",
            cause="unreachable",
            severity=Severity.CRITICAL if survivable <= 0 else Severity.WARNING,
            node_ids=tuple(n.id for n in gone),
            advice=_recovery(gone),
            actionable=False,
            details=details | {"unreachable": _names(gone)},
        )
    if survivable == 0:
        fix = (
            _recovery(gone)
            if gone
            else f"Promote a healthy worker (`docker node promote NODE`) to {total + 1} "
            f"managers: {total} managers survive no loss. {FORCE_NEW_CLUSTER}"
        )
        yield Finding.about(
            "no-margin",
            summary=f"one more manager loss and the swarm has no leader: {margin}",
            cause="no-margin",
            severity=Severity.CRITICAL,
            node_ids=ids,
            advice=fix,
            actionable=False,
            details=details,
        )
    if total % 2 == 0:
        yield Finding.about(
            "even",
            summary=(
                f"{total} managers, an even number: they survive {total - quorum} loss(es), no "
                f"more than {total - 1} would, and every raft write waits for one node more"
            ),
            cause="even-managers",
            severity=Severity.WARNING,
            node_ids=ids,
            advice=(
                f"Promote a healthy worker to {total + 1} managers, or demote one reachable "
                f"manager (`docker node demote NODE`) to {total - 1}; odd counts (3, 5, 7) "
                "are the ones that add fault tolerance."
            ),
            actionable=False,
            details=details,
        )
