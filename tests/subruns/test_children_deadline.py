"""A parent's deadline ends its unfinished children (docs/design.md, "Sub-runs").

A parent that times out cancels its children that have not ended, and so on
down, as ``cancel`` of the parent does: whether the parent timed out while it
executed a child inline, or while it waited on one and the deadline was
found passed by the next resume.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from replay_engine import Engine, PostRejected
from tests.subruns import child_flows as flows


def test_a_parent_timing_out_mid_child_cancels_the_child(
    engine: Engine, side: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHILD_SLOW", "c:3")
    run = engine.run(flows.parent, {}, run_id="p", deadline=0.5)
    assert run.status == "timed_out"
    child = engine.status("p--1")
    assert child.status == "cancelled"
    assert child.cancel_reason is not None
    assert "'p'" in child.cancel_reason and "timed out" in child.cancel_reason
    # Ended for good: a resume of the child runs nothing.
    assert engine.resume("p--1", process=flows.leaf).status == "cancelled"


def test_grandchildren_end_too(
    engine: Engine, side: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHILD_SLOW", "m1:3")
    run = engine.run(flows.grand, {}, run_id="p", deadline=0.5)
    assert run.status == "timed_out"
    assert engine.status("p--0").status == "cancelled"
    grandchild = engine.status("p--0--0")
    assert grandchild.status == "cancelled"
    assert grandchild.cancel_reason is not None and "'p--0'" in grandchild.cancel_reason


def test_a_waiting_parent_found_past_its_deadline_cancels_its_waiting_child(
    engine: Engine, side: Path
) -> None:
    run = engine.run(flows.waits_on_child, {}, run_id="p", deadline=0.3)
    assert run.status == "waiting"
    assert engine.status("p--0").status == "waiting"
    time.sleep(0.5)
    assert engine.resume("p").status == "timed_out"
    assert engine.status("p--0").status == "cancelled"
    with pytest.raises(PostRejected):
        engine.post("p--0", "0", result={"ok": 1})


def test_a_parent_within_its_deadline_leaves_its_children_alone(
    engine: Engine, side: Path
) -> None:
    run = engine.run(flows.waits_on_child, {}, run_id="p", deadline=60.0)
    assert run.status == "waiting"
    assert engine.resume("p").status == "waiting"
    assert engine.status("p--0").status == "waiting"
