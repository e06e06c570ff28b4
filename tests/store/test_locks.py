"""Run locks between real processes: contention, holder info, stale recovery."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from replay_engine._store.lock import RunLock
from replay_engine._store.store import Store
from replay_engine.errors import RunLockedError
from tests.helpers import child_env

HOLD_LOCK = """
import sys, time
from replay_engine._store.lock import RunLock
lock = RunLock(sys.argv[1], sys.argv[2])
print("locked", flush=True)
time.sleep(120)
"""


@pytest.fixture(autouse=True)
def journal(journal_dir: Path, make_store: Callable[..., Store]) -> None:
    """Run locks live in a journal: make one (a closed store leaves its files)."""
    make_store(journal_dir).close()


@pytest.fixture
def holder(journal_dir: Path) -> Iterator[subprocess.Popen[str]]:
    """A child process holding the lock on run r1 until it is killed."""
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(journal_dir), "r1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line == "locked\n", child.stderr.read() if child.stderr else line
        yield child
    finally:
        child.kill()
        child.wait()
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()


def test_a_second_process_is_refused_naming_the_holder(
    holder: subprocess.Popen[str], journal_dir: Path
) -> None:
    with pytest.raises(RunLockedError) as info:
        RunLock(str(journal_dir), "r1")
    error = info.value
    assert error.run_id == "r1"
    assert error.pid == holder.pid
    assert error.host == socket.gethostname()
    assert error.since[:2] == "20"  # an ISO 8601 timestamp
    assert f"pid {holder.pid}" in str(error)


def test_other_runs_are_not_blocked(
    holder: subprocess.Popen[str], journal_dir: Path
) -> None:
    with RunLock(str(journal_dir), "r2") as lock:
        assert lock.run_id == "r2"


def test_lock_of_a_killed_process_is_recovered(
    holder: subprocess.Popen[str], journal_dir: Path
) -> None:
    lock_file = journal_dir / "locks" / "r1.lock"
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    # The dead holder left its record behind: recovery must not depend on it.
    assert json.loads(lock_file.read_text())["pid"] == holder.pid
    with RunLock(str(journal_dir), "r1"):
        info = json.loads(lock_file.read_text())
        assert info["pid"] == os.getpid()
        assert info["host"] == socket.gethostname()


def test_two_locks_in_one_process_conflict(journal_dir: Path) -> None:
    first = RunLock(str(journal_dir), "r1")
    try:
        with pytest.raises(RunLockedError) as info:
            RunLock(str(journal_dir), "r1")
        assert info.value.pid == os.getpid()
    finally:
        first.release()
    first.release()  # idempotent
    with RunLock(str(journal_dir), "r1"):
        pass


def test_released_lock_is_free_for_another_process(journal_dir: Path) -> None:
    lock = RunLock(str(journal_dir), "r1")
    lock.release()
    code = (
        "import sys\n"
        "from replay_engine._store.lock import RunLock\n"
        "RunLock(*sys.argv[1:])"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(journal_dir), "r1"],
        env=child_env(),
        check=True,
        timeout=60,
    )


def test_run_id_cannot_escape_the_locks_directory(journal_dir: Path) -> None:
    with pytest.raises(ValueError), RunLock(str(journal_dir), "../escaped"):
        pass
    assert not (journal_dir / "escaped.lock").exists()
