"""The meta record and format versions: JF-040 to JF-044."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

import journal_format as jf
from replay_engine._store.store import Store
from replay_engine.errors import (
    FormatVersionError,
    JournalCorruptError,
    ReplayEngineError,
)
from tests.helpers import effects, new_run, raw_env


def _write_meta(path: Path, value: object) -> None:
    with raw_env(path) as (env, dbs), env.begin(write=True) as txn:
        txn.put(jf.META_FORMAT_KEY, msgspec.msgpack.encode(value), db=dbs[jf.DB_META])


def _meta(
    read_version: int, write_version: int, magic: str = jf.MAGIC
) -> dict[str, object]:
    return {
        "magic": magic,
        "read_version": read_version,
        "write_version": write_version,
    }


@pytest.fixture
def journal(make_store: Callable[..., Store], journal_dir: Path) -> Path:
    """A closed journal with one run of three events."""
    store = make_store(journal_dir)
    new_run(store, "r1")
    store.append("r1", *effects(range(1)))
    store.close()
    return journal_dir


@pytest.mark.spec("JF-040", "JF-042")
def test_new_journal_gets_a_meta_record(journal: Path) -> None:
    with raw_env(journal) as (env, dbs), env.begin() as txn:
        items = list(txn.cursor(db=dbs[jf.DB_META]))
    assert items == [
        (
            b"format",
            bytes.fromhex(
                "83a56d61676963b57265706c61792d656e67696e652d6a6f75726e616c"
                "ac726561645f76657273696f6e01ad77726974655f76657273696f6e01"
            ),
        )
    ]
    meta = jf.decode_meta(items[0][1])
    assert meta == jf.FormatMeta(
        magic="replay-engine-journal", read_version=1, write_version=1
    )


@pytest.mark.spec("JF-040")
def test_meta_record_survives_reopen(
    journal: Path, make_store: Callable[..., Store]
) -> None:
    with raw_env(journal) as (env, dbs), env.begin() as txn:
        before = txn.get(jf.META_FORMAT_KEY, db=dbs[jf.DB_META])
    make_store(journal).close()
    with raw_env(journal) as (env, dbs), env.begin() as txn:
        assert txn.get(jf.META_FORMAT_KEY, db=dbs[jf.DB_META]) == before


@pytest.mark.spec("JF-041")
def test_wrong_magic_is_refused(
    journal: Path, make_store: Callable[..., Store]
) -> None:
    _write_meta(journal, _meta(1, 1, magic="sqlite"))
    with pytest.raises(
        JournalCorruptError, match="not a replay-engine journal"
    ) as info:
        make_store(journal)
    assert not isinstance(info.value, FormatVersionError)


@pytest.mark.spec("JF-041")
def test_damaged_meta_is_refused(
    journal: Path, make_store: Callable[..., Store]
) -> None:
    _write_meta(journal, {"magic": jf.MAGIC})
    with pytest.raises(JournalCorruptError, match="format record is damaged"):
        make_store(journal)


@pytest.mark.spec("JF-043")
def test_newer_read_version_is_refused_naming_both(
    journal: Path, make_store: Callable[..., Store]
) -> None:
    _write_meta(journal, _meta(2, 2))
    with pytest.raises(FormatVersionError) as info:
        make_store(journal)
    message = str(info.value)
    assert "format version 2" in message
    assert "up to 1" in message
    assert isinstance(info.value, JournalCorruptError)
    # Nothing was changed by the refused open.
    with raw_env(journal) as (env, dbs), env.begin() as txn:
        assert (
            jf.decode_meta(txn.get(jf.META_FORMAT_KEY, db=dbs[jf.DB_META])).read_version
            == 2
        )


@pytest.mark.spec("JF-044")
def test_newer_write_version_can_still_be_read(
    journal: Path, make_store: Callable[..., Store]
) -> None:
    _write_meta(journal, _meta(1, 2))
    store = make_store(journal)
    assert [e.seq for e in store.read_events("r1")] == [0, 1, 2]


@pytest.mark.spec("JF-044")
def test_newer_write_version_opens_read_only(
    journal: Path, make_store: Callable[..., Store]
) -> None:
    _write_meta(journal, _meta(1, 2))
    store = make_store(journal)
    with pytest.raises(ReplayEngineError, match="read-only"):
        store.append("r1", *effects(range(1, 2)))
    assert len(store.read_events("r1")) == 3
