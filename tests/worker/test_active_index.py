"""The ``active`` index and the record fields a worker reads instead of events."""

from __future__ import annotations

from pathlib import Path

import lmdb

import journal_format as jf
from replay_engine import Engine
from tests.worker import worker_flows as wf


def _index(engine: Engine) -> dict[str, str]:
    return {a.run_id: a.entry.status for a in engine._store.active_runs()}


def _statuses(engine: Engine) -> dict[str, str]:
    return {i.run_id: i.status for i in engine.runs() if i.status in jf.ACTIVE_STATUSES}


def test_the_index_holds_exactly_the_active_runs(tmp_path: Path) -> None:
    side = str(tmp_path / "side")
    with Engine(str(tmp_path / "j"), durability="process") as engine:
        engine.submit(wf.steps, {"n": 1, "side": side}, run_id="queued")
        engine.run(wf.steps, {"n": 1, "side": side}, run_id="done")
        engine.run(wf.asks, None, run_id="waits")
        engine.fork("waits", at=1, new_run_id="forked")
        assert _index(engine) == _statuses(engine)
        assert set(_index(engine)) == {"queued", "waits", "forked"}
        engine.post("waits", "0", result="yes")
        engine.iterate("waits")  # completes: leaves the index
        engine.resume("queued")
        assert _index(engine) == _statuses(engine) == {"forked": "queued"}


def test_waiting_seq_shows_what_came_after_the_wait(tmp_path: Path) -> None:
    with Engine(str(tmp_path / "j"), durability="process") as engine:
        engine.run(wf.asks, None, run_id="w")
        record = engine._store.require_run("w")
        events = engine.events("w")
        assert isinstance(events[record.waiting_seq].event, jf.RunWaiting)
        assert record.events == record.waiting_seq + 1
        engine.post("w", "0", result="ok")
        after = engine._store.require_run("w")
        assert after.status == "waiting" and after.waiting_seq == record.waiting_seq
        assert after.events > after.waiting_seq + 1  # a worker wakes it
        engine.iterate("w")
        done = engine._store.require_run("w")
        assert done.status == "completed" and done.waiting_seq is None


def test_next_due_is_recorded_with_the_wait(tmp_path: Path) -> None:
    with Engine(str(tmp_path / "j"), durability="process") as engine:
        engine.submit(wf.sleeper, {"seconds": 30}, run_id="s")
        engine.iterate("s")  # parks the timer: waits until due
        record = engine._store.require_run("s")
        assert record.status == "waiting"
        assert record.next_due_ns is not None
        waiting = engine.events("s")[record.waiting_seq].event
        assert isinstance(waiting, jf.RunWaiting)
        assert waiting.next_due_ns == record.next_due_ns


def test_an_older_journal_gets_its_index_on_a_writable_open(tmp_path: Path) -> None:
    journal = tmp_path / "j"
    side = str(tmp_path / "side")
    with Engine(str(journal), durability="process") as engine:
        engine.submit(wf.steps, {"n": 1, "side": side}, run_id="q")
        engine.run(wf.asks, None, run_id="w")
        engine.run(wf.steps, {"n": 1, "side": side}, run_id="done")
    # Make it a journal written before the index existed.
    env = lmdb.open(str(journal), max_dbs=8)
    with env.begin(write=True) as txn:
        txn.drop(env.open_db(jf.DB_ACTIVE, txn=txn), delete=True)
    env.close()
    with Engine(str(journal), read_only=True) as reader:
        # Read-only: no index, and none is created; the records are read.
        assert _index(reader) == {"q": "queued", "w": "waiting"}
    env = lmdb.open(str(journal), max_dbs=8, readonly=True)
    with env.begin() as txn:
        assert jf.DB_ACTIVE not in [k for k, _ in txn.cursor()]
    env.close()
    with Engine(str(journal), durability="process") as engine:
        assert engine._store._dbs.get(jf.DB_ACTIVE) is not None
        assert _index(engine) == {"q": "queued", "w": "waiting"}


def test_the_change_counter_moves_with_every_commit(tmp_path: Path) -> None:
    with Engine(str(tmp_path / "j"), durability="process") as engine:
        first = engine._store.change_counter()
        engine.submit(wf.other, None, run_id="o")
        second = engine._store.change_counter()
        assert second > first
        engine.status("o")
        assert engine._store.change_counter() == second  # reads commit nothing
