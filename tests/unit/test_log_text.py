"""A task's log as the engine sends it -> a few safe lines (swarm.mapping), and the fake's
`task_logs`, which answers through the same path."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarm_medic.core.errors import NotFound
from swarm_medic.swarm.fake import FakeEngine
from swarm_medic.swarm.mapping import LOG_BYTES, LOG_LINES, demultiplex, log_text


def frame(payload: bytes, stream: int = 1) -> bytes:
    return bytes((stream, 0, 0, 0)) + len(payload).to_bytes(4, "big") + payload


def test_a_multiplexed_stream_is_demultiplexed_stdout_and_stderr_in_order() -> None:
    raw = frame(b"out 1\n") + frame(b"err 1\n", 2) + frame(b"out 2\n")
    assert demultiplex(raw) == b"out 1\nerr 1\nout 2\n"
    assert log_text(raw) == "out 1\nerr 1\nout 2"


def test_a_tty_stream_is_taken_as_it_is() -> None:
    assert demultiplex(b"plain text\n") == b"plain text\n"
    assert log_text(b"plain\ntext\n") == "plain\ntext"


def test_a_frame_cut_short_keeps_what_arrived() -> None:
    raw = frame(b"whole\n") + frame(b"half of a long line\n")[:14]
    assert log_text(raw) == "whole\nhalf o"
    assert demultiplex(b"") == b""
    assert log_text(b"") == ""


def test_only_the_last_lines_are_kept() -> None:
    raw = b"".join(frame(f"line {i}\n".encode()) for i in range(50))
    assert log_text(raw).split("\n") == [f"line {i}" for i in range(30, 50)]
    assert log_text(raw, lines=3) == "line 47\nline 48\nline 49"
    assert LOG_LINES == 20


def test_at_most_the_byte_limit_whole_lines_from_the_end() -> None:
    lines = [("x" * 999) + str(i) for i in range(10)]  # 1000 bytes each
    got = log_text(("\n".join(lines) + "\n").encode())
    assert got.split("\n") == lines[-4:]  # 4 lines + 3 newlines <= 4096; a 5th would not fit
    assert len(got.encode()) <= LOG_BYTES


def test_one_huge_line_keeps_its_end_on_a_character_boundary() -> None:
    line = "start " + "é" * 5000 + " the end"
    got = log_text(line.encode())
    assert got.endswith("é the end") and not got.startswith("start")
    assert len(got.encode()) <= LOG_BYTES
    assert "\ufffd" not in got  # cut between characters, not inside one


def test_bad_utf8_is_replaced_not_refused() -> None:
    assert log_text(b"caf\xc3 ok\n\xff\xfe\n") == "caf\ufffd ok\n\ufffd\ufffd"


@pytest.mark.parametrize(
    ("written", "shown"),
    [
        pytest.param(b"\x1b[31mred\x1b[0m\n", "[31mred[0m", id="terminal-escapes"),
        pytest.param(b"progress 10%\rprogress 99%\n", "progress 10%progress 99%", id="cr"),
        pytest.param("evil \u202egnp.exe\n".encode(), "evil gnp.exe", id="bidi-override"),
        pytest.param("a\u2028b\u200bc\n".encode(), "abc", id="unicode-separators"),
        pytest.param(b"a\tb\x00c\x07\n", "a bc", id="tab-nul-bell"),
        pytest.param(b"\n\n   \nlast\n\n", "last", id="blank-lines"),
    ],
)
def test_control_characters_never_reach_people(written: bytes, shown: str) -> None:
    assert log_text(frame(written)) == shown


@given(st.binary(max_size=20_000), st.integers(min_value=1, max_value=LOG_LINES))
def test_any_bytes_make_a_bounded_safe_text(raw: bytes, lines: int) -> None:
    text = log_text(raw, lines)
    assert len(text.encode()) <= LOG_BYTES
    assert len(text.split("\n")) <= lines
    unsafe = {"Cc", "Cf", "Zl", "Zp"}
    assert all(c == "\n" or unicodedata.category(c) not in unsafe for c in text)


# --- the fake engine answers through the same path ---------------------------------------


def test_the_fake_serves_a_task_log_like_the_engine() -> None:
    fake = FakeEngine()
    sid = fake.add_service("web")
    tid = fake.add_task(sid, state="failed", exit_code=3)
    fake.set_task_logs(tid, "".join(f"line {i}\n" for i in range(30)) + "\x1b[1mbye\n")
    before = fake.api_calls

    assert fake.task_logs(tid, 3) == "line 28\nline 29\n[1mbye"
    assert fake.task_logs(tid, 500).split("\n")[0] == "line 11"  # at most 20 lines, always
    assert fake.api_calls - before == 2
    assert fake.log_reads == [(tid, 3), (tid, 500)]


def test_the_fake_says_a_tty_log_and_an_empty_one_and_a_missing_task() -> None:
    fake = FakeEngine()
    sid = fake.add_service("web")
    tid, quiet = fake.add_task(sid), fake.add_task(sid)
    fake.set_task_logs(tid, b"raw \xff\n", tty=True)
    assert fake.task_logs(tid, 20) == "raw \ufffd"
    assert fake.task_logs(quiet, 20) == ""
    with pytest.raises(NotFound, match="no such task"):
        fake.task_logs("nope", 20)
