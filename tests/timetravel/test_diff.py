"""``replay-engine diff RUN_A RUN_B``: the first divergent key, then a summary.

The comparison itself (``replay_engine._cli.run_diff``, public API only) is
checked directly too, without the CLI. Exit codes: 0 the same calls with the
same results (and the same end), 1 they differ, 2 an unknown run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import journal_format as jf
from replay_engine import Engine
from replay_engine._cli import run_diff
from tests.adversarial import cli, make_journal
from tests.security.test_terminal import TERMINAL, assert_literal, write_runs

from .conftest import Invoke, Recorded


def _fork_point(recorded: Recorded) -> int:
    """The event count just before the map stage (key 4) was first requested."""
    return next(
        s.seq
        for s in recorded.events()
        if isinstance(s.event, jf.EffectRequested)
        and jf.key_bytes_to_text(s.event.key).startswith("4.")
    )


@pytest.fixture
def changed(recorded: Recorded) -> str:
    """A fork of r1 before its map stage, resumed with code that triples there."""
    import tt_flows

    engine = recorded.engine
    engine.fork("r1", at=_fork_point(recorded), new_run_id="r1v2")
    run = engine.resume("r1v2", process=tt_flows.process_v2)
    assert run.status == "completed", run.error
    return "r1v2"


def test_a_run_and_its_fork_at_the_end_are_the_same(
    recorded: Recorded, invoke_json: Any, invoke: Invoke
) -> None:
    events = recorded.engine.status("r1").events
    recorded.engine.fork("r1", at=events, new_run_id="r1copy")
    diff = run_diff.compare(recorded.engine, "r1", "r1copy")
    assert diff.identical and diff.first is None
    assert diff.common_events == events
    doc = invoke_json("diff", "r1", "r1copy", code=0)
    assert doc["identical"] is True and doc["first"] is None
    assert doc["b"]["parent"] == "r1" and doc["b"]["fork_at"] == events
    assert doc["a"]["result"] == doc["b"]["result"] == recorded.result
    out = invoke("diff", "r1", "r1copy", code=0).stdout
    assert "the runs are the same" in out and "fork of the other" in out


def test_a_fork_resumed_with_changed_code_differs_at_its_first_changed_key(
    recorded: Recorded, changed: str, invoke_json: Any, invoke: Invoke
) -> None:
    diff = run_diff.compare(recorded.engine, "r1", changed)
    assert not diff.identical
    first = diff.first
    assert first is not None and first.key == "4.0.0"
    assert first.kind == run_diff.DIFFERENT_TASK
    assert first.a is not None and first.a.task == "tt.double"
    assert first.b is not None and first.b.task == "tt.triple"
    assert diff.keys(run_diff.DIFFERENT_TASK) == ["4.0.0", "4.1.0", "4.2.0"]
    # Before the fork point every call is shared: nothing differs there.
    assert all(d.key.startswith("4.") for d in diff.differences)
    assert diff.common_events == _fork_point(recorded)
    assert not diff.same_end

    doc = invoke_json("diff", "r1", changed, code=1)
    assert doc["first"]["key"] == "4.0.0"
    assert doc["first"]["kind"] == "different_task"
    assert doc["first"]["a"]["task"] == "tt.double"
    assert doc["first"]["b"]["task"] == "tt.triple"
    assert doc["first"]["a"]["result"] == 2 and doc["first"]["b"]["result"] == 3
    assert doc["first"]["a"]["args"]["x"] == 1
    assert doc["first"]["a"]["outcome"] == "completed"
    assert isinstance(doc["first"]["a"]["duration"], float)
    assert doc["summary"]["different_task"] == ["4.0.0", "4.1.0", "4.2.0"]
    assert doc["summary"]["same_end"] is False
    assert doc["a"]["result"]["outs"] == [2, 4, 6]
    assert doc["b"]["result"]["outs"] == [3, 6, 9]

    out = invoke("diff", "r1", changed, code=1).stdout
    assert "first difference at key 4.0.0" in out
    line = next(x for x in out.splitlines() if x.strip().startswith("task"))
    assert "tt.double" in line and "tt.triple" in line  # side by side
    assert "the runs differ" in out


def test_same_task_other_args_and_only_in_one_run(
    engine: Engine, tmp_path: Path
) -> None:
    side = str(tmp_path / "side")
    engine.run("tt_flows:process", {"side": side, "items": [1, 2]}, run_id="two")
    engine.run("tt_flows:process", {"side": side, "items": [1, 5, 6]}, run_id="three")
    diff = run_diff.compare(engine, "two", "three")
    # Two runs, two clocks: ctx.now() at key 3 recorded another value.
    assert diff.first is not None and diff.first.key == "3"
    assert diff.keys(run_diff.DIFFERENT_RESULT) == ["3"]
    assert diff.keys(run_diff.DIFFERENT_ARGS) == ["4.1.0"]
    assert diff.keys(run_diff.ONLY_IN_B) == ["4.2.0"]
    assert diff.keys(run_diff.ONLY_IN_A) == []


def test_unrelated_runs_diverge_at_the_first_key(
    recorded: Recorded, invoke_json: Any
) -> None:
    recorded.engine.run("hist_flows:process", {}, run_id="other")
    doc = invoke_json("diff", "r1", "other", code=1)
    assert doc["first"]["key"] == "0"
    assert doc["first"]["a"]["task"] == "tt.double"
    assert doc["first"]["b"]["task"] == "hist.add"
    assert doc["common_events"] == 0
    assert doc["summary"]["only_in_a"]  # r1 has calls hist_flows never makes


def test_an_unknown_run_is_exit_2(recorded: Recorded, invoke: Invoke) -> None:
    out = invoke("diff", "r1", "nope", code=2)
    assert "nope" in out.stdout + out.stderr
    invoke("diff", "nope", "r1", "--json", code=2)


def test_diff_escapes_journal_text(tmp_path: Path) -> None:
    """Task names, args and results from a crafted journal are shown literally."""
    journal = tmp_path / "journal"
    make_journal(journal)
    write_runs(
        journal, "", "[link=https://x]hi[/link] [/] [bold red]red \x1b[2J\x07end"
    )
    done = cli(journal, "diff", "done", "wait", extra_env=TERMINAL)
    assert done.returncode == 1, done.describe()
    assert "Traceback" not in done.output
    assert_literal(done.stdout)
    assert "\\x1b[2J" in done.stdout
    done = cli(journal, "diff", "done", "wait", "--json", extra_env=TERMINAL)
    assert done.returncode == 1, done.describe()
    assert "\x1b" not in done.stdout and "\x07" not in done.stdout
