"""The README's generated parts, from the code that declares them: the settings table, the
safety gates in their order, and the metrics.

Each part sits between its markers in README.md (`<!-- NAME:begin -->` ... `<!-- NAME:end -->`)
with a note naming where it comes from; `python -m swarm_medic.readme README.md` rewrites them
all, and a unit test fails when README.md is not what this module makes of the code.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from swarm_medic.core.settings import SPECS, env_name, flag_name, show_default, show_range
from swarm_medic.pipeline import policy
from swarm_medic.telemetry import metrics

REGENERATE = "python -m swarm_medic.readme README.md"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def settings_table() -> str:
    """Every setting: flag, env, default, group, meaning (one row per setting, in order)."""
    rows = [
        "| flag | env | default | group | meaning |",
        "|---|---|---|---|---|",
    ]
    for spec in SPECS:
        default = show_default(spec)
        meaning = spec.help + (f"; range {r}" if (r := show_range(spec)) else "")
        rows.append(
            f"| `{flag_name(spec)}` | `{env_name(spec)}` | "
            + (f"`{_cell(default)}`" if default else "—")
            + f" | {spec.group} | {_cell(meaning)} |"
        )
    return "\n".join(rows) + "\n"


def gates_table() -> str:
    """The policy's gates in the order they are tried, then what passing them all means."""
    rows = ["| # | reason | verdict | meaning |", "|---|---|---|---|"]
    for n, gate in enumerate(policy.GATES, 1):
        r = gate.reason
        rows.append(f"| {n} | `{r}` | {r.verdict} | {_cell(r.wording)} |")
    ok = policy.PASSED
    rows.append(f"| | `{ok}` | {ok.verdict} | {_cell(ok.wording)} |")
    return "\n".join(rows) + "\n"


def metrics_table() -> str:
    """Every metric: name, type, labels, meaning (one row per metric, in declaration order)."""
    rows = ["| metric | type | labels | meaning |", "|---|---|---|---|"]
    for name, kind, labels, doc in metrics.catalogue():
        shown = ", ".join(f"`{x}`" for x in labels) or "—"
        rows.append(f"| `{name}` | {kind} | {shown} | {_cell(doc)} |")
    return "\n".join(rows) + "\n"


@dataclass(frozen=True)
class Part:
    """One generated part of the README: its marker name, the file it is made from, the maker."""

    name: str
    source: str
    make: Callable[[], str]

    @property
    def begin(self) -> str:
        return f"<!-- {self.name}:begin -->"

    @property
    def end(self) -> str:
        return f"<!-- {self.name}:end -->"


SETTINGS = Part("settings", "swarm_medic/core/settings.py", settings_table)
GATES = Part("gates", "swarm_medic/pipeline/policy.py", gates_table)
METRICS = Part("metrics", "swarm_medic/telemetry/metrics.py", metrics_table)
PARTS = (SETTINGS, GATES, METRICS)


def with_part(readme: str, part: Part) -> str:
    """`readme` with the text between `part`'s markers replaced by what it makes now."""
    begin, end = readme.find(part.begin), readme.find(part.end)
    if begin < 0 or end < begin:
        raise ValueError(f"no {part.begin} ... {part.end} block")
    note = f"<!-- generated from {part.source} by `{REGENERATE}` -->"
    return f"{readme[:begin]}{part.begin}\n{note}\n\n{part.make()}\n{readme[end:]}"


def generated(readme: str) -> str:
    """`readme` with every generated part as the code makes it now."""
    for part in PARTS:
        readme = with_part(readme, part)
    return readme


def main(argv: list[str] | None = None) -> int:
    """Rewrite the generated parts of the README at PATH in place."""
    p = argparse.ArgumentParser(prog="python -m swarm_medic.readme", description=main.__doc__)
    p.add_argument("path", metavar="PATH", help="the README to rewrite (README.md)")
    args = p.parse_args(argv)
    path = Path(args.path)
    try:
        path.write_text(generated(path.read_text(encoding="utf-8")), encoding="utf-8")
    except (OSError, ValueError) as exc:
        p.error(f"{path}: {exc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
