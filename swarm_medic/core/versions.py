"""Config and secret versions named by content: what `swarm-medic rollout` makes and collects,
and what the `stale-config-versions` runbook reports.

Swarm cannot change a config or secret in place (moby#35803, #35048): a new content is a new
object, and a service moves to it by an update that swaps its reference. A version is named
`<family>-<first 12 hex of its digest>` and labelled with its family and full digest, so the
same content always gives the same name (a rollout of unchanged content changes nothing) and
the versions of one family can be told apart from anything else in the swarm. A config's
digest is its SHA-256 (its content is readable through the API anyway); a secret's is keyed
(`keyed_digest`), so that nothing readable through the API lets a weak secret be guessed
offline. Versions are recognised by their family label alone (garbage collection, adoption,
the `stale-config-versions` runbook), so secret versions made before the keyed digest, which
carry `swarm-medic.rollout.sha256`, are still found and collected.

Here: the naming, the checks on a file before it is sent, finding and swapping the reference
at a target path in a service's raw spec (the rest of the spec untouched), and `stale`, the one
selection of versions no service needs that both the garbage collection and the
`stale-config-versions` runbook use. No I/O: the command (`swarm_medic.commands.rollout`) does
it.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from swarm_medic.core.errors import SwarmMedicError
from swarm_medic.core.model import Service, Stored

FAMILY_LABEL = "swarm-medic.rollout.family"
SHA256_LABEL = "swarm-medic.rollout.sha256"  # configs (and secrets made before issue 16)
KEYED_LABEL = "swarm-medic.rollout.hmac-sha256"  # secrets: the keyed digest, see keyed_digest
KINDS = ("config", "secret")
# The engine refuses data of 500 KiB or more, and empty data (swarmkit's controlapi). Newer
# swarmkit accepts configs up to 1000 KiB; 500 KiB is what every engine we support accepts.
MAX_BYTES = 500 * 1024
MAX_NAME = 64  # swarmkit's limit on a config or secret name
HEX_IN_NAME = 12
# Unused versions kept per family for a manual rollback: `rollout --keep`'s default and the
# stale-config-versions runbook's `keep`.
DEFAULT_KEEP = 3
# Where a reference whose File.Name is relative lands in the container (Linux engines).
_BASE = {"config": "/", "secret": "/run/secrets/"}


class RolloutError(SwarmMedicError):
    """A rollout cannot go ahead; the message says why and what to do."""


@dataclass(frozen=True)
class ServiceSpec:
    """A service as the engine stores it: the raw Spec, to be posted back changed only where
    a rollout swaps a reference, with the Version.Index that makes the post a compare-and-swap.
    The mapping is not frozen deep: `swap` works on a copy, never on what was read."""

    id: str
    name: str
    version: int
    spec: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Ref:
    """A config or secret reference in a raw spec."""

    id: str
    name: str
    file_name: str  # File.Name as stored: absolute, or relative to the kind's base

    def path(self, kind: str) -> str:
        return container_path(kind, self.file_name)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def keyed_digest(key: bytes, family: str, data: bytes) -> str:
    """A secret's version digest: HMAC-SHA256 of its content under a key derived from `key`
    (the medic's channel secret, which API readers do not have) and the family.

    The same content in the same family still gets the same name, so a second rollout is a
    no-op; but a name or label is of no use to someone who reads the API and guesses: without
    the key, testing one guess is as hard as guessing the key. The family is mixed in so that
    two families holding the same content do not show it (their names differ)."""
    family_key = hmac.new(
        key, b"swarm-medic rollout secret\x00" + family.encode(), hashlib.sha256
    ).digest()
    return hmac.new(family_key, data, hashlib.sha256).hexdigest()


def digest_label(kind: str) -> str:
    """The label that holds a version's digest: plain SHA-256 for a config (its content is
    readable anyway), the keyed one for a secret."""
    return KEYED_LABEL if kind == "secret" else SHA256_LABEL


def check_data(kind: str, data: bytes, what: str) -> None:
    """What the engine would refuse, said before anything is sent (never the content)."""
    if not data:
        raise RolloutError(f"{what} is empty: a {kind} must hold at least one byte")
    if len(data) >= MAX_BYTES:
        raise RolloutError(
            f"{what} is {len(data)} bytes: a {kind} must be smaller than {MAX_BYTES} bytes "
            "(500 KiB, the engine's limit)"
        )


def version_name(family: str, sha256: str) -> str:
    """`<family>-<12 hex>`, the family cut so that the name fits the engine's 64 characters
    (the full family stays in the label)."""
    room = MAX_NAME - HEX_IN_NAME - 1
    return f"{family[:room].rstrip('-_.')}-{sha256[:HEX_IN_NAME]}"


def version_labels(family: str, sha256: str, kind: str = "config") -> dict[str, str]:
    return {FAMILY_LABEL: family, digest_label(kind): sha256}


def family_of(current: Stored | None, ref_name: str) -> str:
    """The family a new version joins: the referenced object's family label if it has one,
    else its name (e.g. `app_conf`, made by `docker stack deploy`)."""
    if current is not None:
        return current.labels.get(FAMILY_LABEL) or current.name
    return ref_name


def container_path(kind: str, file_name: str) -> str:
    """File.Name -> the path in the container: a relative name is under / for a config and
    /run/secrets/ for a secret, as the engine mounts them."""
    if kind not in _BASE:
        raise ValueError(f"kind must be config or secret, not {kind!r}")
    return posixpath.normpath(posixpath.join(_BASE[kind], file_name))


def _ref_list(spec: Mapping[str, Any], kind: str) -> list[Any]:
    container = ((spec.get("TaskTemplate") or {}).get("ContainerSpec")) or {}
    refs = container.get("Configs" if kind == "config" else "Secrets")
    return refs if isinstance(refs, list) else []


def refs(spec: Mapping[str, Any], kind: str) -> tuple[Ref, ...]:
    """The service's file references of one kind (references without a file, such as a
    credential spec's config, are not rolled out)."""
    key = "Config" if kind == "config" else "Secret"
    out = []
    for r in _ref_list(spec, kind):
        if not isinstance(r, Mapping) or not isinstance(r.get("File"), Mapping):
            continue
        name = r["File"].get("Name")
        if isinstance(name, str) and name:
            out.append(Ref(str(r.get(f"{key}ID") or ""), str(r.get(f"{key}Name") or ""), name))
    return tuple(out)


