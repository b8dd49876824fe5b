"""This node's health, measured by its own instance for its probe answer: its swarm node
certificate's expiry, and the free space of its Docker data root (and of the raft folder, on a
manager, when that is another filesystem).

Where: the engine's DockerRootDir (its /info, asked once and again only while not known);
`<root>/swarm/certificates/swarm-node.crt` is the node's certificate, `<root>/swarm/raft` a
manager's raft log. In the deployed stack the data root is bound read-only at the same path
(deploy/swarm-medic.yml). A file or folder that is missing or unreadable is "not known": the
answer says None, and the reason goes into the answer's errors once (again only when it
changes), never a crash. An engine that says no DockerRootDir leaves both unmeasured, quietly.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from swarm_medic.core.certs import MAX_PEM, CertError, pem_not_after
from swarm_medic.core.errors import EngineError
from swarm_medic.core.protocol import MAX_PATH, Disk

CERT = "swarm/certificates/swarm-node.crt"
RAFT = "swarm/raft"


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read(MAX_PEM + 1)


@dataclass
class Health:
    """Measures this node; `root` asks the engine for its DockerRootDir."""

    root: Callable[[], str]
    read: Callable[[str], bytes] = _read
    statvfs: Callable[[str], os.statvfs_result] = os.statvfs
    stat: Callable[[str], os.stat_result] = os.stat
    _root: str = ""
    _said: dict[str, str] = field(default_factory=dict)  # what -> the last trouble said

    def _trouble(self, what: str, why: str, errors: list[str]) -> None:
        if self._said.get(what) != why:
            errors.append(f"{what}: {why}")
        self._said[what] = why

    def _fine(self, what: str) -> None:
        self._said.pop(what, None)

    def data_root(self, errors: list[str]) -> str:
        if not self._root:
            try:
                root = self.root()
            except EngineError as exc:
                self._trouble("data root", f"not known: {exc}", errors)
                return ""
            if not root:
                return ""  # an engine that says none (a test's fake): nothing to measure
            if not root.startswith("/") or len(root) > MAX_PATH - len(CERT) - 1:
                self._trouble("data root", f"not known: DockerRootDir {root[:64]!r}", errors)
                return ""
            self._root = root.rstrip("/") or "/"
            self._fine("data root")
        return self._root

    def cert_not_after(self, errors: list[str]) -> float | None:
        root = self.data_root(errors)
        if not root:
            return None
        path = os.path.join(root, CERT)
        try:
            data = self.read(path)
            at = pem_not_after(data)
        except (OSError, CertError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self._trouble("certificate", f"{path} not known: {why}", errors)
            return None
        if not 0 <= at <= 4_102_444_800:  # what the protocol carries (Epoch)
            self._trouble("certificate", f"{path}: notAfter out of range", errors)
            return None
        self._fine("certificate")
        return at

    def disks(self, errors: list[str]) -> tuple[Disk, ...] | None:
        root = self.data_root(errors)
        if not root:
            return None
        out: list[Disk] = []
        try:
            out.append(self._disk("data-root", root))
            self._fine("disk")
        except OSError as exc:
            self._trouble("disk", f"{root} not measured: {exc.strerror or exc}", errors)
            return None
        raft = os.path.join(root, RAFT)
        try:
            if self.stat(raft).st_dev != self.stat(root).st_dev:
                out.append(self._disk("raft", raft))
        except FileNotFoundError:
            pass  # a worker: no raft log
        except OSError as exc:
            self._trouble("raft", f"{raft} not measured: {exc.strerror or exc}", errors)
        return tuple(out)

    def data_root_disk(self, errors: list[str]) -> Disk | None:
        """The data root's filesystem now (a prune measures its progress by it, as the brain
        judges it); None when it cannot be measured, and why in `errors`."""
        root = self.data_root(errors)
        if not root:
            errors.append("the data root is not known")
            return None
        try:
            return self._disk("data-root", root)
        except OSError as exc:
            errors.append(f"{root} not measured: {exc.strerror or exc}")
            return None

    def _disk(self, what: str, path: str) -> Disk:
        st = self.statvfs(path)
        size = st.f_frsize or st.f_bsize
        return Disk(what, path, st.f_blocks * size, st.f_bavail * size)
