"""Every worked example of docs/evolving-code.md, on a real LMDB journal.

For each change: runs recorded with the old code (one completed, one waiting
for an approval) are checked with ``check_compatible`` against the naive
change and against the guarded one; the waiting run is then resumed with the
guarded code and finishes on its old path, and a new run takes the new path.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import journal_format as jf
from replay_engine import Engine, TaskDef
from tests.timetravel import evolving_flows as ev

Process = Callable[..., Any]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    with Engine(tmp_path / "j", durability="process") as eng:
        yield eng


def record_old_runs(engine: Engine, old: Process) -> None:
    assert engine.run(old, {"repo": "r"}, run_id="done").status == "completed"
    assert engine.run(old, {"repo": "r", "wait": True}, run_id="waiting").status == (
        "waiting"
    )


def verdicts(engine: Engine, new: Process) -> dict[str, tuple[str, str]]:
    """run id -> (verdict, key of the first divergence)."""
    return {
        c.run_id: (c.verdict, c.key)
        for c in engine.check_compatible(new, runs=["done", "waiting"])
    }


def tasks_of(engine: Engine, run_id: str) -> list[str]:
    """The tasks and markers of a run, in journal order."""
    out = []
    for stored in engine.events(run_id):
        event = stored.event
        if isinstance(event, jf.EffectRequested):
            out.append(event.task)
        elif isinstance(event, jf.PatchMarker):
            out.append(f"patched:{event.patch}")
    return out


def finish_waiting(engine: Engine, process: Process) -> Any:
    """Resume the waiting run with ``process``, approve it, return its result."""
    pending = engine.resume("waiting", process=process)
    assert pending.status == "waiting", pending.error
    [key] = [p.key for p in engine.pending("waiting")]
    engine.post("waiting", key, result="approved")
    done = engine.resume("waiting", process=process)
    assert done.status == "completed", done.error
    return done.result


BREAKS = "breaks"
OK = "compatible"


def test_add_a_step(engine: Engine) -> None:
    record_old_runs(engine, ev.add_v1)
    assert verdicts(engine, ev.add_v2) == {
        "done": (BREAKS, "1"),
        "waiting": (BREAKS, "1"),
    }
    assert verdicts(engine, ev.add_patched) == {"done": (OK, ""), "waiting": (OK, "")}
    assert finish_waiting(engine, ev.add_patched) == "approved"
    assert "evo.lint" not in tasks_of(engine, "waiting")  # the old path
    new = engine.run(ev.add_patched, {"repo": "r"}, run_id="new")
    assert tasks_of(engine, "new") == [
        "evo.fetch",
        "patched:add-lint",
        "evo.lint",
        "evo.test",
    ]
    assert new.result == "tests ok at level 1"
    # Later, once no stored run lacks the marker: deprecate the patch.
    [c] = engine.check_compatible(ev.add_deprecated, runs=["new"])
    assert c.compatible
    assert [
        c.verdict for c in engine.check_compatible(ev.add_deprecated, runs=["done"])
    ] == [BREAKS]


def test_remove_a_step(engine: Engine) -> None:
    record_old_runs(engine, ev.remove_v1)
    assert verdicts(engine, ev.remove_v2) == {
        "done": (BREAKS, "1"),
        "waiting": (BREAKS, "1"),
    }
    assert verdicts(engine, ev.remove_patched) == {
        "done": (OK, ""),
        "waiting": (OK, ""),
    }
    finish_waiting(engine, ev.remove_patched)
    assert tasks_of(engine, "waiting").count("evo.lint") == 1  # kept, not re-run
    engine.run(ev.remove_patched, {"repo": "r"}, run_id="new")
    assert tasks_of(engine, "new") == ["evo.fetch", "patched:drop-lint", "evo.test"]


def test_change_a_calls_args(engine: Engine) -> None:
    record_old_runs(engine, ev.args_v1)
    assert verdicts(engine, ev.args_v2) == {
        "done": (BREAKS, "1"),
        "waiting": (BREAKS, "1"),
    }
    assert verdicts(engine, ev.args_patched) == {"done": (OK, ""), "waiting": (OK, "")}
    assert finish_waiting(engine, ev.args_patched) == "approved"
    new = engine.run(ev.args_patched, {"repo": "r"}, run_id="new")
    assert new.result == "tests ok at level 2"
    done = engine.replay("done", process=ev.args_patched)
    assert done.result == "tests ok at level 1"


def test_reorder_parallel_branches(engine: Engine) -> None:
    record_old_runs(engine, ev.reorder_v1)
    assert verdicts(engine, ev.reorder_v2) == {
        "done": (BREAKS, "1.0.0"),
        "waiting": (BREAKS, "1.0.0"),
    }
    assert verdicts(engine, ev.reorder_patched) == {
        "done": (OK, ""),
        "waiting": (OK, ""),
    }
    finish_waiting(engine, ev.reorder_patched)
    engine.run(ev.reorder_patched, {"repo": "r"}, run_id="new")
    # The marker took key 1, so the group of the new path is at key 2.
    keyed = {
        jf.key_bytes_to_text(s.event.key): s.event.task
        for s in engine.events("new")
        if isinstance(s.event, jf.EffectRequested)
    }
    assert keyed == {"0": "evo.fetch", "2.0.0": "evo.test", "2.1.0": "evo.lint"}


def test_change_a_tasks_implementation_only_is_safe(engine: Engine) -> None:
    record_old_runs(engine, ev.add_v1)
    assert verdicts(engine, ev.impl_v2) == {"done": (OK, ""), "waiting": (OK, "")}
    assert finish_waiting(engine, ev.impl_v2) == "approved"


def test_rename_a_task(engine: Engine) -> None:
    record_old_runs(engine, ev.add_v1)
    assert verdicts(engine, ev.rename_v2) == {
        "done": (BREAKS, "1"),
        "waiting": (BREAKS, "1"),
    }
    assert verdicts(engine, ev.rename_pinned) == {"done": (OK, ""), "waiting": (OK, "")}
    assert verdicts(engine, ev.rename_patched) == {
        "done": (OK, ""),
        "waiting": (OK, ""),
    }
    finish_waiting(engine, ev.rename_patched)
    assert "evo.check" not in tasks_of(engine, "waiting")
    engine.run(ev.rename_patched, {"repo": "r"}, run_id="new")
    assert tasks_of(engine, "new") == ["evo.fetch", "patched:rename-check", "evo.check"]


def test_the_guide_quotes_the_code_these_tests_run() -> None:
    """Each process in docs/evolving-code.md is the one these tests run.

    Every python block of the guide is an example file it includes (the
    ``<!-- example: PATH -->`` marker; tests/typing checks the block equals the
    file and type-checks it). Each function a block defines must be the very
    object ``evolving_flows`` hands the tests: defined in that file, with the
    block's code, annotations included.
    """
    root = Path(__file__).parents[2]
    guide = (root / "docs" / "evolving-code.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", guide, flags=re.DOTALL)
    marked = re.findall(
        r"<!-- example: (\S+) -->\n```python\n(.*?)```", guide, flags=re.DOTALL
    )
    assert [code for _, code in marked] == blocks, "a block that is not an example"
    processes = 0
    for path, block in marked:
        for node in ast.parse(block).body:
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            real = getattr(ev, node.name)
            fn = real.fn if isinstance(real, TaskDef) else real
            assert Path(inspect.getsourcefile(fn) or "") == root / path, node.name
            [tree] = ast.parse(textwrap.dedent(inspect.getsource(fn))).body
            assert ast.dump(tree) == ast.dump(node), node.name
            processes += isinstance(node, ast.AsyncFunctionDef)
    assert processes >= 12
