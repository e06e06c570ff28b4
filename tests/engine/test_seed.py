"""Every workflow of the seed document, as our users would write it.

Scenarios 1-4, examples 1-4 and pitfalls 1-5 of the seed's "Parallel
Execution" guide. Each completed workflow is also checked twice more:

* resuming the completed run returns the recorded result and dispatches
  nothing;
* the same run, SIGKILLed half way through in a child process and resumed
  here, completes with the same result and the same journal content, without
  dispatching again what had completed before the crash.
"""

from __future__ import annotations

import gc
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import journal_format as jf
from replay_engine import Engine, Run, ThunkRequired
from tests.children import crash_child
from tests.journal_views import (
    content,
    key_of,
    keys_of,
    requested_tasks,
    settled_keys,
    tags,
)

from . import seed_flows as sf
from .flows import GAUGE, SIDE_ENV, read_side, starts

MakeEngine = Callable[..., Engine]
RUN_ID = "seed"


class Check:
    """Runs a seed workflow and checks its replays."""

    def __init__(
        self,
        make_engine: MakeEngine,
        tmp_path: Path,
        side: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        self.make_engine = make_engine
        self.tmp_path = tmp_path
        self.side = side
        self.monkeypatch = monkeypatch

    def run(
        self, process: Callable[..., Any], inputs: Any = None
    ) -> tuple[Engine, Run]:
        engine = self.make_engine("reference")
        run = engine.run(process, inputs, run_id=RUN_ID)
        return engine, run

    def replays(
        self, engine: Engine, run: Run, process: Callable[..., Any], inputs: Any
    ) -> None:
        assert run.status == "completed", run.error
        self.completed_resume(engine, run)
        self.interrupted_resume(engine, run, process, inputs)

    def completed_resume(self, engine: Engine, run: Run) -> None:
        dispatched = len(starts(read_side(self.side)))
        events = len(engine.events(RUN_ID))
        again = engine.resume(RUN_ID)
        assert again.status == "completed"
        assert again.result == run.result
        assert again.stats.dispatched == 0
        assert len(starts(read_side(self.side))) == dispatched
        assert len(engine.events(RUN_ID)) == events

    def interrupted_resume(
        self, engine: Engine, run: Run, process: Callable[..., Any], inputs: Any
    ) -> None:
        total = len(engine.events(RUN_ID))
        kill_at = max(2, total // 2)
        journal = self.tmp_path / "crashed"
        crash_side = self.tmp_path / "crash-side.jsonl"
        child_pid = crash_child(
            "run",
            journal,
            RUN_ID,
            ref=f"{process.__module__}:{process.__qualname__}",
            inputs=inputs,
            durability="process",
            kill_at=kill_at,
            side=crash_side,
        )
        self.monkeypatch.setenv(SIDE_ENV, str(crash_side))
        crashed = self.make_engine("crashed", durability="process")
        at_crash = crashed.events(RUN_ID)
        assert kill_at <= len(at_crash) < total
        settled = settled_keys(at_crash)
        resumed = crashed.resume(RUN_ID)
        assert resumed.status == "completed", resumed.error
        assert resumed.result == run.result
        assert content(crashed, RUN_ID) == content(engine, RUN_ID)
        assert crashed.verify(RUN_ID).ok
        lines = starts(read_side(crash_side))
        assert {x["pid"] for x in lines} <= {child_pid, os.getpid()}
        again = {x["key"] for x in lines if x["pid"] == os.getpid()}
        assert not again & settled, "effects completed before the crash ran again"
        assert resumed.stats.replayed == len(settled)


@pytest.fixture
def check(
    make_engine: MakeEngine,
    tmp_path: Path,
    side: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Check:
    return Check(make_engine, tmp_path, side, monkeypatch)


def completion_order(engine: Engine, run_id: str = RUN_ID) -> list[str]:
    return keys_of(engine, run_id, "completed")


# -- scenarios -----------------------------------------------------------------------


def test_scenario1_parallel_quality_checks(check: Check) -> None:
    inputs = {"feature": "login"}
    engine, run = check.run(sf.scenario1_quality_checks, inputs)
    assert run.result == {
        "coverage": {"percent": 81},
        "lint": {"errors": 0, "files": 2},
        "typeCheck": {"ok": True, "checked": ["src/login.py", "src/login_util.py"]},
        "security": {"issues": []},
    }
    assert requested_tasks(engine, RUN_ID) == {
        "0": "tests.engine.seed_flows.implement",
        "1.0.0": "tests.engine.seed_flows.coverage_check",
        "1.1.0": "tests.engine.seed_flows.lint_check",
        "1.2.0": "tests.engine.seed_flows.type_check",
        "1.3.0": "tests.engine.seed_flows.security_check",
    }
    # The four checks were all in flight together: every request was recorded
    # before the first check completed.
    order = [(jf.event_tag(s.event), key_of(s.event)) for s in engine.events(RUN_ID)]
    last_request = max(i for i, (t, _) in enumerate(order) if t == "requested")
    first_check_done = min(
        i for i, (t, k) in enumerate(order) if t == "completed" and k != "0"
    )
    assert last_request < first_check_done
    check.replays(engine, run, sf.scenario1_quality_checks, inputs)


def test_scenario2_batch_file_processing(check: Check) -> None:
    files = [f"file{i}.ts" for i in range(12)]
    inputs = {"files": files}
    engine, run = check.run(sf.scenario2_batch_files, inputs)
    assert run.result["processed"] == 12
    assert [r["file"] for r in run.result["results"]] == files
    assert sorted(keys_of(engine, RUN_ID)) == sorted(f"0.{i}.0" for i in range(12))
    check.replays(engine, run, sf.scenario2_batch_files, inputs)


def test_scenario3_multi_service_deployment(check: Check) -> None:
    inputs = {"env": "staging"}
    engine, run = check.run(sf.scenario3_multi_service_deploy, inputs)
    assert run.result["success"] is True
    assert [d["service"] for d in run.result["deployments"]] == ["api", "web", "worker"]
    assert {d["env"] for d in run.result["deployments"]} == {"staging"}
    # web (no latency) finished first, api (the slowest) last.
    assert completion_order(engine) == ["0.1.0", "0.2.0", "0.0.0"]
    check.replays(engine, run, sf.scenario3_multi_service_deploy, inputs)


def test_scenario4_mixed_sequential_and_parallel(check: Check) -> None:
    inputs = {"target": "app"}
    engine, run = check.run(sf.scenario4_mixed, inputs)
    assert run.result == {
        "deployed": True,
        "deployResult": {"deployed": "https://preview/app"},
        "docs": {"pages": 2},
    }
    assert sorted(keys_of(engine, RUN_ID)) == ["0", "1.0.0", "1.1.0", "1.2.0", "2"]
    check.replays(engine, run, sf.scenario4_mixed, inputs)


def test_scenario4_failing_tests_skip_the_deployment(
    make_engine: MakeEngine, side: Path
) -> None:
    engine = make_engine()
    run = engine.run(sf.scenario4_mixed, {"target": "broken-app"}, run_id=RUN_ID)
    assert run.result == {"deployed": False, "reason": "Tests failed"}
    assert "2" not in keys_of(engine, RUN_ID)
    assert not starts(read_side(side), task="deploy_build")


# -- examples ------------------------------------------------------------------------


def test_example1_tdd_quality_loop(check: Check) -> None:
    inputs = {"feature": "cart", "targetQuality": 85, "maxIterations": 5}
    engine, run = check.run(sf.example1_tdd_quality_loop, inputs)
    assert run.result == {"quality": 85, "iterations": 2}
    names = requested_tasks(engine, RUN_ID)
    prefix = "tests.engine.seed_flows."
    for base in (0, 5):  # iteration 1 at keys 0-4, iteration 2 at keys 5-9
        assert names[str(base)] == prefix + "write_tests"
        assert names[str(base + 1)] == prefix + "implement_iteration"
        assert names[str(base + 2)] == prefix + "run_tests"
        assert names[f"{base + 3}.3.0"] == prefix + "security_check"
        assert names[str(base + 4)] == prefix + "agent_scoring"
    assert len(names) == 2 * 8
    check.replays(engine, run, sf.example1_tdd_quality_loop, inputs)


def test_example1_stops_at_max_iterations(make_engine: MakeEngine) -> None:
    engine = make_engine()
    inputs = {"feature": "cart", "targetQuality": 1000, "maxIterations": 3}
    run = engine.run(sf.example1_tdd_quality_loop, inputs, run_id=RUN_ID)
    assert run.result == {"quality": 100, "iterations": 3}
    assert len(keys_of(engine, RUN_ID)) == 3 * 8


def test_example2_parallel_files_with_error_handling(check: Check) -> None:
    files = ["a.ts", "bad1.ts", "c.ts", "bad2.ts", "e.ts"]
    inputs = {"files": files}
    logged: list[str] = []
    engine = check.make_engine("reference")
    run = engine.run(
        sf.example2_files_with_errors,
        inputs,
        run_id=RUN_ID,
        on_log=lambda key, message, fields: logged.append(message),
    )
    assert [r["file"] for r in run.result["successful"]] == ["a.ts", "c.ts", "e.ts"]
    assert run.result["failed"] == [
        {"file": "bad1.ts", "success": False, "error": "cannot parse bad1.ts"},
        {"file": "bad2.ts", "success": False, "error": "cannot parse bad2.ts"},
    ]
    assert logged == ["Processed 3/5 files"]
    assert tags(engine, RUN_ID).count("failed") == 2
    engine.resume(RUN_ID, on_log=lambda *a: logged.append("again"))
    assert logged == ["Processed 3/5 files"]
    check.replays(engine, run, sf.example2_files_with_errors, inputs)


def test_example3_chunked_parallel_processing(check: Check) -> None:
    inputs = {"items": list(range(25)), "chunkSize": 10}
    engine, run = check.run(sf.example3_chunked, inputs)
    assert run.result == {"total": 25, "results": [i * i for i in range(25)]}
    logs = [
        s.event.message
        for s in engine.events(RUN_ID)
        if isinstance(s.event, jf.LogLine)
    ]
    assert logs == [
        "Processed 10/25 items",
        "Processed 20/25 items",
        "Processed 25/25 items",
    ]
    # Chunk i is the group at root key i.
    assert sorted({k.split(".")[0] for k in keys_of(engine, RUN_ID)}) == ["0", "1", "2"]
    check.replays(engine, run, sf.example3_chunked, inputs)


def test_example4_parallel_final_verification(check: Check) -> None:
    inputs = {"feature": "search"}
    engine, run = check.run(sf.example4_final_verification, inputs)
    assert run.result == {
        "finalReview": {"approved": True, "feature": "search", "coverage": 81}
    }
    names = requested_tasks(engine, RUN_ID)
    assert names["4.0.0"] == "tests.engine.seed_flows.run_tests"
    assert names["4.2.0"] == "tests.engine.seed_flows.integration_test"
    assert names["5"] == "tests.engine.seed_flows.agent_final_review"
    args = {
        key_of(s.event): engine.payload(s.event.args)
        for s in engine.events(RUN_ID)
        if isinstance(s.event, jf.EffectRequested)
    }
    assert args["4.0.0"] == {"testFiles": ["tests/test_search_2.py"]}
    check.replays(engine, run, sf.example4_final_verification, inputs)


# -- pitfalls ------------------------------------------------------------------------


def test_pitfall1_awaitables_instead_of_thunks_raise_thunkrequired(
    make_engine: MakeEngine, side: Path
) -> None:
    engine = make_engine()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = engine.run(sf.pitfall1_wrong, run_id=RUN_ID)
        gc.collect()
    assert not [w for w in caught if "never awaited" in str(w.message)]
    assert run.status == "failed"
    assert run.error is not None
    assert run.error.type == "replay_engine.errors.ThunkRequired"
    assert "lambda: ctx.task(" in run.error.message
    # Nothing was recorded or dispatched for the three calls.
    assert tags(engine, RUN_ID) == ["run_started", "run_failed"]
    assert read_side(side) == []
    again = engine.resume(RUN_ID)
    assert again.status == "failed"
    assert tags(engine, RUN_ID) == ["run_started", "run_failed"]
    assert read_side(side) == []


def test_pitfall1_thunkrequired_is_a_typeerror(make_engine: MakeEngine) -> None:
    assert issubclass(ThunkRequired, TypeError)
    engine = make_engine()
    run = engine.run(sf.pitfall1_caught, run_id=RUN_ID)
    assert run.result["caught"] == "ThunkRequired"
    assert "lambda" in run.result["message"]
    assert "requested" not in tags(engine, RUN_ID)


def test_pitfall1_thunks_run_in_parallel(check: Check) -> None:
    engine, run = check.run(sf.pitfall1_right)
    assert run.result == ["A", "B(None)", "C"]
    assert sorted(keys_of(engine, RUN_ID)) == ["0.0.0", "0.1.0", "0.2.0"]
    check.replays(engine, run, sf.pitfall1_right, None)


def test_pitfall2_dependent_tasks_in_parallel_fail_loudly(
    make_engine: MakeEngine, side: Path
) -> None:
    engine = make_engine()
    run = engine.run(sf.pitfall2_wrong, run_id=RUN_ID)
    assert run.status == "failed"
    assert run.error is not None
    assert run.error.type == "NameError"
    # Branch 0 settled (recorded) before the group failed; branch 1 never called.
    assert keys_of(engine, RUN_ID, "completed") == ["0.0.0"]
    assert keys_of(engine, RUN_ID) == ["0.0.0"]
    again = engine.resume(RUN_ID)
    assert again.status == "failed"
    assert again.stats.dispatched == 0
    assert [x["task"] for x in starts(read_side(side))] == ["task_a"]


def test_pitfall2_dependent_tasks_run_sequentially(check: Check) -> None:
    engine, run = check.run(sf.pitfall2_right)
    assert run.result == ["A", "B(A)"]
    assert keys_of(engine, RUN_ID) == ["0", "1"]
    check.replays(engine, run, sf.pitfall2_right, None)


def test_pitfall3_one_failure_settles_all_and_keeps_siblings(
    check: Check, side: Path
) -> None:
    engine, run = check.run(sf.pitfall3_all)
    assert run.result == {
        "failed": "0.1.0",
        "error": ["builtins.RuntimeError", "B broke"],
    }
    # B failed at once, yet A and C (slower) were awaited and recorded.
    order = [(jf.event_tag(s.event), key_of(s.event)) for s in engine.events(RUN_ID)]
    failed_at = order.index(("failed", "0.1.0"))
    assert order.index(("completed", "0.0.0")) > failed_at
    assert order.index(("completed", "0.2.0")) > failed_at
    assert {x["task"] for x in starts(read_side(side))} == {
        "task_a_slow",
        "task_b_fails",
        "task_c_slow",
    }
    check.replays(engine, run, sf.pitfall3_all, None)


def test_pitfall3_the_lowest_index_failure_is_raised(check: Check) -> None:
    engine, run = check.run(sf.pitfall3_two_failures)
    # C failed first, but B has the lower index.
    order = [(jf.event_tag(s.event), key_of(s.event)) for s in engine.events(RUN_ID)]
    assert order.index(("failed", "0.2.0")) < order.index(("failed", "0.1.0"))
    assert run.result == {
        "failed": "0.1.0",
        "error": ["builtins.RuntimeError", "B broke late"],
    }
    check.replays(engine, run, sf.pitfall3_two_failures, None)


def test_pitfall3_map_with_try_except_returns_per_item_results(check: Check) -> None:
    engine, run = check.run(sf.pitfall3_map)
    assert run.result == [
        {"id": "A", "success": True, "result": "A"},
        {"id": "B", "success": False, "error": "B broke"},
        {"id": "C", "success": True, "result": "C"},
    ]
    check.replays(engine, run, sf.pitfall3_map, None)


def test_pitfall4_results_keep_input_order(check: Check) -> None:
    engine, run = check.run(sf.pitfall4_order)
    assert run.result == {"first": "slow", "second": "fast", "third": "medium"}
    assert completion_order(engine) == ["0.1.0", "0.2.0", "0.0.0"]
    check.replays(engine, run, sf.pitfall4_order, None)


def test_pitfall5_chunks_bound_concurrency(check: Check) -> None:
    inputs = {"n": 1000, "chunkSize": 50}
    engine, run = check.run(sf.pitfall5_chunked, inputs)
    assert run.result == sum(2 * i for i in range(1000))
    assert 6 < GAUGE.peak <= 50
    assert len(keys_of(engine, RUN_ID)) == 1000
    assert keys_of(engine, RUN_ID)[-1] == "19.49.0"
    check.replays(engine, run, sf.pitfall5_chunked, inputs)


def test_pitfall5_map_limit_bounds_concurrency(check: Check) -> None:
    inputs = {"n": 300, "limit": 20}
    engine, run = check.run(sf.pitfall5_limit, inputs)
    assert run.result == sum(2 * i for i in range(300))
    assert 6 < GAUGE.peak <= 20
    check.replays(engine, run, sf.pitfall5_limit, inputs)
