"""Run deadlines (issue 13): ``run --timeout`` / ``Engine.run(deadline=...)``.

An execution past its deadline stops as on a cancel and records
``run_timed_out``; a run whose deadline passes while it waits is timed out by
the next ``iterate``/``resume``, which executes nothing; a waiting run's
``next_due`` names the deadline so that whoever wakes runs wakes it then.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import pytest

import journal_format as jf
from replay_engine import Engine

from .cancel_flows import blocked_sync, read_side, waits
from .conftest import Cli


def test_timeout_stops_a_run_blocked_in_a_task(
    journal: Path, side: Path, cli: Cli
) -> None:
    started = time.monotonic()
    done = cli(
        "run",
        "tests.cancel.cancel_flows:blocked_async",
        "--run-id",
        "t1",
        "--timeout",
        "1",
        "--json",
        code=1,
    )
    took = time.monotonic() - started
    assert json.loads(done.stdout)["status"] == "timed_out"
    assert took < 8.0, took  # the task would block for 60 s (generous bound)
    with Engine(str(journal), create=False) as engine:
        info = engine.status("t1")
        assert info.status == "timed_out" and info.deadline is not None
        last = engine.events("t1")[-1].event
        assert isinstance(last, jf.RunTimedOut)
        assert (
            last.deadline_ns == int(info.deadline.timestamp() * 1e9)
            or abs(last.deadline_ns / 1e9 - info.deadline.timestamp()) < 1e-3
        )
        assert engine.verify("t1").ok
    names = [(line["what"], line["name"]) for line in read_side(side)]
    assert ("cancelled", "async_block") in names  # the async task was cancelled
    assert ("start", "after") not in names
    assert "timed_out" in cli("status", "t1", code=0).stdout
    assert "run_timed_out" in cli("log", "t1", code=0).stdout
    assert '"t1"' in cli("runs", "--status", "timed_out", "--json", code=0).stdout


def test_a_deadline_in_python_abandons_a_sync_task(journal: Path, side: Path) -> None:
    with Engine(str(journal)) as engine:
        run = engine.run(
            blocked_sync,
            {"seconds": 2.0},
            run_id="s1",
            deadline=dt.timedelta(seconds=0.5),
        )
        assert run.status == "timed_out"
        time.sleep(2.0)  # the abandoned task ends in its thread meanwhile
        tags = [jf.event_tag(s.event) for s in engine.events("s1")]
        assert tags[-1] == "run_timed_out"
        assert "completed" not in tags[3:]  # key 1 never got an outcome
        assert engine.resume("s1").status == "timed_out"  # terminal, as it is


def test_a_waiting_run_past_its_deadline_is_timed_out_by_the_next_iterate(
    journal: Path, side: Path, cli: Cli
) -> None:
    with Engine(str(journal)) as engine:
        # Room for a CLI subprocess to start before it (seconds on a loaded host).
        deadline = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=6)
        run = engine.run(waits, {}, run_id="w1", deadline=deadline)
        assert run.status == "waiting"
        # Whoever wakes waiting runs (an orchestrator, a worker) sees it due then.
        assert run.next_due is not None
        assert abs((run.next_due - deadline).total_seconds()) < 0.01
        waiting = engine.waiting("w1").next_due
        assert waiting is not None and abs((waiting - deadline).total_seconds()) < 0.01
        assert engine.iterate("w1").status == "waiting"  # not yet due
        before = [jf.event_tag(s.event) for s in engine.events("w1")]
    due = json.loads(cli("iterate", "w1", code=3).stdout)["next_due"]
    assert dt.datetime.fromisoformat(due) == waiting
    time.sleep(max(0.0, (deadline - dt.datetime.now(dt.UTC)).total_seconds()) + 0.1)
    ran = read_side(side)
    assert json.loads(cli("iterate", "w1", code=1).stdout)["status"] == "timed_out"
    assert read_side(side) == ran
    with Engine(str(journal), create=False) as engine:
        after = [jf.event_tag(s.event) for s in engine.events("w1")]
        assert after == [*before, "run_timed_out"]
        with pytest.raises(Exception, match="timed out"):
            engine.post("w1", "1", result={"ok": True})


def test_resume_past_the_deadline_records_timed_out_without_executing(
    journal: Path, side: Path, cli: Cli
) -> None:
    with Engine(str(journal)) as engine:
        engine.run(waits, {}, run_id="w1", deadline=0.3)
    cli("post", "w1", "1", "--result", '{"ok": true}', code=0)
    time.sleep(0.5)
    ran = read_side(side)
    assert json.loads(cli("resume", "w1", "--json", code=1).stdout)["status"] == (
        "timed_out"
    )
    assert read_side(side) == ran  # the "after" task never ran


@pytest.mark.parametrize(
    "deadline",
    [dt.datetime(2030, 1, 1), float("nan"), "soon"],
    ids=["naive", "nan", "text"],
)
def test_a_bad_deadline_is_refused_and_records_nothing(
    journal: Path, deadline: object
) -> None:
    with Engine(str(journal)) as engine:
        with pytest.raises((ValueError, TypeError)):
            engine.run(waits, {}, run_id="bad", deadline=deadline)  # type: ignore[arg-type]
        assert engine.runs() == []
