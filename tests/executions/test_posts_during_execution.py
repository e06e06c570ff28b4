"""A post that lands while the run executes is seen by that execution.

A real child process runs a process that waits on an external effect beside a
slow in-process task; while the task runs, this process posts the external
result (a result, a signal, a breakpoint approval). The execution must end
completed, with no further ``iterate``: it may not record ``run_waiting`` for
an answer that is already in the journal.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import journal_format as jf
from replay_engine import Engine

from .conftest import finish, requested, run_in_child, wait_until
from .exec_flows import side_lines


def _post_result(engine: Engine, run_id: str) -> None:
    engine.post(run_id, "0.0.0", result={"ok": True})


def _post_signal(engine: Engine, run_id: str) -> None:
    engine.post_event(run_id, "go", {"green": True})


def _approve(engine: Engine, run_id: str) -> None:
    engine.post(run_id, "0.0.0", result={"approved": True, "response": "ship"})


CASES = [
    ("result_during", _post_result, {"ok": True}),
    ("signal_during", _post_signal, {"green": True}),
    ("approval_during", _approve, {"approved": True, "response": "ship"}),
]


@pytest.mark.parametrize(
    ("process", "post", "answer"), CASES, ids=[c[0] for c in CASES]
)
def test_post_during_execution_is_seen(
    engine: Engine,
    journal: Path,
    side: Path,
    tmp_path: Path,
    process: str,
    post: Any,
    answer: Any,
) -> None:
    gate = tmp_path / "gate"
    proc = run_in_child("run", journal, "r", process, {"gate": str(gate)}, side=side)
    try:
        # The external wait is recorded (a signal wait records nothing until
        # it is answered: its branch runs first, so the gated task's request
        # means it is parked) and the gated task is running.
        wait_until("the gated task to run", lambda: bool(side_lines(side)), proc)
        wait_until(
            "the gate's request", lambda: "0.1.0" in requested(engine, "r"), proc
        )
        post(engine, "r")
        gate.touch()
        out = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert out["status"] == "completed", out
    assert out["result"] == [answer, "opened"]
    assert engine.status("r").status == "completed"
    # Not one run_waiting: the execution saw the post before it stopped.
    tags = [jf.event_tag(s.event) for s in engine.events("r")]
    assert "run_waiting" not in tags, tags
    # One execution (the run's first, named by run_started), however many
    # passes it took to see the post.
    assert "execution" not in tags, tags


def test_post_during_an_iterate_is_seen(
    engine: Engine, journal: Path, side: Path, tmp_path: Path
) -> None:
    """The wake-up path: an iterate (as a worker runs it) sees a post made meanwhile."""
    gate = tmp_path / "gate"
    run = engine.run(
        "tests.executions.exec_flows:iterate_during", {"gate": str(gate)}, run_id="i"
    )
    assert run.pending == ["0"]
    engine.post("i", "0", result="one")
    proc = run_in_child("iterate", journal, "i", side=side)
    try:
        wait_until("the gated task to run", lambda: bool(side_lines(side)), proc)
        wait_until(
            "the review's request", lambda: "1.0.0" in requested(engine, "i"), proc
        )
        engine.post("i", "1.0.0", result="two")
        gate.touch()
        out = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert out["status"] == "completed", out
    assert out["result"] == ["one", "two", "opened"]
    assert out["stats"]["dispatched"] == 1  # the gate, once, over both passes
    events = engine.events("i")
    tags = [jf.event_tag(s.event) for s in events]
    assert tags.count("run_waiting") == 1, tags  # the run's, before the iterate
    opened = [s.event for s in events if isinstance(s.event, jf.ExecutionStarted)]
    assert [(e.why, e.pid) for e in opened] == [("wake", proc.pid)]
