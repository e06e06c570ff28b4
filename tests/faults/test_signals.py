"""Signals (issue 12, item 13).

SIGTERM stops dispatching, lets in-flight effects finish, commits, releases
the lock and exits 143 with a one-line message; SIGINT exits 130 the same
way, with a JSON error document under ``--json`` and a "resume with" hint.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from tests.adversarial import Done, cli, finish, kill_group, spawn, wait_for
from tests.faults._support import HERE, counts

SLOW = '{"n": 40, "delay": 0.1}'


def interrupted_run(
    tmp_path: Path, sig: signal.Signals, *extra: str
) -> tuple[Path, Path, Done]:
    journal = tmp_path / "journal"
    side = tmp_path / "side"
    proc = spawn(
        journal,
        "run",
        "fault_flows:slow",
        "--run-id",
        "r1",
        "--input",
        SLOW,
        *extra,
        paths=[HERE],
        extra_env={"FAULT_SIDE": str(side)},
    )
    try:
        wait_for(lambda: len(counts(side, "end")) >= 2, what="two steps done")
        os.kill(proc.pid, sig)
        done = finish(proc, timeout=15)
    finally:
        kill_group(proc)
    return journal, side, done


def assert_recoverable(journal: Path, side: Path) -> None:
    verified = cli(journal, "verify")
    assert verified.returncode == 0, verified.describe()
    resumed = cli(
        journal, "resume", "r1", paths=[HERE], extra_env={"FAULT_SIDE": str(side)}
    )
    assert resumed.returncode == 0, resumed.describe()  # the lock was released
    again = {i: n for i, n in counts(side, "end").items() if n > 1}
    assert not again, f"completed effects ran again on resume: {again}"
    assert len(counts(side, "end")) == 40


CASES = {
    "SIGTERM": (signal.SIGTERM, 143),
    "SIGINT": (signal.SIGINT, 130),
}


@pytest.mark.parametrize("name", CASES)
def test_signal_ends_the_run_cleanly(tmp_path: Path, name: str) -> None:
    sig, code = CASES[name]
    journal, side, done = interrupted_run(tmp_path, sig)
    assert done.returncode == code, done.describe()
    assert "Traceback" not in done.output, done.describe()
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected a one-line message\n{done.describe()}"
    assert_recoverable(journal, side)


def test_sigint_under_json_prints_an_error_document(tmp_path: Path) -> None:
    journal, side, done = interrupted_run(tmp_path, signal.SIGINT, "--json")
    assert done.returncode == 130, done.describe()
    assert "Traceback" not in done.output, done.describe()
    document = json.loads(done.stdout)
    assert document["error"]["exit_code"] == 130, document
    assert "resume with" in done.output.lower(), done.describe()
    assert "r1" in document["error"].get("message", "") + done.stderr
    assert_recoverable(journal, side)
