"""A long fold in batches of read transactions (``_store/load_batches.py``).

A cold resume folds every event; past ``FOLD_BATCH_EVENTS`` it goes on in a
new read transaction after releasing LMDB's map, so the journal's pages do
not all stay in the process's RSS (issue 17). These tests make the batches
tiny and check that nothing a reader concludes changes: the same index at
every batch size and stop, the same errors for damage at and around a batch
boundary (chain and end checks cross batches), a post landing between
batches folded as a later load would, a load inside a transaction of the
same thread done in one go. One measures what the batches are for: the
mapped pages of ``data.mdb`` after a load.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import journal_format as jf
from replay_engine import Engine, task
from replay_engine._run import journal as _journal
from replay_engine._run.hooks import Hooks
from replay_engine._store import checkpoints, env as _env, load_batches
from replay_engine._store.load_batches import load_in_batches
from replay_engine._store.store import Store
from replay_engine.errors import JournalCorruptError

from ._checks import assert_checkpoint_is_the_fold

RUN = "lb"


@task(executor="inline", name="lb.double")
def double(i: int) -> int:
    return 2 * i


async def mixed(inputs: dict[str, int], ctx: Any) -> Any:
    """Sequential tasks, a parallel map, recorded values, a wait: many event kinds."""
    total = 0
    for i in range(inputs["n"]):
        total += await ctx.task(double, {"i": i})
        if i % 5 == 0:
            ctx.log(f"step {i}")
    values = await ctx.parallel.map(range(12), lambda i: ctx.task(double, {"i": -i}))
    ctx.now()
    if inputs.get("wait", True):
        total += (await ctx.wait_for_event("go", timeout=3600))["add"]
    return total + sum(values)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = Engine(str(tmp_path / "journal"), durability="process")
    assert eng.run(mixed, {"n": 30}, run_id=RUN).status == "waiting"
    yield eng
    eng.close()


def _in_one(store: Store, stop: int | None, use_checkpoint: bool) -> Any:
    """The load as it was: one read transaction, no batches."""
    index, restored, more = _env.read(
        store._handle,
        lambda txn: checkpoints.load_index(txn, store._dbs, RUN, stop, use_checkpoint),
    )
    assert not more
    return index.to_checkpoint(RUN, jf.FORMAT_VERSION), restored


def _batched(store: Store, stop: int | None, use_checkpoint: bool, batch: int) -> Any:
    index, restored = load_in_batches(
        store._handle, store._dbs, RUN, stop, use_checkpoint, batch
    )
    return index.to_checkpoint(RUN, jf.FORMAT_VERSION), restored


@pytest.mark.spec("JF-063", "JF-064", "JF-065", "JF-104")
@pytest.mark.parametrize("use_checkpoint", [False, True])
def test_any_batch_size_folds_the_same_index(
    engine: Engine, use_checkpoint: bool
) -> None:
    store = engine._store
    total = store.require_run(RUN).events
    assert total > 80
    released: list[bool] = []
    real = _env.release_map

    def counting(handle: Any) -> bool:
        released.append(real(handle))
        return released[-1]

    for stop in (None, 1, 7, 40, total - 1, total):
        expected = _in_one(store, stop, use_checkpoint)
        for batch in (1, 2, 3, 16, total - 1, total, 10**6):
            released.clear()
            _env.release_map = counting  # type: ignore[assignment]
            try:
                got = _batched(store, stop, use_checkpoint, batch)
            finally:
                _env.release_map = real  # type: ignore[assignment]
            assert got == expected, (stop, batch)
            folded = (stop if stop is not None else total) - got[1]
            # The map is released between batches (and after the last).
            assert all(released)
            assert len(released) >= (folded - 1) // batch


def _rewrite(store: Store, seq: int, value: bytes | None) -> None:
    key = jf.event_key(jf.run_prefix(RUN), seq)
    with store._handle.env.begin(write=True) as txn:
        if value is None:
            txn.delete(key, db=store._dbs[jf.DB_EVENTS])
        else:
            txn.put(key, value, db=store._dbs[jf.DB_EVENTS])


def _raw_event(store: Store, seq: int) -> bytes:
    key = jf.event_key(jf.run_prefix(RUN), seq)
    with store._handle.env.begin() as txn:
        value: bytes = txn.get(key, db=store._dbs[jf.DB_EVENTS])
    return value


def _error(load: Any) -> tuple[str, int | None]:
    with pytest.raises(JournalCorruptError) as caught:
        load()
    return str(caught.value), caught.value.seq


@pytest.mark.spec("JF-061", "JF-063", "JF-064", "JF-065", "JF-066")
@pytest.mark.parametrize("damage", ["flip", "swap", "remove", "truncate"])
@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_damage_at_a_batch_boundary_is_caught_as_in_one_transaction(
    engine: Engine, damage: str, offset: int
) -> None:
    store = engine._store
    batch = 8
    total = store.require_run(RUN).events
    seq = total - 1 if damage == "truncate" else 3 * batch + offset
    if damage == "flip":
        raw = bytearray(_raw_event(store, seq))
        raw[-3] ^= 0x10
        _rewrite(store, seq, bytes(raw))
    elif damage == "swap":  # stored under the wrong seq
        _rewrite(store, seq, _raw_event(store, seq + 1))
    else:
        _rewrite(store, seq, None)
    one = _error(lambda: _in_one(store, None, False))
    assert _error(lambda: _batched(store, None, False, batch)) == one
    assert one[1] is not None and one[1] <= seq
    if damage == "truncate":
        assert "missing at the end" in one[0]
    # Through the store's own entry point (the engine's path), too.
    assert _error(lambda: store.load_index(RUN, use_checkpoint=False)) == one


@pytest.mark.spec("JF-065")
def test_a_post_between_batches_is_folded_as_a_later_load_would(
    engine: Engine,
) -> None:
    store = engine._store
    before = store.require_run(RUN).events
    real = _env.release_map
    posted: list[int] = []

    def post_once(handle: Any) -> bool:
        if not posted:
            engine.post_event(RUN, "go", {"add": 1000})
            posted.append(store.require_run(RUN).events)
        return real(handle)

    _env.release_map = post_once  # type: ignore[assignment]
    try:
        got = _batched(store, None, False, 5)
    finally:
        _env.release_map = real  # type: ignore[assignment]
    assert posted and posted[0] > before
    assert got == _in_one(store, None, False)
    assert got[0].events == posted[0] and len(got[0].signals) == 1


def test_a_load_inside_a_transaction_of_the_thread_is_done_in_one_go(
    engine: Engine,
) -> None:
    store = engine._store
    handle = store._handle
    # The map must not be replaced under an open transaction.
    assert _env.read(handle, lambda txn: _env.release_map(handle)) is False
    assert _env.release_map(handle) is True
    inside = _env.read(handle, lambda txn: _batched(store, None, False, 3))
    assert inside == _in_one(store, None, False)


def test_a_cold_resume_in_small_batches_ends_as_the_uninterrupted_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(tmp_path / "journal")
    with Engine(path) as whole:
        expected = whole.run(mixed, {"n": 30, "wait": False}, run_id="whole").result
    # Killed after its first 50 events (the crash hook writes nothing more):
    # no checkpoint, so the resume folds every event, here 7 at a time.
    with Engine(path, hooks=Hooks(crash_after_events=50)) as crashing:
        crashing.run(mixed, {"n": 30, "wait": False}, run_id=RUN)
    monkeypatch.setattr(load_batches, "FOLD_BATCH_EVENTS", 7)
    # A running run's commit checkpoints once this many events are uncovered:
    # lowered, so these 50 stand for a long run's (and the first commit
    # checkpoints).
    monkeypatch.setattr(_journal, "RUNNING_MIN_EVENTS", 32)
    with Engine(path) as engine:
        assert engine._store.checkpoint_of(RUN) is None
        run = engine.resume(RUN)
        assert run.status == "completed" and run.result == expected
        assert run.stats.replayed > 20
        # Its first commit's checkpoint is the fold of the events it covers.
        raw = engine._store.checkpoint_of(RUN)
        assert raw is not None
        checkpoint = jf.decode_checkpoint(jf.unseal(raw)[1])
        assert_checkpoint_is_the_fold(engine._store, RUN, checkpoint)
        assert engine.verify(RUN).ok


def _rss_file_kb() -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        match = re.search(r"^RssFile:\s+(\d+) kB", f.read(), re.MULTILINE)
    assert match is not None
    return int(match.group(1))


@pytest.mark.skipif(
    not Path("/proc/self/status").exists(), reason="RssFile is read from /proc"
)
def test_a_batched_load_leaves_few_of_the_journals_pages_mapped(
    tmp_path: Path,
) -> None:
    with Engine(str(tmp_path / "journal"), durability="process") as engine:
        run = engine.run(mixed, {"n": 20_000}, run_id=RUN)
        assert run.status == "waiting"
        store = engine._store
        data_mb = (tmp_path / "journal" / "data.mdb").stat().st_size >> 20
        assert data_mb >= 6

        def mapped_by(batch: int) -> int:
            """RssFile (kB) a cold load with ``batch`` leaves mapped."""
            _env.release_map(store._handle)
            before = _rss_file_kb()
            load_in_batches(store._handle, store._dbs, RUN, None, False, batch)
            return _rss_file_kb() - before

        mapped_by(10**9)  # code paths warmed
        whole = mapped_by(10**9)  # one transaction: every page stays mapped
        batched = mapped_by(4096)
        assert whole >= 4 * 1024, whole
        assert batched < whole / 4, (batched, whole)


@pytest.mark.spec("JF-105")
def test_a_large_checkpoint_is_decoded_after_the_map_is_released(
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = engine._store
    raw = store.checkpoint_of(RUN)
    assert raw is not None
    expected = _in_one(store, None, True)
    assert expected[1] > 0  # restored from the checkpoint
    monkeypatch.setattr(load_batches, "DECODE_APART_BYTES", 1)
    released: list[bool] = []
    real = _env.release_map
    monkeypatch.setattr(
        _env, "release_map", lambda handle: released.append(real(handle)) or True
    )
    assert _batched(store, None, True, 10**6) == expected
    assert released == [True]  # once, between reading and decoding it
    for stop in (5, expected[1], expected[0].events):
        assert _batched(store, stop, True, 10**6) == _in_one(store, stop, True)
    # Damaged, it is still ignored with a warning and the events folded.
    damaged = bytearray(raw)
    damaged[len(damaged) // 2] ^= 0x40
    with store._handle.env.begin(write=True) as txn:
        txn.put(jf.run_prefix(RUN), bytes(damaged), db=store._dbs[jf.DB_CHECKPOINTS])
    with caplog.at_level("WARNING", logger="replay_engine"):
        got = _batched(store, None, True, 10**6)
    assert got[1] == 0 and got[0] == expected[0]
    assert any("checkpoint is damaged" in r.getMessage() for r in caplog.records)


def test_batched_loads_and_other_threads_transactions_interleave_safely(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Replacing the map invalidates every open transaction of the process:
    # it must wait for other threads' transactions and keep them out.
    store = engine._store
    expected = _in_one(store, None, False)
    monkeypatch.setattr(load_batches, "FOLD_BATCH_EVENTS", 3)
    errors: list[BaseException] = []
    stop = threading.Event()

    def loads() -> None:
        try:
            for _ in range(25):
                index, _restored = store.load_index(RUN, use_checkpoint=False)
                assert index.to_checkpoint(RUN, jf.FORMAT_VERSION) == expected[0]
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            stop.set()

    def others() -> None:
        try:
            i = 0
            while not stop.is_set():
                run = engine.run(mixed, {"n": 3, "wait": False}, run_id=f"o{i}")
                assert run.status == "completed"
                assert len(store.read_events(RUN)) == expected[0].events
                i += 1
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=loads), threading.Thread(target=others)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert not errors, errors