def refs_at(svc: ServiceSpec, kind: str, target: str) -> tuple[Ref, ...]:
    """The reference(s) that put a file at `target`; RolloutError listing the service's
    references when there is none."""
    want = container_path(kind, target)
    found = tuple(r for r in refs(svc.spec, kind) if r.path(kind) == want)
    if found:
        return found
    have = ", ".join(f"{r.path(kind)} ({r.name})" for r in refs(svc.spec, kind))
    raise RolloutError(f"service {svc.name} has no {kind} at {want}; its {kind}s: {have or 'none'}")


def swap(
    spec: Mapping[str, Any], kind: str, target: str, new_id: str, new_name: str
) -> dict[str, Any]:
    """A copy of `spec` whose references at `target` name the new object; everything else,
    the reference's File (UID, GID, Mode) included, as it was."""
    key = "Config" if kind == "config" else "Secret"
    want = container_path(kind, target)
    out = copy.deepcopy(dict(spec))
    swapped = 0
    for r in _ref_list(out, kind):
        if not isinstance(r, dict) or not isinstance(r.get("File"), Mapping):
            continue
        name = r["File"].get("Name")
        if isinstance(name, str) and name and container_path(kind, name) == want:
            r[f"{key}ID"], r[f"{key}Name"] = new_id, new_name
            swapped += 1
    if not swapped:
        raise RolloutError(f"no {kind} reference at {want} to swap")
    return out


# --- which versions no service needs --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VersionFamily:
    """The versions of one family (by the family label), sorted newest first."""

    kind: str
    name: str
    used: tuple[Stored, ...]  # referenced by a service's spec or its PreviousSpec
    kept: tuple[Stored, ...]  # unreferenced, among the newest `keep`: what a rollback may want
    stale: tuple[Stored, ...]  # unreferenced beyond those: what the garbage collection removes


def referenced(services: Iterable[Service]) -> frozenset[str]:
    """Ids and names of every config and secret a service's spec or PreviousSpec names."""
    out: set[str] = set()
    for s in services:
        for r in (*s.configs, *s.secrets):
            out.update((r.id, r.name))
        out.update(s.previous_refs)
    out.discard("")
    return frozenset(out)


