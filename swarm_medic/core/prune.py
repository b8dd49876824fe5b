"""What a prune removes from a node, and in what order: disk-pressure's action, decided here.

The node's hand (nodes/agent.py) carries it out, and stops as soon as its data root is at or
below the brain's target; what may go, and in which order, is this pure function's alone:

    plan(images, containers, keep, wanted) -> Plan (containers, dangling, images)

1. stopped containers (created, exited, dead) that belong to no task still wanted: a container
   whose swarm task is in `wanted` is kept, a task's container still `created` too (a task
   about to start), and a running, paused, restarting or removing one is never touched;
2. dangling images (no tag) that no container left uses;
3. unused tagged images, oldest first, that no container left uses and `keep` does not name.

`keep` is every image reference a service's Spec or PreviousSpec names: the image a rollback
needs is kept on every node, whether it runs there now or not (`docker image prune -a` removes
it from a node that does not). It is matched, for every step, the lenient way (when in doubt,
keep): by name and tag with any digest stripped, `:latest` added to an untagged name, the
`docker.io/library/` and `docker.io/` prefixes stripped, case ignored; by digest (an image any
of whose RepoDigests has a digest a keep entry names, whatever the name); by ID (an entry that
is a whole ID or its first 12 characters or more). An image the engine counts containers for
when none of this plan's removals used it is taken for used.

The build cache (step a, before all these) needs no decision, and logs are never touched: the
hand reports containers on the json-file driver without `max-size`, and the largest log files.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence, Set
from dataclasses import dataclass

from swarm_medic.core.model import EngineContainer, Image

STOPPED = frozenset({"created", "exited", "dead"})
NONE_TAG = "<none>:<none>"
NONE_DIGEST = "<none>@<none>"
_HUB = ("docker.io/", "index.docker.io/", "registry-1.docker.io/")
_ID = re.compile(r"^(?:sha256:)?([0-9a-f]{12,64})\Z")


def name_tag(ref: str) -> str:
    """A reference as a name and tag, compared across spellings: the digest stripped, `:latest`
    added to an untagged name, Docker Hub's own prefixes stripped, lower case. "" for none."""
    name = ref.strip().lower().partition("@")[0]
    if not name:
        return ""
    if name.rfind(":") <= name.rfind("/"):  # a colon before the last slash is a registry port
        name += ":latest"
    for hub in _HUB:
        if name.startswith(hub):
            name = name[len(hub) :]
            break
    if name.startswith("library/") and name.count("/") == 1:
        name = name[len("library/") :]
    return name


def digest(ref: str) -> str:
    """The digest of a reference (`sha256:...`, lower case), "" when it names none."""
    return ref.strip().lower().partition("@")[2]


@dataclass(frozen=True)
class Keep:
    """The images a prune leaves, whatever else: built from image references (`keep.of`)."""

    names: frozenset[str] = frozenset()  # name_tag of each entry
    digests: frozenset[str] = frozenset()
    ids: frozenset[str] = frozenset()  # hex, 12 to 64 characters

    @classmethod
    def of(cls, refs: Iterable[str]) -> Keep:
        names, digests, ids = set(), set(), set()
        for ref in refs:
            low = ref.strip().lower()
            if m := _ID.match(low):
                ids.add(m.group(1))
            if n := name_tag(low):
                names.add(n)
            if d := digest(low):
                digests.add(d)
        return cls(frozenset(names), frozenset(digests), frozenset(ids))

    def holds(self, image: Image) -> bool:
        """Whether a keep entry names this image, by any of its tags, digests or its ID."""
        if any(name_tag(t) in self.names for t in image.tags):
            return True
        if any(digest(d) in self.digests for d in image.digests if digest(d)):
            return True
        hex_id = image.id.lower().removeprefix("sha256:")
        return bool(hex_id) and any(hex_id.startswith(i) for i in self.ids)


