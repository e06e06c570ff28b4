"""No leftovers (issue 12, item 12).

With the process executor, killing the executor (SIGKILL or SIGTERM) leaves
no worker, forkserver or resource tracker alive, and nothing keeps holding the
caller's stdout: ``$(replay-engine run ...)`` returns.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.adversarial import kill_group, session_members, spawn, wait_for
from tests.faults._support import HERE, counts


def run_pool(journal: Path, side: Path, inputs: str) -> subprocess.Popen[str]:
    return spawn(
        journal,
        *("run", "fault_flows:parallel_slow", "--run-id", "r1"),
        *("--executor", "processes", "--input", inputs),
        paths=[HERE],
        # SIGTERM lets effects in flight finish for a grace period (10 s by
        # default); these take 60 s, so keep it shorter than the test's wait.
        extra_env={"FAULT_SIDE": str(side), "REPLAY_ENGINE_GRACE": "1"},
    )


def pipes_close(proc: subprocess.Popen[str], timeout: float) -> bool:
    """Whether stdout/stderr reach EOF (every holder closed them) in time."""
    try:
        proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    return True


def survivors(sid: int, within: float) -> list[int]:
    deadline = time.monotonic() + within
    while (alive := [p for p in session_members(sid) if p != os.getpid()]) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.1)
    return alive


@pytest.mark.parametrize(
    "sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"]
)
def test_killed_executor_leaves_no_processes(
    tmp_path: Path, sig: signal.Signals
) -> None:
    side = tmp_path / "side"
    proc = run_pool(tmp_path / "journal", side, '{"n": 2, "delay": 60}')
    try:
        wait_for(
            lambda: len(counts(side, "start")) >= 2,
            what="two pool workers running tasks",
        )
        os.kill(proc.pid, sig)  # the executor alone, as a user or a supervisor would
        # SIGTERM may first let in-flight effects finish for a grace period.
        closed = pipes_close(proc, timeout=4 if sig == signal.SIGKILL else 8)
        alive = survivors(proc.pid, within=2)
    finally:
        kill_group(proc)
        proc.communicate(timeout=10)  # reap it and close the pipes
    assert closed, "the executor's stdout stayed open after it was killed"
    assert not alive, f"processes left behind: {alive}"


def test_completed_pool_run_closes_stdout(tmp_path: Path) -> None:
    """``out=$(replay-engine run ... --executor processes)`` returns."""
    side = tmp_path / "side"
    proc = run_pool(tmp_path / "journal", side, '{"n": 2, "delay": 0.1}')
    try:
        closed = pipes_close(proc, timeout=30)
        alive = survivors(proc.pid, within=2)
    finally:
        kill_group(proc)
        proc.communicate(timeout=10)  # reap it and close the pipes
    assert closed, "stdout stayed open after the run"
    assert proc.returncode == 0
    assert not alive, f"processes left behind: {alive}"
