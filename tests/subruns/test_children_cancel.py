"""Cancel a parent executing a child in another process: both end ``cancelled``."""

from __future__ import annotations

import signal
import time
from pathlib import Path

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
