"""Where tasks run (threads, processes, user pools) and the bounds on how many
run at once.

Every test runs a real engine on a real LMDB journal in ``tmp_path`` and counts
dispatches on the side channel (``flows.note``), never in the journal under
test.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import multiprocessing
import os
from pathlib import Path
from typing import Any

import pytest

from replay_engine import Engine, TaskFailed

from . import flows
from .flows import read_side, starts
from .replay_helpers import MakeEngine

# -- executors -----------------------------------------------------------------------


async def on_processes(inputs: Any, ctx: Any) -> Any:
    outs = await ctx.parallel.map(
        inputs["xs"],
        lambda x: ctx.task(flows.cpu_square, {"x": x, "side": inputs["side"]}),
    )
    try:
        await ctx.task(flows.cpu_fail, {"x": 3})
        failure = None
    except TaskFailed as exc:
        failure = [exc.error_type, exc.message]
    return {"outs": outs, "failure": failure}


def test_process_executor_tasks_run_in_other_processes(
    make_engine: MakeEngine, side: Path
) -> None:
    engine = make_engine()
    run = engine.run(on_processes, {"xs": [1, 2, 3], "side": str(side)}, run_id="r")
    assert run.status == "completed", run.error
    outs = run.result["outs"]
    assert [o["square"] for o in outs] == [1, 4, 9]
    assert all(o["pid"] != os.getpid() for o in outs)
    assert run.result["failure"] == ["builtins.ArithmeticError", "cannot square 3"]
    lines = starts(read_side(side), task="cpu_square")
    assert sorted(x["key"] for x in lines) == ["0.0.0", "0.1.0", "0.2.0"]
    assert {x["idem"] for x in lines} == {"r/0.0.0", "r/0.1.0", "r/0.2.0"}


async def where_tasks_run(inputs: Any, ctx: Any) -> Any:
    return await ctx.parallel.all(
        [
            lambda: ctx.task(flows.whoami, {"tag": "a"}),
            lambda: ctx.task(flows.whoami, {"tag": "b"}),
            lambda: ctx.task(flows.plain_square, {"x": 5}),
            lambda: ctx.task(flows.slow_echo, {"value": "async", "delay": 0.0}),
        ]
    )


def test_a_user_thread_pool_runs_the_sync_tasks(tmp_path: Path) -> None:
    with cf.ThreadPoolExecutor(2, thread_name_prefix="user-pool") as pool:
        engine = Engine(str(tmp_path / "j"), executor=pool)
        run = engine.run(where_tasks_run, run_id="r")
        engine.close()
        a, b, square, text = run.result
        assert a["thread"].startswith("user-pool")
        assert b["thread"].startswith("user-pool")
        assert a["idem"] == "r/0.0.0"
        assert square == {"square": 25, "pid": os.getpid()}
        assert text == "async"
        # The engine does not shut down a pool it was given.
        assert pool.submit(lambda: 42).result() == 42


def test_a_user_process_pool_runs_the_sync_tasks_by_reference(tmp_path: Path) -> None:
    context = multiprocessing.get_context("forkserver")
    with cf.ProcessPoolExecutor(2, mp_context=context) as pool:
        engine = Engine(str(tmp_path / "j"), executor=pool)
        run = engine.run(where_tasks_run, run_id="r")
        assert run.status == "completed", run.error
        engine.close()
        a, b, square, text = run.result
        assert a["pid"] != os.getpid()
        assert a["idem"] == "r/0.0.0" and b["idem"] == "r/0.1.0"
        assert square["square"] == 25 and square["pid"] != os.getpid()
        assert text == "async"
        assert pool.submit(abs, -3).result() == 3


# -- concurrency bounds ---------------------------------------------------------------


async def fan_out(inputs: Any, ctx: Any) -> list[int]:
    t = flows.held_async if inputs.get("async") else flows.held
    return await ctx.parallel.map(
        range(inputs["n"]),
        lambda i: ctx.task(t, {"i": i, "hold": inputs["hold"]}),
        limit=inputs.get("limit"),
    )


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_max_in_flight_bounds_one_run(make_engine: MakeEngine, is_async: bool) -> None:
    engine = make_engine(max_in_flight=3)
    inputs = {"n": 6, "hold": 0.15, "async": is_async}
    run = engine.run(fan_out, inputs, run_id="r")
    assert run.result == list(range(6))
    assert flows.GAUGE.peak == 3


def test_max_in_flight_is_engine_wide_across_concurrent_runs(
    make_engine: MakeEngine,
) -> None:
    engine = make_engine(max_in_flight=3)
    inputs = {"n": 6, "hold": 0.1, "async": True}

    async def both() -> list[Any]:
        return await asyncio.gather(
            engine.run_async(fan_out, inputs, run_id="a"),
            engine.run_async(fan_out, inputs, run_id="b"),
        )

    runs = asyncio.run(both())
    assert [r.result for r in runs] == [list(range(6))] * 2
    assert flows.GAUGE.peak <= 3, (
        f"{flows.GAUGE.peak} effects executed at once on an engine with max_in_flight=3"
    )


def test_parallel_map_limit_bounds_concurrent_branches(
    make_engine: MakeEngine,
) -> None:
    engine = make_engine()
    inputs = {"n": 6, "hold": 0.05, "async": True, "limit": 2}
    run = engine.run(fan_out, inputs, run_id="r")
    assert run.result == list(range(6))
    assert flows.GAUGE.peak == 2