def version_families(
    stored: Iterable[Stored], services: Iterable[Service], keep: int
) -> list[VersionFamily]:
    """Every family, with its versions split into used, kept and stale.

    Only objects with the family label are versions: anything else (the object `docker stack
    deploy` made, the ledger) is never stale. A version is used when any service's spec or
    PreviousSpec names it, by id or by name (the engine refuses to remove what a spec names,
    but not what a PreviousSpec names, which a rollback needs). Of the rest, the newest `keep`
    by creation time are kept; the others are stale.
    """
    if keep < 0:
        raise ValueError("keep must be 0 or more")
    used_ids = referenced(services)
    grouped: dict[tuple[str, str], list[Stored]] = {}
    for obj in stored:
        family = obj.labels.get(FAMILY_LABEL)
        if family:
            grouped.setdefault((obj.kind, family), []).append(obj)
    out = []
    for (kind, family), objs in sorted(grouped.items()):
        objs.sort(key=lambda o: (o.created_at, o.name), reverse=True)
        used = tuple(o for o in objs if o.id in used_ids or o.name in used_ids)
        free = tuple(o for o in objs if o not in used)
        out.append(VersionFamily(kind, family, used, free[:keep], free[keep:]))
    return out


def stale_versions(
    stored: Iterable[Stored], services: Iterable[Service], keep: int
) -> list[VersionFamily]:
    """The families that have stale versions: what the garbage collection would remove."""
    return [f for f in version_families(stored, services, keep) if f.stale]


# --- a stack's compose file ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StackItem:
    """One reference a compose file gives a file for: roll `file` out to `service` at `target`."""

    service: str  # the swarm service: <stack>_<key>
    kind: str
    source: str  # the top-level configs:/secrets: key
    target: str  # the path in the container
    file: str  # as written, relative to the compose file's folder


@dataclass(frozen=True, slots=True)
class StackSkip:
    service: str
    kind: str
    source: str
    why: str


def _mapping(value: object, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise RolloutError(f"compose file: {where} must be a mapping, not {type(value).__name__}")
    return value


def stack_items(doc: object, stack: str) -> tuple[list[StackItem], list[StackSkip]]:
    """What `docker stack deploy` made of a compose file's configs and secrets: per service,
    each reference whose top-level entry has a `file:` (short syntax: the target is the
    source's name, a config at /<name>, a secret at /run/secrets/<name>; long syntax: source
    and target). Entries without `file:` (external, from the environment, inline) are skipped
    with the reason. The services are `<stack>_<key>`, as stack deploy names them."""
    top = _mapping(doc, "the document")
    out: list[StackItem] = []
    skipped: list[StackSkip] = []
    for key, body in sorted(_mapping(top.get("services"), "services").items()):
        svc_body = _mapping(body, f"services.{key}")
        service = f"{stack}_{key}"
        for kind in KINDS:
            plural = f"{kind}s"
            entries = _mapping(top.get(plural), plural)
            refs_given = svc_body.get(plural) or []
            if not isinstance(refs_given, list):
                raise RolloutError(f"compose file: services.{key}.{plural} must be a list")
            for ref in refs_given:
                if isinstance(ref, str):
                    source, target = ref, ref
                elif isinstance(ref, Mapping) and isinstance(ref.get("source"), str):
                    source = ref["source"]
                    target = str(ref.get("target") or source)
                else:
                    raise RolloutError(
                        f"compose file: services.{key}.{plural}: each entry is a name or has "
                        f"a source, not {ref!r}"
                    )
                if source not in entries:
                    raise RolloutError(
                        f"compose file: services.{key} uses {kind} {source}, which the "
                        f"top-level {plural}: does not define"
                    )
                entry = _mapping(entries[source], f"{plural}.{source}")
                file = entry.get("file")
                if not isinstance(file, str) or not file:
                    why = "external" if entry.get("external") else "no file:"
                    skipped.append(StackSkip(service, kind, source, why))
                    continue
                if "$" in file:
                    raise RolloutError(
                        f"compose file: {plural}.{source}.file {file!r} holds a variable: "
                        "write the path out (variables are not interpolated here)"
                    )
                out.append(StackItem(service, kind, source, container_path(kind, target), file))
    return out, skipped
