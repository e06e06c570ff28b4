"""``Engine.fork`` then ``resume``: same code, same result; new code, new result.

The parent run must come out untouched: the same events, still intact.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import journal_format as jf
from replay_engine import RunExistsError

from .conftest import Recorded, key_of


def _map_stage(recorded: Recorded) -> int:
    """The fork point just before the parallel.map at key 4 starts."""
    return min(s.seq for s in recorded.events() if key_of(s) == "4.0.0")


def _fingerprint(recorded: Recorded) -> list[tuple[int, bytes, bytes]]:
    return [(s.seq, s.digest, s.envelope.prev) for s in recorded.events()]


@pytest.mark.parametrize("at_stage", ["start", "after_retry", "map"])
def test_fork_and_resume_with_unchanged_code_gives_the_same_result(
    recorded: Recorded, at_stage: str
) -> None:
    events = recorded.events()
    at = {
        "start": 1,
        "after_retry": 1
        + next(s.seq for s in events if jf.event_tag(s.event) == "attempt_failed"),
        "map": _map_stage(recorded),
    }[at_stage]
    parent = _fingerprint(recorded)
    info = recorded.engine.fork(recorded.run_id, at, f"f-{at_stage}")
    assert (info.parent, info.fork_at, info.events) == (recorded.run_id, at, at)

    run = recorded.engine.resume(info.run_id)
    assert run.status == "completed"
    assert run.result == recorded.result
    # The shared prefix's outcomes were replayed, not dispatched again.
    outcomes = (jf.EffectCompleted, jf.EffectFailed)
    shared = sum(isinstance(s.event, outcomes) for s in events[:at])
    assert run.stats.replayed == shared
    assert _fingerprint(recorded) == parent
    assert recorded.engine.verify(recorded.run_id).ok
    assert recorded.engine.verify(info.run_id).ok


def test_fork_and_resume_with_changed_code_runs_the_new_code(
    recorded: Recorded,
) -> None:
    import tt_flows  # on sys.path through the recorded fixture

    engine, run_id = recorded.engine, recorded.run_id
    parent = _fingerprint(recorded)
    side_before = len(recorded.side_lines())
    at = _map_stage(recorded)
    info = engine.fork(run_id, at, "r1-v2")

    run = engine.resume(info.run_id, process=tt_flows.process_v2)
    assert run.status == "completed"
    assert run.result == {**recorded.result, "outs": [3, 6, 9]}
    # Only the map stage ran: three triples, nothing of the shared prefix.
    new_lines = recorded.side_lines()[side_before:]
    assert sorted(new_lines) == ["triple 1", "triple 2", "triple 3"]
    assert run.stats.dispatched == 3

    # The fork's journal holds the new calls after the shared prefix.
    tasks = {
        key_of(s): s.event.task
        for s in engine.events(info.run_id)
        if isinstance(s.event, jf.EffectRequested)
    }
    assert tasks["4.0.0"] == "tt.triple" and tasks["0"] == "tt.double"

    # The parent is untouched.
    assert _fingerprint(recorded) == parent
    assert engine.verify(run_id).ok
    assert engine.status(run_id).status == "completed"
    assert engine.result(run_id) == recorded.result


def test_fork_records_parent_and_fork_point_in_status_json(
    recorded: Recorded, invoke_json: Callable[..., Any]
) -> None:
    recorded.engine.fork(recorded.run_id, 5, "r1-at-5")
    doc = invoke_json("status", "r1-at-5")
    assert (doc["parent"], doc["fork_at"], doc["events"]) == ("r1", 5, 5)
    # Not started yet: queued (resume it, or a worker allowed its process will).
    assert (doc["status"], doc["stored_status"]) == ("queued", "queued")
    parent = invoke_json("status", "r1")
    assert (parent["parent"], parent["fork_at"]) == (None, None)
    listed = {r["run_id"]: r["parent"] for r in invoke_json("runs")}
    assert listed == {"r1": None, "r1-at-5": "r1"}


def test_fork_at_the_last_event_of_a_completed_run_is_completed(
    recorded: Recorded,
) -> None:
    total = len(recorded.events())
    info = recorded.engine.fork(recorded.run_id, total, "r1-all")
    assert info.status == "completed"
    assert recorded.engine.resume("r1-all").result == recorded.result


def test_fork_refuses_a_taken_id_and_a_point_out_of_range(recorded: Recorded) -> None:
    engine = recorded.engine
    with pytest.raises(RunExistsError):
        engine.fork(recorded.run_id, 3, recorded.run_id)
    for at in (0, len(recorded.events()) + 1):
        with pytest.raises(ValueError, match="outside"):
            engine.fork(recorded.run_id, at, "nope")
