"""Run locks that cannot be fooled: deleted or linked lock files, forked tasks.

Each holder is a real child process on a real journal.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from replay_engine._store.lock import RunLock
from replay_engine._store.store import Store
from replay_engine.errors import NotAJournalError, RunLockedError
from tests.helpers import child_env

HOLD = """
import json, os, subprocess, sys, time
from replay_engine._store.lock import RunLock
journal, mode = sys.argv[1], sys.argv[2]
lock = RunLock(journal, "r1")
if mode == "fork":
    pid = os.fork()
    if pid == 0:          # a task's child: outlives the executor
        # os.fork has returned here, so the at-fork hooks have run.
        open(journal + ".grandchild-ready", "w").close()
        time.sleep(120)
        os._exit(0)
    print(pid, flush=True)
elif mode == "dead-pid":
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with open(lock.path, "w") as f:
        json.dump({"pid": gone.pid, "host": os.uname().nodename, "since": "x"}, f)
    print(gone.pid, flush=True)
else:
    print("locked", flush=True)
time.sleep(120)
"""


@pytest.fixture
def journal(journal_dir: Path, make_store: Callable[..., Store]) -> Path:
    make_store(journal_dir).close()
    return journal_dir


@contextlib.contextmanager
def holder(journal: Path, mode: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(journal), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline().strip()
        assert line, child.stderr.read() if child.stderr else "no output"
        yield child, line
    finally:
        child.kill()
        child.wait()
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()


def test_deleting_the_lock_file_does_not_let_a_second_executor_in(
    journal: Path,
) -> None:
    with holder(journal, "hold"):
        (journal / "locks" / "r1.lock").unlink()
        with pytest.raises(RunLockedError):
            RunLock(str(journal), "r1")
        # The whole locks directory, too.
        shutil.rmtree(journal / "locks")
        with pytest.raises(RunLockedError):
            RunLock(str(journal), "r1")


def test_a_forked_task_child_does_not_keep_the_run_locked(journal: Path) -> None:
    with holder(journal, "fork") as (child, line):
        grandchild = int(line)
        ready = Path(str(journal) + ".grandchild-ready")
        try:
            deadline = time.monotonic() + 20
            while not ready.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            assert ready.exists(), "the grandchild never started"
            with pytest.raises(RunLockedError):
                RunLock(str(journal), "r1")
            child.send_signal(signal.SIGKILL)
            child.wait()
            os.kill(grandchild, 0)  # still alive, holding copies of the fds
            with RunLock(str(journal), "r1") as lock:
                assert lock.run_id == "r1"
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(grandchild, signal.SIGKILL)


def test_a_dead_holder_pid_is_named_as_dead(journal: Path) -> None:
    with (
        holder(journal, "dead-pid") as (_, line),
        pytest.raises(RunLockedError) as info,
    ):
        RunLock(str(journal), "r1")
    assert info.value.pid == int(line)
    assert info.value.alive is False
    assert "no longer running" in str(info.value)


def test_a_live_holder_pid_is_named_as_alive(journal: Path) -> None:
    with holder(journal, "hold") as (child, _), pytest.raises(RunLockedError) as info:
        RunLock(str(journal), "r1")
    assert info.value.pid == child.pid
    assert info.value.alive is True


def test_a_linked_locks_directory_is_refused(journal: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (journal / "locks").symlink_to(elsewhere)
    with pytest.raises(NotAJournalError, match="locks/ is not a directory"):
        RunLock(str(journal), "r1")
    assert list(elsewhere.iterdir()) == []


def test_a_linked_lock_file_is_refused_and_its_target_kept(
    journal: Path, tmp_path: Path
) -> None:
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    (journal / "locks").mkdir()
    (journal / "locks" / "r1.lock").symlink_to(target)
    with pytest.raises(NotAJournalError, match="symbolic link"):
        RunLock(str(journal), "r1")
    assert target.read_text() == "keep me"


def test_a_lock_needs_a_journal(tmp_path: Path) -> None:
    with pytest.raises(NotAJournalError, match="no data"):
        RunLock(str(tmp_path), "r1")


def test_the_holder_file_names_the_holder(journal: Path) -> None:
    with RunLock(str(journal), "r1"):
        info = json.loads((journal / "locks" / "r1.lock").read_text())
        assert info["pid"] == os.getpid()
    assert (journal / "locks" / "r1.lock").read_text() == ""
