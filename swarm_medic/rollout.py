"""`swarm-medic rollout`: a new content for a config or secret, rolled by the service's own update.

    rollout config|secret SERVICE TARGET FILE   one reference of one service
    rollout stack STACK COMPOSE_FILE            every config/secret with a `file:` in a stack
    rollout gc                                   remove the versions no service needs

For one reference: the file is read as bytes and checked against the engine's limits; the
service's raw spec is read and the reference that puts a file at TARGET (the path in the
container) names the current object, whose family the new version joins
(`core.rollout.family_of`). The version `<family>-<12 hex of SHA-256>` is created, or reused
when it exists with the same digest (same content: same name; a name taken by another content
is refused). If the reference already names it nothing is changed. Otherwise the reference is
swapped in one update posted with the Version.Index it was read at, the rest of the spec as
read: the engine rolls the tasks by the service's own update config, and a failing rollout
pauses or rolls back like any update (the `paused-update` runbook takes it from there). A lost
compare-and-swap is re-read and retried, at most 3 times. Then the family's garbage collection:
every version a service's spec or PreviousSpec names is kept, and the newest `--keep`
unreferenced ones; the rest are removed (`core.rollout.version_families`, which the
`stale-config-versions` runbook reports from too).

Every step is one line (or one JSON object with --json). A secret's content is never printed
or logged, nor its size. Exit status: 0 done or nothing to do, 1 error.
"""

from __future__ import annotations

import itertools
import json
import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import tenacity
import yaml

from swarm_medic.core.errors import Conflict, EngineError, NotFound
from swarm_medic.core.model import Stored
from swarm_medic.core.rollout import (
    MAX_BYTES,
    Ref,
    RolloutError,
    ServiceSpec,
    check_data,
    container_path,
    digest,
    digest_label,
    family_of,
    keyed_digest,
    refs_at,
    stack_items,
    swap,
    version_families,
    version_labels,
    version_name,
)
from swarm_medic.swarm import ObjectStore, cas

ATTEMPTS = 4  # the first post and at most 3 retries after a lost compare-and-swap
SWAP_WAIT = tenacity.wait_incrementing(start=0.5, increment=0.5)
# A service or stack name as the engine allows it (or a service id): checked before it goes
# into a request path, where a "/" would change which endpoint is asked.
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class Step:
    step: str  # created reused unchanged swapped warning removed kept family none skipped
    text: str  # one line for a person
    fields: Mapping[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"step": self.step, **self.fields, "text": self.text}


Emit = Callable[[Step], None]


