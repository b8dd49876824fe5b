"""The status page: `GET /` on the HTTP port, one server-rendered HTML page a person reads in
ten seconds. No JavaScript, no external asset, inline CSS only.

`StatusView` is what the page shows, as immutable data built from the Medic's state (view.py);
`render` turns it into HTML. Every string that comes from the
cluster (service and node names, labels, runbook text quoting them) is untrusted: each one
passes `html.escape` here and nowhere else, so a service named `<script>` shows as text.
`Page` caches the rendered page for a second: it is answered on the HTTP loop, and a client
reloading it in a loop must not cost a matrix walk per request.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html import escape

from swarm_medic.core.incidents import Remediation
from swarm_medic.core.parsers import say_duration
from swarm_medic.core.worth import HARM_WINDOW, Figures, Worth

HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
CONTENT_TYPE = "text/html; charset=utf-8"
WORTH_SINCE = 7 * 86400.0  # the window of the figures shown: `swarm-medic report`'s default


@dataclass(frozen=True)
class OpenIncident:
    id: str
    runbook: str
    service: str
    summary: str
    diagnosis: str
    since: float


@dataclass(frozen=True)
class Breaker:
    service: str
    until: float
    why: str = ""


@dataclass(frozen=True)
class ReachCell:
    ok: int = 0
    failing: int = 0
    unknown: int = 0  # running tasks of the service this node has not probed (yet)

    @property
    def state(self) -> str:
        if self.failing:
            return "failing"
        if self.ok and not self.unknown:
            return "ok"
        return "partial" if self.ok else "unknown"


@dataclass(frozen=True)
class ReachMatrix:
    """From node (rows) x service (columns) over the probe cells held now."""

    nodes: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    cells: dict[tuple[str, str], ReachCell] = field(default_factory=dict)  # (node, service)
    rounds: int = 0
    round_at: float = 0.0
    hidden: int = 0  # services left out to keep the page small (all answering)


@dataclass(frozen=True)
class StatusView:
    now: float
    version: str
    mode: str  # "act" | "dry-run"
    scope: str
    role: str  # leader | manager | worker | unreachable | starting
    node: str = ""  # this instance's node (hostname), when known
    brain: str = ""  # the leader's hostname, when known
    brain_url: str = ""  # its status page, when its address is known
    last_scan: float | None = None
    last_error: str = ""
    pause: str | None = None  # None: no pause state to show
    engine: str = ""  # "Docker 28.5.2, API 1.51": what this instance speaks ("" : not yet)
    incidents: tuple[OpenIncident, ...] = ()
    remediations: tuple[Remediation, ...] = ()  # newest first
    breakers: tuple[Breaker, ...] = ()
    verifying: int = 0
    reach: ReachMatrix = field(default_factory=ReachMatrix)
    worth: Worth | None = None  # the figures of `swarm-medic report` (None: no ledger read yet)
    storm: str = ""  # the storm in force: what is failing ("" : none)
    proposals: tuple[tuple[str, str], ...] = ()  # (incident id, action proposed), asking first

    @property
    def is_brain(self) -> bool:
        return self.role == "leader"


class Page:
    """The rendered page, rebuilt at most every `max_age` seconds."""

    def __init__(
        self,
        build: Callable[[], StatusView],
        *,
        clock: Callable[[], float] = time.monotonic,
        max_age: float = 1.0,
    ) -> None:
        self._build = build
        self._clock = clock
        self._max_age = max_age
        self._cached: tuple[float, bytes] | None = None

    def __call__(self) -> bytes:
        now = self._clock()
        if self._cached is not None and now - self._cached[0] < self._max_age:
            return self._cached[1]
        body = render(self._build()).encode()
        self._cached = (now, body)
        return body


# --- rendering ---------------------------------------------------------------------------------

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1b1f24;background:#fafbfc}
h1{font-size:1.4em;margin:0 0 .3em}h2{font-size:1.1em;margin:1.4em 0 .4em}
.facts span{display:inline-block;margin:0 1.2em .3em 0}.facts b{font-weight:600}
.banner{padding:.6em .9em;border-radius:4px;margin:.6em 0}
.brain{background:#e6f4ea}.notbrain{background:#fff4ce}.err{background:#fde7e9}
.pause{background:#fde7e9;font-weight:600}
table{border-collapse:collapse;background:#fff}
th,td{border:1px solid #d0d7de;padding:.25em .55em;text-align:left;vertical-align:top}
th{background:#f0f3f6}td.n{text-align:right;white-space:nowrap}
.empty{color:#57606a;font-style:italic}
.healed,.ok{background:#c7ecd0}.not_healed,.failed,.failing{background:#f8c6c9}
.conflict,.unreachable,.partial{background:#fbe5a6}.unknown{background:#e4e7eb;color:#57606a}
.none{color:#8c959f}.legend span{display:inline-block;padding:0 .5em;margin-right:.4em}
small{color:#57606a}
"""


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _ago(now: float, then: float | None) -> str:
    if then is None:
        return "never"
    return f"{_duration(max(0.0, now - then))} ago"


