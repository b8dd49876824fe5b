"""The fake's LedgerStore: the ledger is a config whose labels are replaced by compare-and-swap."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from swarm_medic.core.errors import Conflict
from swarm_medic.core.model import LedgerDoc
from swarm_medic.swarm import Change, R, cas
from swarm_medic.swarm.fake.world import World


class LedgerStoring(World):
    def read_ledger(self, name: str) -> LedgerDoc | None:
        self._enter()
        cfg = self._configs.get(name)
        if cfg is None:
            return None
        return LedgerDoc(
            id=cfg["ID"], version=cfg["Version"]["Index"], labels=dict(cfg["Spec"]["Labels"])
        )

    def write_ledger(self, name: str, doc: LedgerDoc | None, labels: Mapping[str, str]) -> None:
        with self._lock:
            self._enter()
            cfg = self._configs.get(name)
            if doc is None:
                if cfg is not None:
                    raise Conflict(f"write ledger {name}: created concurrently", status=409)
                self._configs[name] = {
                    "ID": self._next_id("cfg"),
                    "Version": {"Index": 1},
                    "Spec": {"Name": name, "Labels": dict(labels)},
                }
                return
            if cfg is None or cfg["Version"]["Index"] != doc.version:
                raise Conflict(f"write ledger {name}: changed since it was read")
            cfg["Spec"]["Labels"] = dict(labels)
            cfg["Version"]["Index"] += 1

    def cas_update(self, name: str, change: Callable[[LedgerDoc | None], Change[R]]) -> R:
        return cas.update_ledger(self, name, change, cas.retrying(self.slept.append))
