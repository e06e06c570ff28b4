"""Terminal runs stay terminal; a failed group's pending siblings are abandoned."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import journal_format as jf
from replay_engine import Engine, PostRejected
from tests.journal_views import snapshot, tags

from . import ext_flows as f
from .ext_flows import read_side


def abandoned_events(engine: Engine, run_id: str) -> dict[str, str]:
    return {
        jf.key_bytes_to_text(s.event.key): s.event.reason
        for s in engine.events(run_id)
        if isinstance(s.event, jf.EffectAbandoned)
    }


def test_failed_branch_abandons_its_waiting_siblings(
    engine: Engine, invoke_json: Callable[..., Any], side: Path
) -> None:
    n = 5
    run = engine.run(f.fail_fast, {"n": n}, run_id="ff")
    assert run.status == "failed"
    assert run.error is not None and "branch 0 failed" in run.error.message
    siblings = [f"0.{j}.0" for j in range(1, n)]
    # The journal records each abandonment, naming the group and branch.
    reasons = abandoned_events(engine, "ff")
    assert sorted(reasons) == siblings
    assert all("parallel group 0 failed at branch 0" in r for r in reasons.values())
    # pending reports them, flagged.
    pending = engine.pending("ff")
    assert [p.key for p in pending] == siblings
    assert all(p.abandoned for p in pending)
    # status: failed, with the error; nothing left to wait for.
    info = engine.status("ff")
    assert info.status == "failed" and info.error is not None and info.pending == ()
    doc = invoke_json("pending", "ff")
    assert doc["status"] == "failed"
    assert [(p["key"], p["abandoned"]) for p in doc["pending"]] == [
        (k, True) for k in siblings
    ]
    # Nobody can post to them, nor claim them.
    before = snapshot(engine, "ff")
    for key in siblings:
        with pytest.raises(PostRejected):
            engine.post("ff", key, result=1)
    with pytest.raises(PostRejected):
        engine.claim("ff", "w", lease=60, limit=None)
    assert snapshot(engine, "ff") == before
    # Iterating the failed run re-executes it with the same outcome, and
    # neither records the abandonment twice nor re-runs the failed task.
    events = len(engine.events("ff"))
    again = engine.iterate("ff")
    assert again.status == "failed"
    assert len(engine.events("ff")) == events
    assert abandoned_events(engine, "ff") == reasons
    assert [x["what"] for x in read_side(side)] == ["boom"]


def test_abandoned_keys_refuse_posts_while_the_run_goes_on(engine: Engine) -> None:
    run = engine.run(f.caught_group, {"n": 4}, run_id="cg")
    assert run.status == "waiting"
    assert run.pending == ["1"]  # only the gate: the siblings are not waited on
    state = {p.key: p.abandoned for p in engine.pending("cg")}
    assert state == {"0.1.0": True, "0.2.0": True, "0.3.0": True, "1": False}
    before = snapshot(engine, "cg")
    for key in ("0.1.0", "0.2.0", "0.3.0"):
        with pytest.raises(PostRejected) as info:
            engine.post("cg", key, result="too late")
        assert info.value.reason == "abandoned"
        assert "abandoned" in str(info.value)
    assert snapshot(engine, "cg") == before
    # Claims skip abandoned effects: only the gate is handed out.
    assert [p.key for p in engine.claim("cg", "w", lease=60, limit=None)] == ["1"]
    engine.post("cg", "1", result="open", by="w")
    run = engine.iterate("cg")
    assert run.status == "completed"
    assert run.result == {"caught": "builtins.RuntimeError", "gate": "open"}
    assert tags(engine, "cg").count("abandoned") == 3


def test_failure_posted_by_an_agent_abandons_higher_branches(engine: Engine) -> None:
    engine.run(f.fan, {"n": 4}, run_id="a")
    engine.post("a", "0.0.0", error="agent could not do it")
    run = engine.iterate("a")
    assert run.status == "failed"
    assert sorted(abandoned_events(engine, "a")) == ["0.1.0", "0.2.0", "0.3.0"]


def test_completed_run_iterate_changes_nothing(engine: Engine, side: Path) -> None:
    engine.run(f.one_external, None, run_id="r")
    engine.post("r", "1", result="x")
    done = engine.iterate("r")
    assert done.status == "completed"
    before = snapshot(engine, "r")
    for _ in range(3):
        again = engine.iterate("r")
        assert again.status == "completed" and again.result == done.result
        again = engine.resume("r")
        assert again.status == "completed" and again.result == done.result
    assert snapshot(engine, "r") == before
    assert tags(engine, "r").count("run_completed") == 1
    assert [x["what"] for x in read_side(side)] == ["prepare"]
