"""`swarm-medic uninstall`: what swarm-medic left in a swarm, listed (--dry-run) or removed.

What it finds, from the engine's own objects:

  service  the medic itself (label swarm-medic.self=true): never removed here, since `docker
           stack rm STACK` removes it; while one exists nothing else is removed either (a
           running medic writes the ledger again)
  config   the ledger (--ledger-name: action history, cooldowns, circuit breakers, the pause
           switch, the incidents `report` counts)
  config, secret  the versions `rollout` made (label swarm-medic.rollout.family), and those
           named swarm-medic* (the shipped stack's channel secret, notification URLs and
           tokens) or used by the medic's service
  labels   swarm-medic.* labels of the other services (opt-in, thresholds, report-only)

Removal: each config and secret no service uses (one that a service's spec still names is
kept, and said: the engine would refuse anyway; `docker stack deploy` of that service's stack
points it back at the stack's own object), and each service's swarm-medic.* labels in one
update, compare-and-swap on its version. Service labels are not part of the task template, so
no task restarts. Exit status: 0 done, nothing left, or a dry run; 1 something was kept or
could not be removed, or a medic still runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TextIO

from swarm_medic.core.errors import EngineError
from swarm_medic.core.scope import SELF_LABEL
from swarm_medic.core.versions import FAMILY_LABEL
from swarm_medic.swarm import ObjectStore

LABEL_PREFIX = "swarm-medic."
NAME_PREFIX = "swarm-medic"
STACK_LABEL = "com.docker.stack.namespace"


@dataclass(frozen=True, slots=True)
class Leftover:
    kind: str  # service | config | secret | labels
    id: str
    name: str
    what: str  # why it is swarm-medic's
    used_by: tuple[str, ...] = ()  # services whose spec names it: it cannot go yet
    labels: tuple[str, ...] = ()  # kind labels: the keys to remove

    def line(self) -> str:
        what = f"{self.what}: {', '.join(self.labels)}" if self.labels else self.what
        used = f"; in use by {', '.join(self.used_by)}" if self.used_by else ""
        return f"{self.kind:<8} {self.name:<32} {what}{used}"


def find(engine: ObjectStore, ledger_name: str) -> list[Leftover]:
    services = engine.services()
    medics = [s for s in services if s.labels.get(SELF_LABEL) == "true"]
    out = [
        Leftover(
            "service",
            s.id,
            s.name,
            f"the medic itself: remove it first, `docker stack rm "
            f"{s.labels.get(STACK_LABEL) or '<its stack>'}`",
        )
        for s in medics
    ]
    for kind, stored in (("config", engine.configs()), ("secret", engine.secrets())):
        # the list call already read each spec's references: no inspect per service
        users = {
            s.id: {r.id for r in (s.configs if kind == "config" else s.secrets)} for s in services
        }
        medic_uses = set().union(*(users[s.id] for s in medics))
        for obj in sorted(stored, key=lambda o: o.name):
            if kind == "config" and obj.name == ledger_name:
                what = (
                    "the ledger: action history, cooldowns, circuit breakers, pause switch, "
                    "incident records"
                )
            elif FAMILY_LABEL in obj.labels:
                what = f"a version `rollout` made of {obj.labels[FAMILY_LABEL]}"
            elif obj.id in medic_uses:
                what = "used by the medic"
            elif obj.name.startswith(NAME_PREFIX):
                what = "named like the medic's (deploy/swarm-medic.yml)"
            else:
                continue
            used_by = tuple(sorted(s.name for s in services if obj.id in users[s.id]))
            out.append(Leftover(kind, obj.id, obj.name, what, used_by))
    for s in sorted(services, key=lambda s: s.name):
        keys = tuple(sorted(k for k in s.labels if k.startswith(LABEL_PREFIX)))
        if keys and s.labels.get(SELF_LABEL) != "true":
            out.append(Leftover("labels", s.id, s.name, "service labels", labels=keys))
    return out


def remove(engine: ObjectStore, item: Leftover) -> str:
    """One leftover removed; what happened, in words. EngineError when the engine refused."""
    if item.kind in ("config", "secret"):
        if item.used_by:
            return f"kept: in use by {', '.join(item.used_by)}"
        engine.remove_stored(item.kind, item.id)
        return "removed"
    if item.kind == "labels":
        current = engine.service_spec(item.id)
        spec = dict(current.spec)
        labels = dict(spec.get("Labels") or {})
        for key in item.labels:
            labels.pop(key, None)
        spec["Labels"] = labels
        engine.update_service_spec(current.id, current.version, spec)
        return "labels removed"
    return "kept: `docker stack rm` removes it"


def run(engine: ObjectStore, ledger_name: str, *, dry_run: bool, out: TextIO) -> int:
    try:
        found = find(engine, ledger_name)
    except EngineError as exc:
        out.write(f"swarm-medic uninstall: could not list: {exc}\n")
        return 1
    if not found:
        out.write("nothing of swarm-medic is left in this swarm\n")
        return 0
    said = "found (dry run: nothing removed)" if dry_run else "found"
    out.write(f"swarm-medic left {len(found)} thing(s) in this swarm; {said}:\n")
    out.writelines(f"  {item.line()}\n" for item in found)
    if dry_run:
        return 0
    medics = [i.name for i in found if i.kind == "service"]
    if medics:
        out.write(
            f"not removing anything: the medic still runs ({', '.join(medics)}) and would "
            "write its ledger again; `docker stack rm` its stack first\n"
        )
        return 1
    return 0 if _remove_all(engine, found, out) else 1


def _remove_all(engine: ObjectStore, found: Iterable[Leftover], out: TextIO) -> bool:
    clean = True
    for item in found:
        try:
            result = remove(engine, item)
        except EngineError as exc:
            result = f"not removed: {exc}"
        clean = clean and not result.startswith(("kept", "not removed"))
        out.write(f"{item.kind} {item.name}: {result}\n")
    return clean
