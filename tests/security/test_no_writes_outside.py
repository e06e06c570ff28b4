"""Nothing is written outside the journal (issue 12, item 2).

Symlinked ``data.mdb``/``lock.mdb``, a symlinked ``locks/`` directory or
``locks/<run>.lock``: the command refuses, and the target is unchanged.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.adversarial import assert_clean_error, cli, tree_snapshot
from tests.security._support import HERE, real_run

PRECIOUS = b"precious data, not a journal\n" * 100


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    """``r1`` waiting, with the event it waits for posted: a resume runs a task."""
    journal = tmp_path / "journal"
    real_run(journal, cwd=tmp_path)
    posted = cli(journal, "post", "r1", "--event", "go", "--payload", "1")
    assert posted.returncode == 0, posted.describe()
    return journal


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    out = tmp_path / "outside"
    out.mkdir()
    return out


@pytest.mark.parametrize(
    "command", [["status", "r1"], ["verify"]], ids=["status", "verify"]
)
def test_symlinked_lock_mdb_is_refused(
    journal: Path, outside: Path, command: list[str]
) -> None:
    target = outside / "notes.txt"
    target.write_bytes(PRECIOUS)
    (journal / "lock.mdb").unlink()
    (journal / "lock.mdb").symlink_to(target)
    done = cli(journal, *command)
    assert target.read_bytes() == PRECIOUS, "the symlink's target was written"
    assert_clean_error(done)
    assert "lock.mdb" in done.stderr, done.describe()


@pytest.mark.parametrize(
    "command", [["status", "r1"], ["verify"]], ids=["status", "verify"]
)
@pytest.mark.parametrize("kind", ["other-file", "journal-copy"])
def test_symlinked_data_mdb_is_refused(
    journal: Path, outside: Path, command: list[str], kind: str
) -> None:
    target = outside / "data.mdb"
    if kind == "journal-copy":
        shutil.copyfile(journal / "data.mdb", target)
    else:
        target.write_bytes(PRECIOUS)
    before = target.read_bytes()
    (journal / "data.mdb").unlink()
    (journal / "data.mdb").symlink_to(target)
    done = cli(journal, *command)
    assert target.read_bytes() == before, "the symlink's target was written"
    assert_clean_error(done)
    assert "data.mdb" in done.stderr, done.describe()


@pytest.mark.parametrize("what", ["locks-dir", "lock-file"])
@pytest.mark.parametrize("command", ["resume", "iterate", "run"])
def test_symlinked_locks_are_refused(
    journal: Path, outside: Path, tmp_path: Path, what: str, command: list[str]
) -> None:
    run_id = "r2" if command == "run" else "r1"
    locks = journal / "locks"
    if what == "locks-dir":
        shutil.rmtree(locks)
        (outside / "keep.txt").write_bytes(PRECIOUS)
        locks.symlink_to(outside, target_is_directory=True)
    else:
        (locks / f"{run_id}.lock").unlink(missing_ok=True)
        (outside / "keep.txt").write_bytes(PRECIOUS)
        (locks / f"{run_id}.lock").symlink_to(outside / "keep.txt")
    before = tree_snapshot(outside)
    side = tmp_path / "side"
    args = {
        "resume": ["resume", "r1"],
        "iterate": ["iterate", "r1"],
        "run": ["run", "sec_flows:process", "--run-id", "r2"],
    }[command]
    done = cli(
        journal, *args, paths=[HERE], cwd=tmp_path, extra_env={"SEC_SIDE": str(side)}
    )
    assert tree_snapshot(outside) == before, "a file outside the journal was written"
    assert_clean_error(done)
    assert not side.exists(), "a task ran although the lock was refused"