@dataclass
class Rollout:
    """One invocation's engine, settings and steps said so far."""

    engine: ObjectStore
    keep: int
    emit: Emit
    sleep: Callable[[float], None] = time.sleep
    # the key of a secret's keyed digest (the channel secret, --secret); b"": secrets refused
    key: bytes = b""

    # --- one reference -------------------------------------------------------------------

    def reference(
        self, kind: str, service: str, target: str, data: bytes, source: str, *, gc: bool = True
    ) -> tuple[str, str]:
        """Roll `data` out to `service`'s `kind` at `target` -> (family, version name)."""
        check_data(kind, data, source)
        svc = self.engine.service_spec(service)
        at = refs_at(svc, kind, target)
        listing = self._stored(kind)
        family = family_of(next((o for o in listing if o.id == at[0].id), None), at[0].name)
        oid, name = self._version(kind, family, data, listing)
        if not self._swap(kind, target, svc, oid, name):
            return family, name
        if gc:
            self.collect(kind=kind, family=family)
        return family, name

    def _stored(self, kind: str) -> tuple[Stored, ...]:
        return self.engine.configs() if kind == "config" else self.engine.secrets()

    def _version(
        self, kind: str, family: str, data: bytes, listing: Iterable[Stored]
    ) -> tuple[str, str]:
        """The family's version holding `data` -> (id, name): reused if it exists, else made."""
        if kind == "secret":
            self.need_key()
            sha = keyed_digest(self.key, family, data)
        else:
            sha = digest(data)
        name = version_name(family, sha)
        label = digest_label(kind)
        for attempt in range(2):
            found = next((o for o in listing if o.name == name), None)
            if found is not None:
                if found.labels.get(label) != sha:
                    raise RolloutError(
                        f"a {kind} named {name} exists but is not this content (its "
                        f"{label} label differs or is missing): remove or rename it, nothing "
                        "was changed"
                    )
                self.emit(
                    Step(
                        "reused",
                        f"reused {kind} {name} (id {found.id[:12]}): it holds this content",
                        {"kind": kind, "name": name, "id": found.id, "family": family},
                    )
                )
                return found.id, name
            try:
                oid = self.engine.create_stored(kind, name, data, version_labels(family, sha, kind))
            except Conflict:
                if attempt:
                    raise
                listing = self._stored(kind)  # made meanwhile by another rollout: look again
                continue
            size_text = f", {len(data)} bytes" if kind == "config" else ""  # a secret: not that
            self.emit(
                Step(
                    "created",
                    f"created {kind} {name} (id {oid[:12]}{size_text}, family {family})",
                    {"kind": kind, "name": name, "id": oid, "family": family},
                )
            )
            return oid, name
        raise AssertionError("unreachable")  # pragma: no cover

    def need_key(self) -> None:
        if not self.key:
            raise RolloutError(
                "a secret's version is named by a keyed digest, and no key is given: set "
                "SWARM_MEDIC_SECRET_FILE to the medic's channel secret (the file its docker "
                "secret was made from), or run the rollout in a medic container; nothing was "
                "changed"
            )

    def _swap(self, kind: str, target: str, svc: ServiceSpec, oid: str, name: str) -> bool:
        """Point the references at `target` to (oid, name) -> whether the service changed."""
        tries = itertools.count()

        def once() -> bool:
            nonlocal svc
            if next(tries):  # a lost compare-and-swap: the spec as it is now
                svc = self.engine.service_spec(svc.id)
            at = refs_at(svc, kind, target)
            if all(r.id == oid for r in at):
                self.emit(
                    Step(
                        "unchanged",
                        f"unchanged: service {svc.name} already uses {kind} {name} at "
                        f"{container_path(kind, target)}",
                        {"kind": kind, "service": svc.name, "name": name, "version": svc.version},
                    )
                )
                return False
            warnings = self.engine.update_service_spec(
                svc.id, svc.version, swap(svc.spec, kind, target, oid, name)
            )
            self.emit(self._swapped(kind, target, svc, at, name))
            for w in warnings:
                self.emit(Step("warning", f"engine warning: {w}", {"service": svc.name}))
            return True

        # swarm's updater moves the version again right after an update: a lost
        # compare-and-swap is read again after a pause that grows (0.5 s, 1 s, 1.5 s)
        policy = cas.retrying(self.sleep, attempts=ATTEMPTS, wait=SWAP_WAIT)
        try:
            return policy(once)
        except Conflict:
            raise RolloutError(
                f"service {svc.name} changed under every one of {ATTEMPTS} attempts to "
                f"swap its {kind} (someone else is updating it): its {kind} is "
                "unchanged; run the rollout again once it settles"
            ) from None

    @staticmethod
    def _swapped(kind: str, target: str, svc: ServiceSpec, was: tuple[Ref, ...], name: str) -> Step:
        upd = svc.spec.get("UpdateConfig") or {}
        how = (
            f"parallelism {upd.get('Parallelism', 1)}, {upd.get('Order') or 'stop-first'}, "
            f"on failure {upd.get('FailureAction') or 'pause'}"
        )
        old = ", ".join(sorted({r.name for r in was}))
        path = container_path(kind, target)
        return Step(
            "swapped",
            f"swapped service {svc.name} {kind} at {path} from {old} to {name} at version "
            f"{svc.version}; it rolls by its update config ({how})",
            {
                "kind": kind,
                "service": svc.name,
                "service_id": svc.id,
                "target": path,
                "from": old,
                "to": name,
                "version": svc.version,
            },
        )

    # --- a stack -------------------------------------------------------------------------

    def stack(self, stack: str, compose: Path) -> None:
        """Every (service, target) of the compose file whose config or secret has a file:,
        then one garbage collection per family touched."""
        try:
            text = compose.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise RolloutError(f"cannot read the compose file {compose}: {exc}") from None
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise RolloutError(f"{compose} is not YAML: {exc}") from None
        except RecursionError:  # PyYAML's composer recurses once per level of nesting
            raise RolloutError(f"{compose} is nested too deeply to be a compose file") from None
        items, skipped = stack_items(doc, stack)
        for s in skipped:
            self.emit(
                Step(
                    "skipped",
                    f"skipped {s.kind} {s.source} of {s.service}: {s.why}",
                    {"kind": s.kind, "service": s.service, "source": s.source, "why": s.why},
                )
            )
        if not items:
            raise RolloutError(f"{compose}: no service uses a config or secret with a file:")
        if any(item.kind == "secret" for item in items):
            self.need_key()  # before anything is rolled, not half way through the stack
        touched: set[tuple[str, str]] = set()
        for item in items:
            path = compose.parent / item.file
            data = read_file(str(path), item.kind)
            family, _ = self.reference(
                item.kind, item.service, item.target, data, str(path), gc=False
            )
            touched.add((item.kind, family))
        for kind, family in sorted(touched):
            self.collect(kind=kind, family=family)

    # --- garbage collection --------------------------------------------------------------

    def collect(self, *, kind: str | None = None, family: str | None = None) -> int:
        """Remove the stale versions (of one family, or all) -> how many were removed."""
        services = self.engine.services()
        stored: tuple[Stored, ...] = ()
        for k in (kind,) if kind else ("config", "secret"):
            stored += self._stored(k)
        removed = 0
        found = [
            f
            for f in version_families(stored, services, self.keep)
            if family is None or f.name == family
        ]
        if not found:
            self.emit(Step("none", "no versions made by `swarm-medic rollout` to look at", {}))
        for fam in found:
            gone = 0
            for obj in fam.stale:
                try:
                    self.engine.remove_stored(fam.kind, obj.id)
                except NotFound:
                    continue  # removed meanwhile: what we wanted
                except EngineError as exc:
                    if exc.status != 400 or "in use" not in str(exc):
                        raise
                    # a service started to use it since we listed: the engine's own guard
                    self.emit(
                        Step(
                            "kept",
                            f"kept {fam.kind} {obj.name}: {exc}",
                            {"kind": fam.kind, "name": obj.name, "id": obj.id, "family": fam.name},
                        )
                    )
                    continue
                gone += 1
                self.emit(
                    Step(
                        "removed",
                        f"removed {fam.kind} {obj.name} (id {obj.id[:12]}): no service or "
                        f"previous spec uses it and it is older than the newest {self.keep}",
                        {"kind": fam.kind, "name": obj.name, "id": obj.id, "family": fam.name},
                    )
                )
            removed += gone
            self.emit(
                Step(
                    "family",
                    f"family {fam.name} ({fam.kind}): {len(fam.used)} in use, "
                    f"{len(fam.kept)} kept for rollback, {gone} removed",
                    {
                        "kind": fam.kind,
                        "family": fam.name,
                        "in_use": [o.name for o in fam.used],
                        "kept": [o.name for o in fam.kept],
                        "removed": gone,
                    },
                )
            )
        return removed


