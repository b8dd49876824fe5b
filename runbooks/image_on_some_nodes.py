"""A service whose image runs on some nodes and is rejected on others: which, and likely why.

Symptom: tasks of one service run on some nodes while, on others, its tasks are rejected for the
image again and again ("No such image: ...", "pull access denied ...", "manifest unknown",
"unauthorized"), `threshold` times within `window` (default 3 in 10 minutes). A global service
is missing on those nodes; a replicated one piles onto the nodes that have the image, or waits.

Cause: the nodes that fail cannot get the image, while those that run it have it (moby#34351,
#30184, #25619). Read from the errors and the image reference:
- the registry refused them ("pull access denied", "unauthorized", "authentication required"):
  the service was created or last updated without `--with-registry-auth`, so the nodes pull
  with no credentials, or the credentials it carries have expired;
- the registry has no such tag or digest ("manifest unknown"): it was never pushed;
- "No such image" alone (what the engine says after a pull failed) with an image pinned by
  digest: the manager found it in a registry when the service was deployed, so these nodes
  could not pull it (no `--with-registry-auth`, expired credentials, or that registry out of
  their reach); without a digest the manager could not find it in any registry: it exists only
  where it was built or loaded (`docker build`, `docker load` on those nodes), never pushed.

What the medic does: reports it once per service and image, naming the nodes that run it (so
have it) and those that cannot get it, the error, the likely cause and the fix (push the image,
or `docker service update --with-registry-auth SERVICE` from a manager logged in to the
registry). No action: only the operator has the credentials or the image. `repeated-rejection`
leaves these rejections to this runbook (it would report the same tasks without the split), and
still reports a service whose image no node runs.

Risks: none; it never acts. The cause is a likely one, from words and a reference: a node that
ran the image and lost it (an image prune) is counted on neither side.
"""

from __future__ import annotations

from collections.abc import Iterator

from swarm_medic.runbook import DAY, Context, Count, Duration, Finding, Service, Setting, Severity
from swarm_medic.runbook.helpers import ImageSplit, image_splits

NAME = "image-on-some-nodes"
SETTINGS = (
    Setting(
        "threshold",
        Count(1000),
        "3",
        "rejections for the image, on the nodes that cannot get it, that make an incident",
        "N",
    ),
    Setting("window", Duration(1.0, 30 * DAY), "10m", "how far back rejections count", "DURATION"),
)

_REFUSED = ("pull access denied", "unauthorized", "authentication required", "denied:")
_NOT_PUSHED = ("manifest unknown", "manifest for")


def likely_cause(split: ImageSplit, service: str) -> tuple[str, str]:
    """(cause, its explanation and fix) from the errors and the image reference."""
    said = " ".join(split.errors).lower()
    auth = (
        "redeploy it with its credentials: `docker login` to the registry on a manager, then "
        f"`docker service update --with-registry-auth {service}`"
    )
    if any(w in said for w in _REFUSED):
        return (
            "registry-auth",
            "the registry refused these nodes: the service was deployed without "
            f"--with-registry-auth (the nodes pull with no credentials) or its credentials "
            f"expired; {auth}",
        )
    if any(w in said for w in _NOT_PUSHED):
        return (
            "not-pushed",
            "the registry has no such tag or digest: it was built on the nodes that run it and "
            f"never pushed; push it (`docker push {split.image}`) or deploy an image that is there",
        )
    if "@sha256:" in split.image:
        return (
            "cannot-pull",
            "the manager resolved this digest in a registry when the service was deployed, so "
            "these nodes could not pull it: no --with-registry-auth, expired credentials, or "
            f"the registry out of their reach; {auth}",
        )
    return (
        "local-only",
        "no manager could resolve it in a registry (the service pins no digest): the image "
        "exists only where it was built or loaded (`docker build` / `docker load` on those "
        "nodes); push it to a registry every node can reach and deploy that reference",
    )


def _names(ctx: Context, node_ids: tuple[str, ...] | list[str]) -> str:
    names = []
    for nid in node_ids:
        node = ctx.snapshot.node(nid)
        names.append(node.hostname if node is not None and node.hostname else nid)
    # sorted: the order tasks were listed in is the engine's, and a message that changes with it
    # reads as a new story (and did not match itself from run to run)
    return ", ".join(sorted(names))


def detect(ctx: Context) -> Iterator[Finding]:
    for svc in ctx.snapshot.services:
        for split in image_splits(ctx.snapshot, svc, ctx.now, ctx.settings.window):
            if len(split.rejected) >= ctx.settings.threshold:
                yield _finding(svc, split, ctx)


def _finding(svc: Service, split: ImageSplit, ctx: Context) -> Finding:
    cannot = tuple(split.cannot)
    have, refused = _names(ctx, split.have), _names(ctx, cannot)
    cause, why = likely_cause(split, svc.name)
    shown = split.errors[0] + (f" (and {len(split.errors) - 1} more)" if split.errors[1:] else "")
    return Finding.for_service(
        svc,
        key=f"{svc.id}:{split.image}",
        summary=f"{svc.name}: image {split.image} runs on {have} and is rejected on {refused} "
        f"({len(split.rejected)} tasks: {shown!r})",
        cause=cause,
        severity=Severity.WARNING,
        task_ids=tuple(sorted(t.id for t in split.rejected)),
        node_ids=tuple(sorted({*split.have, *cannot})),
        advice=f"Nodes that run it, so have it: {have}. Nodes that cannot get it: {refused}. "
        f"Likely cause: {why}.",
        actionable=False,
        details={
            "image": split.image,
            "have": have,
            "cannot": refused,
            "error": split.errors[0],
        },
    )
