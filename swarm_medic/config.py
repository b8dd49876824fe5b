"""The configuration read: flags, then SWARM_MEDIC_* variables (or *_FILE files), then defaults.

`load` turns what the operator gave into `Settings` (declared in core/settings.py, which reads
nothing); `add_arguments` puts the settings' flags on a command's parser, one argparse group
per settings group. Any setting X may also be given as SWARM_MEDIC_X_FILE=path (docker
secrets); a value that does not parse, an unknown SWARM_MEDIC_* variable or a file that cannot
be read fails at start with a message naming the flag and the variable.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Collection, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from swarm_medic.core.errors import SettingsError
from swarm_medic.core.parsers import parse_bool
from swarm_medic.core.settings import (
    ENV_PREFIX,
    GROUPS,
    RUNBOOK_ENV_PREFIX,
    SPECS,
    Settings,
    Spec,
    env_name,
    flag_name,
    from_values,
    show_default,
    show_range,
)

FILE_MAX_BYTES = 64 * 1024  # a *_FILE is one value; /dev/zero by mistake must not hang the start

# Settings that became a runbook's own: the old variable says where it went.
MOVED: Mapping[str, str] = MappingProxyType(
    {
        ENV_PREFIX + old: f"{RUNBOOK_ENV_PREFIX}{name.upper().replace('-', '_')}_{key.upper()}"
        f" or --runbook-setting {name}.{key}=..."
        for old, name, key in (
            ("STUCK_AFTER", "stuck-task", "after"),
            ("PAUSED_UPDATE_ACTION", "paused-update", "action"),
            ("REJECTION_THRESHOLD", "repeated-rejection", "threshold"),
            ("REJECTION_WINDOW", "repeated-rejection", "window"),
            ("DNS_GRACE", "stale-dns", "grace"),
            ("ORPHAN_GRACE", "orphan-container", "grace"),
        )
    }
)


def add_arguments(
    parser: argparse.ArgumentParser, only: Collection[str] = (), names: Collection[str] = ()
) -> None:
    """One argparse group per settings group; each flag's help names range, default, variable.
    `only`: just those groups (a command that needs nothing but the engine's address), and
    `names`: those settings besides (a command's --help shows only the flags it uses).

    A boolean is a switch: `--dry-run` (true), `--no-dry-run` (false), or with a value as
    before (`--dry-run=false`, `--dry-run no`)."""
    wanted = [s for s in SPECS if not (only or names) or s.group in only or s.name in names]
    groups = {
        name: parser.add_argument_group(f"{name} settings", about)
        for name, about in GROUPS.items()
        if any(s.group == name for s in wanted)
    }
    for spec in wanted:
        notes = [f"range {r}" for r in (show_range(spec),) if r]
        notes += [f"default {d}" for d in (show_default(spec),) if d]
        notes.append(f"env {env_name(spec)}")
        text = f"{spec.help} [{'; '.join(notes)}]".replace("%", "%%")
        group = groups[spec.group]
        if spec.parse is parse_bool:
            group.add_argument(
                flag_name(spec), dest=spec.name, default=None, nargs="?", const="true",
                metavar=spec.metavar, help=text,
            )  # fmt: skip
            group.add_argument(
                "--no-" + flag_name(spec).removeprefix("--"),
                dest=spec.name,
                action="store_const",
                const="false",
                help=f"the same as {flag_name(spec)}=false",
            )
            continue
        group.add_argument(
            flag_name(spec), dest=spec.name, default=None, metavar=spec.metavar, help=text
        )


def _read_file(spec: Spec[Any], file_var: str, path: str) -> str:
    def wrong(why: str) -> SettingsError:
        return SettingsError(
            f"{file_var}: {path!r} {why} ({flag_name(spec)} / {env_name(spec)} / {file_var})"
        )

    try:
        with Path(path).open("rb") as f:
            data = f.read(FILE_MAX_BYTES + 1)
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        raise wrong(f"cannot be read: {exc}") from None
    if len(data) > FILE_MAX_BYTES:
        raise wrong(f"is larger than {FILE_MAX_BYTES} bytes; it should hold one value")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise wrong(
            f"is not UTF-8 text (a binary file? byte {exc.start} is 0x{data[exc.start]:02x}); "
            "write the value as text, e.g. openssl rand -hex 32 for a secret"
        ) from None
    return text.strip()


def _raw_from_env(spec: Spec[Any], env: Mapping[str, str]) -> tuple[str | None, str]:
    """-> (the raw value or None, where it came from)."""
    name = env_name(spec)
    file_var = name + "_FILE"
    if file_var in env:
        if name in env:
            raise SettingsError(f"{name} and {file_var} are both set; set one of them")
        return _read_file(spec, file_var, env[file_var]), file_var
    return env.get(name), name


def load(
    flags: Mapping[str, str | None] | None = None, env: Mapping[str, str] | None = None
) -> Settings:
    """Flags win over environment, environment over defaults. Unknown SWARM_MEDIC_* vars fail."""
    flags = flags or {}
    env = os.environ if env is None else env
    known = {env_name(s) for s in SPECS} | {env_name(s) + "_FILE" for s in SPECS}
    unknown = sorted(
        k
        for k in env
        if k.startswith(ENV_PREFIX) and k not in known and not k.startswith(RUNBOOK_ENV_PREFIX)
    )
    if unknown and unknown[0] in MOVED:
        raise SettingsError(
            f"{unknown[0]} is now a runbook's own setting: {MOVED[unknown[0]]} "
            "(see CHANGELOG.md and `swarm-medic runbooks NAME`)"
        )
    if unknown:
        raise SettingsError(
            f"unknown setting {unknown[0]} (known: {', '.join(sorted(env_name(s) for s in SPECS))})"
        )
    values: dict[str, Any] = {}
    for spec in SPECS:
        raw = flags.get(spec.name)
        source = flag_name(spec)
        if raw is None:
            raw, source = _raw_from_env(spec, env)
        if raw is None:
            continue
        try:
            values[spec.name] = spec.parse(raw)
        except ValueError as exc:
            if spec.hidden:
                shown = "<hidden>"
            else:
                shown = repr(spec.redact(raw) if spec.redact is not None else raw)
            raise SettingsError(
                f"{source}={shown} is not valid ({flag_name(spec)} / {env_name(spec)}): {exc}"
            ) from None
    return from_values(values)
