"""A reader that leaves (``| head``) ends a rich-printing command quietly.

``log``, ``export`` and ``replay`` stream and are tested in
``test_streaming.py``; the commands here print through rich, whose own
handler for a closed pipe raised ``SystemExit(1)``, which the CLI reported as
``error: stopped: SystemExit(1) was raised…`` on stderr (issue 16).

The reader's end of the pipe is closed before the command starts, so every
write fails (what ``| head -1`` does after its line, without the race on how
much fits in the pipe first). Real subprocesses through ``python -m
replay_engine._cli``: the console script's path, with its forked reading child.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import FLOWS_DIR, Invoke, child_env


def _cli(journal: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "replay_engine._cli",
        "--journal",
        str(journal),
        *args,
    ]


def _with_closed_stdout(journal: Path, *args: str) -> tuple[int, str]:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has gone before the first line
    try:
        proc = subprocess.run(
            _cli(journal, *args),
            env=child_env(),
            cwd=FLOWS_DIR,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)
    return proc.returncode, proc.stderr


@pytest.mark.parametrize(
    "args",
    [("diff", "w1", "w2"), ("status", "w1"), ("runs",), ("pending", "w1")],
    ids=" ".join,
)
def test_a_closed_pipe_ends_a_rich_command_quietly(
    args: tuple[str, ...], invoke: Invoke, journal: Path
) -> None:
    invoke("run", "cli_flows:waits", "--run-id", "w1", code=3)
    invoke("run", "cli_flows:waits", "--run-id", "w2", "--input", '{"diff": "-"}')
    code, err = _with_closed_stdout(journal, *args)
    assert err == ""
    assert code == 0


def test_the_same_commands_still_say_what_they_found(
    invoke: Invoke, journal: Path
) -> None:
    """The quiet end is only for a closed pipe: diff still exits 1 on a difference."""
    invoke("run", "cli_flows:waits", "--run-id", "w1", code=3)
    invoke("run", "cli_flows:waits", "--run-id", "w2", "--input", '{"diff": "-"}')
    proc = subprocess.run(
        _cli(journal, "diff", "w1", "w2"),
        env=child_env(),
        cwd=FLOWS_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert "w1" in proc.stdout and proc.stderr == ""
