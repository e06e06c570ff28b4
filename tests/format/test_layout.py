"""The LMDB layout of a journal, read back with raw py-lmdb: JF-001, JF-05x, JF-06x."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import lmdb
import pytest
from hypothesis import given, strategies as st

import journal_format as jf
from replay_engine._store.store import Store
from tests.helpers import effects, new_run, raw_env, requested


@pytest.fixture
def journal(make_store: Callable[..., Store], journal_dir: Path) -> Path:
    """A closed journal with runs "r", "r1" and "r10" (prefix neighbours)."""
    store = make_store(journal_dir)
    for run_id, n in (("r", 3), ("r1", 2), ("r10", 1)):
        new_run(store, run_id, inputs={"run": run_id})
        events, blobs = effects(range(n), prefix=run_id)
        store.append(run_id, events, blobs)
    store.close()
    return journal_dir


@pytest.mark.spec("JF-001")
def test_environment_holds_exactly_the_named_databases(journal: Path) -> None:
    assert sorted(p.name for p in journal.iterdir() if p.is_file()) == [
        "data.mdb",
        "lock.mdb",
    ]
    env = lmdb.open(str(journal), max_dbs=8)
    try:
        with env.begin() as txn:
            names = [k for k, _ in txn.cursor()]
        assert names == [
            b"active",
            b"blobs",
            b"checkpoints",
            b"events",
            b"keys",
            b"meta",
            b"runs",
        ]
        with env.begin() as txn:
            flags = {n: env.open_db(n, txn=txn, create=False).flags(txn) for n in names}
        assert flags[b"keys"]["dupsort"]
        assert flags[b"keys"]["dupfixed"]
        for name in (b"blobs", b"events", b"meta", b"runs"):
            assert not flags[name]["dupsort"]
            assert not flags[name]["integerkey"]
            assert not flags[name]["reverse_key"]
    finally:
        env.close()


@pytest.mark.spec("JF-050")
@given(st.lists(st.integers(0, 2**64 - 1), min_size=2, max_size=50))
def test_seq_bytes_sort_numerically(seqs: list[int]) -> None:
    prefix = jf.run_prefix("r1")
    encoded = sorted(jf.event_key(prefix, s) for s in seqs)
    assert [jf.seq_of_event_key(prefix, k) for k in encoded] == sorted(seqs)
    assert [jf.unpack_seq(jf.pack_seq(s)) for s in seqs] == seqs


@pytest.mark.spec("JF-050")
def test_integers_are_unsigned_big_endian() -> None:
    assert jf.pack_seq(1) == b"\x00" * 7 + b"\x01"
    assert jf.pack_seq(258) == bytes.fromhex("0000000000000102")
    with pytest.raises(jf.FormatError):
        jf.unpack_seq(b"\x00" * 7)


@pytest.mark.spec("JF-051")
def test_run_prefix_is_length_then_utf8() -> None:
    assert jf.run_prefix("r1") == b"\x02r1"
    assert jf.run_prefix("a" * 128) == b"\x80" + b"a" * 128


@pytest.mark.spec("JF-052")
@pytest.mark.parametrize("run_id", ["r1", "A", "0", "build-42.b_7", "a" * 128])
def test_valid_run_ids(run_id: str) -> None:
    assert jf.check_run_id(run_id) == run_id


@pytest.mark.spec("JF-052")
@pytest.mark.parametrize(
    "run_id", ["", "-r", ".r", "_r", "a" * 129, "r/1", "r 1", "r\u00e9", "r1\n", "../x"]
)
def test_invalid_run_ids(run_id: str) -> None:
    with pytest.raises(jf.FormatError, match="invalid run id"):
        jf.check_run_id(run_id)


@pytest.mark.spec("JF-053", "JF-057")
def test_events_are_dense_per_run_and_contiguous(journal: Path) -> None:
    with raw_env(journal) as (env, dbs), env.begin() as txn:
        keys = [k for k, _ in txn.cursor(db=dbs[jf.DB_EVENTS])]
    # Runs "r", "r1", "r10" each hold RunStarted + 2 events per effect.
    expected = [
        jf.event_key(jf.run_prefix(run_id), seq)
        for run_id, n in (("r", 7), ("r1", 5), ("r10", 3))
        for seq in range(n)
    ]
    assert keys == expected


@pytest.mark.spec("JF-057")
def test_a_run_prefix_scan_sees_only_that_run(
    journal: Path, make_store: Callable[..., Store]
) -> None:
    store = make_store(journal)
    for run_id, n in (("r", 7), ("r1", 5), ("r10", 3)):
        items = store.raw_items(jf.DB_EVENTS, jf.run_prefix(run_id))
        assert len(items) == n
        envelopes = [jf.decode_envelope(jf.unseal(v)[1]) for _, v in items]
        assert [e.seq for e in envelopes] == list(range(n))
        first = envelopes[0].event
        assert isinstance(first, jf.RunStarted)
        assert jf.decode_payload(store.get_blob(first.inputs)) == {"run": run_id}


@pytest.mark.spec("JF-054")
def test_index_maps_run_and_key_to_seqs(journal: Path) -> None:
    with raw_env(journal) as (env, dbs), env.begin() as txn:
        items = list(txn.cursor(db=dbs[jf.DB_KEYS]))
    prefix = jf.run_prefix("r")
    own = [
        (k[len(prefix) :], v) for k, v in items if k.startswith(prefix) and len(k) < 5
    ]
    # Effects 0, 1, 2 of run "r": requested at seq 1+2i, completed at 2+2i.
    assert own == [
        (jf.encode_key((i,)), jf.pack_seq(seq))
        for i in range(3)
        for seq in (1 + 2 * i, 2 + 2 * i)
    ]
    assert len(items) == 2 * (3 + 2 + 1)


@pytest.mark.spec("JF-055", "JF-060", "JF-065")
def test_runs_hold_sealed_run_records(journal: Path) -> None:
    with raw_env(journal) as (env, dbs), env.begin() as txn:
        runs = dict(txn.cursor(db=dbs[jf.DB_RUNS]))
        events = dict(txn.cursor(db=dbs[jf.DB_EVENTS]))
    assert list(runs) == [b"r", b"r1", b"r10"]
    for run_id, raw in runs.items():
        _, data = jf.unseal(raw)
        record = jf.decode_run_record(data)
        assert record.run_id == run_id.decode()
        last = events[jf.event_key(jf.run_prefix(record.run_id), record.events - 1)]
        assert record.head == last[:32]
        assert jf.event_key(jf.run_prefix(record.run_id), record.events) not in events


@pytest.mark.spec("JF-056", "JF-020")
def test_blobs_are_stored_once_under_their_address(
    make_store: Callable[..., Store], journal_dir: Path
) -> None:
    store = make_store(journal_dir)
    new_run(store, "a", inputs={"same": True})
    new_run(store, "b", inputs={"same": True})
    one, blobs1 = requested((0,), args=[1, 2])
    two, blobs2 = requested((1,), args=[1, 2])
    assert blobs1 == blobs2
    store.append("a", [one, two], blobs1)
    items = store.raw_items(jf.DB_BLOBS)
    assert len(items) == 2  # {"same": True} and [1, 2]
    for address, data in items:
        assert address == jf.address_of(data)  # raw payload bytes, not sealed
        assert data[:1] in (b"\x81", b"\x92")


@pytest.mark.spec("JF-060", "JF-062", "JF-063", "JF-064")
def test_events_are_sealed_and_chained(journal: Path) -> None:
    with raw_env(journal) as (env, dbs), env.begin() as txn:
        items = list(txn.cursor(db=dbs[jf.DB_EVENTS]))
    prefix = jf.run_prefix("r1")
    chain = [v for k, v in items if k.startswith(prefix) and len(k) == len(prefix) + 8]
    prev = jf.genesis_digest("r1")
    assert prev == jf.address_of(b"replay-engine/run/r1")
    for seq, raw in enumerate(chain):
        digest, data = jf.unseal(raw)
        assert digest == raw[:32] == jf.address_of(data)
        envelope = jf.decode_envelope(data)
        assert (envelope.seq, envelope.prev, envelope.v) == (seq, prev, 1)
        prev = digest


@pytest.mark.spec("JF-016")
def test_longest_key_fits_lmdb(
    journal_dir: Path, make_store: Callable[..., Store]
) -> None:
    store = make_store(journal_dir)
    env = store._handle.env
    assert env.max_key_size() == 511
    longest = jf.run_prefix("a" * 128) + b"\x01\xff" * 191
    assert len(longest) == 511
    txn = env.begin(write=True)
    try:
        assert txn.put(longest, jf.pack_seq(0), db=store._dbs[jf.DB_KEYS])
        with pytest.raises(lmdb.BadValsizeError):
            txn.put(longest + b"\x00", jf.pack_seq(0), db=store._dbs[jf.DB_KEYS])
    finally:
        txn.abort()
