"""Opening a journal: only a creating open makes one; links, truncation and
damaged meta pages are refused before LMDB maps anything; files are private.

Every case is a real LMDB environment on disk. Cases that would crash a
process on failure (SIGBUS from a truncated map) run in a child interpreter.
"""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from replay_engine import Engine, JournalWriteError
from replay_engine._store.store import Store
from replay_engine._store.verify import verify
from replay_engine.errors import NotAJournalError
from tests.helpers import child_env

ACCESSES = ["write", "read"]


def listing(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


@pytest.fixture
def journal(journal_dir: Path, make_store: Callable[..., Store]) -> Path:
    """A journal with one run, closed."""
    from tests.helpers import new_run

    store = make_store(journal_dir)
    new_run(store, "r1", {"x": 1})
    store.close()
    return journal_dir


@pytest.mark.parametrize("access", ACCESSES)
def test_a_missing_directory_is_not_created(tmp_path: Path, access: str) -> None:
    path = tmp_path / "nowhere"
    with pytest.raises(NotAJournalError, match="is not a journal"):
        Store(str(path), access=access)  # type: ignore[arg-type]
    assert not path.exists()


@pytest.mark.parametrize("access", ACCESSES)
def test_an_empty_directory_stays_empty(tmp_path: Path, access: str) -> None:
    with pytest.raises(NotAJournalError, match=r"no data\.mdb"):
        Store(str(tmp_path), access=access)  # type: ignore[arg-type]
    assert listing(tmp_path) == []


@pytest.mark.parametrize("access", ACCESSES)
def test_an_empty_data_file_is_not_initialised(tmp_path: Path, access: str) -> None:
    (tmp_path / "data.mdb").write_bytes(b"")
    with pytest.raises(NotAJournalError, match=r"empty data\.mdb"):
        Store(str(tmp_path), access=access)  # type: ignore[arg-type]
    assert listing(tmp_path) == ["data.mdb"]
    assert (tmp_path / "data.mdb").stat().st_size == 0


def test_engine_create_false_refuses_and_default_creates(tmp_path: Path) -> None:
    with pytest.raises(NotAJournalError):
        Engine(str(tmp_path / "j"), create=False)
    assert not (tmp_path / "j").exists()
    with Engine(str(tmp_path / "j")) as engine:
        assert engine.runs() == []
    assert (tmp_path / "j" / "data.mdb").is_file()


@pytest.mark.parametrize("name", ["data.mdb", "lock.mdb"])
@pytest.mark.parametrize("access", ["create", "write", "read"])
def test_a_linked_journal_file_is_refused_and_its_target_untouched(
    journal: Path, tmp_path: Path, name: str, access: str
) -> None:
    target = tmp_path / "precious"
    original = (journal / name).read_bytes()
    target.write_bytes(original)
    (journal / name).unlink()
    (journal / name).symlink_to(target)
    before = target.stat()
    with pytest.raises(NotAJournalError, match=f"{name} is a symbolic link"):
        Store(str(journal), access=access)  # type: ignore[arg-type]
    after = target.stat()
    assert target.read_bytes() == original
    assert (after.st_mtime_ns, after.st_size) == (before.st_mtime_ns, before.st_size)


def test_new_journals_are_owner_only(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        with Engine(str(tmp_path / "j")):
            pass
        with Engine(str(tmp_path / "shared"), file_mode=0o640):
            pass
    finally:
        os.umask(old)
    assert (tmp_path / "j").stat().st_mode & 0o777 == 0o700
    for name in ("data.mdb", "lock.mdb"):
        assert (tmp_path / "j" / name).stat().st_mode & 0o777 == 0o600
        assert (tmp_path / "shared" / name).stat().st_mode & 0o777 == 0o640


def test_read_access_writes_nothing(journal: Path) -> None:
    (journal / "lock.mdb").unlink()
    before = {p: p.stat().st_mtime_ns for p in journal.rglob("*")}
    store = Store(str(journal), access="read")
    try:
        assert [r.run_id for r in store.list_runs()] == ["r1"]
        with pytest.raises(JournalWriteError, match="read-only, for inspection"):
            store.fork_run("r1", 1, "r2", "running")
    finally:
        store.close()
    assert {p: p.stat().st_mtime_ns for p in journal.rglob("*")} == before
    assert not (journal / "lock.mdb").exists()


def test_read_access_sees_a_writer_commits(journal: Path) -> None:
    reader = Store(str(journal), access="read")
    try:
        writer_code = (
            "import sys\nfrom replay_engine._store.store import Store\n"
            "from tests.helpers import new_run\n"
            "s = Store(sys.argv[1], access='write'); new_run(s, 'r2'); s.close()\n"
        )
        subprocess.run(
            [sys.executable, "-c", writer_code, str(journal)],
            env=child_env(),
            check=True,
            timeout=60,
        )
        assert sorted(r.run_id for r in reader.list_runs()) == ["r1", "r2"]
    finally:
        reader.close()


OPEN_IN_CHILD = """
import sys
from replay_engine._store.store import Store
from replay_engine.errors import ReplayEngineError
try:
    s = Store(sys.argv[1], access=sys.argv[2])
    print("opened", [r.run_id for r in s.list_runs()])
except ReplayEngineError as exc:
    print(type(exc).__name__, exc)
"""


@pytest.mark.parametrize("keep", ["half", "one-page", "two-pages"])
@pytest.mark.parametrize("access", ["create", "write", "read"])
def test_a_truncated_data_file_is_a_named_error_not_sigbus(
    journal: Path, keep: str, access: str
) -> None:
    data = journal / "data.mdb"
    size = data.stat().st_size
    cut = {"half": size // 2, "one-page": 4096, "two-pages": 8192}[keep]
    assert cut < size
    os.truncate(data, cut)
    child = subprocess.run(
        [sys.executable, "-c", OPEN_IN_CHILD, str(journal), access],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert child.returncode == 0, (child.returncode, child.stderr)
    assert child.returncode != -signal.SIGBUS
    assert child.stdout.startswith("JournalCorruptError"), child.stdout
    assert "truncated" in child.stdout or "no valid LMDB meta page" in child.stdout
    assert data.stat().st_size == cut  # nothing was written


def _txnid_offset(page: int) -> int:
    # LMDB 0.9: a 16-byte page header, then MDB_meta whose last field (at
    # byte 128 of it) is the transaction id.
    return page * 4096 + 16 + 128


def _newest_meta_page(data: Path) -> tuple[int, int]:
    raw = data.read_bytes()
    txnids = [
        struct.unpack_from("<Q", raw, page * 4096 + 16 + 136 - 8)[0] for page in (0, 1)
    ]
    newest = 0 if txnids[0] > txnids[1] else 1
    return newest, txnids[newest]


def test_a_damaged_newest_meta_page_is_reported_by_verify(journal: Path) -> None:
    data = journal / "data.mdb"
    page, txnid = _newest_meta_page(data)
    # Flip the low bit of the newest transaction id: LMDB now prefers the
    # older meta page, silently serving the journal as it was one commit ago.
    offset = _txnid_offset(page)
    raw = bytearray(data.read_bytes())
    struct.pack_into("<Q", raw, offset, txnid ^ 1)
    data.write_bytes(bytes(raw))
    store = Store(str(journal), access="read")
    try:
        report = verify(store)
    finally:
        store.close()
    assert not report.ok
    assert any("meta page" in p.message for p in report.problems), report.problems


def test_a_healthy_journal_has_no_meta_problems(journal: Path) -> None:
    store = Store(str(journal), access="read")
    try:
        report = verify(store)
    finally:
        store.close()
    assert report.ok, report.problems


def test_an_lmdb_file_that_is_not_a_journal_is_refused(tmp_path: Path) -> None:
    import lmdb

    env = lmdb.open(str(tmp_path), max_dbs=2)
    with env.begin(write=True) as txn:
        txn.put(b"k", b"v")
    env.close()
    for access in ("write", "read"):
        with pytest.raises(NotAJournalError):
            Store(str(tmp_path), access=access)  # type: ignore[arg-type]
