"""Sub-runs under SIGKILL: a real child interpreter killed after each of its writes.

The interpreter counts every write transaction the store makes (appends, shared
commits of several runs, run creations, post-like transactions), across the
parent and its children, and SIGKILLs itself right after the N-th commits. For
every N short of an uninterrupted run's total, the test then resumes the parent
here and checks:
the same result, each task executed exactly once (the flows are sequential,
so no task is in flight at a commit), one outcome per child key in the
parent, an intact journal. The kill points cover the three windows that
matter: before the child's start is recorded, mid-child, and after the
child's end before the parent's record of it.
"""

from __future__ import annotations

import collections
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import journal_format as jf
from replay_engine import Engine
from tests.helpers import child_env
from tests.subruns import child_flows as flows

CRASH = r"""
import json, os, signal, sys
from replay_engine import Engine
from replay_engine._store import store as _store
from tests.subruns import child_flows as flows

journal, flow, inputs, kill_after = sys.argv[1:5]
kill_after = int(kill_after)
writes = 0

def counted(name):
    original = getattr(_store.Store, name)
    def wrapper(self, *args, **kwargs):
        global writes
        result = original(self, *args, **kwargs)
        writes += 1
        if writes == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
        return result
    setattr(_store.Store, name, wrapper)

for name in ("append", "append_group", "create_run", "transact"):
    counted(name)
engine = Engine(journal, durability="process")
run = engine.run(getattr(flows, flow), json.loads(inputs), run_id="p")
print(json.dumps({"status": run.status, "result": run.result, "writes": writes}))
"""


def _run(journal: Path, side: Path, flow: str, inputs: Any, kill_after: int) -> Any:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            CRASH,
            str(journal),
            flow,
            json.dumps(inputs),
            str(kill_after),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=child_env(**{flows.SIDE_ENV: str(side)}),
        check=False,
    )
    if kill_after and proc.returncode == -signal.SIGKILL:
        return None
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _window(engine: Engine, key: str) -> str:
    """Where the kill left the first child started at ``key`` of run ``p``."""
    events = [s.event for s in engine.events("p")]
    keyed = [e for e in events if jf.key_bytes_to_text(getattr(e, "key", b"")) == key]
    child = next((r for r in engine.runs() if r.child_of == "p"), None)
    if not any(isinstance(e, jf.EffectRequested) for e in keyed):
        return "child exists, request lost" if child else "before the child's start"
    if any(isinstance(e, jf.EffectCompleted | jf.EffectFailed) for e in keyed):
        return "after the parent's record"
    if child is None:
        return "requested, child not created"
    if child.status in jf.FINISHED_STATUSES:
        return "after the child's end, before the parent's record"
    return "mid-child"


@pytest.mark.parametrize(
    ("flow", "inputs", "key"),
    [
        ("parent", {}, "1"),
        ("grand", {}, "0"),
        ("fan", {"n": 2, "limit": 1}, "0.0.0"),
    ],
)
def test_sigkill_after_every_write_then_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flow: str, inputs: Any, key: str
) -> None:
    clean_side = tmp_path / "clean.txt"
    clean = _run(tmp_path / "clean", clean_side, flow, inputs, 0)
    assert clean["status"] == "completed"
    expected_steps = sorted(clean_side.read_text().splitlines())
    windows: set[str] = set()
    for n in range(1, clean["writes"]):
        journal, side = tmp_path / f"j{n}", tmp_path / f"side{n}.txt"
        side.touch()
        assert _run(journal, side, flow, inputs, n) is None, f"not killed at {n}"
        monkeypatch.setenv(flows.SIDE_ENV, str(side))  # the resume here notes too
        engine = Engine(journal, durability="process")
        windows.add(_window(engine, key))
        run = engine.resume("p", process=getattr(flows, flow))
        assert (run.status, run.result) == ("completed", clean["result"]), n
        steps = side.read_text().splitlines()
        assert sorted(steps) == expected_steps, f"kill after write {n}: {steps}"
        assert engine.verify().ok, n
        for record in engine.runs():
            if record.child_of is not None:
                parent_events = engine.events(record.child_of)
                outcomes = collections.Counter(
                    jf.key_bytes_to_text(s.event.key)
                    for s in parent_events
                    if isinstance(s.event, jf.EffectCompleted | jf.EffectFailed)
                )
                assert outcomes[record.child_key] == 1, (n, record.run_id)
                assert record.status == "completed", (n, record.run_id)
        engine.close()
    assert {
        "before the child's start",
        "mid-child",
        "after the child's end, before the parent's record",
        "after the parent's record",
    } <= windows, windows
