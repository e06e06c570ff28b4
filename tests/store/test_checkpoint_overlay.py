"""The overlay a checkpoint commit folds its tail into (``_TailCalls``, issue 17).

``put_checkpoint`` no longer copies the runtime's index: it folds the events
of the commit into an overlay over it. Whatever the history and wherever it
is split, the checkpoint built from base and overlay must be the one a fold
of every event gives, and the base index must not change (the runtime is
still using it). A real-journal test of the same is in test_checkpoints.py.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, strategies as st

import journal_format as jf
from replay_engine._store.checkpoints import _TailCalls
from tests.strategies import histories


@pytest.mark.spec("JF-103", "JF-104")
@given(histories(), st.data())
def test_folding_a_tail_over_an_overlay_equals_folding_everything(
    history: list[Any], data: st.DataObject
) -> None:
    split = data.draw(st.integers(0, len(history)))
    base = jf.CallIndex()
    base.fold(0, history[:split])
    before = {k: msgspec.structs.replace(e) for k, e in base.calls.items()}
    overlay = _TailCalls(base.calls)
    tail = jf.CallIndex()
    tail.calls = overlay
    tail.logs, tail.signals = set(base.logs), list(base.signals)
    tail.consumed_signals = set(base.consumed_signals)
    tail.started, tail.last_event, tail.events = base.started, base.last_event, split
    tail.fold(split, history[split:])
    whole = jf.CallIndex()
    whole.fold(0, history)
    tail.calls = {}
    checkpoint = tail.to_checkpoint("r1", 1)
    checkpoint.keys, checkpoint.calls = overlay.merged()
    assert checkpoint == whole.to_checkpoint("r1", 1)
    assert base.calls == before  # entry by entry: nothing written through


@pytest.mark.parametrize("ordered", [True, False], ids=["byte-order", "shuffled"])
@pytest.mark.parametrize("added", [0, 5, 200])
def test_merged_is_every_key_in_byte_order_with_the_overlays_entries(
    ordered: bool, added: int
) -> None:
    # merged() takes the base in fold order when that is byte order, sorts it
    # otherwise, and inserts a few new calls or sorts many: each way must give
    # the keys in byte order, each with the overlay's entry where it has one.
    keys = [jf.encode_key((i,)) for i in range(300)]
    base_keys = keys[:200] if ordered else keys[:200][::-1]
    base = {k: jf.CallEntry(jf.EFFECT, i, "t") for i, k in enumerate(base_keys)}
    overlay = _TailCalls(base)
    for key in keys[190:200]:  # the tail completes ten recorded calls
        entry = overlay.get(key)
        assert entry is not None
        entry.result = b"r"
    for i, key in enumerate(keys[200 : 200 + added]):
        overlay[key] = jf.CallEntry(jf.VALUE, 1000 + i, "now")
    merged_keys, merged_calls = overlay.merged()
    expected = {**base, **dict(overlay.items())}
    assert merged_keys == sorted(expected) == keys[: 200 + added]
    assert merged_calls == [expected[k] for k in merged_keys]
    assert all(base[k].result is None for k in keys[190:200])  # base untouched
