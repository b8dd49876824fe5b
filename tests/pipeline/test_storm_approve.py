"""The storm guard and ask-first approvals, end to end on a FakeEngine: many services broken at
once open one storm incident and nothing is acted on, one broken alone is healed; a service
that asks first is proposed, acted on once after `swarm-medic approve`, and an expired approval
applies nothing."""

from __future__ import annotations

import os
import time

import pytest

from swarm_medic import cli
from swarm_medic.commands.approve import approve
from swarm_medic.core.ledger import Approval, encode_approval
from swarm_medic.core.settings import from_values
from swarm_medic.swarm.fake import FakeEngine
from tests.builders import NOW as T0
from tests.pipeline.harness import (
    ENABLE,
    LEDGER,
    Harness,
    Kept,
    Told,
    fix,
    ledger,
    stuck_service,
    swarm,
)
from tests.pipeline.support import sample

ASKS = {**ENABLE, "swarm-medic.approve": "true"}


def use_engine(monkeypatch: pytest.MonkeyPatch, fake: FakeEngine, now: float) -> None:
    monkeypatch.setattr(cli, "_engine_factory", lambda settings: lambda: fake)
    monkeypatch.setattr(time, "time", lambda: now)  # the CLI's clock: the harness's
    for var in [v for v in os.environ if v.startswith("SWARM_MEDIC_")] + ["DOCKER_HOST"]:
        monkeypatch.delenv(var, raising=False)


class Seen:
    """What a Told medic said: its own metrics and logs."""

    def __init__(self, t: Told) -> None:
        self.t = t
        self.logs = t.logs

    def metric(self, name: str, **labels: str) -> float:
        return sample(self.t.prom, name, **labels)

    def actions(self, result: str) -> float:
        return self.metric(
            "swarm_medic_actions_total", runbook="stuck-task", action="force_update", result=result
        )

    def decisions(self, verdict: str, reason: str) -> float:
        return self.metric(
            "swarm_medic_decisions_total", runbook="stuck-task", verdict=verdict, reason=reason
        )


def healthy(fake: FakeEngine, n: int) -> None:
    for i in range(n):
        sid = fake.add_service(f"ok{i}", labels=ENABLE)
        fake.add_task(sid, state="running", node_id="mgr1")


# --- storm --------------------------------------------------------------------------------------


def test_many_services_broken_at_once_one_storm_incident_and_no_action() -> None:
    fake = swarm()
    healthy(fake, 4)
    broken = [stuck_service(fake, f"web{i}") for i in range(4)]  # 4 of 8 > 0.3
    kept = Kept()
    t = Told(fake, kept)
    h = Seen(t)
    for i in range(4):
        t.scan(T0 + 15 * i)

    assert h.actions("done") == 0
    assert h.decisions("skip", "storm") == 4
    assert h.metric("swarm_medic_storm") == 1
    (storm,) = h.logs.starting("storm: too much is failing at once")
    assert storm["services"] == ["web0", "web1", "web2", "web3"]
    assert storm["runbooks"] == ["stuck-task"]
    skip = h.logs.named("decision: skip (storm)")[0]
    assert "4 of 8 services failing" in skip["explanation"]
    assert [m.runbook for m in kept.kept if m.runbook == "storm"] == ["storm"]  # told once
    assert len(h.logs.starting("finding")) == 4  # findings still reported

    for sid, tid in broken:
        fix(fake, sid, tid)
    for at in (T0 + 400, T0 + 430, T0 + 470):  # past the window, then 2 scans and 60 s below
        t.scan(at)
    assert h.logs.named("storm over: acting again")
    assert h.metric("swarm_medic_storm") == 0
    assert h.actions("done") == 0


def test_one_service_broken_alone_is_healed() -> None:
    fake = swarm()
    healthy(fake, 7)
    sid, tid = stuck_service(fake)
    h = Harness(fake)
    h.scan(T0)
    assert h.actions("done") == 1
    assert h.metric("swarm_medic_storm") == 0
    fix(fake, sid, tid)
    h.scan(T0 + 15)
    h.scan(T0 + 30)
    assert h.metric("swarm_medic_remediations_total", runbook="stuck-task", result="healed") == 1


# --- ask first ----------------------------------------------------------------------------------


