"""The status page's data (status.StatusView) from the Medic's state.

Called from the HTTP thread while the scan thread runs: it never takes the scan's lock (a
scan waits on the engine for seconds) and reads only what the scan publishes whole (the
frozen snapshot, the tuple of open incidents, copies of small dicts), plus the probe matrix
under `Medic.reach_lock`, which a probe round holds only while it folds its answers in.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace

from swarm_medic.core.incidents import Incident
from swarm_medic.core.model import Snapshot
from swarm_medic.core.reach import Reachability, running
from swarm_medic.core.worth import compute
from swarm_medic.pipeline.scan import Medic
from swarm_medic.web.status import (
    WORTH_SINCE,
    Breaker,
    OpenIncident,
    ReachCell,
    ReachMatrix,
    StatusView,
)

MAX_SERVICES = 30  # matrix columns: the failing services first, then by name
MAX_INCIDENTS = 200


def _engine(medic: Medic) -> str:
    spoken = medic.engine.speaking
    return "" if spoken is None else f"Docker {spoken.engine}, API {spoken.api}"


def build(medic: Medic, now: float, *, version: str, pause: str | None = None) -> StatusView:
    st = medic.state
    s, port = medic.safety, medic.settings.http.http_port
    role = st.role
    # a worker has no snapshot of its own; one kept from before a demotion would be stale
    snap = st.snapshot if role in ("leader", "manager") else None
    node = brain = brain_url = ""
    if snap is not None:
        me = snap.node(snap.info.node_id)
        node = me.hostname if me else ""
        leader = next((n for n in snap.nodes if n.leader), None)
        if leader is not None:
            brain = leader.hostname
            if role != "leader" and port and _is_ip(leader.addr):
                host = f"[{leader.addr}]" if ":" in leader.addr else leader.addr
                brain_url = f"http://{host}:{port}/"
    view = StatusView(
        now=now,
        version=version,
        mode="dry-run" if s.dry_run else "act",
        scope=s.scope,
        role=role,
        node=node,
        brain=brain,
        brain_url=brain_url,
        last_scan=st.last_ok,
        last_error=st.last_error,
        pause=pause,
        engine=_engine(medic),
        storm=medic.storm.why(),
    )
    if role != "leader" or snap is None:
        return view
    incidents = sorted(medic.open_incidents, key=lambda i: i.opened_at)[:MAX_INCIDENTS]
    why = dict(st.breaker_why)
    breakers = []
    for sid, until in sorted(dict(st.open_until).items(), key=lambda kv: kv[1]):
        if until > now:
            svc = snap.service(sid)
            breakers.append(Breaker(svc.name if svc else sid, until, why.get(sid, "")))
    with medic.reach_lock:
        reach = matrix(medic.reach, snap)
    ledger = medic.last_ledger  # the last read, published whole; records decoded here
    worth = compute(ledger.records(), now, WORTH_SINCE) if ledger is not None else None
    return replace(
        view,
        incidents=tuple(_incident(i) for i in incidents),
        remediations=medic.recent.newest_first(),
        breakers=tuple(breakers),
        verifying=len(st.pending),
        reach=reach,
        worth=worth,
        proposals=tuple(sorted(dict(medic.proposals).items())),
    )


def _incident(i: Incident) -> OpenIncident:
    f = i.finding  # read once: the scan replaces it whole
    return OpenIncident(
        i.id, f.runbook, f.service_name, f.summary, f.advice or f.cause, i.opened_at
    )


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def matrix(reach: Reachability, snap: Snapshot) -> ReachMatrix:
    """Probe cells counted per (from node, service): ok, failing, and the service's running
    tasks that node has not probed yet. O(cells held); the caller holds the reach lock."""
    counts: dict[tuple[str, str], list[int]] = {}
    for (node_id, task_id), cell in reach.tcp.items():
        t = snap.task(task_id)
        if t is None:
            continue
        c = counts.setdefault((node_id, t.service_id), [0, 0])
        c[0 if cell.ok else 1] += 1
    if not counts:
        return ReachMatrix(rounds=reach.rounds, round_at=reach.round_at)
    running_tasks = {
        sid: sum(1 for t in snap.tasks_of(sid) if running(t) and t.addresses)
        for sid in {sid for _, sid in counts}
    }
    failing = {sid for (_, sid), c in counts.items() if c[1]}
    names = {}
    for sid in running_tasks:
        svc = snap.service(sid)
        names[sid] = svc.name if svc else sid
    services = sorted(running_tasks, key=lambda sid: (sid not in failing, names[sid]))
    shown = set(services[:MAX_SERVICES])
    hostnames = [n.hostname for n in snap.nodes]
    label = {
        n.id: n.hostname if hostnames.count(n.hostname) == 1 else f"{n.hostname} ({n.id[:8]})"
        for n in snap.nodes
    }
    cells = {}
    for (node_id, sid), (ok, bad) in counts.items():
        if sid in shown:
            unknown = max(0, running_tasks[sid] - ok - bad)
            cells[(label.get(node_id, node_id), names[sid])] = ReachCell(ok, bad, unknown)
    return ReachMatrix(
        nodes=tuple(sorted({n for n, _ in cells})),
        services=tuple(names[sid] for sid in services if sid in shown),
        cells=cells,
        rounds=reach.rounds,
        round_at=reach.round_at,
        hidden=len(services) - len(shown),
    )
