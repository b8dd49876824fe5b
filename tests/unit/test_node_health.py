"""nodes/health.py: what a node's instance says of its certificate and disks, and that a file
it cannot read is "not known", said once, never a crash."""

from __future__ import annotations

import os
from pathlib import Path

from swarm_medic.core.errors import EngineError
from swarm_medic.core.protocol import Disk
from swarm_medic.nodes.health import Health

NODE = (Path(__file__).parent.parent / "fixtures" / "certs" / "node-utc.pem").read_bytes()


def vfs(blocks: int, avail: int, frsize: int = 4096) -> os.statvfs_result:
    return os.statvfs_result((4096, frsize, blocks, avail, avail, 0, 0, 0, 0, 255))


def st(dev: int) -> os.stat_result:
    return os.stat_result((0o40755, 1, dev, 1, 0, 0, 0, 0, 0, 0))


class Files:
    def __init__(self, files: dict[str, bytes], devs: dict[str, int]) -> None:
        self.files, self.devs, self.reads = files, devs, 0

    def read(self, path: str) -> bytes:
        self.reads += 1
        if path not in self.files:
            raise FileNotFoundError(2, "No such file or directory", path)
        return self.files[path]

    def stat(self, path: str) -> os.stat_result:
        if path not in self.devs:
            raise FileNotFoundError(2, "No such file or directory", path)
        return st(self.devs[path])

    def statvfs(self, path: str) -> os.statvfs_result:
        if path not in self.devs:
            raise FileNotFoundError(2, "No such file or directory", path)
        return vfs(1000, 100 * self.devs[path])


def health(files: Files, root: str = "/var/lib/docker") -> Health:
    return Health(lambda: root, read=files.read, statvfs=files.statvfs, stat=files.stat)


CERT = "/var/lib/docker/swarm/certificates/swarm-node.crt"


def test_a_worker_says_its_certificate_and_its_data_root() -> None:
    files = Files({CERT: NODE}, {"/var/lib/docker": 1})
    errors: list[str] = []
    h = health(files)
    assert h.cert_not_after(errors) == 1_804_441_442.0
    assert h.disks(errors) == (Disk("data-root", "/var/lib/docker", 4096000, 409600),)
    assert errors == []


def test_a_manager_whose_raft_folder_is_another_filesystem_says_both() -> None:
    raft = "/var/lib/docker/swarm/raft"
    files = Files({}, {"/var/lib/docker": 1, raft: 2})
    got = health(files).disks([])
    assert got is not None and [d.what for d in got] == ["data-root", "raft"]
    same = Files({}, {"/var/lib/docker": 1, raft: 1})
    assert [d.what for d in health(same).disks([]) or ()] == ["data-root"]


def test_a_missing_certificate_is_not_known_and_said_once() -> None:
    files = Files({}, {"/var/lib/docker": 1})
    h = health(files)
    first: list[str] = []
    assert h.cert_not_after(first) is None
    assert len(first) == 1 and "swarm-node.crt not known: No such file" in first[0]
    again: list[str] = []
    assert h.cert_not_after(again) is None
    assert again == []  # said once
    files.files[CERT] = NODE
    assert h.cert_not_after(again) == 1_804_441_442.0
    files.files[CERT] = b"garbage"
    assert h.cert_not_after(again) is None
    assert len(again) == 1 and "no certificate" in again[0]


def test_a_data_root_not_bound_into_the_container_is_not_measured_and_said_once() -> None:
    errors: list[str] = []
    h = health(Files({}, {}))
    assert h.disks(errors) is None
    assert h.disks(errors) is None
    assert len(errors) == 1 and errors[0].startswith("disk: /var/lib/docker not measured")


def test_an_engine_that_says_no_data_root_leaves_both_unmeasured_quietly() -> None:
    errors: list[str] = []
    h = health(Files({}, {}), root="")
    assert (h.cert_not_after(errors), h.disks(errors), errors) == (None, None, [])


def test_an_engine_that_cannot_say_its_data_root_is_asked_again_later() -> None:
    calls: list[int] = []

    def root() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise EngineError("engine down")
        return "/var/lib/docker"

    files = Files({CERT: NODE}, {"/var/lib/docker": 1})
    errors: list[str] = []
    h = Health(root, read=files.read, statvfs=files.statvfs, stat=files.stat)
    assert h.cert_not_after(errors) is None
    assert h.cert_not_after(errors) == 1_804_441_442.0
    assert h.disks(errors) is not None
    assert len(calls) == 2  # asked once it is known
    assert errors == ["data root: not known: engine down"]