def test_proposed_then_approved_by_the_cli_then_applied_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = swarm()
    sid, tid = stuck_service(fake, labels=ASKS)
    kept = Kept()
    t = Told(fake, kept)
    h = Seen(t)
    for i in range(3):
        t.scan(T0 + 15 * i)
    assert h.actions("done") == 0
    assert h.decisions("propose", "approval_needed") == 1
    (said,) = h.logs.starting("decision: propose force_update")
    assert said["approve"] == "swarm-medic approve inc-1"
    told = [m for m in kept.kept if m.step == "would"]
    assert len(told) == 1 and "swarm-medic approve inc-1" in told[0].headline
    assert h.t.h.medic.proposals["inc-1"].startswith("force_update on web")
    record = ledger(fake).records().by_id["inc-1"]
    assert record.proposed.startswith("force_update on web")

    use_engine(monkeypatch, fake, T0 + 40)
    assert cli.main(["approve", "--list"]) == 0
    assert "swarm-medic approve inc-1" in capsys.readouterr().out
    assert cli.main(["approve", "inc-1", "--ttl", "10m", "--by", "alice"]) == 0
    out = capsys.readouterr().out
    assert "approved by alice" in out and "force_update on web" in out
    assert ledger(fake).approval("inc-1", T0 + 45) is not None

    t.scan(T0 + 45)
    assert h.actions("done") == 1
    assert h.logs.named("approval applied: consumed")
    assert ledger(fake).approvals == {}  # consumed by the claim
    fix(fake, sid, tid)
    for at in (T0 + 60, T0 + 75):
        t.scan(at)
    assert h.metric("swarm_medic_remediations_total", runbook="stuck-task", result="healed") == 1

    # broken again, past the cooldown: proposed again, the approval was applied once
    fake.set_task_state(fake.add_task(sid, state="starting", node_id="mgr1"), "starting")
    for at in (T0 + 800, T0 + 1200, T0 + 1215):
        t.scan(at)
    assert h.actions("done") == 1
    assert h.decisions("propose", "approval_needed") == 2  # the new incident is proposed


def test_an_expired_approval_applies_nothing_and_is_said_once() -> None:
    fake = swarm()
    stuck_service(fake, labels=ASKS)
    h = Harness(fake)
    h.scan(T0)
    approve(fake, LEDGER, Approval("inc-1", "bob@x", T0 + 1, T0 + 2), T0 + 1)
    for at in (T0 + 15, T0 + 30, T0 + 45):
        h.scan(at)
    assert h.actions("done") == 0
    assert len(h.logs.named("approval expired: nothing applied")) == 1
    assert ledger(fake).approvals == {}  # dropped by the leader


def test_an_unreadable_approval_approves_nothing_and_is_kept() -> None:
    fake = swarm()
    stuck_service(fake, labels=ASKS)
    h = Harness(fake)
    h.scan(T0)
    doc = fake.read_ledger(LEDGER)
    assert doc is not None
    fake.write_ledger(LEDGER, doc, {**doc.labels, "swarm-medic.approval.inc-1": "{bad"})
    h.scan(T0 + 15)
    h.scan(T0 + 30)
    assert h.actions("done") == 0
    assert len(h.logs.starting("approval unreadable")) == 1
    assert ledger(fake).approval_problems.keys() == {"inc-1"}


def test_dry_run_proposes_and_never_applies_an_approval() -> None:
    fake = swarm()
    stuck_service(fake, labels=ASKS)
    h = Harness(fake, from_values({"dry_run": True}))
    h.scan(T0)
    doc = fake.read_ledger(LEDGER)
    assert doc is None or "swarm-medic.incident.inc-1" not in doc.labels  # dry-run writes nothing
    fake.write_ledger(
        LEDGER,
        doc,
        {"swarm-medic.approval.inc-1": encode_approval(Approval("inc-1", "x", T0, T0 + 999))},
    )
    h.scan(T0 + 15)
    assert h.decisions("propose", "approval_needed") == 1
    assert h.decisions("would_act", "dry_run") == 0


def test_the_approve_runbooks_setting_asks_first_too() -> None:
    fake = swarm()
    stuck_service(fake)
    h = Harness(fake, from_values({"approve_runbooks": ("stuck-task",)}))
    h.scan(T0)
    assert h.actions("done") == 0
    assert h.decisions("propose", "approval_needed") == 1


def test_approve_an_incident_not_open_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = swarm()
    use_engine(monkeypatch, fake, T0)
    assert cli.main(["approve", "inc-9"]) == 3
    assert "no open incident inc-9" in capsys.readouterr().err
