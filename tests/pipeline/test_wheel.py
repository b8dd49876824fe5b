"""The release artefacts: the wheel and the sdist build, pass `twine check`, and the wheel alone,
installed into a fresh venv, runs `swarm-medic --version` and lists every built-in runbook.

Offline once primed: the build uses the dev venv's locked setuptools (no build isolation), and
the fresh venv installs with `--no-index` from a folder of the runtime lock's wheels kept under
build/ (downloaded once by pip, hash-checked, from PyPI or pip's cache; downloaded again when
requirements/runtime.txt changes). About 15 s here, the venv's own pip bootstrap included.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements" / "runtime.txt"
CACHE = ROOT / "build" / "wheels" / f"cp{sys.version_info.major}{sys.version_info.minor}"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
BUILTIN = sorted(p.stem for p in (ROOT / "runbooks").glob("*.py") if not p.name.startswith("_"))


def run(*argv: str | Path, cwd: Path = ROOT, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """wheel and sdist, the wheel built from the sdist (python -m build's default)."""
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, ROOT)
    return out


@pytest.fixture(scope="module")
def wheels() -> Path:
    """The runtime lock's wheels for this interpreter, downloaded once per lock."""
    stamp = CACHE / ".lock-sha256"
    want = hashlib.sha256(LOCK.read_bytes()).hexdigest()
    if not stamp.is_file() or stamp.read_text(encoding="utf-8") != want:
        CACHE.mkdir(parents=True, exist_ok=True)
        run(sys.executable, "-m", "pip", "download", "--quiet", "--require-hashes",
            "--only-binary=:all:", "--dest", CACHE, "-r", LOCK)  # fmt: skip
        stamp.write_text(want, encoding="utf-8")
    return CACHE


def the(folder: Path, pattern: str) -> Path:
    (found,) = folder.glob(pattern)
    return found


def test_the_wheel_holds_the_package_its_runbooks_and_its_licence(dist: Path) -> None:
    names = set(zipfile.ZipFile(the(dist, "swarm_medic-*.whl")).namelist())
    tops = {n.split("/")[0] for n in names}
    assert tops == {"swarm_medic", f"swarm_medic-{VERSION}.dist-info"}  # no top-level runbooks
    source = {p.relative_to(ROOT).as_posix() for p in (ROOT / "swarm_medic").rglob("*.py")}
    assert source - names == set(), "a package folder is missing from pyproject's packages list"
    assert {f"swarm_medic/runbooks/{n}.py" for n in [*BUILTIN, "__init__"]} <= names
    assert "swarm_medic/py.typed" in names
    assert f"swarm_medic-{VERSION}.dist-info/licenses/LICENSE" in names


def test_the_sdist_holds_what_builds_the_wheel(dist: Path) -> None:
    with tarfile.open(the(dist, "swarm_medic-*.tar.gz")) as sdist:
        names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    assert {"LICENSE", "pyproject.toml", "README.md", "runbooks/stuck_task.py"} <= names


def test_twine_check_passes(dist: Path) -> None:
    out = run(sys.executable, "-m", "twine", "check", "--strict", *sorted(dist.iterdir()))
    assert out.count("PASSED") == 2


def test_the_wheel_runs_from_a_fresh_venv(dist: Path, wheels: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    # pip sees no index and no machine-wide config: only the lock's wheels and ours
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1"}
    env.pop("PIP_FIND_LINKS", None)
    env.pop("PYTHONPATH", None)
    pip: list[str | Path] = [
        venv / "bin" / "python",
        "-m",
        "pip",
        "install",
        "-q",
        "--find-links",
        wheels,
    ]
    run(*pip, "--require-hashes", "-r", LOCK, env=env)  # what the image does
    run(*pip, the(dist, "swarm_medic-*.whl"), env=env)  # its own dependencies must be there
    run(venv / "bin" / "python", "-m", "pip", "check", env=env)

    # from an empty folder: nothing of the repository is importable
    medic = venv / "bin" / "swarm-medic"
    assert run(medic, "--version", cwd=tmp_path, env=env).strip() == f"swarm-medic {VERSION}"
    listed = [
        line.split()[0] for line in run(medic, "runbooks", cwd=tmp_path, env=env).splitlines()
    ]
    assert listed == [n.replace("_", "-") for n in BUILTIN]
    where = run(
        venv / "bin" / "python",
        "-c",
        "import importlib.util, swarm_medic.runbooks as r;"
        "print(r.__file__); print(importlib.util.find_spec('runbooks'))",
        cwd=tmp_path,
        env=env,
    ).split()
    assert where[0].startswith(str(venv)), where  # the installed copy, not the repository's
    assert where[1] == "None"  # no top-level `runbooks` in site-packages
