"""Helpers for runbooks: functions over what a runbook is given, pure like it.

Not the contract (that is `swarm_medic.runbook`): a runbook needs none of these, but they
answer questions several runbooks ask, the same way the pipeline answers them.

    running(task)                      running and meant to run
    running_ips(snapshot, sid, net)    the sorted IPs of a service's running tasks on a network
    probe_port(service)                the port the probes use (label swarm-medic.probe.port,
                                       else the first target port), or None
    published_targets(snapshot)        every published TCP port of a settled service, with
                                       the node address it answers at (Published)
    placement_misses(snapshot, svc)    every node that cannot take one more task, and why (Miss)
    fitting_nodes(snapshot, svc)       the nodes that can
    summarise(misses)                  the misses in words, one clause per reason
    stale_versions(stored, services, keep)
                                       config/secret families with versions no spec names
                                       beyond the newest `keep` (VersionFamily), as
                                       `swarm-medic rollout gc` sees them; DEFAULT_KEEP is
                                       its `--keep` default
    ghosts(snapshot)                   Down node entries of machines that joined the swarm
                                       again under a new id: entry id -> Ghost (entry, twin)
    is_image_error(err)                a task error that says its node could not get the image
    image_splits(snapshot, svc, now, window)
                                       a service's images that run on some nodes and are
                                       rejected for the image on others (ImageSplit)
    cert_not_after(pem)                the earliest notAfter of the certificates in a PEM text
                                       (epoch seconds), or None when none can be read
"""

from collections.abc import Mapping
from dataclasses import dataclass

from swarm_medic.core.certs import CertError, pem_not_after
from swarm_medic.core.constraints import Miss, fitting_nodes, placement_misses, summarise
from swarm_medic.core.model import Node, NodeState, Service, Snapshot, Task, TaskState
from swarm_medic.core.reach import (
    Published,
    probe_port,
    published_targets,
    running,
    running_ips,
)
from swarm_medic.core.versions import DEFAULT_KEEP, VersionFamily, stale_versions

__all__ = [
    "DEFAULT_KEEP",
    "Ghost",
    "ImageSplit",
    "Miss",
    "Published",
    "VersionFamily",
    "cert_not_after",
    "fitting_nodes",
    "ghosts",
    "image_splits",
    "is_image_error",
    "placement_misses",
    "probe_port",
    "published_targets",
    "running",
    "running_ips",
    "stale_versions",
    "summarise",
]


def cert_not_after(pem: str) -> float | None:
    """The earliest notAfter (epoch seconds) of the certificates in `pem`; None when there is
    none, or none this reader reads (core/certs.py: a bounded DER reader, no dependency)."""
    try:
        return pem_not_after(pem)
    except CertError:
        return None


# 0.0.0.0 is what some managers report as their address: no machine is told apart by it
_NO_ADDRESS = frozenset({"", "0.0.0.0"})  # noqa: S104 - compared, never bound


@dataclass(frozen=True, slots=True)
class Ghost:
    """A Down node entry left behind by a machine that joined again (moby#24106): `entry` is
    the old one, `twin` the Ready node that carries its hostname now."""

    entry: Node
    twin: Node


def ghosts(snapshot: Snapshot) -> dict[str, Ghost]:
    """The Down entries whose hostname a Ready node carries, that node having joined after
    the entry went down (its CreatedAt after the entry's UpdatedAt), or at the same address
    after the entry itself had joined. Entry id -> Ghost, with the newest such twin.

    A hostname alone is not enough: two machines cloned from one image can share it, and one
    of them rebooting is Down for a while next to the other; but that other joined long before
    the reboot, and from another address. A leader change marks every node unknown and then
    down again, which moves a Down entry's UpdatedAt past its twin's joining: then only the
    address tells, and an entry that has neither is not called a ghost (it stays a Down node)."""
    ready: dict[str, list[Node]] = {}
    for n in snapshot.nodes:
        if n.state == NodeState.READY and n.hostname:
            ready.setdefault(n.hostname, []).append(n)
    out: dict[str, Ghost] = {}
    for entry in snapshot.nodes:
        if entry.state != NodeState.DOWN or not entry.hostname:
            continue
        twins = [n for n in ready.get(entry.hostname, ()) if _joined_again(entry, n)]
        if twins:
            out[entry.id] = Ghost(entry, max(twins, key=lambda n: (n.created_at, n.id)))
    return out


