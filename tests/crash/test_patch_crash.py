"""``ctx.patched`` across SIGKILLs: the answer a run got is the answer it keeps.

A child runs the process and SIGKILLs itself when the journal reaches a
chosen number of events; the run is then resumed here with the patched code.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import journal_format as jf
from replay_engine import Engine
from tests.children import crash_child
from tests.timetravel import patch_flows as pf

V1, V2 = "tests.timetravel.patch_flows:v1", "tests.timetravel.patch_flows:v2"


def _markers(engine: Engine, run_id: str) -> list[str]:
    return [
        jf.key_bytes_to_text(s.event.key)
        for s in engine.events(run_id)
        if isinstance(s.event, jf.PatchMarker)
    ]


def _has_key(engine: Engine, run_id: str, key: str) -> bool:
    return any(
        isinstance(s.event, jf.EffectRequested)
        and jf.key_bytes_to_text(s.event.key) == key
        for s in engine.events(run_id)
    )


@pytest.mark.parametrize("kill_at", range(2, 9))
def test_a_patched_run_killed_anywhere_keeps_its_answer(
    tmp_path: Path, kill_at: int
) -> None:
    journal = tmp_path / "j"
    crash_child("run", journal, "r", ref=V2, inputs={}, kill_at=kill_at)
    with Engine(journal) as engine:
        for _ in range(2):  # and again: the answer is read back, not re-decided
            run = engine.resume("r", process=pf.v2)
            assert (run.status, run.result) == ("completed", [1010, 20])
        assert _markers(engine, "r") == ["1"]


@pytest.mark.parametrize("kill_at", range(2, 6))
def test_an_old_run_killed_anywhere_takes_the_path_its_journal_says(
    tmp_path: Path, kill_at: int
) -> None:
    journal = tmp_path / "j"
    crash_child("run", journal, "r", ref=V1, inputs={}, kill_at=kill_at)
    with Engine(journal) as engine:
        # Recorded past the patch point (the call at key 1) by the old code:
        # the old path; otherwise the run reaches the patch first: the new one.
        old_path = _has_key(engine, "r", "1")
        run = engine.resume("r", process=pf.v2)
        expected = [10, 20] if old_path else [1010, 20]
        assert (run.status, run.result) == ("completed", expected)
        assert _markers(engine, "r") == ([] if old_path else ["1"])
        assert engine.replay("r", process=pf.v2).result == expected
