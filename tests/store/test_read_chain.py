"""Checked reads of a run's events (``read_chain``), as ``log``, ``export`` and the
CLI's probe before a resume use them (issue 17: one hasher reset per event, and
``StoredEvent``s built through their slots).

What a read returns must be what the plain per-event check (``check_event``)
returns, and damage must still be named with its seq.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import journal_format as jf
from replay_engine._store import env as store_env
from replay_engine._store.chain import check_event
from replay_engine._store.store import Store
from replay_engine.errors import JournalCorruptError
from tests.helpers import effects, new_run, raw_env


def _filled(store: Store, run_id: str, count: int) -> None:
    new_run(store, run_id)
    events, blobs = effects(range(count))
    store.append(run_id, events, blobs)


def test_a_read_returns_exactly_what_the_per_event_check_returns(store: Store) -> None:
    _filled(store, "r1", 40)
    _filled(store, "r2", 3)  # the next run's events follow in key order
    read = store.read_events("r1")
    assert len(read) == 81
    prefix, events_db = jf.run_prefix("r1"), store._dbs[jf.DB_EVENTS]

    def stored_bytes(txn: Any) -> list[bytes]:
        return [txn.get(jf.event_key(prefix, s), db=events_db) for s in range(81)]

    prev = None
    for stored, raw in zip(
        read, store_env.read(store._handle, stored_bytes), strict=True
    ):
        assert stored == check_event("r1", stored.seq, raw, prev, stored.seq)
        prev = stored.digest
    with pytest.raises(dataclasses.FrozenInstanceError):
        read[0].seq = 5  # type: ignore[misc]
    assert [s.seq for s in store.read_events("r1", 10, 20)] == list(range(10, 20))


def test_a_flipped_byte_in_the_middle_is_named_by_its_seq(
    make_store: Callable[..., Store], journal_dir: Path
) -> None:
    store = make_store(journal_dir)
    _filled(store, "r1", 20)
    store.close()
    key = jf.event_key(jf.run_prefix("r1"), 17)
    with raw_env(journal_dir) as (env, dbs), env.begin(write=True) as txn:
        value = bytearray(txn.get(key, db=dbs[jf.DB_EVENTS]))
        value[-1] ^= 1
        txn.put(key, bytes(value), db=dbs[jf.DB_EVENTS])
    with pytest.raises(JournalCorruptError, match="blake3 digest") as caught:
        make_store(journal_dir).read_events("r1")
    assert caught.value.seq == 17
