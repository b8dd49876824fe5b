"""A replicated service scaled to zero replicas, and left there.

Symptom: a replicated service has Replicas 0 for longer than the setting `grace` (default 1h):
nothing runs, nothing fails, nothing alerts. Cause: a scale-down for maintenance that was
never undone. What the medic does: reports it once per incident. Risks: none; it never acts.
Label a service swarm-medic.replicas-zero=expected to leave it out.
"""

from collections.abc import Iterator

from swarm_medic.runbook import DAY, Context, Duration, Finding, Setting

NAME = "replicas-zero"
SETTINGS = (Setting("grace", Duration(60, 30 * DAY), "1h", "how long at zero before it counts"),)


def detect(ctx: Context) -> Iterator[Finding]:
    for svc in ctx.snapshot.services:
        if svc.mode != "replicated" or svc.replicas != 0:
            continue
        if svc.labels.get("swarm-medic.replicas-zero") == "expected":
            continue
        # one incident per service: the key, here and in the finding, is its id
        seen_for = ctx.now - ctx.since(svc.id)
        if seen_for < ctx.settings.grace:
            continue
        yield Finding.for_service(
            svc,
            summary=f"{svc.name} has been scaled to 0 for {seen_for:.0f}s",
            cause="scaled-to-zero",
            advice=f"scale it back (`docker service scale {svc.name}=N`) or remove it",
        )
