"""The status page renderer (web/status.py): escaping, empty states, brain or not."""

from __future__ import annotations

import re
from dataclasses import replace
from types import MappingProxyType

from swarm_medic.core.incidents import Recent, Remediation
from swarm_medic.core.records import IncidentRecord, Records
from swarm_medic.core.worth import Worth, compute
from swarm_medic.web.status import (
    HEADERS,
    WORTH_SINCE,
    Breaker,
    OpenIncident,
    Page,
    ReachCell,
    ReachMatrix,
    StatusView,
    render,
)
from tests.builders import NOW as T0

EVIL = '<script>alert("x")</script>'


def brain(**kw: object) -> StatusView:
    base = StatusView(
        now=T0,
        version="0.1.0",
        mode="act",
        scope="opt-in",
        role="leader",
        node="manager-1",
        brain="manager-1",
        last_scan=T0 - 2,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def test_every_cluster_string_is_escaped() -> None:
    view = brain(
        node=EVIL,
        last_error=EVIL,
        pause=EVIL,
        incidents=(OpenIncident(EVIL, EVIL, EVIL, EVIL, EVIL, T0 - 60),),
        remediations=(Remediation(T0, EVIL, EVIL, EVIL, EVIL, EVIL, 1.0, EVIL),),
        breakers=(Breaker(EVIL, T0 + 60, EVIL),),
        reach=ReachMatrix(
            nodes=(EVIL,), services=(EVIL,), cells={(EVIL, EVIL): ReachCell(1)}, rounds=1
        ),
    )
    page = render(view)
    assert "<script" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    # a hostile value cannot break out of an attribute either (the outcome is a class name)
    assert 'class="&lt;script&gt;' in page


def test_the_brain_page_says_when_there_is_nothing() -> None:
    page = render(brain())
    for text in (
        "This node is the <b>brain</b>",
        "No open incident.",
        "No remediation since this instance started.",
        "No circuit breaker open.",
        "No probe round yet.",
        "mode <b>ACT</b>",
        "scope <b>opt-in</b>",
    ):
        assert text in page
    assert 'class="banner pause"' not in page  # no pause line without a value


def test_the_brain_page_lists_incidents_outcomes_breakers_and_the_matrix() -> None:
    view = brain(
        mode="dry-run",
        pause="Paused by ops until 12:00 UTC",
        incidents=(OpenIncident("inc-1", "stuck-task", "web", "1 task stuck", "a hang", T0 - 90),),
        remediations=(
            Remediation(T0 - 10, "inc-0", "stuck-task", "api", "force_update", "healed", 16.0),
            Remediation(T0 - 20, "inc-9", "stuck-task", "db", "force_update", "failed"),
        ),
        breakers=(Breaker("db", T0 + 600, "2 failed fixes in a row"),),
        reach=ReachMatrix(
            nodes=("n1", "n2"),
            services=("web",),
            cells={("n1", "web"): ReachCell(ok=3), ("n2", "web"): ReachCell(ok=2, failing=1)},
            rounds=4,
            round_at=T0 - 5,
        ),
    )
    page = render(view)
    assert "DRY-RUN" in page
    assert "Paused by ops until 12:00 UTC" in page
    assert "1 task stuck" in page and "a hang" in page and "1m 30s" in page
    assert re.search(r'class="healed">healed</td><td class=n>16s</td>', page)
    assert re.search(r'class="failed">failed</td><td class=n>-</td>', page)
    assert "2 failed fixes in a row" in page and "10m 00s" in page
    assert '<td class="ok">3 ok</td>' in page
    assert '<td class="failing">2 ok, 1 failing</td>' in page
    assert "4 rounds, the last 5s ago" in page


def test_a_node_that_is_not_the_brain_says_where_the_brain_is() -> None:
    page = render(
        brain(
            role="manager", node="manager-2", brain="manager-1", brain_url="http://10.0.0.1:9100/"
        )
    )
    assert "not the leader" in page
    assert "The brain is <b>manager-1</b>" in page
    assert '<a href="http://10.0.0.1:9100/">' in page
    # the brain's sections are not shown half-empty on another node
    assert "Open incidents" not in page and "Reachability" not in page

    worker = render(brain(role="worker", node="", brain=""))
    assert "This node is a worker" in worker
    assert "the swarm's leader manager" in worker


def test_matrix_cell_states() -> None:
    assert ReachCell(ok=2).state == "ok"
    assert ReachCell(ok=1, unknown=1).state == "partial"
    assert ReachCell(unknown=2).state == "unknown"
    assert ReachCell(ok=5, failing=1).state == "failing"


def test_recent_keeps_the_last_fifty_newest_first() -> None:
    recent = Recent()
    for i in range(60):
        recent.add(Remediation(T0 + i, f"inc-{i}", "rb", "svc", "force_update", "healed", 1.0))
    got = recent.newest_first()
    assert len(got) == 50
    assert got[0].incident == "inc-59" and got[-1].incident == "inc-10"


def test_page_is_rebuilt_at_most_once_a_second() -> None:
    now = [0.0]
    built: list[int] = []

    def build() -> StatusView:
        built.append(1)
        return brain()

    page = Page(build, clock=lambda: now[0])
    first = page()
    assert page() is first and len(built) == 1
    now[0] = 1.5
    page()
    assert len(built) == 2


def test_headers_forbid_scripts_and_caching() -> None:
    assert HEADERS["Content-Security-Policy"] == "default-src 'none'; style-src 'unsafe-inline'"
    assert HEADERS["Cache-Control"] == "no-store"


# --- what the healing was worth --------------------------------------------------------------


def worth_of(*records: IncidentRecord, now: float = T0 + 3600) -> Worth:
    return compute(Records(MappingProxyType({r.id: r for r in records})), now, WORTH_SINCE)


def test_the_worth_section_shows_each_runbooks_figures_and_a_total() -> None:
    healed = IncidentRecord(
        "i1",
        "stuck-task",
        T0,
        service_id="s1",
        service="web",
        acted=T0 + 1,
        actions=1,
        closed=T0 + 5,
        healed=T0 + 40,
    )
    back = IncidentRecord("i2", "crash-loop", T0 + 100, service_id="s1", service="web")
    page = render(brain(worth=worth_of(healed, back)))
    section = page.split("What the healing was worth (incidents found in the last 7d)")[1]
    rows = re.findall(r"<tr>(.*?)</tr>", section)
    cells = [c for r in rows if (c := re.findall(r"<td[^>]*>(.*?)</td>", r))]
    assert cells[0] == ["crash-loop", "1", "1", "0", "0", "0", "-", "0/1 (0%)", "-"]
    assert cells[1] == [
        "stuck-task",
        "1",
        "0",
        "1",
        "1",
        "1",
        "40s / 40s",
        "1/1 (100%)",
        "1/1 (100%)",
    ]
    assert cells[2][0] == "<b>all</b>" and cells[2][1] == "2"
    assert "heal undone: stuck-task on web (incident i1), then crash-loop (incident i2)" in section


def test_the_worth_section_escapes_and_says_when_there_is_nothing() -> None:
    evil = IncidentRecord(
        EVIL, EVIL, T0, service_id="s", service=EVIL, acted=T0, actions=1, healed=T0 + 1
    )
    again = IncidentRecord("x", EVIL, T0 + 2, service_id="s")
    page = render(brain(worth=worth_of(evil, again)))
    assert "<script" not in page
    assert "No incident recorded in that time" in render(brain(worth=worth_of()))
    assert "The ledger has not been read yet." in render(brain())


def test_the_storm_and_the_proposals_are_shown_escaped() -> None:
    page = render(
        brain(
            storm="4 of 8 services failing (<b>web</b>); runbooks firing: stuck-task",
            proposals=(("inc-1", "force_update on web: <hang>"),),
        )
    )
    assert "storm: no action anywhere until it passes; 4 of 8 services failing" in page
    assert "&lt;b&gt;web&lt;/b&gt;" in page and "<b>web</b>" not in page
    assert "Proposed, waiting for an approval (1)" in page
    assert "force_update on web: &lt;hang&gt;" in page
    assert "<code>swarm-medic approve inc-1</code>" in page
    quiet = render(brain())
    assert "storm:" not in quiet and "Proposed" not in quiet
