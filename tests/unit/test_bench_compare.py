"""benchmarks/compare.py: the side-by-side table, and the other tree checked out and run.

The trees compared here are a tiny git repository made by the test, whose benchmarks print
fixed JSON: a fixture standing in for the real benchmark, so the figures below are what the
fixture printed, carried through the real checkout, environment and subprocesses.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from benchmarks import compare
from benchmarks.compare import Row, SideFailed, rows

TARGETS = {"cpu_ms": ("<=", 40.0), "per_s": (">=", 1000.0), "worst_s": ("<=", 105.0)}


# --- the table ---------------------------------------------------------------------------------


def test_medians_and_ratios_of_each_figure_this_side_over_rev() -> None:
    this = [{"cpu_ms": 20.0, "per_s": 3000}, {"cpu_ms": 30.0, "per_s": 1000}]
    rev = [{"cpu_ms": 50.0, "per_s": 500}, {"cpu_ms": 30.0, "per_s": 700}]
    got = {r.key: r for r in rows(this, rev, TARGETS)}
    assert got["cpu_ms"] == Row("cpu_ms", "<=", 40.0, 25.0, 40.0, 25.0 / 40.0, True)
    assert got["per_s"] == Row("per_s", ">=", 1000.0, 2000.0, 600.0, 2000.0 / 600.0, True)


@pytest.mark.parametrize(
    ("op", "value", "want"),
    [("<=", 40.0, True), ("<=", 40.1, False), (">=", 999.0, False), (">=", 1000.0, True)],
)
def test_a_target_is_met_by_this_sides_median(op: str, value: float, want: bool) -> None:
    target = 40.0 if op == "<=" else 1000.0
    (row,) = rows([{"x": value}], [], {"x": (op, target)})
    assert row.met is want


def test_a_figure_one_side_lacks_reads_none_and_has_no_ratio() -> None:
    this = [{"cpu_ms": 20.0, "worst_s": 780.0}]
    rev = [{"cpu_ms": 40.0, "worst_s": None}]  # printed, but null: not measured there
    got = {r.key: r for r in rows(this, rev, TARGETS)}
    assert (got["worst_s"].this, got["worst_s"].rev, got["worst_s"].ratio) == (780.0, None, None)
    assert got["worst_s"].met is False
    assert (got["per_s"].this, got["per_s"].met) == (None, None)  # in no run at all


def test_targets_come_first_then_every_other_number_this_side_first() -> None:
    this = [{"ctx_b": 1, "cpu_ms": 2.0, "machine": {"nproc": "2"}, "flag": True, "name": "x"}]
    rev = [{"old_only": 3.0, "ctx_b": 2}]
    keys = [r.key for r in rows(this, rev, TARGETS)]
    assert keys == ["cpu_ms", "per_s", "worst_s", "ctx_b", "old_only"]


def test_a_ratio_against_zero_is_not_a_number() -> None:
    (row,) = rows([{"calls": 4}], [{"calls": 0}], {})
    assert (row.this, row.rev, row.ratio, row.met) == (4.0, 0.0, None, None)


def test_the_table_shows_missing_values_as_n_a() -> None:
    table = rows([{"cpu_ms": 20.0}], [{"cpu_ms": 40.0, "old": 5.0}], TARGETS)
    lines = compare.render(table, "this tree", "v0.1.0")
    head = "figure target this tree v0.1.0 this/REV target met"
    assert lines[0].split() == head.split()
    cells = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    assert cells["cpu_ms"] == ["<=", "40.0", "20.0", "40.0", "0.50", "yes"]
    assert cells["per_s"] == [">=", "1,000", "n/a", "n/a", "n/a", "n/a"]
    assert cells["old"] == ["n/a", "5.0", "n/a"]


# --- the other tree ------------------------------------------------------------------------------


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


BENCH = """\
import json, sys
import swarm_medic
figures = {figures!r}
figures["where"] = swarm_medic.__file__
print("a note on stderr", file=sys.stderr)
print("a line before the figures")
print(json.dumps(figures))
sys.exit({code})
"""


def commit(
    repo: Path,
    figures: Mapping[str, Any],
    *,
    code: int = 0,
    inner_runbooks: bool = False,
    package: bool = True,
    previous: str = "",
) -> str:
    """A tree whose `python -m benchmarks --json` prints `figures` (and where swarm_medic
    came from), committed; its sha."""
    for path in ("benchmarks", "swarm_medic", "runbooks", "tests"):
        shutil.rmtree(repo / path, ignore_errors=True)
    (repo / "benchmarks").mkdir()
    (repo / "benchmarks" / "__init__.py").write_text("")
    (repo / "benchmarks" / "__main__.py").write_text(BENCH.format(figures=dict(figures), code=code))
    if package:
        (repo / "swarm_medic").mkdir()
        (repo / "swarm_medic" / "__init__.py").write_text("")
        books = repo / ("swarm_medic/runbooks" if inner_runbooks else "runbooks")
        books.mkdir()
        (books / "__init__.py").write_text("")
    if previous:
        (repo / "tests" / "multilab").mkdir(parents=True)
        (repo / compare.PREVIOUS_FILE).write_text(f'PREVIOUS = "{previous}"  # the release\n')
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", "a tree")
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    return repo


def worktrees(repo: Path) -> list[Path]:
    return [
        Path(line.split(" ", 1)[1]).resolve()
        for line in git(repo, "worktree", "list", "--porcelain").splitlines()
        if line.startswith("worktree ")
    ]


def test_rev_is_checked_out_run_with_its_own_code_and_removed(repo: Path) -> None:
    old = commit(repo, {"cpu_ms": 60.0, "per_s": 500})
    # this tree ships its runbooks inside the package; the old one beside it, as ours does
    commit(repo, {"cpu_ms": 30.0, "per_s": 2000, "worst_s": 90.0}, inner_runbooks=True)
    got = compare.compare(repo, old[:7], 2, TARGETS)
    assert got["rev"]["commit"] == old
    assert got["rev"]["why"] == "given"
    assert got["order"] == ["this", "rev", "this", "rev"]
    figures = {f["key"]: f for f in got["figures"]}
    assert (figures["cpu_ms"]["this"], figures["cpu_ms"]["rev"]) == (30.0, 60.0)
    assert figures["cpu_ms"]["ratio"] == 0.5
    assert figures["per_s"]["ratio"] == 4.0
    assert (figures["worst_s"]["rev"], figures["worst_s"]["ratio"]) == (None, None)
    # each side imported its own swarm_medic, not the one the venv installs
    this_from = {Path(r["where"]).parent.parent for r in got["raw"]["this"]}
    rev_from = {Path(r["where"]).parent.parent for r in got["raw"]["rev"]}
    assert this_from == {repo}
    assert len(rev_from) == 1
    assert rev_from != {repo}
    assert got["this"]["notes"] == got["rev"]["notes"] == ["a note on stderr"]
    # the temporary worktree is gone, its folder too
    assert worktrees(repo) == [repo.resolve()]
    assert not rev_from.pop().exists()


def test_the_default_rev_is_the_newest_tag_not_on_head(repo: Path) -> None:
    first = commit(repo, {"cpu_ms": 1.0})
    git(repo, "tag", "v0.1.0")
    commit(repo, {"cpu_ms": 2.0})
    assert compare.choose(repo, None) == compare.Rev("v0.1.0", first, "the newest tag")
    git(repo, "tag", "v0.2.0")  # HEAD itself: a release is not compared with itself
    assert compare.choose(repo, None).name == "v0.1.0"


def test_without_a_tag_the_default_rev_is_the_rolling_upgrades_previous(repo: Path) -> None:
    first = commit(repo, {"cpu_ms": 1.0})
    commit(repo, {"cpu_ms": 2.0}, previous=first[:7])
    got = compare.choose(repo, None)
    assert (got.name, got.commit) == (first[:7], first)
    assert compare.PREVIOUS_FILE in got.why


def test_without_a_tag_or_previous_nothing_is_measured(repo: Path) -> None:
    commit(repo, {"cpu_ms": 1.0})
    with pytest.raises(RuntimeError, match="name a REV"):
        compare.choose(repo, None)


def test_a_rev_whose_benchmark_crashes_is_reported_and_the_rest_goes_on(repo: Path) -> None:
    old = commit(repo, {"cpu_ms": 60.0}, code=3)
    commit(repo, {"cpu_ms": 30.0}, inner_runbooks=True)
    got = compare.compare(repo, old, 2, TARGETS)
    assert len(got["rev"]["errors"]) == 2
    assert all("exit code 3" in e and "a note on stderr" in e for e in got["rev"]["errors"])
    cpu = next(f for f in got["figures"] if f["key"] == "cpu_ms")
    assert (cpu["this"], cpu["rev"], cpu["ratio"]) == (30.0, None, None)
    text = "\n".join(compare.report(got))
    assert "a run failed: exit code 3" in text
    assert worktrees(repo) == [repo.resolve()]


def test_a_rev_without_its_own_package_is_not_measured_with_another(repo: Path) -> None:
    old = commit(repo, {"cpu_ms": 60.0}, package=False)
    commit(repo, {"cpu_ms": 30.0}, inner_runbooks=True)
    got = compare.compare(repo, old, 1, TARGETS)
    assert got["raw"]["rev"] == []
    (error,) = got["rev"]["errors"]
    # the venv's editable install would give it this repository's package, or nothing at all
    assert "outside" in error or "does not import" in error


def test_the_worktree_is_removed_when_the_run_is_interrupted(repo: Path) -> None:
    old = commit(repo, {"cpu_ms": 60.0})
    commit(repo, {"cpu_ms": 30.0})
    seen: list[Path] = []

    def run(tree: Path) -> tuple[dict[str, Any], str]:
        seen.append(tree)
        if tree != repo:
            raise KeyboardInterrupt
        return {"cpu_ms": 1.0}, ""

    with pytest.raises(KeyboardInterrupt):
        compare.compare(repo, old, 2, TARGETS, run=run)
    assert seen[0] == repo
    assert not seen[1].exists()
    assert worktrees(repo) == [repo.resolve()]


def test_a_side_failing_is_recorded_per_run(repo: Path) -> None:
    old = commit(repo, {"cpu_ms": 60.0})
    commit(repo, {"cpu_ms": 30.0})
    results: list[dict[str, Any] | None] = [{"cpu_ms": 10.0}, None, {"cpu_ms": 30.0}]

    def run(tree: Path) -> tuple[dict[str, Any], str]:
        got = results.pop(0) if results else {"cpu_ms": 20.0}
        if got is None:
            raise SideFailed("no figures")
        return got, ""

    got = compare.compare(repo, old, 2, TARGETS, run=run)
    assert got["rev"]["errors"] == ["no figures"]
    assert [r["cpu_ms"] for r in got["raw"]["this"]] == [10.0, 30.0]
    assert [r["cpu_ms"] for r in got["raw"]["rev"]] == [20.0]


def test_the_other_tree_comes_first_on_its_pythonpath(tmp_path: Path) -> None:
    env = compare.side_env(tmp_path, {"PYTHONPATH": "/elsewhere", "HOME": "/root"})
    assert env["PYTHONPATH"].split(os.pathsep) == [str(tmp_path), "/elsewhere"]
    assert env["HOME"] == "/root"
    assert compare.side_env(tmp_path, {})["PYTHONPATH"] == str(tmp_path)


def test_the_json_is_one_object_of_the_table(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = commit(repo, {"cpu_ms": 60.0})
    commit(repo, {"cpu_ms": 30.0}, inner_runbooks=True)
    assert compare.main(repo, old, 1, TARGETS, as_json=True) == 0
    got = json.loads(capsys.readouterr().out)
    assert {f["key"]: f["ratio"] for f in got["figures"]}["cpu_ms"] == 0.5
