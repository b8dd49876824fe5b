"""A service whose tasks are rejected again and again with the same error.

Symptom: several tasks of one service in state `rejected` with the same Status.Err within a
window (settings `threshold` and `window`; default: 3 within 10 minutes) and none running
since, e.g. "No such image: app:1.2" — swarm makes a new task every few seconds, forever, each
one rejected the same way.

Cause: something a restart cannot change: an image that does not exist on the node or in the
registry (or missing registry credentials: deploy with --with-registry-auth), a bad mount
source, a missing secret or network.

What the medic does: reports it once per incident (not once per task), with the error and the
nodes involved. No action: retrying is what swarm is already doing. Rejections for the image on
nodes where it is missing while other nodes run that image are left to `image-on-some-nodes`,
which names both sides and the likely cause: one story, not two pages for the same tasks.

Risks: none; it never acts.
"""

from __future__ import annotations

from collections.abc import Iterator

from swarm_medic.runbook import DAY, Context, Count, Duration, Finding, Setting, Severity
from swarm_medic.runbook.helpers import image_splits

NAME = "repeated-rejection"
SETTINGS = (
    Setting(
        "threshold", Count(1000), "3", "rejections with the same error that make an incident", "N"
    ),
    Setting("window", Duration(1.0, 30 * DAY), "10m", "how far back rejections count", "DURATION"),
)


def advice_for(err: str) -> str:
    low = err.lower()
    if "no such image" in low or "pull" in low or "manifest" in low:
        return (
            "the image cannot be found on the node: check the name and tag, that it exists "
            "in the registry, and redeploy with --with-registry-auth if it is private"
        )
    if "mount" in low or "bind source" in low:
        return "a mount source is missing on the node: create it or fix the service's mounts"
    if "secret" in low or "config" in low:
        return "a secret or config the service needs is missing"
    return "look at the error; swarm will keep retrying and failing the same way"


def detect(ctx: Context) -> Iterator[Finding]:
    window, threshold = ctx.settings.window, ctx.settings.threshold
    for svc in ctx.snapshot.services:
        history = ctx.snapshot.tasks_of(svc.id)
        # A task that reached running after the rejections means the cause was fixed: the
        # rejected tasks that linger in the task history no longer count.
        fixed_at = max((t.timestamp for t in history if t.state == "running"), default=0.0)
        by_err: dict[str, list[tuple[str, str]]] = {}
        for t in history:
            if (
                t.state == "rejected"
                and t.err
                and ctx.now - t.timestamp <= window
                and t.timestamp > fixed_at
            ):
                by_err.setdefault(t.err, []).append((t.id, t.node_id))
        if by_err:
            split = {
                t.id for s in image_splits(ctx.snapshot, svc, ctx.now, window) for t in s.rejected
            }
            by_err = {e: [(i, n) for i, n in ts if i not in split] for e, ts in by_err.items()}
        for err, tasks in sorted(by_err.items()):
            if len(tasks) < threshold:
                continue
            yield Finding.for_service(
                svc,
                key=f"{svc.id}:{err}",
                summary=f"{svc.name}: {len(tasks)} tasks rejected with {err!r}",
                cause="rejected",
                severity=Severity.CRITICAL,
                task_ids=tuple(sorted(i for i, _ in tasks)),
                node_ids=tuple(sorted({n for _, n in tasks if n})),
                advice=advice_for(err),
                actionable=False,
                details={"error": err},
            )
