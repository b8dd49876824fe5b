"""`python -m benchmarks --compare [REV]`: this tree's figures and REV's, measured in one run.

These machines vary 2x from run to run, so a figure from another day says little: only a
ratio measured in the same run, on the same machine, counts. REV (default: the previous
release, the newest tag reachable from HEAD, else the commit tests/multilab/
test_rolling_upgrade.py names PREVIOUS) is checked out into a temporary detached worktree,
removed afterwards whatever happens. Each side's own `python -m benchmarks --json` runs in a
fresh process of this same interpreter, with its tree as working directory and first on
PYTHONPATH, alternately (this, REV, this, REV, ...) so that the machine's drift hits both
sides alike. A side that crashes or lacks a figure is reported (n/a) and the rest goes on.
"""

from __future__ import annotations

import ast
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

PREVIOUS_FILE = "tests/multilab/test_rolling_upgrade.py"
RUNS = 2
RUN_TIMEOUT = 900.0  # seconds: a side that hangs is reported, not waited for forever
Targets = Mapping[str, tuple[str, float]]  # key -> (<= or >=, target)
Figures = dict[str, Any]


class SideFailed(Exception):
    """One side's run could not give figures: reported, the comparison goes on."""


# --- which revision --------------------------------------------------------------------------


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


@dataclass(frozen=True)
class Rev:
    name: str  # as given, or as found
    commit: str
    why: str  # how it was chosen, for the output


def previous_named(repo: Path) -> str | None:
    """The PREVIOUS = "..." of the rolling-upgrade test (read, not imported: it needs pytest)."""
    try:
        tree = ast.parse((repo / PREVIOUS_FILE).read_text())
    except (OSError, SyntaxError):
        return None
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "PREVIOUS" for t in node.targets)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            return node.value.value
    return None


def choose(repo: Path, given: str | None) -> Rev:
    """REV as given, else the previous release: the newest tag reachable from HEAD that is not
    HEAD itself (a release compared with itself says nothing), else PREVIOUS."""
    head = git(repo, "rev-parse", "HEAD")
    if given:
        return Rev(given, git(repo, "rev-parse", "--verify", f"{given}^{{commit}}"), "given")
    for tag in git(repo, "tag", "--merged", "HEAD", "--sort=-creatordate").splitlines():
        commit = git(repo, "rev-parse", f"{tag}^{{commit}}")
        if commit != head:
            return Rev(tag, commit, "the newest tag")
    named = previous_named(repo)
    if named is None:
        raise RuntimeError(f"no tag, and no PREVIOUS in {PREVIOUS_FILE}: name a REV")
    commit = git(repo, "rev-parse", "--verify", f"{named}^{{commit}}")
    return Rev(named, commit, f"no tag: PREVIOUS in {PREVIOUS_FILE}")


# --- the other tree --------------------------------------------------------------------------


@contextmanager
def checkout(repo: Path, commit: str) -> Iterator[Path]:
    """`commit` in a temporary detached worktree of `repo`, removed on the way out (an error,
    Ctrl-C or SIGTERM included: see main)."""
    parent = Path(tempfile.mkdtemp(prefix="benchmarks-compare-"))
    tree = parent / "tree"
    try:
        git(repo, "worktree", "add", "--quiet", "--detach", str(tree), commit)
        own_runbooks(tree)
        yield tree
    finally:
        try:
            if tree.exists():
                git(repo, "worktree", "remove", "--force", str(tree))
        finally:
            shutil.rmtree(parent, ignore_errors=True)
            git(repo, "worktree", "prune")


def own_runbooks(tree: Path) -> None:
    """The venv's editable install maps `swarm_medic.runbooks` to this tree's runbooks/
    (pyproject's package-dir) whatever PYTHONPATH says, so the other tree's package would load
    this tree's runbooks. A link inside its checkout gives it its own, where its wheel puts
    them; a tree that ships swarm_medic/runbooks itself is left as it is."""
    inner = tree / "swarm_medic" / "runbooks"
    if (
        (tree / "runbooks" / "__init__.py").is_file()
        and not inner.exists()
        and inner.parent.is_dir()
    ):
        inner.symlink_to(Path("..") / "runbooks", target_is_directory=True)


