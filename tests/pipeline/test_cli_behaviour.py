"""The command line behaves like docker's: a closed pipe ends a command quietly, each command's
--help shows the flags it uses, errors have one exit code per kind in every command (and a
JSON object with --json), and booleans are switches.

In-process through `main(argv)` with a clean environment, except the closed-pipe cases, which
need a real process and a real pipe.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

import pytest

from swarm_medic import cli
from swarm_medic.core.errors import EngineUnavailable
from swarm_medic.core.settings import Settings
from swarm_medic.swarm import Engine
from swarm_medic.swarm.fake import FakeEngine


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in list(os.environ):
        if var.startswith("SWARM_MEDIC_") or var.startswith("DOCKER_"):
            monkeypatch.delenv(var)


# --- a closed pipe -----------------------------------------------------------------------------


def closed_pipe(argv: list[str]) -> subprocess.CompletedProcess[bytes]:
    """The command with its stdout a pipe that has no reader from the start: every write
    fails, so the case does not depend on timing."""
    r, w = os.pipe()
    os.close(r)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_MEDIC_")}
    try:
        return subprocess.run(
            [sys.executable, "-m", "swarm_medic.cli", *argv],
            stdout=w,
            stderr=subprocess.PIPE,
            env=env,
            check=False,
            timeout=60,
        )
    finally:
        os.close(w)


@pytest.mark.parametrize("argv", [["runbooks"], ["runbooks", "crash-loop"]])
def test_a_reader_that_has_gone_ends_the_command_quietly(argv: list[str]) -> None:
    """`swarm-medic runbooks | head -1`: no traceback, and 141 (128 + SIGPIPE), as a shell
    reports a Unix tool that SIGPIPE ended."""
    done = closed_pipe(argv)
    assert done.stderr.decode() == ""
    assert done.returncode == cli.EXIT_PIPE == 141


@pytest.mark.parametrize("argv", [["--help"], ["check", "--help"]])
def test_help_into_a_closed_pipe_says_nothing_either(argv: list[str]) -> None:
    """argparse itself drops a failed write of --help (Python 3.11.7 and later) and exits 0;
    older ones leave it to the flush in main, which ends with 141. Quiet both ways."""
    done = closed_pipe(argv)
    assert done.stderr.decode() == ""
    assert done.returncode in (0, cli.EXIT_PIPE)


# --- each command's --help ---------------------------------------------------------------------


def help_of(command: str, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as done:
        cli.main([command, "--help"])
    assert done.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("command", ["pause", "resume"])
def test_pause_and_resume_show_only_the_engine_and_the_ledger(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    text = help_of(command, capsys)
    flags = {w.strip("[],") for w in text.split() if w.startswith(("--", "[--"))}
    assert {"--docker-host", "--api-timeout", "--ledger-name"} <= flags
    for daemon_only in ("--scan-interval", "--http-port", "--notify", "--secret", "--cooldown"):
        assert daemon_only not in flags, daemon_only
    assert len(flags) <= 7, flags


def test_check_help_shows_what_the_diagnosis_reads_and_its_exit_codes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = help_of("check", capsys)
    assert "--scope" in text and "--runbooks-dir" in text and "--docker-host" in text
    for daemon_only in ("--scan-interval", "--http-port", "--notify", "--probe-interval"):
        assert daemon_only not in text, daemon_only
    assert "exit codes" in text
    for line in ("0    done; check: healthy", "1    check: faults found", "3    could not"):
        assert line in text


# --- one exit code per kind of failure, a JSON error with --json -------------------------------


def unreachable(settings: Settings) -> Callable[[], Engine]:
    def make() -> Engine:
        raise EngineUnavailable("docker info: cannot reach the engine")

    return make


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize(
    "argv",
    [
        ["check"],
        ["check", "--json"],
        ["pause", "--reason", "x"],
        ["resume"],
        ["rollout", "gc"],
        ["rollout", "gc", "--json"],
    ],
)
def test_an_unreachable_engine_is_exit_3_in_every_command(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "_engine_factory", unreachable)

    assert cli.main(argv) == cli.EXIT_FAILED == 3

    out, err = capsys.readouterr()
    assert "cannot reach the engine" in err
    if "--json" in argv:
        doc = json.loads(out)
        assert doc["ok"] is False
        assert "cannot reach the engine" in doc["error"]
    else:
        assert out == ""


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize(
    "argv",
    [["check", "--json", "--budget-per-hour", "0"], ["check", "--json", "--no-such-flag"]],
)
def test_a_usage_error_with_json_is_a_json_object_and_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(argv) == cli.EXIT_USAGE == 2
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert doc == {"ok": False, "error": doc["error"], "exit_code": 2}
    assert doc["error"] in err


# --- booleans are switches -------------------------------------------------------------------


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ([], False),
        (["--dry-run"], True),
        (["--no-dry-run"], False),
        (["--dry-run=false"], False),
        (["--dry-run", "yes"], True),
        (["--dry-run", "0"], False),
    ],
)
def test_dry_run_is_a_switch_and_still_takes_a_value(
    flags: list[str], expected: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Settings] = []

    def factory(settings: Settings) -> Callable[[], Engine]:
        seen.append(settings)
        return FakeEngine

    monkeypatch.setattr(cli, "_engine_factory", factory)
    cli.main(["check", *flags])
    assert seen[0].safety.dry_run is expected


@pytest.mark.usefixtures("clean_env")
def test_no_dry_run_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWARM_MEDIC_DRY_RUN", "true")
    seen: list[Settings] = []

    def factory(settings: Settings) -> Callable[[], Engine]:
        seen.append(settings)
        return FakeEngine

    monkeypatch.setattr(cli, "_engine_factory", factory)
    cli.main(["check", "--no-dry-run"])
    assert seen[0].safety.dry_run is False
