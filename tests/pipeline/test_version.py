"""One version, said in one place (pyproject.toml), and everything that shows it agrees:
`--version`, /healthz, swarm_medic_info, the image's label (scripts/image.sh passes it, the
Dockerfile has no default to drift), the release workflow, and the CHANGELOG's newest release.
Then scripts/release.sh, which moves that one place: its dry run and its refusals, in a
throwaway git repository (no build, no docker).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from importlib.metadata import version as installed_version
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from swarm_medic import __version__, cli
from swarm_medic.app import App
from swarm_medic.core.protocol import PROTOCOL
from swarm_medic.core.settings import HttpSettings, Settings
from swarm_medic.swarm.fake import FakeEngine
from swarm_medic.telemetry.journal import Journal
from tests.pipeline.support import Logs

ROOT = Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
RELEASED = re.compile(r"^## \[(?P<version>[^\]]+)\]", re.M)


def test_the_installed_package_says_pyprojects_version() -> None:
    # a stale editable install says the version it was installed at: scripts/setup.sh
    # reinstalls when pyproject.toml changes
    assert installed_version("swarm-medic") == VERSION == __version__


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert capsys.readouterr().out.strip() == f"swarm-medic {VERSION}"


def test_healthz_and_swarm_medic_info_say_it() -> None:
    fake = FakeEngine(node_id="mgr1")
    fake.add_node("manager-1", node_id="mgr1", leader=True)
    reg = CollectorRegistry()
    app = App(Settings(http=HttpSettings(http_port=0)), lambda: fake, reg)
    app.banner()
    assert app.health()[1]["version"] == VERSION
    (info,) = (s for m in reg.collect() for s in m.samples if s.name == "swarm_medic_info")
    assert info.labels["version"] == VERSION


def test_healthz_swarm_medic_info_and_the_start_up_line_say_the_protocol(logs: Logs) -> None:
    """What an operator reads during a rolling upgrade: which brain-to-node protocol each
    instance speaks (instances one protocol apart work together)."""
    fake = FakeEngine(node_id="mgr1")
    fake.add_node("manager-1", node_id="mgr1", leader=True)
    reg = CollectorRegistry()
    app = App(Settings(http=HttpSettings(http_port=0)), lambda: fake, reg)
    app.journal = Journal(app.metrics, logs.logger)
    app.banner()
    assert app.health()[1]["protocol"] == PROTOCOL
    (info,) = (s for m in reg.collect() for s in m.samples if s.name == "swarm_medic_info")
    assert info.labels["protocol"] == str(PROTOCOL)
    (starting,) = logs.starting("swarm-medic ")
    assert starting["protocol"] == PROTOCOL


def test_the_image_label_comes_from_pyproject() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    defaults = re.findall(r"^ARG VERSION(?:=(.*))?$", dockerfile, re.M)
    assert defaults, "the Dockerfile declares no VERSION"
    assert all(d == "" for d in defaults), f"a version in the Dockerfile can drift: {defaults}"
    assert 'org.opencontainers.image.version="${VERSION}"' in dockerfile
    image_sh = (ROOT / "scripts" / "image.sh").read_text(encoding="utf-8")
    assert '--build-arg VERSION="$version"' in image_sh
    assert "version=$(pyproject_version)" in image_sh
    assert '["project"]["version"]' in image_sh


def test_the_release_workflow_builds_the_tags_version() -> None:
    workflow = (ROOT / ".github" / "workflows" / "release.yml").read_text(encoding="utf-8")
    assert "VERSION=${{ steps.version.outputs.version }}" in workflow
    assert '["project"]["version"]' in workflow  # and refuses a tag that says otherwise


def test_the_newest_released_changelog_section_is_this_version() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    sections = RELEASED.findall(changelog)
    assert sections[0] == "Unreleased"
    released = sections[1:]
    if released:  # none yet is fine; once there is one, the newest is what the package says
        assert released[0] == VERSION, (
            f"CHANGELOG's newest release {released[0]}, package {VERSION}"
        )


# --- scripts/release.sh ----------------------------------------------------------------------

CHANGELOG = """# Changelog

