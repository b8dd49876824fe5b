"""The fake's answers dressed as a real engine's, for the memory figure.

The fake's JSON carries only the fields swarm-medic reads: about 400 bytes a task, where a real
engine sends 2-4 KiB (the whole spec, each network attachment's full network object, port
status). The medic skips those fields, but it receives, splits, hashes and (before the memo
kept values only) held them. `dressed` adds to every object of the fake's answers each field a
recorded Engine 28 object of the same kind has and the fake's lacks, in the engine's order; the
fake's own values win, so the world (and every finding) stays the fake's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec

FIXTURE = Path(__file__).parent / "fixtures" / "engine-28-objects.json"


def dress(obj: Any, template: Any) -> Any:
    """`obj` with the fields only `template` has; in a list of objects, each item is dressed
    with the template's first item."""
    if isinstance(obj, dict) and isinstance(template, dict):
        out = {k: dress(obj[k], v) if k in obj else v for k, v in template.items()}
        out.update((k, v) for k, v in obj.items() if k not in template)
        return out
    if isinstance(obj, list) and isinstance(template, list) and template:
        return [dress(item, template[0]) for item in obj]
    return obj


def dressed(answers: dict[str, bytes]) -> dict[str, bytes]:
    """The fake's frozen answers (node, service, task lists), each object dressed."""
    recorded = json.loads(FIXTURE.read_text())
    return {
        kind: msgspec.json.encode([dress(o, recorded[kind]) for o in msgspec.json.decode(body)])
        for kind, body in answers.items()
    }
