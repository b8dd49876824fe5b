"""swarm_medic.pipeline.policy: the safety gates as data, tried in their documented order."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import MappingProxyType

import pytest

from swarm_medic.core.ledger import PAUSE_LABEL, PREFIX, History, Ledger, Pause, Verifying
from swarm_medic.core.model import (
    Action,
    ActionKind,
    Decision,
    Finding,
    LedgerDoc,
    Reason,
    Service,
    Verdict,
)
from swarm_medic.core.scope import scope_reason
from swarm_medic.core.settings import SafetySettings
from swarm_medic.pipeline import policy
from tests.builders import NOW, node, service, snapshot

SID = "svc1"
RB = "stuck-task"
OPT_IN = {"swarm-medic.enable": "true"}


def finding(service_id: str = SID, runbook: str = RB) -> Finding:
    return Finding(
        runbook=runbook,
        key=f"{runbook}:{service_id}:hang",
        summary="stuck",
        cause="hang",
        service_id=service_id,
        service_name=f"name-{service_id}",
        actionable=True,
    )


def action(service_id: str = SID) -> Action:
    return Action(ActionKind.FORCE_UPDATE, service_id, f"name-{service_id}", 7, "nudge")


def svc(labels: dict[str, str] | None = None, name: str = "web", sid: str = SID) -> Service:
    return service(sid, name=name, version=7, labels=labels, replicas=None)


def ledger_with(h: History, service_id: str = SID) -> Ledger:
    return Ledger(services=MappingProxyType({service_id: h}))


CORRUPT = Ledger.from_doc(LedgerDoc("cfg", 1, MappingProxyType({PREFIX + SID: "{garbage"})))
CIRCUIT_OPEN = ledger_with(History(open_until=NOW + 600, open_reason="budget spent"))
RECENT = ledger_with(History(actions=((NOW - 100, RB),)))  # inside the 300 s cooldown
RECENT_OTHER_RB = ledger_with(History(actions=((NOW - 100, "paused-update"),)))
OLD = ledger_with(History(actions=((NOW - 400, RB),)))  # outside the cooldown
# budget (3) spent in the last hour, circuit already reset, last action outside the cooldown
SPENT = ledger_with(History(actions=((NOW - 3000, RB), (NOW - 2000, RB), (NOW - 1000, RB))))
PAUSED = Ledger(pause=Pause(reason="maintenance", at=NOW - 60, by="ops@host"))
PAUSE_OVER = Ledger(pause=Pause(reason="maintenance", at=NOW - 600, until=NOW - 1))
PAUSE_CORRUPT = Ledger.from_doc(LedgerDoc("cfg", 1, MappingProxyType({PAUSE_LABEL: "{oops"})))
REPORT = {**OPT_IN, "swarm-medic.action": " Report "}
LIMIT_1 = SafetySettings(max_concurrent_actions=1)


def pending(sid: str, deadline: float = NOW + 60) -> History:
    return History(
        actions=((NOW - 30, RB),),
        pending=Verifying("inc-x", RB, "force_update", 3, NOW - 30, deadline),
    )


# another service's fix is being verified (by whichever instance): one remediation under way
OTHER_VERIFYING = Ledger(services=MappingProxyType({"svc9": pending("svc9")}))
OTHER_VERIFYING_LATE = Ledger(services=MappingProxyType({"svc9": pending("svc9", NOW - 1)}))
SPENT_LONG_AGO = ledger_with(
    History(actions=((NOW - 5000, RB), (NOW - 4000, RB), (NOW - 3700, RB)))
)


@dataclass(frozen=True)
class Case:
    reason: str
    verdict: Verdict = Verdict.SKIP
    labels: dict[str, str] = field(default_factory=lambda: dict(OPT_IN))
    name: str = "web"
    safety: SafetySettings = field(default_factory=SafetySettings)
    ledger: Ledger = field(default_factory=Ledger)
    leader: bool = True
    verifying: frozenset[str] = frozenset()
    planned: bool = True  # the runbook planned an action
    service_exists: bool = True
    node_local: bool = False  # a REPLACE_TASK on node "n2" instead of a force update
    hands_down: dict[str, str] = field(default_factory=dict)
    hold: str = ""
    storm: str = ""
    approved: bool = False


ASKS = {**OPT_IN, "swarm-medic.approve": "true"}
ASK_RB = SafetySettings(approve_runbooks=(RB,))
STORM = "5 of 8 services failing (a, b, c, d, e); runbooks firing: stuck-task"

CASES: dict[str, Case] = {
    "report-only finding": Case("no_action", planned=False),
    "service removed": Case("no_action", service_exists=False),
    "self by name": Case("self", name="medic", safety=SafetySettings(self_services=("medic",))),
    "self by id": Case("self", safety=SafetySettings(self_services=(SID,))),
    "self by label": Case("self", labels={**OPT_IN, "swarm-medic.self": "true"}),
    "self label false is not self": Case(
        "ok", Verdict.ACT, labels={**OPT_IN, "swarm-medic.self": "false"}
    ),
    "opted out": Case("opted_out", labels={"swarm-medic.enable": "false"}),
    "opted out under scope all": Case(
        "opted_out", labels={"swarm-medic.enable": "no"}, safety=SafetySettings(scope="all")
    ),
    "not opted in": Case("not_opted_in", labels={}),
    "scope all acts on unlabelled": Case(
        "ok", Verdict.ACT, labels={}, safety=SafetySettings(scope="all")
    ),
    "opt-in label TRUE": Case("ok", Verdict.ACT, labels={"swarm-medic.enable": " TRUE "}),
    "not leader": Case("not_leader", leader=False),
    "ledger unreadable": Case("ledger_unreadable", ledger=CORRUPT),
    "circuit open": Case("circuit_open", ledger=CIRCUIT_OPEN),
    "verifying": Case("verifying", verifying=frozenset({SID})),
    "verifying another service": Case("ok", Verdict.ACT, verifying=frozenset({"svc9"})),
    "cooldown": Case("cooldown", ledger=RECENT),
    "cooldown is per runbook": Case("ok", Verdict.ACT, ledger=RECENT_OTHER_RB),
    "cooldown over": Case("ok", Verdict.ACT, ledger=OLD),
    "budget spent": Case("budget_spent", ledger=SPENT),
    "budget of the last hour only": Case("ok", Verdict.ACT, ledger=SPENT_LONG_AGO),
    "dry run": Case("dry_run", Verdict.WOULD_ACT, safety=SafetySettings(dry_run=True)),
    "ok": Case("ok", Verdict.ACT),
    "report label": Case("report_label", labels=REPORT),
    "report label under scope all": Case(
        "report_label", labels={"swarm-medic.action": "report"}, safety=SafetySettings(scope="all")
    ),
    "another action label acts": Case(
        "ok", Verdict.ACT, labels={**OPT_IN, "swarm-medic.action": "act"}
    ),
    "paused": Case("paused", ledger=PAUSED),
    "a corrupt pause label is a pause": Case("paused", ledger=PAUSE_CORRUPT),
    "an expired pause is over": Case("ok", Verdict.ACT, ledger=PAUSE_OVER),
    "alerts hold": Case("alerts_hold", hold="alert(s) firing: NodeDown"),
    "max concurrent: another fix being verified": Case(
        "max_concurrent", ledger=OTHER_VERIFYING, safety=LIMIT_1
    ),
    "max concurrent: this instance verifying another": Case(
        "max_concurrent", verifying=frozenset({"svc9"}), safety=LIMIT_1
    ),
    "max concurrent: room for one more": Case(
        "ok", Verdict.ACT, ledger=OTHER_VERIFYING, safety=SafetySettings(max_concurrent_actions=2)
    ),
    "max concurrent: a fix past its deadline is not under way": Case(
        "ok", Verdict.ACT, ledger=OTHER_VERIFYING_LATE, safety=LIMIT_1
    ),
    "max concurrent 0 is no limit": Case("ok", Verdict.ACT, ledger=OTHER_VERIFYING),
    "report_label before paused": Case("report_label", labels=REPORT, ledger=PAUSED),
    "not_opted_in before paused": Case("not_opted_in", labels={}, ledger=PAUSED),
    "paused before not_leader": Case("paused", leader=False, ledger=PAUSED),
    "paused before dry_run": Case("paused", ledger=PAUSED, safety=SafetySettings(dry_run=True)),
    "circuit_open before alerts_hold": Case("circuit_open", ledger=CIRCUIT_OPEN, hold="x"),
    "alerts_hold before max_concurrent": Case(
        "alerts_hold", ledger=OTHER_VERIFYING, safety=LIMIT_1, hold="x"
    ),
    "max_concurrent before dry_run": Case(
        "max_concurrent",
        ledger=OTHER_VERIFYING,
        safety=SafetySettings(max_concurrent_actions=1, dry_run=True),
    ),
    # gate order: the first gate that says no names the reason
    "no_action before self": Case(
        "no_action", planned=False, safety=SafetySettings(self_services=("web",))
    ),
    "self before opted_out": Case(
        "self", labels={"swarm-medic.self": "1", "swarm-medic.enable": "false"}
    ),
    "opted_out before circuit_open": Case(
        "opted_out", labels={"swarm-medic.enable": "false"}, ledger=CIRCUIT_OPEN
    ),
    "not_opted_in before not_leader": Case("not_opted_in", labels={}, leader=False),
    "not_leader before ledger_unreadable": Case("not_leader", leader=False, ledger=CORRUPT),
    "ledger_unreadable before verifying": Case(
        "ledger_unreadable", ledger=CORRUPT, verifying=frozenset({SID})
    ),
    "circuit_open before verifying": Case(
        "circuit_open", ledger=CIRCUIT_OPEN, verifying=frozenset({SID})
    ),
    "verifying before cooldown": Case("verifying", ledger=RECENT, verifying=frozenset({SID})),
    "cooldown before budget_spent": Case(
        "cooldown",
        ledger=ledger_with(History(actions=((NOW - 3000, RB), (NOW - 2000, RB), (NOW - 10, RB)))),
    ),
    "not_leader before dry_run": Case(
        "not_leader", leader=False, safety=SafetySettings(dry_run=True)
    ),
    "node-local action, node down": Case(
        "node_unreachable", node_local=True, hands_down={"n2": "connection refused"}
    ),
    "node-local action, another node down": Case(
        "ok", Verdict.ACT, node_local=True, hands_down={"n3": "connection refused"}
    ),
    "node_unreachable before dry_run": Case(
        "node_unreachable",
        node_local=True,
        hands_down={"n2": "timed out"},
        safety=SafetySettings(dry_run=True),
    ),
    "budget_spent before node_unreachable": Case(
        "budget_spent", ledger=SPENT, node_local=True, hands_down={"n2": "timed out"}
    ),
    "budget_spent before dry_run": Case(
        "budget_spent", ledger=SPENT, safety=SafetySettings(dry_run=True)
    ),
    "storm": Case("storm", storm=STORM),
    "not_leader before storm": Case("not_leader", leader=False, storm=STORM),
    "paused before storm": Case("paused", ledger=PAUSED, storm=STORM),
    "storm before circuit_open": Case("storm", ledger=CIRCUIT_OPEN, storm=STORM),
    "storm before dry_run": Case("storm", storm=STORM, safety=SafetySettings(dry_run=True)),
    "storm stops an approved action": Case("storm", labels=ASKS, storm=STORM, approved=True),
    "approve label: proposed": Case("approval_needed", Verdict.PROPOSE, labels=ASKS),
    "approve label false: acted on": Case(
        "ok", Verdict.ACT, labels={**OPT_IN, "swarm-medic.approve": "false"}
    ),
    "approve runbooks: proposed": Case("approval_needed", Verdict.PROPOSE, safety=ASK_RB),
    "approved: acted on": Case("ok", Verdict.ACT, labels=ASKS, approved=True),
    "approved, runbook setting: acted on": Case("ok", Verdict.ACT, safety=ASK_RB, approved=True),
    "approved in dry-run: still proposed": Case(
        "approval_needed",
        Verdict.PROPOSE,
        labels=ASKS,
        approved=True,
        safety=SafetySettings(dry_run=True),
    ),
    "cooldown before approval_needed": Case("cooldown", labels=ASKS, ledger=RECENT),
    "approved, cooldown still holds": Case("cooldown", labels=ASKS, ledger=RECENT, approved=True),
    "max_concurrent before approval_needed": Case(
        "max_concurrent", labels=ASKS, ledger=OTHER_VERIFYING, safety=LIMIT_1
    ),
}


def planned_action(case: Case) -> Action | None:
    if not case.planned:
        return None
    if case.node_local:
        return Action(
            ActionKind.REPLACE_TASK, SID, f"name-{SID}", 7, "x", task_id="t", node_id="n2"
        )
    return action()


def run(case: Case) -> Decision:
    services = {SID: svc(case.labels, case.name)} if case.service_exists else {}
    act = planned_action(case)
    decisions = policy.decide(
        [(finding(), act)],
        services=services,
        ledger=case.ledger,
        safety=case.safety,
        now=NOW,
        leader=case.leader,
        verifying=case.verifying,
        hands_down=case.hands_down,
        hold=case.hold,
        in_progress=case.ledger.in_progress(NOW),
        storm=case.storm,
        approved=frozenset({finding().key}) if case.approved else frozenset(),
    )
    assert len(decisions) == 1
    return decisions[0]


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_decide(case: Case) -> None:
    d = run(case)
    assert (d.verdict, d.reason) == (case.verdict, case.reason)
    assert d.action == planned_action(case)
    assert d.finding == finding()


def test_table_covers_every_reason() -> None:
    covered = {c.reason for c in CASES.values()}
    assert covered | {"busy"} == set(Reason)  # busy needs two findings: below


def test_the_reasons_are_the_gates_in_order_then_ok() -> None:
    # Reason lists what the metric pre-creates and the journal words: the gates' own order
    assert [g.reason for g in policy.GATES] + [policy.PASSED] == list(Reason)
    assert len({g.reason for g in policy.GATES}) == len(policy.GATES)


def test_the_reason_values_are_the_published_label_values() -> None:
    # metric labels and journal fields: renaming one breaks dashboards and alerts
    assert [r.value for r in Reason] == [
        "no_action",
        "self",
        "opted_out",
        "not_opted_in",
        "report_label",
        "paused",
        "not_leader",
        "storm",
        "ledger_unreadable",
        "circuit_open",
        "verifying",
        "busy",
        "cooldown",
        "budget_spent",
        "node_unreachable",
        "alerts_hold",
        "max_concurrent",
        "approval_needed",
        "dry_run",
        "ok",
    ]


def test_every_gate_has_one_line_of_wording() -> None:
    for gate in policy.GATES:
        assert gate.wording == gate.reason.wording
        assert gate.wording.strip() == gate.wording != ""
        assert "\n" not in gate.wording


def test_the_module_docstring_lists_the_gates_as_they_are() -> None:
    assert policy.__doc__ is not None
    assert policy.describe() in policy.__doc__


def test_only_dry_run_and_ok_let_an_action_through_and_approval_needed_proposes() -> None:
    assert {r: r.verdict for r in Reason if r.verdict is not Verdict.SKIP} == {
        Reason.APPROVAL_NEEDED: Verdict.PROPOSE,
        Reason.DRY_RUN: Verdict.WOULD_ACT,
        Reason.OK: Verdict.ACT,
    }


def test_a_proposal_claims_no_service_and_takes_no_slot() -> None:
    decisions = policy.decide(
        [(finding(), action()), (finding(), action())],
        services={SID: svc(ASKS)},
        ledger=Ledger(),
        safety=SafetySettings(max_concurrent_actions=1),
        now=NOW,
        leader=True,
        approved=frozenset(),
    )
    assert [d.reason for d in decisions] == ["approval_needed", "approval_needed"]


def test_the_decision_says_why_in_words() -> None:
    d = run(Case("cooldown", ledger=RECENT))
    assert d.why == (
        "the same runbook acted on this service less than --cooldown ago "
        "(acted 100s ago; cooldown 300s)"
    )
    assert run(Case("not_leader", leader=False)).why == Reason.NOT_LEADER.wording


def test_busy_second_finding_on_the_same_service() -> None:
    services = {SID: svc(OPT_IN), "svc2": svc(OPT_IN, "api", "svc2")}
    decisions = policy.decide(
        [
            (finding(SID, "stuck-task"), action()),
            (finding(SID, "paused-update"), action()),
            (finding("svc2"), action("svc2")),
        ],
        services=services,
        ledger=Ledger(),
        safety=SafetySettings(),
        now=NOW,
        leader=True,
    )
    assert [(d.finding.runbook, d.finding.service_id, d.verdict, d.reason) for d in decisions] == [
        ("stuck-task", SID, Verdict.ACT, "ok"),
        ("paused-update", SID, Verdict.SKIP, "busy"),
        (RB, "svc2", Verdict.ACT, "ok"),
    ]


def test_busy_also_in_dry_run() -> None:
    decisions = policy.decide(
        [(finding(), action()), (finding(), action())],
        services={SID: svc(OPT_IN)},
        ledger=Ledger(),
        safety=SafetySettings(dry_run=True),
        now=NOW,
        leader=True,
    )
    assert [(d.verdict, d.reason) for d in decisions] == [
        (Verdict.WOULD_ACT, "dry_run"),
        (Verdict.SKIP, "busy"),
    ]


def test_a_skipped_finding_does_not_claim_the_service() -> None:
    decisions = policy.decide(
        [(finding(), None), (finding(), action())],
        services={SID: svc(OPT_IN)},
        ledger=Ledger(),
        safety=SafetySettings(),
        now=NOW,
        leader=True,
    )
    assert [d.reason for d in decisions] == ["no_action", "ok"]


@pytest.mark.parametrize(
    ("now", "reason", "explanation"),
    [
        (NOW, "cooldown", "acted 100s ago; cooldown 300s"),
        (NOW + 199, "cooldown", "acted 299s ago; cooldown 300s"),
        (NOW + 200, "ok", ""),
    ],
)
def test_cooldown_depends_on_now(now: float, reason: str, explanation: str) -> None:
    (d,) = policy.decide(
        [(finding(), action())],
        services={SID: svc(OPT_IN)},
        ledger=RECENT,  # stuck-task acted at NOW - 100
        safety=SafetySettings(cooldown=300),
        now=now,
        leader=True,
    )
    assert (d.reason, d.explanation) == (reason, explanation)


def test_circuit_open_explanation() -> None:
    d = run(Case("circuit_open", ledger=CIRCUIT_OPEN))
    assert d.explanation == "budget spent; resets in 600s"


def test_ledger_unreadable_explanation() -> None:
    assert run(Case("ledger_unreadable", ledger=CORRUPT)).explanation == (
        "its history in the ledger is corrupt"
    )


@pytest.mark.parametrize(
    ("labels", "scope", "expected"),
    [
        ({}, "opt-in", "not_opted_in"),
        ({}, "all", None),
        ({"swarm-medic.enable": "true"}, "opt-in", None),
        ({"swarm-medic.enable": "yes"}, "opt-in", None),
        ({"swarm-medic.enable": "false"}, "all", "opted_out"),
        ({"swarm-medic.enable": "0"}, "opt-in", "opted_out"),
        ({"swarm-medic.self": "on"}, "all", "self"),
    ],
)
def test_scope_reason(labels: dict[str, str], scope: str, expected: str | None) -> None:
    assert scope_reason(svc(labels), SafetySettings(scope=scope)) == expected


def test_scope_reason_of_a_missing_service() -> None:
    assert scope_reason(None, SafetySettings(scope="all")) == "no_action"


def test_busy_comes_after_verifying_and_before_cooldown() -> None:
    def reasons(verifying: frozenset[str]) -> list[str]:
        decisions = policy.decide(
            [(finding(SID, "stuck-task"), action()), (finding(SID, "paused-update"), action())],
            services={SID: svc(OPT_IN)},
            ledger=RECENT_OTHER_RB,  # paused-update acted 100 s ago: in its cooldown
            safety=SafetySettings(),
            now=NOW,
            leader=True,
            verifying=verifying,
        )
        return [d.reason for d in decisions]

    assert reasons(frozenset()) == ["ok", "busy"]
    assert reasons(frozenset({SID})) == ["verifying", "verifying"]


def test_max_concurrent_counts_the_actions_decided_earlier_in_the_scan() -> None:
    services = {sid: svc(OPT_IN, sid=sid) for sid in ("s1", "s2", "s3")}
    decisions = policy.decide(
        [(finding(sid), action(sid)) for sid in services],
        services=services,
        ledger=Ledger(),
        safety=SafetySettings(max_concurrent_actions=2),
        now=NOW,
        leader=True,
    )
    assert [d.reason for d in decisions] == [Reason.OK, Reason.OK, Reason.MAX_CONCURRENT]
    assert decisions[2].explanation == "2 under way or decided this scan; limit 2"


def test_a_skipped_finding_takes_no_slot_of_max_concurrent() -> None:
    services = {"s1": svc({}, sid="s1"), "s2": svc(OPT_IN, sid="s2")}
    decisions = policy.decide(
        [(finding(sid), action(sid)) for sid in services],
        services=services,
        ledger=Ledger(),
        safety=LIMIT_1,
        now=NOW,
        leader=True,
    )
    assert [d.reason for d in decisions] == [Reason.NOT_OPTED_IN, Reason.OK]


def test_the_pause_explains_itself() -> None:
    d = run(Case("paused", ledger=PAUSED))
    assert d.explanation.startswith("paused since 2023-11-14T22:12:20Z until resume, by ops@host")
    assert d.explanation.endswith("reason: maintenance")
    corrupt = run(Case("paused", ledger=PAUSE_CORRUPT))
    assert "unreadable" in corrupt.explanation


def test_evaluate_counts_the_ledger_s_fixes_under_way() -> None:
    snap = snapshot(nodes=[node(role="manager", leader=True)], services=[svc(OPT_IN)])
    (d,) = policy.evaluate(
        [(finding(), action())],
        snap,
        ledger=OTHER_VERIFYING,
        safety=LIMIT_1,
        now=NOW,
    )
    assert d.reason is Reason.MAX_CONCURRENT


def node_finding(node_id: str = "old3") -> Finding:
    f = Finding.for_node(
        node(node_id, state="down"), "a ghost", "ghost", key=f"ghost:{node_id}", actionable=True
    )
    return replace(f, runbook="stale-nodes")


def removal(node_id: str = "old3") -> Action:
    return Action(ActionKind.REMOVE_NODE, "", "", 4, "ghost", node_id=node_id)


@pytest.mark.parametrize(
    ("led", "safety", "reason"),
    [
        # no service to opt in or out: the runbook's own setting was the opt-in
        (Ledger(), SafetySettings(scope="opt-in"), "ok"),
        (Ledger(), SafetySettings(dry_run=True), "dry_run"),
        (PAUSED, SafetySettings(), "paused"),
        # the node's own history: cooldown, budget, breaker and a corrupt entry are its
        (ledger_with(History(actions=((NOW - 100, "stale-nodes"),)), "old3"), None, "cooldown"),
        (ledger_with(History(open_until=NOW + 60, open_reason="x"), "old3"), None, "circuit_open"),
        (
            Ledger.from_doc(LedgerDoc("cfg", 1, MappingProxyType({PREFIX + "old3": "{"}))),
            None,
            "ledger_unreadable",
        ),
        # a service's history says nothing about a node
        (ledger_with(History(open_until=NOW + 60, open_reason="x"), SID), None, "ok"),
    ],
)
def test_a_node_removal_is_judged_by_the_nodes_history(
    led: Ledger, safety: SafetySettings | None, reason: str
) -> None:
    (d,) = policy.decide(
        [(node_finding(), removal())],
        services={SID: svc(OPT_IN)},
        ledger=led,
        safety=safety or SafetySettings(cooldown=300),
        now=NOW,
        leader=True,
        # a node-local action's node that could not be asked says nothing of this removal
        hands_down={"old3": "did not answer"},
    )
    assert d.reason == reason
    assert policy.history_wanted([(node_finding(), removal())], LEADING) == {"old3"}


LEADING = snapshot(nodes=[node("n1", role="manager", leader=True)])


def test_two_removals_of_one_node_in_a_scan_are_busy_but_two_nodes_are_not() -> None:
    decisions = policy.decide(
        [
            (node_finding("a"), removal("a")),
            (node_finding("a"), removal("a")),
            (node_finding("b"), removal("b")),
        ],
        services={},
        ledger=Ledger(),
        safety=SafetySettings(),
        now=NOW,
        leader=True,
    )
    assert [d.reason for d in decisions] == ["ok", "busy", "ok"]
