"""A cold resume reads a run's exact keys (``fold_all``, issue 17) as the careful read.

``fold_all`` reads the keys ``0 .. end - 1`` the run record counts with a
cursor that yields them in a row, checking each key's length, counting with
``islice`` and comparing the last key once, instead of comparing every key
with the run's range. Anything not as a sound run has it sends it back to
the careful read (``fold_events``) with a new index. So on every journal,
sound or damaged in place, both must give the same index or the same error
(message and seq); and on a sound run the exact read must be the one taken.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import journal_format as jf
from replay_engine._store import env as store_env
from replay_engine._store.checkpoints import fold_all, fold_events, fold_exact
from replay_engine._store.store import Store
from replay_engine.errors import JournalCorruptError
from tests.helpers import effects, new_run, raw_env

EVENTS = 41  # run_started and 20 effects
PREFIX = jf.run_prefix("r1")


def _key(seq: int) -> bytes:
    return jf.event_key(PREFIX, seq)


def _outcome(store: Store, body: Callable[[Any], jf.CallIndex]) -> tuple[Any, ...]:
    try:
        index = store_env.read(store._handle, body)
    except JournalCorruptError as exc:
        return ("error", str(exc), exc.seq)
    return ("ok", index.events, index.head, index.to_checkpoint("r1", 1))


def _both(store: Store, stop: int | None) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    dbs = store._dbs

    def careful(txn: Any) -> jf.CallIndex:
        index = jf.CallIndex()
        fold_events(txn, dbs, "r1", index, stop)
        return index

    def exact(txn: Any) -> jf.CallIndex:
        return fold_all(txn, dbs, "r1", jf.CallIndex, stop)

    return _outcome(store, careful), _outcome(store, exact)


def _taken(store: Store, stop: int | None) -> bool:
    dbs = store._dbs
    return store_env.read(
        store._handle,
        lambda txn: fold_exact(txn, dbs, "r1", jf.CallIndex(), stop) is not None,
    )


@pytest.fixture
def journal(make_store: Callable[..., Store], journal_dir: Path) -> Path:
    store = make_store(journal_dir)
    for run_id, count in (("r1", 20), ("r2", 3)):  # r2's keys follow r1's
        new_run(store, run_id)
        events, blobs = effects(range(count))
        store.append(run_id, events, blobs)
    store.close()
    return journal_dir


def _flip(txn: Any, db: Any) -> None:
    value = bytearray(txn.get(_key(17), db=db))
    value[-1] ^= 1
    txn.put(_key(17), bytes(value), db=db)


def _drop_middle(txn: Any, db: Any) -> None:
    txn.delete(_key(10), db=db)


def _drop_last(txn: Any, db: Any) -> None:
    txn.delete(_key(EVENTS - 1), db=db)


def _extra_after_end(txn: Any, db: Any) -> None:
    txn.put(_key(EVENTS), txn.get(_key(EVENTS - 1), db=db), db=db)


def _extra_past_a_gap(txn: Any, db: Any) -> None:
    txn.put(_key(EVENTS + 4), txn.get(_key(3), db=db), db=db)


def _renamed_to_odd_length(txn: Any, db: Any) -> None:
    # Event 10, sound, under a 9-byte seq key between the keys of 10 and 11.
    value = txn.get(_key(10), db=db)
    txn.delete(_key(10), db=db)
    txn.put(_key(10) + b"\x00", value, db=db)


def _odd_length_after_end(txn: Any, db: Any) -> None:
    txn.put(PREFIX + b"\xff" * 9, txn.get(_key(3), db=db), db=db)


def _swapped(txn: Any, db: Any) -> None:
    five, six = txn.get(_key(5), db=db), txn.get(_key(6), db=db)
    txn.put(_key(5), six, db=db)
    txn.put(_key(6), five, db=db)


DAMAGE: dict[str, Callable[[Any, Any], None] | None] = {
    "sound": None,
    "flipped byte": _flip,
    "middle key missing": _drop_middle,
    "last key missing": _drop_last,
    "extra key after the end": _extra_after_end,
    "extra key past a gap": _extra_past_a_gap,
    "key renamed to another length": _renamed_to_odd_length,
    "odd-length key after the end": _odd_length_after_end,
    "two records swapped": _swapped,
}


@pytest.mark.parametrize("stop", [None, 1, 10, EVENTS - 1, EVENTS, EVENTS + 5])
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_the_exact_read_decides_as_the_careful_read(
    journal: Path, make_store: Callable[..., Store], damage: str, stop: int | None
) -> None:
    make = DAMAGE[damage]
    if make is not None:
        with raw_env(journal) as (env, dbs), env.begin(write=True) as txn:
            make(txn, dbs[jf.DB_EVENTS])
    store = make_store(journal)
    careful, exact = _both(store, stop)
    assert exact == careful
    if damage == "sound":
        assert careful[0] == "ok" and _taken(store, stop)


@pytest.mark.parametrize(
    "damage", ["key renamed to another length", "extra key after the end"]
)
def test_damage_the_careful_read_refuses_is_never_taken_by_the_exact_read(
    journal: Path, make_store: Callable[..., Store], damage: str
) -> None:
    # The two cases where every record the exact read folds passes its
    # checks: only the key checks tell that the run is not sound.
    make = DAMAGE[damage]
    assert make is not None
    with raw_env(journal) as (env, dbs), env.begin(write=True) as txn:
        make(txn, dbs[jf.DB_EVENTS])
    store = make_store(journal)
    assert not _taken(store, None)
    with pytest.raises(JournalCorruptError):
        store.load_index("r1")
