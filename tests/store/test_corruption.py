"""Damage on disk is found: by ``verify`` (every problem, named) and by reads.

Bytes are damaged two ways: in the LMDB data file itself, after the store is
closed (what a disk or a careless edit does), and through a raw write
transaction that rewrites one value (so Hypothesis can try every byte).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings, strategies as st

import journal_format as jf
from replay_engine._store.store import Store
from replay_engine._store.verify import verify
from replay_engine.errors import JournalCorruptError
from tests.helpers import effects, new_run, payload, requested

MakeStore = Callable[..., Store]

MARKER_TASK = "tests.MARKER-task-7f3a9c"
MARKER_BLOB = "MARKER-blob-payload-1e8d44"


def _where(report: Any) -> set[tuple[str | None, int | None]]:
    return {(p.run_id, p.seq) for p in report.problems}


def _flip_in_file(journal: Path, marker: bytes) -> None:
    """Flip one byte in the middle of ``marker``, which must occur exactly once."""
    data_file = journal / "data.mdb"
    data = data_file.read_bytes()
    assert data.count(marker) == 1, "the marker must be in exactly one page"
    pos = data.find(marker) + len(marker) // 2
    with data_file.open("r+b") as f:
        f.seek(pos)
        f.write(bytes([data[pos] ^ 0x20]))


def _rewrite(store: Store, db: bytes, key: bytes, value: bytes) -> None:
    with store._handle.env.begin(write=True) as txn:
        txn.put(key, value, db=store._dbs[db])


def _raw(store: Store, db: bytes, key: bytes) -> bytes:
    with store._handle.env.begin() as txn:
        value: bytes = txn.get(key, db=store._dbs[db])
    return value


@pytest.fixture
def journal(make_store: MakeStore, journal_dir: Path) -> Path:
    """A closed journal: run r1 of 8 events, the marked one at seq 5 (key 1.2).

    Every event is written by one append, after which nothing is written, so
    each marker lands in exactly one page of the data file.
    """
    store = make_store(journal_dir)
    new_run(store, "r1")
    new_run(store, "r2")
    before, blobs = effects([(0,), (1, 1)])
    marked, marked_blobs = requested((1, 2), task=MARKER_TASK, args={"m": MARKER_BLOB})
    after, more = effects([(2,)])
    store.append("r1", [*before, marked, *after], blobs | marked_blobs | more)
    store.close()
    return journal_dir


@pytest.mark.spec("JF-061", "JF-067")
def test_flipped_byte_in_an_event_is_named_by_verify_and_reads(
    journal: Path, make_store: MakeStore
) -> None:
    _flip_in_file(journal, MARKER_TASK.encode())
    store = make_store(journal)
    for report in (verify(store), verify(store, "r1")):
        assert not report.ok
        assert _where(report) == {("r1", 5)}
    assert verify(store, "r2").ok

    with pytest.raises(JournalCorruptError, match="event seq 5") as info:
        store.read_events("r1")
    assert (info.value.run_id, info.value.seq) == ("r1", 5)
    # Nothing from the damaged record is returned; the events around it are fine.
    assert [e.seq for e in store.read_events("r1", 0, 5)] == [0, 1, 2, 3, 4]
    assert [e.seq for e in store.read_events("r1", 6)] == [6, 7]


@pytest.mark.spec("JF-024", "JF-067")
def test_flipped_byte_in_a_blob_is_named_with_its_referrer(
    journal: Path, make_store: MakeStore
) -> None:
    address, _ = payload({"m": MARKER_BLOB})
    _flip_in_file(journal, MARKER_BLOB.encode())
    store = make_store(journal)

    report = verify(store)
    blob_problems = [p for p in report.problems if p.run_id is None]
    assert len(blob_problems) == 1
    assert address.hex() in blob_problems[0].message
    referrers = [p for p in report.problems if p.run_id is not None]
    assert [(p.run_id, p.seq, p.key) for p in referrers] == [("r1", 5, "1.2")]
    assert "damaged" in referrers[0].message

    run_report = verify(store, "r1")
    assert [(p.run_id, p.seq, p.key) for p in run_report.problems] == [("r1", 5, "1.2")]

    with pytest.raises(JournalCorruptError, match=address.hex()):
        store.get_blob(address)
    assert len(store.read_events("r1")) == 8  # the events themselves are intact


@pytest.mark.spec("JF-025")
def test_missing_blob_is_named_with_its_referrer(
    journal: Path, make_store: MakeStore
) -> None:
    address, _ = payload({"m": MARKER_BLOB})
    store = make_store(journal)
    with store._handle.env.begin(write=True) as txn:
        assert txn.delete(address, db=store._dbs[jf.DB_BLOBS])
    report = verify(store)
    assert [(p.run_id, p.seq, p.key) for p in report.problems] == [("r1", 5, "1.2")]
    assert "missing" in report.problems[0].message
    with pytest.raises(JournalCorruptError, match="missing"):
        store.get_blob(address)


@pytest.mark.spec("JF-066")
def test_event_stored_under_another_seq_is_caught(
    journal: Path, make_store: MakeStore
) -> None:
    store = make_store(journal)
    prefix = jf.run_prefix("r1")
    # Event 6, correctly sealed, but stored again under seq 3.
    _rewrite(
        store,
        jf.DB_EVENTS,
        jf.event_key(prefix, 3),
        _raw(store, jf.DB_EVENTS, jf.event_key(prefix, 6)),
    )
    report = verify(store, "r1")
    assert any("says seq 6" in p.message and p.seq == 3 for p in report.problems)
    with pytest.raises(JournalCorruptError) as info:
        store.read_events("r1")
    assert info.value.seq == 3


@pytest.mark.spec("JF-064", "JF-067")
def test_removed_event_breaks_the_chain(journal: Path, make_store: MakeStore) -> None:
    store = make_store(journal)
    with store._handle.env.begin(write=True) as txn:
        txn.delete(jf.event_key(jf.run_prefix("r1"), 2), db=store._dbs[jf.DB_EVENTS])
    report = verify(store, "r1")
    assert ("r1", 3) in _where(report)
    assert any("missing" in p.message for p in report.problems)
    with pytest.raises(JournalCorruptError, match="missing or out of place"):
        store.read_events("r1")


@pytest.mark.spec("JF-065")
def test_run_record_that_disagrees_with_the_chain_is_caught(
    journal: Path, make_store: MakeStore
) -> None:
    store = make_store(journal)
    record = store.require_run("r1")
    forged = msgspec.structs.replace(record, head=jf.genesis_digest("r1"))
    _rewrite(store, jf.DB_RUNS, b"r1", jf.seal(jf.encode_record(forged)))
    report = verify(store)
    assert [(p.run_id, p.seq) for p in report.problems] == [("r1", None)]
    assert "head" in report.problems[0].message


@pytest.mark.spec("JF-067")
def test_truncated_run_is_caught_by_reads(journal: Path, make_store: MakeStore) -> None:
    store = make_store(journal)
    with store._handle.env.begin(write=True) as txn:
        txn.delete(jf.event_key(jf.run_prefix("r1"), 7), db=store._dbs[jf.DB_EVENTS])
    assert not verify(store, "r1").ok
    with pytest.raises(JournalCorruptError):
        store.read_events("r1")


@pytest.mark.spec("JF-067")
def test_run_with_every_event_gone_is_caught_by_reads(
    journal: Path, make_store: MakeStore
) -> None:
    # r2 is the last run in key order: no event of any run follows its own.
    store = make_store(journal)
    for key, _ in store.raw_items(jf.DB_EVENTS, jf.run_prefix("r2")):
        with store._handle.env.begin(write=True) as txn:
            txn.delete(key, db=store._dbs[jf.DB_EVENTS])
    with pytest.raises(JournalCorruptError, match="missing at the end") as caught:
        store.read_events("r2")
    assert caught.value.seq == 0
    with pytest.raises(JournalCorruptError, match="missing at the end"):
        store.transact("r2", lambda view: view.events())


@pytest.mark.spec("JF-064", "JF-067")
def test_a_transaction_reads_the_chain_as_reads_do(
    journal: Path, make_store: MakeStore
) -> None:
    store = make_store(journal)
    with store._handle.env.begin(write=True) as txn:
        txn.delete(jf.event_key(jf.run_prefix("r1"), 2), db=store._dbs[jf.DB_EVENTS])
    with pytest.raises(JournalCorruptError) as read:
        store.read_events("r1")
    with pytest.raises(JournalCorruptError) as in_txn:
        store.transact("r1", lambda view: view.events())
    assert (in_txn.value.seq, str(in_txn.value)) == (read.value.seq, str(read.value))


@pytest.mark.spec("JF-065", "JF-067")
def test_truncated_run_is_caught_by_the_resume_scan(
    journal: Path, make_store: MakeStore
) -> None:
    store = make_store(journal)
    with store._handle.env.begin(write=True) as txn:
        txn.delete(jf.event_key(jf.run_prefix("r1"), 7), db=store._dbs[jf.DB_EVENTS])
    with pytest.raises(JournalCorruptError) as caught:
        store.load_index("r1")
    assert caught.value.seq == 7


@pytest.mark.spec("JF-032")
def test_stored_bytes_are_hashed_not_re_encoded(
    journal: Path, make_store: MakeStore
) -> None:
    store = make_store(journal)
    prefix = jf.run_prefix("r1")
    last = jf.unseal(_raw(store, jf.DB_EVENTS, jf.event_key(prefix, 7)))[1]
    envelope = msgspec.msgpack.decode(last)
    # The same envelope in another valid encoding: reversed map order and a
    # uint 64 where the canonical form is a fixint.
    other = msgspec.msgpack.encode(dict(reversed(envelope.items())))
    other = other.replace(b"\xa3seq\x07", b"\xa3seq\xcf" + (7).to_bytes(8, "big"))
    assert other != last and jf.decode_envelope(other) == jf.decode_envelope(last)
    sealed = jf.seal(other)
    _rewrite(store, jf.DB_EVENTS, jf.event_key(prefix, 7), sealed)
    record = msgspec.structs.replace(store.require_run("r1"), head=sealed[:32])
    _rewrite(store, jf.DB_RUNS, b"r1", jf.seal(jf.encode_record(record)))

    assert verify(store).ok
    events = store.read_events("r1")
    assert events[7].digest == jf.address_of(other)
    assert events[7].envelope == jf.decode_envelope(last)


@pytest.mark.spec("JF-067")
def test_damaged_digest_names_only_its_event(
    journal: Path, make_store: MakeStore
) -> None:
    store = make_store(journal)
    key = jf.event_key(jf.run_prefix("r1"), 5)
    raw = bytearray(_raw(store, jf.DB_EVENTS, key))
    raw[0] ^= 1
    _rewrite(store, jf.DB_EVENTS, key, bytes(raw))
    assert _where(verify(store, "r1")) == {("r1", 5)}


def _append_raw(store: Store, run_id: str, event: Any) -> None:
    """Append one event as the store does, but without any of its checks."""
    prefix = jf.run_prefix(run_id)
    record = store.require_run(run_id)
    envelope = jf.Envelope(v=1, seq=record.events, prev=record.head, at=0, event=event)
    sealed = jf.seal(jf.encode_record(envelope))
    updated = msgspec.structs.replace(
        record, events=record.events + 1, head=sealed[:32]
    )
    with store._handle.env.begin(write=True) as txn:
        txn.put(
            jf.event_key(prefix, record.events), sealed, db=store._dbs[jf.DB_EVENTS]
        )
        txn.put(
            prefix + event.key, jf.pack_seq(record.events), db=store._dbs[jf.DB_KEYS]
        )
        txn.put(
            run_id.encode(),
            jf.seal(jf.encode_record(updated)),
            db=store._dbs[jf.DB_RUNS],
        )


@pytest.mark.spec("JF-012", "JF-067")
def test_malformed_key_in_an_intact_event_is_reported(
    make_store: MakeStore, journal_dir: Path
) -> None:
    store = make_store(journal_dir)
    new_run(store, "r1")
    args, blobs = payload(None)
    store.append("r1", [], blobs)
    _append_raw(
        store, "r1", jf.EffectRequested(key=b"\x09", task="t", kind="task", args=args)
    )
    assert len(store.read_events("r1")) == 2  # digest and chain are intact
    report = verify(store)
    assert ("r1", 1) in _where(report)


@pytest.mark.spec("JF-012")
def test_append_refuses_malformed_key_bytes(
    make_store: MakeStore, journal_dir: Path
) -> None:
    store = make_store(journal_dir)
    new_run(store, "r1")
    args, blobs = payload(None)
    bad = jf.EffectRequested(key=b"\x01\x00", task="t", kind="task", args=args)
    with pytest.raises(jf.FormatError):
        store.append("r1", [bad], blobs)
    assert len(store.read_events("r1")) == 1


@pytest.mark.spec("JF-012")
def test_keys_found_valid_before_do_not_let_a_malformed_one_through(
    make_store: MakeStore, journal_dir: Path
) -> None:
    """append_events remembers keys it checked (two generations): a completion
    is not checked again, and nothing remembered makes another key pass."""
    store = make_store(journal_dir, durability="process")
    new_run(store, "r1")
    # Enough keys to turn both generations over, each requested then completed.
    keys = [jf.encode_key((0, i, 0)) for i in range(20_000)]
    args, blobs = payload(None)
    store.append(
        "r1",
        [jf.EffectRequested(key=k, task="t", kind="task", args=args) for k in keys],
        blobs,
    )
    store.append("r1", [jf.EffectCompleted(key=k, result=args) for k in keys], {})
    for bad_key in (keys[-1][:-1] + b"\x01", b"\x01\x00", keys[0] + b"\x09"):
        bad = jf.EffectCompleted(key=bad_key, result=args)
        with pytest.raises(jf.FormatError):
            store.append("r1", [bad], {})
    assert len(store.read_events("r1")) == 1 + 2 * len(keys)


# -- any single byte -------------------------------------------------------------


@pytest.mark.spec("JF-061", "JF-067")
def test_any_flipped_byte_of_any_event_is_caught(
    make_store: MakeStore, journal_dir: Path
) -> None:
    store = make_store(journal_dir, durability="process")
    new_run(store, "r1")
    events, blobs = effects([(0,), (1, 0), (1, 1)])
    events.append(
        jf.LogLine(key=jf.encode_key((2,)), ordinal=0, message="hi", fields={"a": [1]})
    )
    store.append("r1", events, blobs)
    prefix = jf.run_prefix("r1")
    originals = {
        jf.seq_of_event_key(prefix, k): v
        for k, v in store.raw_items(jf.DB_EVENTS, prefix)
    }
    assert len(originals) == 8 and verify(store).ok

    @settings(max_examples=150, deadline=None)
    @given(st.data())
    def flip(data: st.DataObject) -> None:
        seq = data.draw(st.sampled_from(sorted(originals)), label="seq")
        raw = originals[seq]
        pos = data.draw(st.integers(0, len(raw) - 1), label="pos")
        mask = data.draw(st.integers(1, 255), label="mask")
        damaged = bytearray(raw)
        damaged[pos] ^= mask
        key = jf.event_key(prefix, seq)
        _rewrite(store, jf.DB_EVENTS, key, bytes(damaged))
        try:
            assert seq in {
                p.seq for p in verify(store, "r1").problems if p.run_id == "r1"
            }
            with pytest.raises(JournalCorruptError) as info:
                store.read_events("r1")
            assert (info.value.run_id, info.value.seq) == ("r1", seq)
        finally:
            _rewrite(store, jf.DB_EVENTS, key, raw)

    flip()
    assert verify(store).ok
