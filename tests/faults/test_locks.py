"""Locks that can't be fooled (issue 12, item 11)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from tests.adversarial import cli, kill_group, spawn, wait_for
from tests.faults._support import HERE, counts, side_lines

SLOW = '{"n": 100, "delay": 0.1}'  # 10 s: the holder outlives the second resume


def test_deleted_lock_file_does_not_let_a_second_executor_in(tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    side = tmp_path / "side"
    env = {"FAULT_SIDE": str(side)}
    holder = spawn(
        journal,
        "run",
        "fault_flows:slow",
        "--run-id",
        "r1",
        "--input",
        SLOW,
        paths=[HERE],
        extra_env=env,
    )
    try:
        wait_for(lambda: len(counts(side, "end")) >= 2, what="the holder's first steps")
        for lock in (journal / "locks").glob("*"):
            lock.unlink()
        second = cli(
            journal, "resume", "r1", "--json", paths=[HERE], extra_env=env, timeout=30
        )
        holder_alive = holder.poll() is None
    finally:
        kill_group(holder)  # SIGKILL: the journal stays consistent
        holder.communicate(timeout=10)
    assert second.returncode != 0, second.describe()
    assert "RunLockedError" in second.stdout, second.describe()
    assert holder_alive, "the holder ended before the second resume did: retry slower"
    twice = {i: n for i, n in counts(side, "start").items() if n > 1}
    assert not twice, f"effects ran twice: {twice}"
    verified = cli(journal, "verify")
    assert verified.returncode == 0, verified.describe()


def test_forked_grandchild_does_not_keep_the_run_locked(tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    side = tmp_path / "side"
    env = {"FAULT_SIDE": str(side)}
    executor = spawn(
        journal,
        "run",
        "fault_flows:forker",
        "--run-id",
        "r1",
        "--input",
        '{"hold": 30}',
        paths=[HERE],
        extra_env=env,
    )
    try:
        wait_for(
            lambda: any(p[0] == "grandchild" for p in side_lines(side)), what="the fork"
        )
        # The executor only: the grandchild lives on.
        os.kill(executor.pid, signal.SIGKILL)
        executor.wait(timeout=10)  # its pipes stay open: the grandchild has them
        again = cli(
            journal,
            "resume",
            "r1",
            "--json",
            paths=[HERE],
            extra_env={**env, "FAULT_VARIANT": "no-fork"},
            timeout=30,
        )
    finally:
        kill_group(executor)
        executor.communicate(timeout=10)  # reap, close the pipes
    assert "RunLockedError" not in again.stdout, again.describe()
    assert again.returncode == 0, again.describe()


DEAD_PID = 4_000_000  # above pid_max's ceiling (2^22): never a live process


def test_lock_message_says_the_holder_is_dead(tmp_path: Path) -> None:
    """Someone holds the run's lock while the process the lock names is gone
    (like a forked child of a dead executor): the message says so."""
    journal = tmp_path / "journal"
    side = tmp_path / "side"
    env = {"FAULT_SIDE": str(side)}
    holder = spawn(
        journal,
        "run",
        "fault_flows:slow",
        "--run-id",
        "r1",
        "--input",
        SLOW,
        paths=[HERE],
        extra_env=env,
    )
    try:
        wait_for(lambda: len(counts(side, "end")) >= 1, what="the holder's first step")
        # The holder file now names a process that is gone, as it would after
        # the executor died and something it started kept the lock.
        (journal / "locks" / "r1.lock").write_text(
            json.dumps(
                {
                    "pid": DEAD_PID,
                    "host": os.uname().nodename,
                    "since": "2020-01-01T00:00:00+00:00",
                }
            )
        )
        done = cli(journal, "resume", "r1", paths=[HERE], extra_env=env, timeout=20)
    finally:
        kill_group(holder)
        holder.communicate(timeout=10)
    assert done.returncode == 1, done.describe()
    assert str(DEAD_PID) in done.stderr, done.describe()
    text = done.stderr.lower()
    assert any(w in text for w in ("dead", "not running", "no longer", "exited")), (
        done.describe()
    )
