"""The locked requirements (requirements/*.txt, made by scripts/lock.sh) still satisfy pyproject.

The image and scripts/setup.sh install from the lock only, so a dependency added to or
tightened in pyproject.toml without `scripts/lock.sh` would never be installed: this test fails
first, naming the package and the command.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCKS = ROOT / "requirements"
FIX = "run scripts/lock.sh (after scripts/setup.sh --dev) and commit requirements/"


@dataclass(frozen=True)
class Pin:
    name: str
    version: Version
    marker: str
    hashes: tuple[str, ...]


def read_lock(path: Path) -> dict[str, list[Pin]]:
    """name -> its pins (a universal lock may pin a package twice, under exclusive markers)."""
    text = path.read_text(encoding="utf-8").replace("\\\n", " ")
    pins: dict[str, list[Pin]] = {}
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        words = line.split()
        hashes = tuple(w.removeprefix("--hash=") for w in words if w.startswith("--hash="))
        req = Requirement(" ".join(w for w in words if not w.startswith("--hash=")))
        (spec,) = req.specifier
        assert spec.operator == "==", f"{path.name}: {line!r} is not pinned with =="
        pin = Pin(canonicalize_name(req.name), Version(spec.version), str(req.marker or ""), hashes)
        pins.setdefault(pin.name, []).append(pin)
    return pins


def pyproject() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


def declared(kind: str) -> list[str]:
    doc = pyproject()
    if kind == "runtime":
        return [str(r) for r in doc["project"]["dependencies"]]
    if kind == "build":
        return [str(r) for r in doc["build-system"]["requires"]]
    # the dev lock holds everything: runtime, build and the dev extra
    dev = [str(r) for r in doc["project"]["optional-dependencies"]["dev"]]
    return declared("runtime") + declared("build") + dev


@pytest.mark.parametrize("kind", ["runtime", "build", "dev"])
def test_the_lock_satisfies_every_declared_requirement(kind: str) -> None:
    lock = read_lock(LOCKS / f"{kind}.txt")
    stale = []
    for text in declared(kind):
        req = Requirement(text)
        pins = lock.get(canonicalize_name(req.name), [])
        if not pins:
            stale.append(f"{req.name}: not in requirements/{kind}.txt")
        for pin in pins:
            if not req.specifier.contains(pin.version, prereleases=True):
                stale.append(f"{req.name}: locked {pin.version}, pyproject asks {req.specifier}")
    assert not stale, f"requirements/{kind}.txt is stale ({FIX}): " + "; ".join(stale)


@pytest.mark.parametrize("kind", ["runtime", "build", "dev"])
def test_every_pin_carries_hashes(kind: str) -> None:
    lock = read_lock(LOCKS / f"{kind}.txt")
    assert lock, f"requirements/{kind}.txt pins nothing"
    bare = [p.name for pins in lock.values() for p in pins if not p.hashes]
    assert not bare, f"pins without --hash in requirements/{kind}.txt ({FIX}): {bare}"
    assert all(h.startswith("sha256:") for pins in lock.values() for p in pins for h in p.hashes)


@pytest.mark.parametrize("kind", ["runtime", "build"])
def test_the_dev_lock_tests_what_ships(kind: str) -> None:
    """The tests run on the versions the image installs: dev.txt repeats runtime.txt's pins."""
    dev = read_lock(LOCKS / "dev.txt")
    differ = [
        f"{name} {[str(p.version) for p in pins]} vs {[str(p.version) for p in dev.get(name, [])]}"
        for name, pins in read_lock(LOCKS / f"{kind}.txt").items()
        if {p.version for p in pins} != {p.version for p in dev.get(name, [])}
    ]
    assert not differ, f"requirements/dev.txt and {kind}.txt disagree ({FIX}): {differ}"


def test_the_parser_reads_markers_epochs_and_hashes(tmp_path: Path) -> None:
    lock = tmp_path / "x.txt"
    lock.write_text(
        "# header\n"
        "pywin32==312 ; sys_platform == 'win32' \\\n"
        "    --hash=sha256:aa \\\n"
        "    --hash=sha256:bb\n"
        "    # via docker\n"
        "Grafana_Foundation.SDK==1769699998!10.1.0 \\\n"
        "    --hash=sha256:cc\n",
        encoding="utf-8",
    )
    pins = read_lock(lock)
    assert pins["pywin32"] == [
        Pin("pywin32", Version("312"), 'sys_platform == "win32"', ("sha256:aa", "sha256:bb"))
    ]
    (sdk,) = pins["grafana-foundation-sdk"]
    assert sdk.version == Version("1769699998!10.1.0") and sdk.hashes == ("sha256:cc",)
