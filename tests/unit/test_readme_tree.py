"""README's "How it works" tree names every module where it is: the tree is the architecture."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _tree() -> set[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("## How it works\n", 1)[1].split("```\n", 2)[1]
    paths: set[str] = set()
    stack: list[tuple[int, str]] = []
    for line in block.splitlines():
        m = re.match(r"^( *)(\S+)", line)
        if not m or not re.match(r"^[\w.]+/?$", m.group(2)):
            continue
        depth, name = len(m.group(1)), m.group(2)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        path = "".join(p for _, p in stack) + name
        if name.endswith("/"):
            stack.append((depth, name))
        paths.add(path)
    return paths


def test_the_readme_tree_lists_every_module_in_its_package() -> None:
    modules = {
        str(p.relative_to(ROOT))
        for p in (ROOT / "swarm_medic").rglob("*.py")
        if p.name != "__init__.py"
    }
    listed = {p for p in _tree() if p.endswith(".py")}
    assert modules - listed == set(), "modules missing from README's How it works tree"
    assert listed - modules == set(), "README's tree names modules that do not exist"
