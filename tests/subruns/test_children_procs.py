"""Parents and children across processes: cancel cascade, a child held elsewhere."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

import journal_format as jf
from replay_engine import Engine
from tests.children import start_python
from tests.subruns import child_flows as flows

RUN = r"""
import sys
from replay_engine import Engine
from tests.subruns import child_flows as flows
engine = Engine(sys.argv[1], durability="process")
run = engine.run(flows.parent, {}, run_id="p")
print(run.status, flush=True)
"""


def _wait_for(what: str, check: object, timeout: float = 60) -> None:
    give_up = time.monotonic() + timeout
    while time.monotonic() < give_up:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_cancel_stops_a_parent_executing_a_child_elsewhere(
    journal_dir: Path, tmp_path: Path
) -> None:
    side = tmp_path / "side.txt"
    side.touch()
    proc = start_python(
        RUN, str(journal_dir), **{flows.SIDE_ENV: str(side), "CHILD_SLOW": "c:20"}
    )
    try:
        # The child's first step is running (it sleeps 20 s in a thread).
        _wait_for("the child's step", lambda: "step c 2" in side.read_text())
        engine = Engine(journal_dir, durability="process")
        assert engine.status("p--1").status == "running"
        info = engine.cancel("p", reason="stop all")
        assert info.status == "cancelled"
        child = engine.status("p--1")
        assert child.status == "cancelled"
        assert child.cancel_reason is not None and "stop all" in child.cancel_reason
        # The parent never went on past its child.
        assert "step p 3" not in side.read_text()
        tags = [jf.event_tag(s.event) for s in engine.events("p")]
        assert tags[-1] == "run_cancelled"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)


RESUME_CHILD = r"""
import sys
from replay_engine import Engine
from tests.subruns import child_flows as flows
engine = Engine(sys.argv[1], durability="process")
print(engine.resume("p--1", process=flows.leaf).status, flush=True)
"""


def test_a_child_executed_elsewhere_makes_its_parent_wait_then_reports_to_it(
    journal_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    side = tmp_path / "side.txt"
    side.touch()
    monkeypatch.setenv(flows.SIDE_ENV, str(side))
    steps = lambda: side.read_text().splitlines()  # noqa: E731
    # A run killed mid-child: the child's first step was in flight.
    first = start_python(
        RUN, str(journal_dir), **{flows.SIDE_ENV: str(side), "CHILD_SLOW": "c:60"}
    )
    _wait_for("the child's step", lambda: "step c 2" in steps())
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=30)
    # Another process resumes the child alone and holds it (a slow step).
    other = start_python(
        RESUME_CHILD,
        str(journal_dir),
        **{flows.SIDE_ENV: str(side), "CHILD_SLOW": "c:5"},
    )
    try:
        _wait_for("the child's step again", lambda: steps().count("step c 2") == 2)
        engine = Engine(journal_dir, durability="process")
        run = engine.resume("p", process=flows.parent)
        # The child is someone else's to execute: the parent waits on it.
        assert (run.status, run.pending) == ("waiting", ["1"])
        assert engine.status("p").waiting_on == ("p--1",)
        out, err = other.communicate(timeout=60)
        assert other.returncode == 0 and out.strip() == "completed", err
        # The child's end was journaled into the parent: it completes here.
        run = engine.resume("p", process=flows.parent)
        assert run.result == {
            "first": 10,
            "child": {"name": "c", "sum": 50},
            "last": 30,
        }
        assert steps().count("step c 3") == 1 and steps().count("step p 3") == 1
        assert steps().count("step p 1") == 1
    finally:
        if other.poll() is None:
            other.send_signal(signal.SIGKILL)
            other.communicate(timeout=30)
