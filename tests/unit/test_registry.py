"""Loading runbook files from a folder, as an operator's --runbooks-dir is loaded."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from swarm_medic.core.model import Snapshot
from swarm_medic.core.runbook import context
from swarm_medic.core.settings import Settings
from swarm_medic.pipeline import match, registry
from tests import builders as build
from tests.builders import NOW

# What ip-exhaustion once had to avoid: a dataclass in a file whose annotations are strings.
WITH_A_DATACLASS = '''
    """Counts the services of each mode, with a dataclass to hold the count."""

    from __future__ import annotations

    from collections.abc import Iterator
    from dataclasses import dataclass, field

    from swarm_medic.runbook import Context, Finding


    @dataclass
    class Tally:
        mode: str
        names: list[str] = field(default_factory=list)


    NAME = "{name}"


    def detect(ctx: Context) -> Iterator[Finding]:
        tallies: dict[str, Tally] = {{}}
        for s in ctx.snapshot.services:
            tallies.setdefault(s.mode, Tally(s.mode)).names.append(s.name)
        for t in tallies.values():
            yield Finding(NAME, f"{{NAME}}:{{t.mode}}", ", ".join(t.names), "counted")
'''


def write(folder: Path, file: str, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / file
    path.write_text(textwrap.dedent(body))
    return path


def snap() -> Snapshot:
    return build.snapshot(
        nodes=[build.node("n1", role="manager", leader=True)],
        services=[
            build.service("s1", name="web"),
            build.service("s2", name="api"),
            build.service("s3", name="agent", mode="global"),
        ],
    )


def test_a_dataclass_with_postponed_annotations_loads_from_a_folder(tmp_path: Path) -> None:
    path = write(tmp_path, "tally.py", WITH_A_DATACLASS.format(name="tally"))
    reg = registry.load([tmp_path])
    assert reg.errors == []
    found = match.run(reg, context(snap(), NOW, Settings()))
    assert found.failures == ()
    assert sorted((f.key, f.summary) for f in found.findings) == [
        ("tally:global", "agent"),
        ("tally:replicated", "web, api"),
    ]
    module = sys.modules[registry.module_name(path)]
    assert module.__file__ == str(path)


def test_the_same_file_name_in_two_folders_makes_two_modules(tmp_path: Path) -> None:
    first = write(tmp_path / "a", "tally.py", WITH_A_DATACLASS.format(name="tally-a"))
    second = write(tmp_path / "b", "tally.py", WITH_A_DATACLASS.format(name="tally-b"))
    reg = registry.load([tmp_path / "a", tmp_path / "b"])
    assert reg.errors == []
    assert registry.module_name(first) != registry.module_name(second)
    assert sys.modules[registry.module_name(first)].NAME == "tally-a"
    assert sys.modules[registry.module_name(second)].NAME == "tally-b"
    # loaded again (a second registry): no error, and the file's module is the new one
    again = registry.load([tmp_path / "a"])
    assert again.errors == []
    assert again.runbooks["tally-a"].detect_fn.__module__ == registry.module_name(first)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('"""Broken."""\nNAME = "broken"\ndef detect(ctx:\n', "syntax error at line 3"),
        ('"""Broken."""\nNAME = "broken"\nraise RuntimeError("at import")\n', "at import"),
        ('"""Broken."""\nfrom swarm_medic.runbook import Nothing\n', "ImportError"),
        ('"""Broken."""\ndef detect(ctx):\n    return []\n', "defines no NAME"),
    ],
)
def test_a_file_that_does_not_load_says_why_and_leaves_no_module(
    tmp_path: Path, body: str, message: str
) -> None:
    path = write(tmp_path, "broken.py", body)
    reg = registry.load([tmp_path])
    (err,) = reg.errors
    assert err.path == str(path) and message in err.message
    assert reg.runbooks == {}
    assert registry.module_name(path) not in sys.modules


def test_a_file_broken_after_a_good_load_keeps_the_good_module(tmp_path: Path) -> None:
    path = write(tmp_path, "tally.py", WITH_A_DATACLASS.format(name="tally"))
    assert registry.load([tmp_path]).errors == []
    good = sys.modules[registry.module_name(path)]
    path.write_text('"""Now broken."""\nNAME = "tally"\nraise RuntimeError("edited")\n')
    (err,) = registry.load([tmp_path]).errors
    assert "edited" in err.message
    assert sys.modules[registry.module_name(path)] is good
