"""Checks the store tests share."""

from __future__ import annotations

import journal_format as jf
from replay_engine._store.store import Store


def assert_checkpoint_is_the_fold(
    store: Store, run_id: str, checkpoint: jf.Checkpoint
) -> None:
    """``checkpoint`` equals a fresh fold of the run's events it covers."""
    events = [s.event for s in store.read_events(run_id)]
    index = jf.CallIndex()
    index.fold(0, events[: checkpoint.events])
    index.head = checkpoint.head
    assert index.to_checkpoint(run_id, jf.FORMAT_VERSION) == checkpoint
