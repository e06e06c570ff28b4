"""Running checkpoints built on the frozen part (``_store/frozen.py``).

A fresh fan-out's running checkpoints are written from the encoded calls of
the last one that can no longer change, plus the rest encoded anew. Each test
runs a real run on a real LMDB journal, spies on which way each checkpoint
was built (the real functions called), and checks the record left: byte for
byte the record the general path would write, and the fold of the events it
covers.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

import journal_format as jf
from replay_engine import Engine, task
from replay_engine._store import frozen as _frozen, running as _running
from replay_engine._store.checkpoints import seal_index
from replay_engine._store.store import Store
from tests.store._checks import assert_checkpoint_is_the_fold

RUN = "r"
SLOW = threading.Event()


@task(executor="inline")
def noop(i: int) -> int:
    return i


@task(executor="thread")
def held(i: int, last: int) -> int:
    """Key 3 waits until the last task has run (bounded): all between settle."""
    if i == 3:
        SLOW.wait(60)
    elif i == last:
        SLOW.set()
    return i


async def fanout(inputs: dict[str, int], ctx: Any) -> int:
    out = await ctx.parallel.map(range(inputs["n"]), lambda i: ctx.task(noop, {"i": i}))
    return len(out)


async def fanout_held(inputs: dict[str, int], ctx: Any) -> int:
    """A fan-out of thread tasks with key 3 held, then one of inline tasks."""
    n = inputs["n"]
    out = await ctx.parallel.map(
        range(n), lambda i: ctx.task(held, {"i": i, "last": n - 1})
    )
    more = await ctx.parallel.map(range(2 * n), lambda i: ctx.task(noop, {"i": i}))
    return len(out) + len(more)


async def fanout_then_value(inputs: dict[str, int], ctx: Any) -> int:
    first = await ctx.parallel.map(
        range(inputs["n"]), lambda i: ctx.task(noop, {"i": i})
    )
    ctx.now()  # a value: not a fan-out's event
    second = await ctx.parallel.map(
        range(inputs["n"]), lambda i: ctx.task(noop, {"i": i + 1})
    )
    return len(first) + len(second)


def _spy(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Count the checkpoints built each way (the real functions run)."""
    counts = {"frozen": 0, "general": 0}
    real_frozen = _frozen.seal_frozen
    real_general = _running.RunningCheckpoints._base

    def seal_frozen(*args: Any) -> Any:
        built = real_frozen(*args)
        counts["frozen"] += built is not None
        return built

    def base(self: _running.RunningCheckpoints, *args: Any) -> Any:
        counts["general"] += 1
        return real_general(self, *args)

    monkeypatch.setattr(_running, "seal_frozen", seal_frozen)
    monkeypatch.setattr(_running.RunningCheckpoints, "_base", base)
    return counts


def _run(tmp_path: Path, flow: Any, n: int) -> None:
    with Engine(str(tmp_path / "journal"), durability="process") as engine:
        run = engine.run(flow, {"n": n}, run_id=RUN)
        assert run.status == "completed", run


def _assert_record_is_the_general_one(tmp_path: Path) -> jf.Checkpoint:
    """The stored record: the fold's, and the general path's bytes exactly."""
    store = Store(str(tmp_path / "journal"), access="read")
    try:
        raw = store.checkpoint_of(RUN)
        assert raw is not None
        checkpoint = jf.unseal_checkpoint(raw)
        assert_checkpoint_is_the_fold(store, RUN, checkpoint)
        events = [s.event for s in store.read_events(RUN)]
        index = jf.CallIndex()
        index.fold(0, events[: checkpoint.events])
        index.head = checkpoint.head
        assert bytes(seal_index(RUN, index)) == bytes(raw)
        return checkpoint
    finally:
        store.close()


def test_a_fan_out_checkpoints_on_its_frozen_calls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counts = _spy(monkeypatch)
    _run(tmp_path, fanout, 9000)
    # 18,00x events in large commits: two or three checkpoints, none general.
    assert counts["frozen"] >= 2 and counts["general"] == 0
    checkpoint = _assert_record_is_the_general_one(tmp_path)
    assert len(checkpoint.keys) >= 8000


def test_calls_settled_after_one_in_flight_are_carried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Key 3 in flight at every checkpoint: all after it stay unfrozen."""
    SLOW.clear()
    counts = _spy(monkeypatch)
    _run(tmp_path, fanout_held, 5000)
    assert counts["frozen"] >= 2 and counts["general"] == 0
    checkpoint = _assert_record_is_the_general_one(tmp_path)
    assert len(checkpoint.keys) >= 4000


def test_another_event_builds_the_next_checkpoints_the_general_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counts = _spy(monkeypatch)
    _run(tmp_path, fanout_then_value, 6000)
    assert counts["frozen"] >= 1 and counts["general"] >= 1, counts
    _assert_record_is_the_general_one(tmp_path)


def test_a_key_before_the_frozen_ones_is_refused(tmp_path: Path) -> None:
    """And the frozen bytes are found where they were noted, in that record."""
    frozen = _frozen.Frozen(jf.CallIndex())
    entry = jf.CallEntry(jf.EFFECT, 1, "t", "task", b"a", b"r")
    started = jf.RunStarted(process="p", fingerprint="f", inputs=b"i")
    head = b"h" * 32
    built = _frozen.seal_frozen(
        frozen, None, {b"\x05": entry}, RUN, 2, head, [], started, started
    )
    assert built is not None
    sealed, after, rest = built
    assert after.count == 1 and after.last == b"\x05" and rest == {}
    later = jf.CallEntry(jf.EFFECT, 2, "t", "task", b"b", b"s")
    stored = bytes(sealed)
    assert (
        _frozen.seal_frozen(
            after, stored, {b"\x04": later}, RUN, 3, head, [], None, started
        )
        is None
    )
    built = _frozen.seal_frozen(
        after, stored, {b"\x06": later}, RUN, 3, head, [], None, started
    )
    assert built is not None
    checkpoint = jf.unseal_checkpoint(bytes(built[0]))
    assert checkpoint.keys == [b"\x05", b"\x06"]
    assert checkpoint.calls == [entry, later]
    # A record other than the one written: the general way.
    flipped = stored[:-1] + bytes((stored[-1] ^ 1,))
    assert (
        _frozen.seal_frozen(
            after, flipped, {b"\x06": later}, RUN, 3, head, [], None, started
        )
        is None
    )
    assert (
        _frozen.seal_frozen(
            after, stored + b"x", {b"\x06": later}, RUN, 3, head, [], None, started
        )
        is None
    )
