"""A fail-fast group journals its decision and replays it exactly (JF-144).

The sibling of the failing branch is cancelled while it waits on a
``ctx.sleep`` timer, where it has no effect to abandon. Without the
``failed_fast`` decision, a replay after the timer fell due would wake it:
it would record a new request (``0.0.1``), which the group then abandons at
once. With it, replay executes only the failing branch and records nothing
new, also after a SIGKILL in a real subprocess.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

import journal_format as jf
from replay_engine import Engine, NonDeterminismError
from tests.children import start_python

from .par_flows import (
    SIDE_ENV,
    fail_fast_napper,
    fail_fast_three,
    fail_fast_three_plain,
    read_side,
)

NAP = 0.3


def _events(engine: Engine, run_id: str) -> list[jf.Event]:
    return [s.event for s in engine.events(run_id)]


def _at(events: list[jf.Event], key: str) -> list[str]:
    return [
        jf.event_tag(e)
        for e in events
        if isinstance(getattr(e, "key", None), bytes)
        and jf.key_bytes_to_text(e.key) == key  # type: ignore[attr-defined]
    ]


@pytest.mark.spec("JF-144")
def test_the_decision_is_journaled_once(engine: Engine) -> None:
    run = engine.run(fail_fast_napper, {"nap": 60.0}, run_id="r")
    assert run.status == "completed"
    assert run.result["failed"] == "0.1.0"
    events = _events(engine, "r")
    (decided,) = [e for e in events if isinstance(e, jf.FailedFast)]
    assert (jf.key_bytes_to_text(decided.key), decided.branch) == ("0", 1)
    assert decided.cancelled == [0]
    # The decision is committed with the failure before anything after the group.
    seqs = {jf.event_tag(e): i for i, e in enumerate(events)}
    assert seqs["failed_fast"] < max(
        i for i, e in enumerate(events) if isinstance(e, jf.EffectRequested)
    )


@pytest.mark.spec("JF-144")
def test_replay_after_the_timer_fell_due_records_nothing_new(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    side = tmp_path / "side.jsonl"
    monkeypatch.setenv(SIDE_ENV, str(side))
    inputs = {"nap": NAP, "then": "agent"}
    run = engine.run(fail_fast_napper, inputs, run_id="r")
    assert run.status == "waiting"
    before = _events(engine, "r")
    time.sleep(NAP + 0.2)  # the cancelled sibling's timer is now due
    engine.post("r", "1", result="posted")
    run = engine.resume("r", process=fail_fast_napper)
    assert run.status == "completed"
    assert run.result == {"failed": "0.1.0", "after": "posted"}
    after = _events(engine, "r")[len(before) :]
    assert _at(after, "0.0.0") == [] and _at(after, "0.0.1") == []
    assert not [e for e in after if isinstance(e, jf.EffectAbandoned)]
    assert [x for x in read_side(side) if x.get("i") == 0] == []
    # A replay of the whole history agrees, dispatching nothing.
    snapshot = engine.replay("r", process=fail_fast_napper)
    assert snapshot.result == run.result


def test_a_group_that_now_succeeds_where_it_failed_fast_diverges(
    engine: Engine,
) -> None:
    inputs = {"settled": False, "fail_fast": True}
    run = engine.run(fail_fast_three, inputs, run_id="r")
    assert run.result == {"failed": "0.1.0"}
    assert [e.branch for e in _events(engine, "r") if isinstance(e, jf.FailedFast)]
    with pytest.raises(NonDeterminismError, match="failed at branch 1"):
        engine.replay("r", process=fail_fast_three_plain)


CHILD = r"""
import sys
from replay_engine import Engine
from tests.parallel.par_flows import fail_fast_napper
engine = Engine(sys.argv[1])
print("ready", flush=True)
engine.run(fail_fast_napper, {"nap": %r, "delay": 1.0}, run_id="r")
print("done", flush=True)
"""


@pytest.mark.spec("JF-144")
def test_sigkill_after_the_decision_then_resume(tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    side = tmp_path / "side.jsonl"
    with start_python(CHILD % NAP, str(journal), **{SIDE_ENV: str(side)}) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
            deadline = time.monotonic() + 60
            while not [x for x in read_side(side) if x.get("i") == 9]:
                assert time.monotonic() < deadline, "the child never reached key 1"
                time.sleep(0.02)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
    time.sleep(NAP + 0.2)  # the cancelled sibling's timer is due at the resume
    with Engine(str(journal)) as engine:
        before = _events(engine, "r")
        assert [e.branch for e in before if isinstance(e, jf.FailedFast)] == [1]
        run = engine.resume("r", process=fail_fast_napper)
        assert run.status == "completed"
        assert run.result == {"failed": "0.1.0", "after": 90}
        after = _events(engine, "r")[len(before) :]
        assert _at(after, "0.0.0") == [] and _at(after, "0.0.1") == []
        assert not [
            e for e in after if isinstance(e, jf.EffectAbandoned | jf.FailedFast)
        ]
    assert [x for x in read_side(side) if x.get("i") == 0] == []