def _duration(seconds: float) -> str:
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"


def _utc(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


def _table(head: Sequence[str], rows: Sequence[str], empty: str, cls: str = "") -> str:
    if not rows:
        return f'<p class="empty">{_e(empty)}</p>'
    ths = "".join(f"<th>{_e(h)}</th>" for h in head)
    attr = f' class="{cls}"' if cls else ""
    return f"<table{attr}><thead><tr>{ths}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _brain(v: StatusView) -> str:
    if v.is_brain:
        return (
            '<div class="banner brain">This node is the <b>brain</b> (the leader manager): '
            "it scans, decides, acts and probes. This page is complete.</div>"
        )
    where = f"<b>{_e(v.brain)}</b>" if v.brain else "the swarm's leader manager"
    link = f' — its page: <a href="{_e(v.brain_url)}">{_e(v.brain_url)}</a>' if v.brain_url else ""
    why = {
        "worker": "This node is a worker: it probes and acts only when the brain asks.",
        "manager": "This node is a manager but not the leader: it only observes.",
        "unreachable": "This instance cannot reach its Docker engine.",
        "starting": "This instance has not scanned yet.",
    }.get(v.role, f"Role: {_e(v.role)}.")
    return (
        f'<div class="banner notbrain">{why} The brain is {where}{link}. '
        "Incidents, remediations and the reachability matrix are on the brain's page.</div>"
    )


def _incidents(v: StatusView) -> str:
    rows = [
        f"<tr><td>{_e(i.runbook)}</td><td>{_e(i.service or '-')}</td><td>{_e(i.summary)}</td>"
        f"<td>{_e(i.diagnosis or '-')}</td><td class=n>{_e(_duration(v.now - i.since))}</td>"
        f"<td><small>{_e(i.id)}</small></td></tr>"
        for i in v.incidents
    ]
    head = ("runbook", "service", "summary", "diagnosis", "open for", "incident")
    return _table(head, rows, "No open incident.")


def _remediations(v: StatusView) -> str:
    rows = [
        f"<tr><td class=n>{_e(_utc(r.at))}</td><td>{_e(r.runbook)}</td><td>{_e(r.service)}</td>"
        f'<td>{_e(r.action)}</td><td class="{_e(r.result)}">{_e(r.result)}</td>'
        f"<td class=n>{_e('-' if r.seconds is None else _duration(r.seconds))}</td>"
        f"<td>{_e(r.detail)}</td><td><small>{_e(r.incident)}</small></td></tr>"
        for r in v.remediations
    ]
    head = ("when", "runbook", "service", "action", "outcome", "time to heal", "detail", "incident")
    return _table(head, rows, "No remediation since this instance started.")


def _breakers(v: StatusView) -> str:
    rows = [
        f"<tr><td>{_e(b.service)}</td><td class=n>{_e(_duration(b.until - v.now))}</td>"
        f"<td>{_e(b.why or '-')}</td></tr>"
        for b in v.breakers
    ]
    return _table(("service", "closes in", "why"), rows, "No circuit breaker open.")


def _reach(v: StatusView) -> str:
    m = v.reach
    if not m.rounds:
        return '<p class="empty">No probe round yet.</p>'
    if not m.services:
        return f'<p class="empty">{m.rounds} probe rounds; no probed service running.</p>'
    head = "".join(f"<th>{_e(s)}</th>" for s in m.services)
    rows = []
    for node in m.nodes:
        tds = []
        for svc in m.services:
            c = m.cells.get((node, svc))
            if c is None:
                tds.append('<td class="none" title="not probed from this node">-</td>')
                continue
            text = f"{c.ok} ok"
            if c.failing:
                text += f", {c.failing} failing"
            if c.unknown:
                text += f", {c.unknown} unknown"
            tds.append(f'<td class="{c.state}">{_e(text)}</td>')
        rows.append(f"<tr><th>{_e(node)}</th>{''.join(tds)}</tr>")
    more = (
        f'<p class="empty">{m.hidden} more services probed, not shown '
        "(failing ones come first).</p>"
        if m.hidden
        else ""
    )
    legend = (
        '<p class="legend"><span class="ok">all answer</span>'
        '<span class="partial">some not probed yet</span>'
        '<span class="failing">some fail</span><span class="unknown">none probed yet</span></p>'
    )
    return (
        f"<p><small>{m.rounds} rounds, the last {_e(_ago(v.now, m.round_at))}; TCP probes of "
        "each service's running tasks, from each node (rows).</small></p>"
        f'<table class="reach"><thead><tr><th>from node \\ service</th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>{legend}{more}"
    )


def _share(part: int, whole: int) -> str:
    return "-" if not whole else f"{part}/{whole} ({100 * part / whole:.0f}%)"


def _worth_row(f: Figures) -> str:
    heal = (
        "-"
        if f.heal_p50 is None or f.heal_p95 is None
        else f"{_duration(f.heal_p50)} / {_duration(f.heal_p95)}"
    )
    cells = (
        f.found,
        f.open,
        f.fixed,
        f.healed,
        f.did_not_hold,
        heal,
        _share(f.no_human, f.found),
        _share(f.undone, f.healed),
    )
    tds = "".join(f"<td class=n>{_e(c)}</td>" for c in cells)
    name = f"<td>{_e(f.runbook)}</td>" if f.runbook else "<td><b>all</b></td>"
    return f"<tr>{name}{tds}</tr>"


def _worth(v: StatusView) -> str:
    w = v.worth
    if w is None:
        return '<p class="empty">The ledger has not been read yet.</p>'
    if not w.total.found:
        return (
            '<p class="empty">No incident recorded in that time (in dry-run the medic '
            "records nothing).</p>"
        )
    head = (
        "runbook",
        "found",
        "open",
        "fixed",
        "healed",
        "did not hold",
        "time to heal p50 / p95",
        "closed, no human",
        "harm",
    )
    rows = [_worth_row(f) for f in w.runbooks]
    if len(w.runbooks) > 1:
        rows.append(_worth_row(w.total))
    notes = []
    for h in w.harms[-10:]:
        notes.append(
            f"heal undone: {_e(h.healed.runbook)} on {_e(h.healed.service)} (incident "
            f"{_e(h.healed.id)}), then {_e(h.by.runbook)} (incident {_e(h.by.id)})"
        )
    if w.total.watching:
        notes.append(
            f"{w.total.watching} heal(s) in the last {say_duration(HARM_WINDOW)}: whether they "
            "hold is not known yet"
        )
    if w.complete_from > w.start:
        notes.append(f"incidents found before {_e(_utc(w.complete_from))} may be missing")
    notes += [f"not counted: {_e(p)}" for p in w.problems[:10]]
    extra = "".join(f"<p><small>{n}</small></p>" for n in notes)
    return _table(head, rows, "") + extra


def _proposals(v: StatusView) -> str:
    rows = "".join(
        f"<tr><td>{_e(iid)}</td><td>{_e(what)}</td>"
        f"<td><code>swarm-medic approve {_e(iid)}</code> (on a manager)</td></tr>"
        for iid, what in v.proposals
    )
    return f"<table><tr><th>incident</th><th>proposed</th><th>to approve</th></tr>{rows}</table>"


def render(v: StatusView) -> str:
    mode = "DRY-RUN (observes only)" if v.mode == "dry-run" else "ACT"
    facts = [
        f"<span>mode <b>{_e(mode)}</b></span>",
        f"<span>scope <b>{_e(v.scope)}</b></span>",
        f"<span>role <b>{_e(v.role)}</b></span>",
        f"<span>node <b>{_e(v.node or '?')}</b></span>",
        f"<span>last scan <b>{_e(_ago(v.now, v.last_scan))}</b></span>",
        f"<span>engine <b>{_e(v.engine or 'not answering yet')}</b></span>",
    ]
    if v.is_brain:
        facts.append(f"<span>fixes being verified <b>{v.verifying}</b></span>")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>swarm-medic: {_e(v.role)} on {_e(v.node or '?')}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>swarm-medic {_e(v.version)}</h1>",
        f'<div class="facts">{"".join(facts)}</div>',
    ]
    if v.pause is not None:
        parts.append(f'<div class="banner pause">{_e(v.pause)}</div>')
    if v.storm:
        parts.append(
            f'<div class="banner pause">storm: no action anywhere until it passes; {_e(v.storm)}'
            "</div>"
        )
    if v.last_error:
        parts.append(f'<div class="banner err">last error: {_e(v.last_error)}</div>')
    parts.append(_brain(v))
    if v.is_brain and v.proposals:
        parts += [f"<h2>Proposed, waiting for an approval ({len(v.proposals)})</h2>", _proposals(v)]
    if v.is_brain:
        parts += [
            f"<h2>Open incidents ({len(v.incidents)})</h2>",
            _incidents(v),
            f"<h2>Last remediations ({len(v.remediations)}, newest first)</h2>",
            _remediations(v),
            f"<h2>Open circuit breakers ({len(v.breakers)})</h2>",
            _breakers(v),
            "<h2>What the healing was worth (incidents found in the last "
            f"{_e(say_duration(v.worth.since if v.worth else WORTH_SINCE))})</h2>",
            _worth(v),
            "<h2>Reachability</h2>",
            _reach(v),
        ]
    parts.append(
        f"<p><small>{_e(_utc(v.now))} · also <a href=/metrics>/metrics</a>, "
        "<a href=/healthz>/healthz</a></small></p></body></html>"
    )
    return "\n".join(parts)
