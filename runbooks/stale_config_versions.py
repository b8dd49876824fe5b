"""Old config and secret versions (made by `swarm-medic rollout`) that no service needs.

Symptom: a family of versions (configs or secrets labelled `swarm-medic.rollout.family`, each
`<family>-<12 hex of its content's SHA-256>`) holds versions that no service's spec or
previous spec names, beyond the newest `keep` (setting; default 3) such versions.

Cause: swarm cannot change a config or secret in place, so every rollout of a new content
makes a new object. The rollout's own garbage collection removes what no one needs, but
versions are left behind when it could not run or finish (interrupted, an engine error), when
it ran with a larger `--keep`, or when services stopped using them afterwards: a service
removed, or redeployed by `docker stack deploy`, which points it back at the stack's own object.

What the medic does: reports, per family, the versions `swarm-medic rollout gc --keep K`
would remove: the same selection, so what is reported is exactly what would go. No action:
removing objects is the operator's call.

Risks: none; it never acts. Never reported: an object without the family label (the stack's
own object, the medic's ledger), a version any service's spec or previous spec names (what
`docker service rollback` and a failed update's automatic rollback go back to), and the newest
`keep` others (older contents one may want to roll out again).
"""

from __future__ import annotations

from collections.abc import Iterator

from swarm_medic.runbook import Context, Count, Finding, Setting, Severity
from swarm_medic.runbook.helpers import DEFAULT_KEEP, stale_versions

NAME = "stale-config-versions"
SHOWN = 5  # names in the summary; the details list them all

SETTINGS = (
    Setting(
        "keep",
        Count(1000, low=0),
        str(DEFAULT_KEEP),
        "unused versions kept per family, newest first, besides those a service's spec or "
        "previous spec names (as `swarm-medic rollout --keep`)",
        "N",
    ),
)


def detect(ctx: Context) -> Iterator[Finding]:
    keep = ctx.settings.keep
    snap = ctx.snapshot
    for fam in stale_versions((*snap.configs, *snap.secrets), snap.services, keep):
        names = [o.name for o in fam.stale]
        shown = ", ".join(names[:SHOWN]) + (
            f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
        )
        yield Finding.about(
            # the family is the incident: more stale versions later are the same one
            f"{fam.kind}:{fam.name}",
            summary=f"{len(names)} old {fam.kind} version(s) of {fam.name} no service uses: "
            f"{shown}",
            cause="unreferenced",
            severity=Severity.INFO,
            advice=f"`swarm-medic rollout gc --keep {keep}` removes them; it keeps every version "
            f"a service's spec or previous spec names ({len(fam.used)} now) and the newest "
            f"{keep} others ({len(fam.kept)} now)",
            actionable=False,
            details={
                "kind": fam.kind,
                "family": fam.name,
                "stale": ",".join(names),
                "in_use": ",".join(o.name for o in fam.used),
                "kept": ",".join(o.name for o in fam.kept),
            },
        )
