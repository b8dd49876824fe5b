"""Finds runbook files and loads each one on its own: a broken file never stops the others.

A runbook file is loaded by path (importlib), so an operator can drop a file into
--runbooks-dir without packaging it; as an import would, it registers the module in
sys.modules, under a name of its own (the same file name in two folders makes two modules).
What a broken file did wrong is kept as a LoadError with a message that names the file, the
line and the problem, and its module is not kept. What a runbook file holds is described in
`swarm_medic.runbook`; `configure` then gives each runbook the operator's values of its own
settings (a wrong one stops the start: see core.runbook.configure)."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import traceback
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from swarm_medic.core import runbook as core
from swarm_medic.core.errors import SettingsError
from swarm_medic.core.runbook import KNOWN_NEEDS, LoadError, Runbook, check_settings


@dataclass
class Registry:
    runbooks: dict[str, Runbook] = field(default_factory=dict)
    errors: list[LoadError] = field(default_factory=list)

    def register(self, runbook: Runbook) -> None:
        if runbook.name in self.runbooks:
            other = self.runbooks[runbook.name].source
            raise ValueError(
                f"runbook {runbook.name!r} is defined twice: {other} and {runbook.source}"
            )
        self.runbooks[runbook.name] = runbook

    def configure(self, flags: Sequence[str] = (), env: Mapping[str, str] | None = None) -> None:
        """Gives each runbook the operator's values of its settings; SettingsError if wrong."""
        try:
            self.runbooks = core.configure(self.runbooks, flags, env)
        except SettingsError as exc:
            if not self.errors:
                raise
            broken = "; ".join(f"{e.path}: {e.message}" for e in self.errors)
            raise SettingsError(f"{exc} (runbook files that did not load: {broken})") from None

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.runbooks.values())

    def __len__(self) -> int:
        return len(self.runbooks)


# Installed, the built-in runbooks are the package swarm_medic.runbooks: its own folder in a
# wheel, the repository's top-level runbooks/ in an editable install (setuptools maps it there,
# see pyproject.toml). Looked up, not imported: the files are loaded one by one below.
BUILTIN_PACKAGE = "swarm_medic.runbooks"


def builtin_dir() -> Path:
    spec = importlib.util.find_spec(BUILTIN_PACKAGE)
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    # A source tree that was never installed (PYTHONPATH=.): the runbooks beside the package.
    return Path(__file__).resolve().parents[2] / "runbooks"


def module_name(path: Path) -> str:
    """The name a runbook file's module is registered under in sys.modules: one per file, so
    that an operator's stuck_task.py never replaces the built-in one, and never a name an
    `import` statement could reach by chance."""
    where = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    return f"swarm_medic_runbook_{path.stem}_{where}"


def load_file(path: Path) -> Runbook:
    name = module_name(path)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs, as `import` does: a @dataclass (or typing.get_type_hints) in
    # the file looks its own module up there, and finds None otherwise.
    before = sys.modules.get(name)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        return _runbook(module, path)
    except BaseException:
        # a file that does not load leaves nothing behind (its last good load, if any, stays)
        if before is None:
            del sys.modules[name]
        else:
            sys.modules[name] = before
        raise


def _runbook(module: ModuleType, path: Path) -> Runbook:
    missing = [n for n in ("NAME", "detect") if not hasattr(module, n)]
    if missing:
        raise AttributeError(
            f"defines no {', '.join(missing)} (a runbook needs NAME, detect and a docstring)"
        )
    if not (module.__doc__ or "").strip():
        raise AttributeError("has no docstring: the docstring is what the operator reads")
    plan = getattr(module, "plan", None)
    if not callable(module.detect) or (plan is not None and not callable(plan)):
        raise TypeError("detect and plan must be functions")
    needs = getattr(module, "NEEDS", ())
    if isinstance(needs, str) or not all(isinstance(n, str) for n in needs):
        raise TypeError("NEEDS must be a tuple of names, e.g. NEEDS = (PROBES,)")
    unknown = sorted(set(needs) - KNOWN_NEEDS)
    if unknown:
        raise ValueError(f"NEEDS {unknown[0]!r}: known are {', '.join(sorted(KNOWN_NEEDS))}")
    settings = tuple(getattr(module, "SETTINGS", ()))
    standing = getattr(module, "standing", None)
    if standing is not None and not callable(standing):
        raise TypeError("standing must be a function")
    return Runbook(
        name=str(module.NAME),
        doc=module.__doc__ or "",
        detect_fn=module.detect,
        plan_fn=plan,
        source=str(path),
        needs=frozenset(needs),
        settings=settings,
        values=check_settings(settings),
        standing_fn=standing,
    )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        return f"syntax error at line {exc.lineno}: {exc.msg}"
    frame = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" (line {frame[0].lineno})" if frame else ""
    return f"{type(exc).__name__}{where}: {exc}"


def load(dirs: Iterable[Path]) -> Registry:
    registry = Registry()
    for d in dirs:
        if not d.is_dir():
            registry.errors.append(LoadError(str(d), "runbook directory does not exist"))
            continue
        for path in sorted(d.glob("*.py")):
            if path.name.startswith("_"):
                continue
            try:
                registry.register(load_file(path))
            except Exception as exc:  # noqa: BLE001 - any failure in a runbook file is isolated
                registry.errors.append(LoadError(str(path), _describe(exc)))
    return registry


def default_dirs(extra: str = "") -> list[Path]:
    return [builtin_dir()] + ([Path(extra)] if extra else [])