def side_env(tree: Path, base: Mapping[str, str]) -> dict[str, str]:
    """The environment of a run of `tree`: its tree first on PYTHONPATH, ahead of the venv's
    editable install (a finder appended after the path's), so `swarm_medic` is its own."""
    rest = base.get("PYTHONPATH", "")
    return {**base, "PYTHONPATH": os.pathsep.join(p for p in (str(tree), rest) if p)}


WHERE = (
    "import json, swarm_medic\n"
    "try:\n"
    "    import swarm_medic.runbooks as r\n"
    "    books = list(r.__path__)\n"
    "except ImportError:\n"
    "    books = []\n"
    "print(json.dumps([swarm_medic.__file__, books]))\n"
)


def check_imports(python: str, tree: Path, env: Mapping[str, str]) -> None:
    """Raises SideFailed unless `swarm_medic` (and its runbooks, if any) import from `tree`:
    a figure measured on the other side's code would be a lie."""
    done = subprocess.run(
        [python, "-c", WHERE], check=False, cwd=tree, env=dict(env), capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SideFailed(f"swarm_medic does not import: {tail(done.stderr)}")
    package, books = json.loads(done.stdout.strip().splitlines()[-1])
    root = tree.resolve()
    for path in [package, *books]:
        if not Path(path).resolve().is_relative_to(root):
            raise SideFailed(f"swarm_medic would be imported from {path}, outside {tree}")


def tail(text: str, lines: int = 5) -> str:
    return " | ".join(text.strip().splitlines()[-lines:]) or "(no output)"


def run_once(python: str, tree: Path, timeout: float = RUN_TIMEOUT) -> tuple[Figures, str]:
    """One `python -m benchmarks --json` of `tree`: (its figures, what it said on stderr)."""
    env = side_env(tree, os.environ)
    check_imports(python, tree, env)
    try:
        done = subprocess.run(
            [python, "-m", "benchmarks", "--json"],
            check=False,
            cwd=tree,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise SideFailed(f"no figures within {timeout:.0f} s") from None
    if done.returncode != 0:
        raise SideFailed(f"exit code {done.returncode}: {tail(done.stderr)}")
    lines = done.stdout.strip().splitlines()
    try:
        figures = json.loads(lines[-1]) if lines else None
    except ValueError:
        figures = None
    if not isinstance(figures, dict):
        raise SideFailed(f"no JSON object on its last line of output: {tail(done.stdout)}")
    return figures, done.stderr.strip()


# --- measuring both sides --------------------------------------------------------------------


@dataclass
class Side:
    role: str  # "this" or "rev"
    label: str
    tree: Path
    runs: list[Figures] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what its runs said on stderr


Runner = Callable[[Path], tuple[Figures, str]]


def alternate(sides: Sequence[Side], runs: int, run: Runner) -> list[str]:
    """`runs` runs of each side, interleaved A B A B ...; returns the order they ran in."""
    order = []
    for _ in range(runs):
        for side in sides:
            order.append(side.role)
            try:
                figures, said = run(side.tree)
            except SideFailed as exc:
                side.errors.append(str(exc))
                continue
            side.runs.append(figures)
            for line in said.splitlines():
                if line.strip() and line not in side.notes:
                    side.notes.append(line)
    return order


# --- the table -------------------------------------------------------------------------------


def median_of(runs: Sequence[Figures], key: str) -> float | None:
    values = [
        float(v)
        for r in runs
        if isinstance(v := r.get(key), int | float) and not isinstance(v, bool) and math.isfinite(v)
    ]
    return statistics.median(values) if values else None


@dataclass(frozen=True)
class Row:
    key: str
    op: str  # "<=", ">=", or "" for a figure without a target
    target: float | None
    this: float | None
    rev: float | None
    ratio: float | None  # this / rev
    met: bool | None  # this tree's median against the target


def met(op: str, target: float | None, value: float | None) -> bool | None:
    if target is None or value is None:
        return None
    return value <= target if op == "<=" else value >= target


def rows(this: Sequence[Figures], rev: Sequence[Figures], targets: Targets) -> list[Row]:
    """The figures with a target first, in their order, then every other number either side
    printed (this side's first): a key one side lacks reads None."""
    keys = list(targets)
    for runs in (this, rev):
        for r in runs:
            keys += [
                k
                for k, v in r.items()
                if k not in keys
                and isinstance(v, int | float | type(None))
                and not isinstance(v, bool)
            ]
    out = []
    for key in keys:
        op, target = targets.get(key, ("", None))
        a, b = median_of(this, key), median_of(rev, key)
        ratio = a / b if a is not None and b else None
        out.append(Row(key, op, target, a, b, ratio, met(op, target, a)))
    return out


def shown(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:,.1f}"


def render(table: Sequence[Row], head_a: str, head_b: str) -> list[str]:
    wa, wb = max(12, len(head_a)), max(12, len(head_b))
    lines = [
        f"{'figure':<28} {'target':>10}  {head_a:>{wa}}  {head_b:>{wb}}  "
        f"{'this/REV':>8}  target met"
    ]
    for r in table:
        target = f"{r.op} {shown(r.target)}" if r.target is not None else ""
        ratio = f"{r.ratio:.2f}" if r.ratio is not None else "n/a"
        ok = "" if r.target is None else {True: "yes", False: "NO", None: "n/a"}[r.met]
        lines.append(
            f"{r.key:<28} {target:>10}  {shown(r.this):>{wa}}  {shown(r.rev):>{wb}}  "
            f"{ratio:>8}  {ok}"
        )
    return lines


# --- the command -----------------------------------------------------------------------------


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through checkout's finally: the worktree goes


def describe(repo: Path) -> str:
    return git(repo, "describe", "--always", "--dirty", "--abbrev=7")


def compare(
    repo: Path,
    given: str | None,
    runs: int,
    targets: Targets,
    run: Runner | None = None,
) -> dict[str, Any]:
    """Both sides measured; the result as one JSON-able object."""
    started = time.monotonic()
    python = sys.executable
    rev = choose(repo, given)
    this = Side("this", describe(repo), repo)
    with checkout(repo, rev.commit) as tree:
        other = Side(
            "rev",
            rev.name if rev.name.startswith(rev.commit[:7]) else f"{rev.name} {rev.commit[:7]}",
            tree,
        )
        order = alternate([this, other], runs, run or (lambda t: run_once(python, t)))
    table = rows(this.runs, other.runs, targets)
    machine: dict[str, str] = next(
        (r["machine"] for r in this.runs if isinstance(r.get("machine"), dict)), {}
    )
    return {
        "this": {"label": this.label, "errors": this.errors, "notes": this.notes},
        "rev": {
            "name": rev.name,
            "commit": rev.commit,
            "why": rev.why,
            "label": other.label,
            "errors": other.errors,
            "notes": other.notes,
        },
        "runs": runs,
        "order": order,
        "machine": machine,
        "figures": [vars(r) for r in table],
        "raw": {"this": this.runs, "rev": other.runs},
        "wall_s": round(time.monotonic() - started, 1),
    }


def report(got: Mapping[str, Any]) -> list[str]:
    rev, this, runs, raw = got["rev"], got["this"], got["runs"], got["raw"]
    m = got["machine"]
    lines = [
        f"REV: {rev['name']} ({rev['commit'][:12]}; {rev['why']})",
        f"machine: {m.get('nproc', '?')} CPUs, {m.get('cpu', '?')}, Python {m.get('python', '?')}",
        f"{runs} runs of each side, alternating, this tree ({this['label']}) first; figures from "
        f"{len(raw['this'])} and {len(raw['rev'])} of them",
        "medians; only the ratios count (a figure from another run may differ 2x here)",
        "",
    ]
    lines += render([Row(**r) for r in got["figures"]], "this tree", rev["label"])
    for side in (this, rev):
        for err in side["errors"]:
            lines.append(f"{side['label']}: a run failed: {err}")
        for note in side["notes"]:
            lines.append(f"{side['label']} said: {note[:240]}")
    lines.append(f"both sides measured in {got['wall_s']:.0f} s")
    return lines


def main(repo: Path, given: str | None, runs: int, targets: Targets, *, as_json: bool) -> int:
    if runs < 1:
        print("--runs must be at least 1", file=sys.stderr)
        return 2
    before = signal.signal(signal.SIGTERM, _stop)
    try:
        got = compare(repo, given, runs, targets)
    except RuntimeError as exc:  # no such REV, no git: nothing was measured
        print(f"compare: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # the worktree is gone already (checkout's finally)
        return 130
    finally:
        signal.signal(signal.SIGTERM, before)
    if as_json:
        print(json.dumps(got))
    else:
        print("\n".join(report(got)))
    return 0
