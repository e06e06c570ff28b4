"""Executions are journaled, and effects dispatched again after a crash are counted.

A real child SIGKILLed while a task is in flight; the resume dispatches that
task again (``stats.redispatched``), and ``log`` says which request ran twice.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import journal_format as jf
from replay_engine import Engine
from tests.journal_views import tags

from .conftest import cli, cli_json, killed_in_gate
from .exec_flows import side_lines


def test_a_task_in_flight_at_a_kill_is_redispatched_and_named(
    engine: Engine,
    journal: Path,
    side: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gate = tmp_path / "gate"
    child = killed_in_gate(journal, side, gate)
    gate.touch()
    monkeypatch.setenv("REPLAY_EXEC_SIDE", str(side))
    run = engine.resume("r")
    assert run.status == "completed" and run.result == [1, 2, "opened", 3]
    # Dispatched: the gate again (in flight at the kill) and the last task.
    assert (run.stats.dispatched, run.stats.redispatched) == (2, 1)
    assert run.stats.replayed == 2
    ran = [line["key"] for line in side_lines(side)]
    assert sorted(ran) == ["0", "1", "2", "2", "3"]  # the gate ran twice

    events = engine.events("r")
    first = events[0].event
    assert isinstance(first, jf.RunStarted) and first.pid == child
    executions = [s for s in events if isinstance(s.event, jf.ExecutionStarted)]
    assert [(s.event.pid, s.event.why) for s in executions] == [(os.getpid(), "resume")]
    assert executions[0].event.host == os.uname().nodename
    assert engine.verify("r").ok

    # `status` counts the executions and names the latest.
    status = cli_json(journal, "status", "r")
    assert status["executions"] == 2
    latest = status["last_execution"]
    assert (latest["seq"], latest["why"], latest["pid"]) == (
        executions[0].seq,
        "resume",
        os.getpid(),
    )
    assert f"2 (latest: resume, pid {os.getpid()}" in cli(journal, "status", "r").stdout

    # `log` says which request ran twice.
    log = cli_json(journal, "log", "r")
    marked = {d["key"]: d["redispatched"] for d in log if d["type"] == "requested"}
    assert marked == {"0": 0, "1": 0, "2": 1, "3": 0}
    assert [d["fields"]["why"] for d in log if d["type"] == "execution"] == ["resume"]
    human = cli(journal, "log", "r").stdout
    assert "dispatched again by 1 later execution" in human
    assert f"resume: pid {os.getpid()}" in human
    # Also for a slice that ends before the re-dispatch.
    sliced = cli_json(journal, "log", "r", "--to", str(executions[0].seq - 1))
    assert [d["redispatched"] for d in sliced if d["key"] == "2"] == [1]
    exported = [
        json.loads(line)
        for line in cli(journal, "export", "r", "--format", "jsonl").stdout.splitlines()
    ]
    assert [e["why"] for e in exported if e["type"] == "execution"] == ["resume"]
    html = tmp_path / "t.html"
    cli(journal, "timeline", "r", "-o", str(html))
    page = html.read_text()
    assert "resume (pid" in page and "dispatched again in execution 2" in page


def test_an_execution_that_writes_nothing_leaves_no_trace(
    engine: Engine, journal: Path
) -> None:
    run = engine.run(
        "tests.executions.exec_flows:result_during", {"gate": "/"}, run_id="w"
    )
    assert run.status == "waiting"
    before = tags(engine, "w")
    assert "execution" not in before
    assert engine.iterate("w").status == "waiting"  # nothing new: nothing written
    assert tags(engine, "w") == before
    engine.post("w", "0.0.0", result={"ok": True})
    assert engine.iterate("w", why="wake").status == "completed"
    after = engine.events("w")
    opened = [s.event for s in after if isinstance(s.event, jf.ExecutionStarted)]
    assert [e.why for e in opened] == ["wake"]
    # It opens what that execution wrote: right after the post.
    assert tags(engine, "w")[len(before) :] == [
        "completed",
        "execution",
        "run_completed",
    ]
    assert engine.resume("w").status == "completed"  # completed: nothing written
    assert len(engine.events("w")) == len(after)
    with pytest.raises(ValueError, match="why must be one of"):
        engine.resume("w", why="because")


def test_the_first_execution_of_a_fork_says_fork(engine: Engine) -> None:
    engine.run("tests.executions.exec_flows:result_during", {"gate": "/"}, run_id="p")
    engine.post("p", "0.0.0", result={"ok": True})
    engine.fork("p", at=len(engine.events("p")), new_run_id="f")
    assert engine.resume("f").status == "completed"
    opened = [
        s.event.why
        for s in engine.events("f")
        if isinstance(s.event, jf.ExecutionStarted)
    ]
    assert opened == ["fork"]