def _joined_again(entry: Node, twin: Node) -> bool:
    if twin.id == entry.id or not twin.created_at:
        return False
    after_it_went_down = bool(entry.updated_at) and twin.created_at > entry.updated_at
    same_machine = (
        entry.addr not in _NO_ADDRESS
        and twin.addr == entry.addr
        and twin.created_at > entry.created_at
    )
    return after_it_went_down or same_machine


# What a node's engine says when it could not get a task's image: swarm's agent tries a pull,
# and the container create that follows a failed one says "No such image" (moby#34351); the
# registry's own refusals and a missing tag or digest say so in their words.
_IMAGE_ERRORS = (
    "no such image",
    "pull access denied",
    "manifest unknown",
    "manifest for",
    "unauthorized",
    "authentication required",
    "error pulling image",
    "repository does not exist",
)


def is_image_error(err: str) -> bool:
    """Whether a task's error says its node could not get the image (not found there, refused
    by the registry, or not in the registry)."""
    low = err.lower()
    return any(e in low for e in _IMAGE_ERRORS)


@dataclass(frozen=True, slots=True)
class ImageSplit:
    """One image of a service that nodes run while others are rejected for it.

    `have`: the nodes that run a task of it (so they have it) and were not rejected for it
    since; `cannot`: node id -> the tasks rejected there for it within the window, on nodes
    that run none; `errors`: the distinct errors of those tasks, sorted."""

    image: str
    have: tuple[str, ...]
    cannot: Mapping[str, tuple[Task, ...]]
    errors: tuple[str, ...]

    @property
    def rejected(self) -> tuple[Task, ...]:
        return tuple(t for tasks in self.cannot.values() for t in tasks)


def image_splits(
    snapshot: Snapshot, service: Service, now: float, window: float
) -> tuple[ImageSplit, ...]:
    """The images of `service` that some nodes run while others were rejected for them (an
    image error, within `window` before `now`). A task is of the image its own spec names (a
    task the engine listed without one: its service's), so the tasks of an update in flight
    are never taken for nodes that have the new image. A node that runs the image and was
    rejected for it after its task started has lost it: it counts as neither."""
    tasks = snapshot.tasks_of(service.id)
    rejected: dict[str, dict[str, list[Task]]] = {}  # image -> node -> its rejected tasks
    for t in tasks:
        if (
            t.state == TaskState.REJECTED
            and t.node_id
            and now - t.timestamp <= window
            and is_image_error(t.err)
        ):
            rejected.setdefault(t.image or service.image, {}).setdefault(t.node_id, []).append(t)
    if not rejected:  # most services, every scan: one pass over their tasks, no more
        return ()
    running: dict[str, dict[str, float]] = {}  # image -> node -> when its oldest task ran
    for t in tasks:
        if t.state == TaskState.RUNNING and t.desired_state == TaskState.RUNNING and t.node_id:
            on = running.setdefault(t.image or service.image, {})
            on[t.node_id] = min(on.get(t.node_id, t.timestamp), t.timestamp)
    out = []
    for image, by_node in sorted(rejected.items()):
        runs = running.get(image, {})
        have = tuple(
            sorted(
                n
                for n, since in runs.items()
                if not any(t.timestamp >= since for t in by_node.get(n, ()))
            )
        )
        cannot = {n: tuple(ts) for n, ts in sorted(by_node.items()) if n not in runs}
        if have and cannot:
            errors = tuple(sorted({t.err for ts in cannot.values() for t in ts}))
            out.append(ImageSplit(image, have, cannot, errors))
    return tuple(out)