## [Unreleased]

### Added
- something an operator wants

## [0.1.0] - 2025-01-01

### Added
- the first one
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository holding release.sh, a pyproject at 0.1.0 and a CHANGELOG."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "release.sh", tmp_path / "scripts" / "release.sh")
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    (tmp_path / "pyproject.toml").write_text(
        re.sub(r'(?m)^version = "[^"]*"$', 'version = "0.1.0"', text), encoding="utf-8"
    )
    (tmp_path / "CHANGELOG.md").write_text(CHANGELOG, encoding="utf-8")
    git(tmp_path, "init", "--quiet")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "--quiet", "-m", "start")
    return tmp_path


def git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
    }
    return subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True
    ).stdout


def release(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHON": sys.executable, "DATE": "2030-01-02"}
    return subprocess.run(
        ["bash", "scripts/release.sh", *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_release_dry_run_shows_every_step_and_changes_nothing(repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    done = release(repo, "--dry-run", "0.2.0")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "+## [0.2.0] - 2030-01-02" in out
    assert '-version = "0.1.0"\n+version = "0.2.0"' in out
    # [Unreleased] stays, empty, above the new section that holds what it held
    assert " ## [Unreleased]\n \n+## [0.2.0] - 2030-01-02\n+\n ### Added\n" in out
    steps = [line.removeprefix("  would run: ") for line in out.splitlines() if "would run" in line]
    assert steps[0] == "git commit --quiet -m Release 0.2.0 -- CHANGELOG.md pyproject.toml"
    assert f"{sys.executable} -m build --no-isolation --outdir dist ." in steps
    assert any(s.startswith(f"{sys.executable} -m twine check --strict") for s in steps)
    assert "env IMAGE=swarm-medic:0.2.0 bash scripts/image.sh" in steps
    assert steps[-1] == "git tag -a v0.2.0 -m swarm-medic 0.2.0"
    # nothing changed: no commit, no tag, no file
    assert git(repo, "rev-parse", "HEAD") == head
    assert git(repo, "tag") == ""
    assert git(repo, "status", "--porcelain") == ""


@pytest.mark.parametrize(
    ("version", "why"),
    [
        ("0.2", "must look like 1.2.3"),
        ("v0.2.0", "must look like 1.2.3"),
        ("0.1.0", "is not newer than pyproject.toml's 0.1.0"),
        ("0.0.9", "is not newer"),
    ],
)
def test_release_refuses_a_bad_version(repo: Path, version: str, why: str) -> None:
    done = release(repo, "--dry-run", version)
    assert done.returncode == 1
    assert "refused" in done.stderr and why in done.stderr


def test_release_refuses_a_dirty_tree(repo: Path) -> None:
    (repo / "stray.txt").write_text("not committed", encoding="utf-8")
    done = release(repo, "0.2.0")  # not even a dry run goes on
    assert done.returncode == 1
    assert "the tree has changes or untracked files" in done.stderr
    assert git(repo, "log", "--format=%s") == "start\n"


def test_release_refuses_an_existing_tag(repo: Path) -> None:
    git(repo, "tag", "v0.2.0")
    done = release(repo, "0.2.0")
    assert done.returncode == 1
    assert "tag v0.2.0 exists already" in done.stderr
    assert (repo / "CHANGELOG.md").read_text(encoding="utf-8") == CHANGELOG


def test_release_refuses_an_empty_unreleased_section(repo: Path) -> None:
    empty = CHANGELOG.replace("### Added\n- something an operator wants\n\n", "", 1)
    (repo / "CHANGELOG.md").write_text(empty, encoding="utf-8")
    git(repo, "commit", "--quiet", "-am", "nothing new")
    done = release(repo, "--dry-run", "0.2.0")
    assert done.returncode == 1
    assert "[Unreleased] in CHANGELOG.md is empty" in done.stderr
