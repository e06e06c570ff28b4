"""An outcome with no request before it, in a real journal, is named damage.

The fold (``journal_format``) raises ``OrphanOutcome``; the store turns it
into ``JournalCorruptError`` naming run, seq and key, both for a resume's
load and for the key-by-key lookups of a time-travel replay.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import journal_format as jf
from replay_engine import Engine, JournalCorruptError, external
from replay_engine._store.store import Store

RUN = "orphan"


@external(kind="agent", name="orphan.gate")
def gate() -> Any:
    """Never posted: the run waits."""


async def waits(inputs: dict[str, Any], ctx: Any) -> Any:
    return await ctx.task(gate, {})


def _journal_with_an_orphan(tmp_path: Path) -> tuple[Path, int]:
    path = tmp_path / "journal"
    with Engine(str(path)) as engine:
        assert engine.run(waits, {}, run_id=RUN).status == "waiting"
        seq = len(engine.events(RUN))
    store = Store(str(path))
    try:
        # Completed at key 7, which no request ever took.
        result = jf.encode_payload(1)
        store.append(
            RUN,
            [jf.EffectCompleted(key=jf.encode_key((7,)), result=result)],
            {},
        )
    finally:
        store.close()
    return path, seq


def test_a_resume_names_the_orphan_outcome(tmp_path: Path) -> None:
    path, seq = _journal_with_an_orphan(tmp_path)
    with Engine(str(path)) as engine, pytest.raises(JournalCorruptError) as caught:
        engine.resume(RUN, process=waits)
    error = caught.value
    assert (error.run_id, error.seq, error.key) == (RUN, seq, "7"), error
    assert "replay-engine verify" in str(error)


def test_a_replay_names_the_orphan_outcome(tmp_path: Path) -> None:
    path, seq = _journal_with_an_orphan(tmp_path)
    with Engine(str(path)) as engine, pytest.raises(JournalCorruptError) as caught:
        engine.replay(RUN, process=waits)
    assert (caught.value.run_id, caught.value.seq) == (RUN, seq), caught.value