@dataclass(frozen=True)
class Plan:
    """What may be removed, step by step, each in the order to remove it."""

    containers: tuple[EngineContainer, ...] = ()
    dangling: tuple[Image, ...] = ()
    images: tuple[Image, ...] = ()

    @property
    def bytes_at_most(self) -> int:
        """The images' sizes added up: an upper bound (layers are shared), for people."""
        return sum(max(0, i.size) for i in (*self.dangling, *self.images))

    def describe(self) -> str:
        return (
            f"{len(self.containers)} stopped container(s), {len(self.dangling)} dangling "
            f"image(s), {len(self.images)} unused image(s) (at most {self.bytes_at_most} bytes)"
        )


def tags_of(image: Image) -> tuple[str, ...]:
    return tuple(t for t in image.tags if t and t != NONE_TAG)


def removable(container: EngineContainer, wanted: Set[str]) -> bool:
    """A stopped container of no task still wanted. A task's container still `created` is
    never one: it is a task about to start, maybe one swarm made after the brain listed the
    wanted tasks (swarm removes the container of a task that failed to start itself)."""
    if container.state not in STOPPED:
        return False
    return not container.task_id or (
        container.task_id not in wanted and container.state != "created"
    )


def plan(
    images: Sequence[Image],
    containers: Sequence[EngineContainer],
    keep: Iterable[str],
    wanted: Iterable[str],
) -> Plan:
    """What a prune may remove, in order (see the module's text): nothing `keep` names, nothing
    a container left after the plan's own removals uses, never a running container or one of
    a wanted task."""
    want = frozenset(wanted)
    kept = Keep.of(keep)
    gone = tuple(c for c in containers if removable(c, want))
    gone_ids = {c.id for c in gone}
    used = {c.image_id for c in containers if c.id not in gone_ids and c.image_id}
    freed_by_us = {c.image_id for c in gone if c.image_id}

    def free(image: Image) -> bool:
        if image.id in used or kept.holds(image):
            return False
        # the engine counts containers we did not list, or that none of our removals used
        return not (image.containers > 0 and image.id not in freed_by_us)

    candidates = sorted((i for i in images if free(i)), key=lambda i: (i.created, i.id))
    dangling = tuple(i for i in candidates if not tags_of(i))
    tagged = tuple(i for i in candidates if tags_of(i))
    return Plan(gone, dangling, tagged)


def refs_to_remove(image: Image) -> tuple[str, ...]:
    """What to ask the engine to remove, in order, so that the image goes without force: each
    of its tags (an image with several cannot be removed by ID without force; removing the
    last tag removes the image), or its ID when it has none."""
    return tags_of(image) or (image.id,)


# --- what a prune did: the hand's summary ---------------------------------------------------


@dataclass(frozen=True)
class LogFile:
    path: str
    bytes: int


@dataclass(frozen=True)
class Pruned:
    """How a prune ended (or, `dry_run`, what it would have removed), as the hand reports it.

    `used_before` / `used_after`: the data root's used percent (statvfs, as its disk reading);
    `freed`: the bytes free after less before (what the filesystem says, not what was asked);
    `build_cache`: the bytes the engine said it reclaimed (None: skipped, `notes` say why);
    counts per step; `in_use`: removals the engine refused because something uses it (409);
    `unbounded_logs`: containers on json-file with no max-size (their names, up to 5, in
    `unbounded`); `largest_logs`: the largest log files (up to 5)."""

    node: str
    target: int
    used_before: float
    used_after: float
    freed: int = 0
    build_cache: int | None = None
    containers: int = 0
    dangling: int = 0
    images: int = 0
    in_use: int = 0
    reached: bool = False
    dry_run: bool = False
    unbounded_logs: int = 0
    unbounded: tuple[str, ...] = ()
    largest_logs: tuple[LogFile, ...] = ()
    notes: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()


LOGS_SHOWN = 5


def unbounded_logs(containers: Iterable[EngineContainer]) -> list[EngineContainer]:
    """Containers on the json-file log driver with no max-size: their log grows without bound."""
    return [c for c in containers if c.log_driver == "json-file" and not c.log_max_size]


def largest(sizes: Iterable[tuple[str, int]], n: int = LOGS_SHOWN) -> tuple[LogFile, ...]:
    """The `n` largest of (path, bytes), largest first."""
    ranked = sorted(sizes, key=lambda ps: (-ps[1], ps[0]))
    return tuple(LogFile(p, b) for p, b in ranked[:n])
