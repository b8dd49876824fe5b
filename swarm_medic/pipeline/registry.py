"""Finds runbook files and loads each one on its own: a broken file never stops the others.

A runbook file is loaded by path (importlib), so an operator can drop a file into
--runbooks-dir without packaging it. What a broken file did wrong is kept as a LoadError with
a message that names the file, the line and the problem.
"""

from __future__ import annotations

import importlib.util
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import runbooks as builtin_runbooks
from swarm_medic.core.runbook import LoadError, Runbook


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

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.runbooks.values())

    def __len__(self) -> int:
        return len(self.runbooks)


def builtin_dir() -> Path:
    return Path(builtin_runbooks.__file__).parent


def load_file(path: Path) -> Runbook:
    spec = importlib.util.spec_from_file_location(f"swarm_medic_runbook_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    missing = [n for n in ("NAME", "detect", "plan") if not hasattr(module, n)]
    if missing:
        raise AttributeError(
            f"defines no {', '.join(missing)} (a runbook needs NAME, detect, plan and a docstring)"
        )
    if not (module.__doc__ or "").strip():
        raise AttributeError("has no docstring: the docstring is what the operator reads")
    if not callable(module.detect) or not callable(module.plan):
        raise TypeError("detect and plan must be functions")
    return Runbook(
        name=str(module.NAME),
        doc=module.__doc__ or "",
        detect=module.detect,
        plan=module.plan,
        source=str(path),
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
