"""What the first resume in a fresh process must not pay for (issue 17, s19i).

A process's first resume imports the run layer; a plain one (inline tasks, a
``parallel.map``) needs none of the modules for sub-runs, waits and timers,
races, patches, tracing or signal stops, nor a thread pool or ``random``. Each
is 0.1-0.3 ms of that first resume, and an import line added back anywhere on
the path would bring it back silently: this pins them (a time-travel replay's
keyed call index and complete-history checks too, s20i). It also pins that the
cyclic collector is relaxed while the run layer is imported, so the first
resume pays no collector passes over what the imports allocate (a
middle-generation pass there measured 1-2 ms).
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.children import crash_child, run_child
from tests.engine.import_flows import plain

NOT_IMPORTED = [
    "replay_engine._run.children",
    "replay_engine._run.waits",
    "replay_engine._run.quiet",
    "replay_engine._run.race",
    "replay_engine._run.patches",
    "replay_engine._run.tracing",
    "replay_engine._run.stopping",
    "replay_engine._run.backend",
    "replay_engine._store.outcomes",
    # Time travel only (s20i): the keyed call index and complete-history checks.
    "replay_engine._store.keyed",
    "replay_engine._run.history",
    "concurrent.futures.thread",
    "random",
]

RESUME = r"""
import gc, json, sys
from replay_engine import Engine
from tests.engine.import_flows import plain

journal, checked = sys.argv[1], json.loads(sys.argv[2])
collections = []
def note(phase, info):
    if phase == "start":
        collections.append(info["generation"])
gc.callbacks.append(note)
with Engine(journal) as engine:
    run = engine.resume("r", process=plain)
gc.callbacks.remove(note)
from replay_engine._run import state, runtime
print(json.dumps({
    "status": run.status,
    "result": run.result,
    "replayed": run.stats.replayed,
    "imported": [name for name in checked if name in sys.modules],
    "run_layer": "replay_engine._run.runtime" in sys.modules,
    "collections": collections,
    "typed_dict_built": hasattr(state, "ExecutionOptions"),
}))
"""


def test_a_plain_first_resume_imports_only_what_it_uses(tmp_path: Path) -> None:
    journal = tmp_path / "j"
    ref = f"{plain.__module__}:{plain.__qualname__}"
    # Killed inside the map: the sequential calls and part of the map are
    # completed, so the resume replays some and dispatches the rest.
    crash_child("run", journal, "r", ref=ref, inputs={"n": 20}, kill_at=60)
    out = json.loads(run_child(RESUME, str(journal), json.dumps(NOT_IMPORTED)))
    assert out["status"] == "completed"
    assert out["result"] == 2 * sum(range(1, 21))
    assert out["replayed"] >= 20
    assert out["run_layer"]  # the resume did import the run layer
    assert out["imported"] == []
    assert not out["typed_dict_built"]
    # The collector is relaxed from the start of the call, imports included:
    # at most the young pass due when the thresholds are put back (three
    # young passes while importing without it, and in a process that had
    # imported more before, a middle-generation pass of 1-2 ms).
    assert len(out["collections"]) <= 1, out["collections"]
    assert 1 not in out["collections"] and 2 not in out["collections"]