def read_file(path: str, kind: str, stdin: Any = None) -> bytes:
    """The file's bytes ("-": standard input), refused before reading past the engine's
    limit; RolloutError naming the path (never the content) if it cannot be used."""
    try:
        if path == "-":
            data: bytes = (stdin or sys.stdin.buffer).read(MAX_BYTES + 1)
        else:
            with Path(path).open("rb") as fh:
                data = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise RolloutError(f"cannot read {path}: {exc.strerror or exc}") from None
    check_data(kind, data, path)
    return data


# --- the command ------------------------------------------------------------------------


def run(
    what: str,
    operands: list[str],
    engine_factory: Callable[[], ObjectStore],
    *,
    keep: int,
    as_json: bool,
    out: TextIO,
    err: TextIO,
    sleep: Callable[[float], None] = time.sleep,
    stdin: Any = None,
    key: bytes = b"",
) -> int:
    """`swarm-medic rollout WHAT OPERANDS...` -> exit status (0 done or nothing to do, 1 error,
    2 usage). Text: a line per step as it happens; --json: one document at the end."""
    steps: list[Step] = []

    def emit(step: Step) -> None:
        steps.append(step)
        if not as_json:
            out.write(step.text + "\n")
            out.flush()

    error = ""
    try:
        for name in operands[:1]:  # the service or stack: it goes into a request path
            if not NAME.match(name):
                err.write(f"swarm-medic rollout: {name!r} is not a service or stack name\n")
                return 2
        data = b""
        if what in ("config", "secret"):  # read and checked before the engine is asked
            data = read_file(operands[2], what, stdin)
        roll = Rollout(engine_factory(), keep, emit, sleep, key)
        if what == "secret":
            roll.need_key()
        if what in ("config", "secret"):
            roll.reference(what, operands[0], operands[1], data, operands[2])
        elif what == "stack":
            roll.stack(operands[0], Path(operands[1]))
        else:
            roll.collect()
    except (RolloutError, EngineError) as exc:
        error = str(exc)
    if as_json:
        doc = {"ok": not error, "steps": [s.as_json() for s in steps], "error": error or None}
        json.dump(doc, out, indent=2)
        out.write("\n")
    if error:
        err.write(f"swarm-medic rollout: {error}\n")
    return 1 if error else 0
