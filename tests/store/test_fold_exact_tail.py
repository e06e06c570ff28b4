"""After a checkpoint, a load reads the tail's exact keys (``fold_exact``) too.

A resume restores the run's checkpoint and folds the events after it. That
tail is read like a cold fold's events (``checkpoints.load_index``): exactly
the keys the run record counts, each key's length checked, the last key
compared once; anything not as a sound run has it goes to the careful read
(``fold_events``), from the checkpoint read again when the exact read had
folded part of the tail into it. So on every journal, sound or damaged in
the tail, the load must give what restoring the checkpoint and folding the
tail the careful way gives: the same index or the same error (message and
seq); and on a sound run the careful read is never taken.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import journal_format as jf
from replay_engine._store import checkpoints, env as store_env
from replay_engine._store.store import Store
from replay_engine.errors import JournalCorruptError
from tests.helpers import effects, new_run, raw_env
from tests.store.test_fold_exact import DAMAGE, EVENTS, _key

COVERED = 4
"""Events the checkpoint covers: run_started, effect 0, the request of effect 1
(the tail starts with that request's completion)."""


def _under_the_next_runs_first_key(txn: Any, db: Any) -> None:
    # The run's last record, sound, moved to the next run's first key: only
    # the key range tells it is not the run's (its digest, seq and link pass).
    last = txn.get(_key(EVENTS - 1), db=db)
    txn.delete(_key(EVENTS - 1), db=db)
    txn.put(jf.event_key(jf.run_prefix("r2"), 0), last, db=db)


TAIL_DAMAGE = {
    **DAMAGE,
    "last record under the next run's first key": _under_the_next_runs_first_key,
}


@pytest.fixture
def journal(make_store: Callable[..., Store], journal_dir: Path) -> Path:
    store = make_store(journal_dir)
    new_run(store, "r1")
    events, blobs = effects(range(20))
    store.append("r1", events[: COVERED - 1], blobs, checkpoint=jf.CallIndex())
    store.append("r1", events[COVERED - 1 :], {})
    new_run(store, "r2")  # r2's keys follow r1's
    events, blobs = effects(range(3))
    store.append("r2", events, blobs)
    store.close()
    return journal_dir


def _outcome(store: Store, body: Callable[[Any], tuple[jf.CallIndex, int]]) -> Any:
    try:
        index, restored = store_env.read(store._handle, body)
    except JournalCorruptError as exc:
        return ("error", str(exc), exc.seq)
    return ("ok", restored, index.events, index.head, index.to_checkpoint("r1", 1))


def _careful(store: Store, stop: int | None) -> Any:
    """The checkpoint restored, then the tail folded the careful way."""
    dbs = store._dbs

    def body(txn: Any) -> tuple[jf.CallIndex, int]:
        index = checkpoints.read_checkpoint(txn, dbs, "r1", stop)
        restored = 0 if index is None else index.events
        if index is None:
            index = jf.CallIndex()
        checkpoints.fold_events(txn, dbs, "r1", index, stop)
        return index, restored

    return _outcome(store, body)


def _load(store: Store, stop: int | None) -> Any:
    dbs = store._dbs

    def body(txn: Any) -> tuple[jf.CallIndex, int]:
        index, restored, more = checkpoints.load_index(txn, dbs, "r1", stop, True)
        assert not more
        return index, restored

    return _outcome(store, body)


@pytest.mark.parametrize(
    "stop", [None, 1, COVERED, COVERED + 1, 10, EVENTS - 1, EVENTS, EVENTS + 5]
)
@pytest.mark.parametrize("damage", list(TAIL_DAMAGE))
def test_the_load_after_a_checkpoint_decides_as_the_careful_read(
    journal: Path, make_store: Callable[..., Store], damage: str, stop: int | None
) -> None:
    make = TAIL_DAMAGE[damage]
    if make is not None:
        with raw_env(journal) as (env, dbs), env.begin(write=True) as txn:
            make(txn, dbs[jf.DB_EVENTS])
    store = make_store(journal)
    careful = _careful(store, stop)
    assert _load(store, stop) == careful
    if damage == "sound":
        assert careful[0] == "ok"
        assert careful[1] == (COVERED if stop is None or stop >= COVERED else 0)


def test_a_sound_tail_is_read_without_the_careful_read(
    journal: Path, make_store: Callable[..., Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    def careful(*args: Any) -> bool:
        raise AssertionError("the careful read was taken")

    monkeypatch.setattr(checkpoints, "fold_events", careful)
    store = make_store(journal)
    index, restored = store.load_index("r1")
    assert (restored, index.events) == (COVERED, EVENTS)


def test_damage_only_the_key_range_shows_is_refused_after_a_checkpoint(
    journal: Path, make_store: Callable[..., Store]
) -> None:
    # Every record the exact read folds passes its checks, the moved one
    # too; the careful read, from the checkpoint read again, finds the run
    # one event short of its record.
    with raw_env(journal) as (env, dbs), env.begin(write=True) as txn:
        _under_the_next_runs_first_key(txn, dbs[jf.DB_EVENTS])
    store = make_store(journal)
    with pytest.raises(JournalCorruptError):
        store.load_index("r1")
