"""Damaged B-tree pages deep in a journal (issue 12: no signal deaths).

A flipped bit in a page's bounds can make LMDB read past the file
(``SIGBUS``) or through a wild pointer (``SIGSEGV``) when a run's events are
read: no Python code survives that in the process that reads. The CLI reads
in a child process, so every command ends in a named error instead. The
fixture first proves its damage kills a process reading the runs in-process,
so the tests cannot pass on damage LMDB happens to tolerate.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.adversarial import assert_clean_error, cli, env_for, finish, spawn
from tests.faults._support import HERE, copy_of
from tests.faults.injection import RUNS, build

PAGE = 4096
# What the commands read: every run's events (in-process, no isolation).
READ_ALL = """
import sys
from replay_engine import Engine
engine = Engine(sys.argv[1], read_only=True)
for info in engine.runs():
    engine.events(info.run_id)
"""


def _flip_lower_bit(data: Path, pgno: int, bit: int = 7) -> None:
    """Flip a bit of ``mp_lower`` (bit 7: 64 node pointers more or fewer)."""
    with data.open("r+b") as f:
        f.seek(pgno * PAGE + 12)
        byte = f.read(1)[0]
        f.seek(pgno * PAGE + 12)
        f.write(bytes([byte ^ (1 << bit)]))


LOWER_BITS = (7, 2, 6, 5, 4, 3, 1, 0)
"""Which bit of ``mp_lower`` to flip, in the order tried. Which page and bit
kill a reader depends on the journal's layout (any change to what `build`
writes moves it), so the fixture searches rather than naming one."""


def _point_first_node_far(data: Path, pgno: int) -> None:
    """Set the page's first node pointer to 0xfff8: its node lies 64 KiB on."""
    with data.open("r+b") as f:
        f.seek(pgno * PAGE + 16)
        f.write(b"\xf8\xff")


def _dies_reading(journal: Path) -> int | None:
    """The signal that kills an in-process read of every run, if one does."""
    proc = subprocess.run(
        [sys.executable, "-c", READ_ALL, str(journal)],
        env=env_for(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    return -proc.returncode if proc.returncode < 0 else None


@pytest.fixture
def damaged(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Path:
    """A copy whose damage kills a process reading its runs (proved here)."""
    template = copy_of(tmp_path_factory, tmp_path / "t", "inject", build)
    pages = (template / "data.mdb").stat().st_size // PAGE
    for pgno in range(2, pages):
        journal = tmp_path / f"p{pgno}"
        shutil.copytree(template, journal)
        _flip_lower_bit(journal / "data.mdb", pgno)
        if _dies_reading(journal) in FAULTS:
            return journal
        shutil.rmtree(journal)
    # Whether a flipped mp_lower kills depends on the stale bytes it exposes,
    # which move with the page layout (the `active` database shifted it);
    # a first node pointer 64 KiB out reads past the file's end every time.
    for pgno in range(2, pages):
        journal = tmp_path / f"n{pgno}"
        shutil.copytree(template, journal)
        _point_first_node_far(journal / "data.mdb", pgno)
        if _dies_reading(journal) in FAULTS:
            return journal
        shutil.rmtree(journal)
    for bit in LOWER_BITS:
        for pgno in range(2, pages):
            journal = tmp_path / f"p{pgno}-{bit}"
            shutil.copytree(template, journal)
            _flip_lower_bit(journal / "data.mdb", pgno, bit)
            if _dies_reading(journal) in FAULTS:
                return journal
            shutil.rmtree(journal)
    pytest.fail("no damaged page killed an in-process read: premise broken")


FAULTS = (signal.SIGBUS, signal.SIGSEGV, signal.SIGABRT)
COMMANDS = [
    ("runs",),
    *((cmd, run) for run in RUNS for cmd in ("status", "log", "pending")),
    *(("export", run, "--format", "jsonl") for run in RUNS),
    *(("resume", run) for run in RUNS),
]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_no_command_dies_of_a_damaged_page(damaged: Path) -> None:
    before = _digest(damaged / "data.mdb")
    crashed = []
    for args in COMMANDS:
        done = cli(damaged, *args, paths=[HERE])
        if done.returncode != 0:
            assert_clean_error(done)
        if "LMDB crashed" in done.stderr:
            assert done.returncode == 1, done.describe()
            assert "verify" in done.stderr, done.describe()
            crashed.append(args[0])
    # The damage killed the in-process read: some command must have met it.
    assert crashed, "no command met the damage that kills an in-process read"
    assert _digest(damaged / "data.mdb") == before, "the damaged journal was written"


def test_a_crashed_read_under_json_prints_an_error_document(damaged: Path) -> None:
    for args in COMMANDS:
        done = cli(damaged, *args, "--json", paths=[HERE])
        if "LMDB crashed" in done.stderr:
            assert '"JournalCorruptError"' in done.stdout, done.describe()
            return
    pytest.fail("no command met the damage")


MAIN_ROOT = 16 + 24 + 48 + 40  # page header, meta fields, the free-list db, md_root
TXNID = 16 + 24 + 2 * 48 + 8


def test_a_damaged_main_tree_is_refused_at_open_in_python(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """Opening reads the main tree: an ``Engine`` refuses, it does not die."""
    journal = copy_of(tmp_path_factory, tmp_path, "inject", build)
    data = (journal / "data.mdb").read_bytes()
    newest = max(
        (0, 1), key=lambda m: int.from_bytes(data[m * PAGE + TXNID :][:8], "little")
    )
    root = int.from_bytes(data[newest * PAGE + MAIN_ROOT :][:8], "little")
    _flip_lower_bit(journal / "data.mdb", root)
    code = (
        "import sys\n"
        "from replay_engine import Engine, JournalCorruptError\n"
        "try:\n"
        "    Engine(sys.argv[1], read_only=True).runs()\n"
        "except JournalCorruptError as exc:\n"
        "    print('refused:', exc)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(journal)],
        env=env_for(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, (proc.returncode, proc.stderr)
    assert proc.stdout.startswith("refused:"), proc.stdout
    assert f"page {root}" in proc.stdout and "verify" in proc.stdout, proc.stdout


# -- the child that reads: signals reach it, and it dies with its parent --------


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _waiting_debugger(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> tuple[subprocess.Popen[str], int]:
    """``debug`` on a healthy journal, blocked reading its first command."""
    journal = copy_of(tmp_path_factory, tmp_path / "t", "inject", build)
    proc = spawn(
        journal,
        "debug",
        "done",
        "--process",
        "fault_flows:waiter",
        paths=[HERE],
        stdin=subprocess.PIPE,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        kids = _children(proc.pid) if _alive(proc.pid) else []
        if kids:
            time.sleep(0.5)  # let the child reach its prompt
            return proc, kids[0]
        time.sleep(0.05)
    finish(proc, 1)
    pytest.fail("debug did not start a reading child")


def test_sigterm_to_the_command_reaches_the_reading_child(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    proc, child = _waiting_debugger(tmp_path_factory, tmp_path)
    os.kill(proc.pid, signal.SIGTERM)  # the parent alone, as `kill PID` does
    done = finish(proc, 10)
    assert done.returncode == 128 + signal.SIGTERM, done.describe()
    assert not _alive(child)


def test_the_reading_child_dies_with_a_killed_command(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    proc, child = _waiting_debugger(tmp_path_factory, tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "the reading child outlived its killed parent"
    finish(proc, 5)
