"""README.md's generated parts (swarm_medic/readme.py) are what the code makes of them now: the
settings table, the safety gates in order and the metrics."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarm_medic import readme
from swarm_medic.pipeline import policy

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.mark.parametrize("part", readme.PARTS, ids=lambda p: p.name)
def test_the_readme_has_each_part_as_the_code_makes_it(part: readme.Part) -> None:
    text = README.read_text(encoding="utf-8")
    assert part.begin in text and part.end in text, f"README.md lost its {part.begin} block"
    assert readme.with_part(text, part) == text, (
        f"README.md is out of date: run {readme.REGENERATE}"
    )


def test_with_part_replaces_only_its_block() -> None:
    part = readme.SETTINGS
    text = f"intro\n\n{part.begin}\nstale\n{part.end}\n\nafter\n"
    out = readme.with_part(text, part)
    assert out.startswith(f"intro\n\n{part.begin}\n<!-- generated from {part.source} ")
    assert out.endswith(f"{part.end}\n\nafter\n")
    assert "stale" not in out
    assert readme.with_part(out, part) == out
    with pytest.raises(ValueError, match="settings:begin"):
        readme.with_part("no markers here", part)


def test_the_gates_are_listed_in_the_order_the_policy_tries_them() -> None:
    rows = readme.gates_table().splitlines()[2:]
    assert len(rows) == len(policy.GATES) + 1  # and what passing them all means
    for n, (row, gate) in enumerate(zip(rows, policy.GATES, strict=False), 1):
        assert row.startswith(f"| {n} | `{gate.reason}` | {gate.reason.verdict} | "), row
    assert rows[-1].startswith(f"| | `{policy.PASSED}` | act | ")


def test_main_rewrites_every_part_in_place(tmp_path: Path) -> None:
    path = tmp_path / "README.md"
    path.write_text("".join(f"{p.begin}\nSTALE\n{p.end}\n" for p in readme.PARTS), encoding="utf-8")
    assert readme.main([str(path)]) == 0
    text = path.read_text(encoding="utf-8")
    assert "STALE" not in text
    assert readme.generated(text) == text
