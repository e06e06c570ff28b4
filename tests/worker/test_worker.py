"""Real ``replay-engine worker`` subprocesses on a real LMDB journal.

Dispatches are counted from side files the tasks append to, never from the
engine's own counters.
"""

from __future__ import annotations

import json
import signal
from collections import Counter
from pathlib import Path

import journal_format as jf
from replay_engine import Engine
from replay_engine._store.lock import RunLock
from tests.worker import worker_flows as wf
from tests.worker.procs import FLOWS, Child, start_worker, wait_for

SQUARES_6 = sum(i * i for i in range(6))


def _status(engine: Engine, run_id: str) -> str:
    return engine.status(run_id).status


def _completed_keys(engine: Engine, run_id: str) -> set[bytes]:
    return {
        s.event.key
        for s in engine.events(run_id)
        if isinstance(s.event, jf.EffectCompleted)
    }


def _steps_per_key(side: Path, run_id: str) -> Counter[str]:
    return Counter(
        w[2] for w in wf.read_lines(side) if w[0] == "step" and w[1] == run_id
    )


def test_a_killed_executor_is_recovered_by_a_worker(
    tmp_path: Path, procs: list[Child]
) -> None:
    journal, side = tmp_path / "j", tmp_path / "side"
    inputs = {"n": 6, "delay": 0.25, "side": str(side)}
    runner = Child(
        journal,
        "run",
        f"{FLOWS}:steps",
        "--input",
        json.dumps(inputs),
        "--run-id",
        "r1",
        "--durability",
        "process",
    )
    procs.append(runner)
    wait_for(lambda: len(_steps_per_key(side, "r1")) >= 3, 30, "three steps")
    runner.kill()
    with Engine(str(journal), durability="process") as engine:
        assert _status(engine, "r1") == "interrupted"  # nobody will iterate it
        done_at_kill = _completed_keys(engine, "r1")
        worker = start_worker(journal, ["steps"], "--recovery-grace", "0.3")
        procs.append(worker)
        wait_for(lambda: _status(engine, "r1") == "completed", 60, "recovery")
        assert engine.result("r1") == SQUARES_6
    worker.wait_line(lambda line: line.startswith("started r1 (recovery)"))
    per_key = _steps_per_key(side, "r1")
    assert len(per_key) == 6
    for key in done_at_kill:
        assert per_key[jf.key_bytes_to_text(key)] == 1, per_key  # never again
    assert all(count <= 2 for count in per_key.values())


def test_a_sleeping_run_completes_with_no_one_iterating(
    tmp_path: Path, procs: list[Child]
) -> None:
    journal = tmp_path / "j"
    with Engine(str(journal), durability="process") as engine:
        engine.submit(wf.sleeper, {"seconds": 1.0}, run_id="s1")
        procs.append(start_worker(journal, ["sleeper"]))
        wait_for(lambda: _status(engine, "s1") == "waiting", 30, "the timer to park")
        wait_for(lambda: _status(engine, "s1") == "completed", 30, "the timer to fire")
        assert engine.result("s1") == "slept"
        tags = [jf.event_tag(s.event) for s in engine.events("s1")]
        assert "run_waiting" in tags and "timer_fired" in tags


def test_a_post_completes_the_run_with_no_one_iterating(
    tmp_path: Path, procs: list[Child]
) -> None:
    journal = tmp_path / "j"
    with Engine(str(journal), durability="process") as engine:
        assert engine.run(wf.asks, None, run_id="a1").status == "waiting"
        worker = start_worker(journal, ["asks"])
        procs.append(worker)
        engine.post("a1", "0", result={"lgtm": True})
        wait_for(lambda: _status(engine, "a1") == "completed", 30, "the wake")
        assert engine.result("a1") == {"answer": {"lgtm": True}}
    worker.wait_line(lambda line: line.startswith("started a1 (wake)"))


def test_sigterm_drains_exits_0_and_leaves_nothing_locked(
    tmp_path: Path, procs: list[Child]
) -> None:
    journal, side = tmp_path / "j", tmp_path / "side"
    with Engine(str(journal), durability="process") as engine:
        for i in range(3):
            engine.submit(
                wf.steps, {"n": 20, "delay": 0.2, "side": str(side)}, run_id=f"d{i}"
            )
        worker = start_worker(journal, ["steps"], "--grace", "5")
        procs.append(worker)
        wait_for(lambda: len(wf.read_lines(side)) >= 3, 30, "work in progress")
        worker.signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
        last = worker.lines[-1]
        assert last.startswith("worker stopped by SIGTERM: started 3"), worker.lines
        for i in range(3):
            RunLock(engine.path, f"d{i}").release()  # nobody holds any run
            assert _status(engine, f"d{i}") == "interrupted"  # not failed
        # Every effect that started finished within the grace (0.2 s each).
        steps = wf.read_lines(side)
        for i in range(3):
            done = _completed_keys(engine, f"d{i}")
            assert len(done) == len(_steps_per_key(side, f"d{i}"))
        # Another worker carries them on, each completed effect never again.
        again = start_worker(journal, ["steps"], "--recovery-grace", "0.2")
        procs.append(again)
        for i in range(3):
            wait_for(
                lambda i=i: _status(engine, f"d{i}") == "completed", 60, "recovery"
            )
        assert len(wf.read_lines(side)) == 60
        assert len(steps) <= 60


def test_a_sigkilled_worker_s_runs_are_finished_by_the_other(
    tmp_path: Path, procs: list[Child]
) -> None:
    journal, side = tmp_path / "j", tmp_path / "side"
    runs = [f"k{i}" for i in range(6)]
    with Engine(str(journal), durability="process") as engine:
        for run_id in runs:
            engine.submit(
                wf.steps, {"n": 6, "delay": 0.15, "side": str(side)}, run_id=run_id
            )
        doomed = start_worker(journal, ["steps"], "--max-runs", "3")
        procs.append(doomed)
        wait_for(lambda: len(wf.read_lines(side)) >= 4, 30, "the first worker's work")
        doomed.kill()
        other = start_worker(journal, ["steps"], "--recovery-grace", "0.3")
        procs.append(other)
        for run_id in runs:
            wait_for(lambda r=run_id: _status(engine, r) == "completed", 60, run_id)
            assert engine.result(run_id) == sum(i * i for i in range(6))
            per_key = _steps_per_key(side, run_id)
            assert len(per_key) == 6 and max(per_key.values()) <= 2
        recovered = [line for line in other.lines if "(recovery)" in line]
        assert recovered, other.lines


def test_a_worker_leaves_runs_of_processes_it_may_not_run(
    tmp_path: Path, procs: list[Child]
) -> None:
    journal, side = tmp_path / "j", tmp_path / "side"
    with Engine(str(journal), durability="process") as engine:
        engine.submit(wf.other, None, run_id="not-mine")
        engine.submit(wf.steps, {"n": 1, "side": str(side)}, run_id="mine")
        worker = start_worker(journal, ["steps"])
        procs.append(worker)
        wait_for(lambda: _status(engine, "mine") == "completed", 30, "the allowed run")
        worker.wait_line(lambda line: line.startswith("skipped not-mine"))
        engine.submit(wf.steps, {"n": 1, "side": str(side)}, run_id="mine2")
        wait_for(lambda: _status(engine, "mine2") == "completed", 30, "a later run")
        assert _status(engine, "not-mine") == "queued"
        assert sum(1 for line in worker.lines if "not-mine" in line) == 1  # logged once
