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
