"""`swarm-medic run` with a bad setting: exit 2, one line naming the setting, no traceback.

In-process through `main(argv)` with a clean environment, and once as a real process (the only
way to see that nothing else reaches stderr). A bad setting stops the start before any engine
is asked, and DOCKER_HOST points nowhere in case it did not.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from swarm_medic import cli
from swarm_medic.app import App


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in list(os.environ):
        if var.startswith("SWARM_MEDIC_") or var.startswith("DOCKER_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")

    def started(self: App) -> int:
        raise AssertionError("the daemon started despite a bad setting")

    monkeypatch.setattr(App, "run", started)


@pytest.fixture
def binary_secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret.bin"
    path.write_bytes(bytes(range(255, 191, -1)))
    return path


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"SWARM_MEDIC_COOLDOWN": "9" * 309}, "SWARM_MEDIC_COOLDOWN='999"),
        ({"SWARM_MEDIC_SCAN_INTERVAL": "0"}, "SWARM_MEDIC_SCAN_INTERVAL='0'"),
        ({"SWARM_MEDIC_SECRET": "x"}, "SWARM_MEDIC_SECRET=<hidden>"),
    ],
)
def test_run_with_a_bad_setting_is_exit_2_and_names_it(
    clean_env: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    named: str,
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)

    assert cli.main(["run"]) == 2

    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"swarm-medic: wrong setting: {named}")
    assert err.count("\n") == 1


def test_run_with_a_binary_secret_file_is_exit_2_and_names_it(
    clean_env: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    binary_secret: Path,
) -> None:
    monkeypatch.setenv("SWARM_MEDIC_SECRET_FILE", str(binary_secret))

    assert cli.main(["run"]) == 2

    err = capsys.readouterr().err
    assert err.startswith(f"swarm-medic: wrong setting: SWARM_MEDIC_SECRET_FILE: '{binary_secret}'")
    assert "not UTF-8 text (a binary file?" in err
    assert "--secret" in err


def test_run_as_a_process_prints_no_traceback(binary_secret: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SWARM_MEDIC_") and not k.startswith("DOCKER_")
    }
    env.update(
        DOCKER_HOST="unix:///nonexistent.sock",
        SWARM_MEDIC_HTTP_PORT="0",
        SWARM_MEDIC_SECRET_FILE=str(binary_secret),
    )

    done = subprocess.run(
        [sys.executable, "-m", "swarm_medic.cli", "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert done.returncode == 2
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("swarm-medic: wrong setting: SWARM_MEDIC_SECRET_FILE:")
    assert done.stderr.count("\n") == 1
