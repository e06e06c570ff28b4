"""``replay(..., calls=False)`` looks calls up by key and decides as a full load does.

The re-execution behind ``replay --format lines|jsonl`` (issue 16: replay in
constant memory) does not hold the run's call index: each call is looked up in
the journal's ``keys`` database when the process makes it
(``_store/keyed.py``). Everything a replay decides must be the same as with
the index in memory (``calls=True``, which ``load``s it as a resume does): the
outcome, the result or error, the frontier, and every divergence with its
words. Compared here at every prefix of runs with parallel groups, retries,
caught failures, values, races, fail-fast and settled groups, patches, a
waiting run, a cancelled one, a failed one and a fork, each replayed with its
own process and with changed ones.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from replay_engine import Engine, NonDeterminismError
from replay_engine._store import keyed
from tests.parallel import par_flows
from tests.timetravel import hist_flows, patch_flows, tt_flows

Process = Callable[..., Any]


async def group_replaced(inputs: Any, ctx: Any) -> Any:
    """``hist_flows.process`` with one call where its parallel group was (key 2)."""
    side = inputs.get("side")
    a = await ctx.task(hist_flows.add, {"x": 1, "y": 2, "side": side})
    b = await ctx.task(hist_flows.add, {"x": a, "y": 10, "side": side})
    return await ctx.task(hist_flows.add, {"x": b, "y": 1, "side": side})


# (run id, recorded process, inputs, the processes it is replayed with)
RUNS: list[tuple[str, Process, dict[str, Any], list[Process]]] = [
    (
        "tt",
        tt_flows.process,
        {"items": [1, 2, 3, 4]},
        [tt_flows.process, tt_flows.process_v2],
    ),
    (
        "hist",
        hist_flows.process,
        {},
        [
            hist_flows.process,
            hist_flows.extra_call,
            hist_flows.extra_value,
            hist_flows.skips_last,
            hist_flows.other_result,
            hist_flows.raises_instead,
            group_replaced,
        ],
    ),
    (
        "failing",
        hist_flows.failing,
        {},
        [
            hist_flows.failing,
            hist_flows.failing_other_reason,
            hist_flows.failing_recovers,
        ],
    ),
    ("waits", hist_flows.waits, {}, [hist_flows.waits, hist_flows.waits_changed]),
    (
        "race",
        par_flows.race_steps,
        {"delays": [0.3, 0.0]},
        [par_flows.race_steps, par_flows.race_steps_as_all],
    ),
    ("settled", par_flows.settled_map, {}, [par_flows.settled_map]),
    ("fast", par_flows.fail_fast_map, {}, [par_flows.fail_fast_map]),
    (
        "patch1",
        patch_flows.v1,
        {},
        [patch_flows.v1, patch_flows.v2, patch_flows.v3, patch_flows.reused_late_v2],
    ),
    ("patch2", patch_flows.v2, {}, [patch_flows.v2, patch_flows.v3, patch_flows.v1]),
]


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keyed") / "journal"
    with Engine(str(path), durability="process") as engine:
        for run_id, process, inputs, _ in RUNS:
            engine.run(process, inputs, run_id=run_id)
        engine.run(hist_flows.waits, {}, run_id="cancelled")
        engine.cancel("cancelled", reason="enough")
        engine.fork("tt", at=9, new_run_id="forked")  # its own keys, re-linked
    return path


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Walks of the index in key order cross many batch boundaries here."""
    monkeypatch.setattr(keyed, "BATCH_KEYS", 2)


def _decision(
    engine: Engine, run_id: str, until: int, process: Process, calls: bool
) -> Any:
    """What a replay decides: its outcome and frontier, or its error's words."""
    try:
        snap = engine.replay(run_id, until, process=process, calls=calls)
    except NonDeterminismError as exc:
        return ("diverged", str(exc))
    return (
        snap.process_status,
        snap.result,
        snap.error,
        [(f.key, f.task, f.kind, f.reason, f.site) for f in snap.frontier],
    )


CASES = [(run_id, p) for run_id, _, _, ps in RUNS for p in ps] + [
    ("cancelled", hist_flows.waits),
    ("cancelled", hist_flows.waits_changed),
    ("cancelled", hist_flows.extra_call),
    ("forked", tt_flows.process),
]


@pytest.mark.parametrize(
    ("run_id", "process"), CASES, ids=[f"{r}-{p.__name__}" for r, p in CASES]
)
def test_keyed_lookups_decide_as_the_loaded_index_at_every_prefix(
    journal: Path, run_id: str, process: Process
) -> None:
    with Engine(str(journal)) as engine:
        events = engine.status(run_id).events
        decisions = set()
        for until in range(events + 1):
            loaded = _decision(engine, run_id, until, process, calls=True)
            keyed = _decision(engine, run_id, until, process, calls=False)
            assert keyed == loaded, (run_id, process.__name__, until)
            decisions.add(repr(loaded[0]))
    assert decisions  # every prefix was replayed


def test_the_cases_cover_divergences_and_frontiers(journal: Path) -> None:
    """The comparison above means something: both kinds of answer occur."""
    with Engine(str(journal)) as engine:
        outcomes = {
            _decision(engine, run_id, until, process, calls=False)[0]
            for run_id, process in CASES
            for until in (None, 3)
        }
    assert {"diverged", "frontier", "completed", "failed"} <= outcomes


def test_replay_calls_returns_the_exported_call_stream(journal: Path) -> None:
    """``CallStream`` is public: what ``replay_calls`` returns, by that name."""
    from replay_engine import CallStream

    with Engine(str(journal)) as engine:
        stream = engine.replay_calls("tt", 5)
        assert isinstance(stream, CallStream)
        assert (stream.until, stream.events) == (5, engine.status("tt").events)
        assert sum(1 for _ in stream) > 0
