"""Invocation keys: structural (root, branches, nesting), taken at call time, and
the idempotency key tasks see.

Every test runs a real engine on a real LMDB journal in ``tmp_path`` and counts
dispatches on the side channel (``flows.note``), never in the journal under
test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import journal_format as jf
from replay_engine import NonDeterminismError
from tests.journal_views import key_of, keys_of, requested_tasks

from . import flows
from .flows import read_side, starts
from .replay_helpers import FLAGS, MakeEngine

# -- keys are structural ---------------------------------------------------------


async def three_in_a_row(inputs: Any, ctx: Any) -> list[int]:
    a = await ctx.task(flows.add, {"a": 1, "b": 2})
    b = await ctx.task(flows.double, {"x": a})
    c = await ctx.task(flows.add, {"a": a, "b": b})
    return [a, b, c]


def test_root_calls_take_keys_0_1_2(make_engine: MakeEngine, side: Path) -> None:
    engine = make_engine()
    run = engine.run(three_in_a_row, run_id="r")
    assert run.status == "completed"
    assert run.result == [3, 6, 9]
    assert keys_of(engine, "r", "requested") == ["0", "1", "2"]
    assert keys_of(engine, "r", "completed") == ["0", "1", "2"]
    assert requested_tasks(engine, "r") == {
        "0": "tests.engine.flows.add",
        "1": "tests.engine.flows.double",
        "2": "tests.engine.flows.add",
    }
    assert [line["key"] for line in starts(read_side(side))] == ["0", "1", "2"]


async def branches(inputs: Any, ctx: Any) -> Any:
    first = await ctx.task(flows.echo, {"value": "first"})  # 0

    async def two_steps() -> list[int]:
        x = await ctx.task(flows.add, {"a": 1, "b": 1})  # 1.1.0
        for _ in range(inputs["extra"]):  # 1.1.1 … (a conditional extra call)
            await ctx.task(flows.echo, {"value": "extra"})
        y = await ctx.task(flows.double, {"x": x})  # 1.1.1 (or later)
        return [x, y]

    group = await ctx.parallel.all(  # 1
        [
            lambda: ctx.task(flows.slow_echo, {"value": "b0", "delay": 0.02}),  # 1.0.0
            two_steps,
            lambda: ctx.task(flows.echo, {"value": "b2"}),  # 1.2.0
        ]
    )
    last = await ctx.task(flows.echo, {"value": "last"})  # 2
    return [first, group, last]


def test_parallel_all_branch_keys_are_k_j_i(make_engine: MakeEngine) -> None:
    engine = make_engine()
    run = engine.run(branches, {"extra": 0}, run_id="r")
    assert run.result == ["first", ["b0", [2, 4], "b2"], "last"]
    assert requested_tasks(engine, "r") == {
        "0": "tests.engine.flows.echo",
        "1.0.0": "tests.engine.flows.slow_echo",
        "1.1.0": "tests.engine.flows.add",
        "1.1.1": "tests.engine.flows.double",
        "1.2.0": "tests.engine.flows.echo",
        "2": "tests.engine.flows.echo",
    }
    # Branch 0 sleeps, so it completes after its siblings: keys do not care.
    completed = keys_of(engine, "r", "completed")
    assert completed.index("1.0.0") > completed.index("1.2.0")


def test_an_extra_call_in_one_branch_does_not_shift_other_keys(
    make_engine: MakeEngine,
) -> None:
    engine = make_engine()
    engine.run(branches, {"extra": 0}, run_id="plain")
    engine.run(branches, {"extra": 2}, run_id="extra")
    plain = requested_tasks(engine, "plain")
    extra = requested_tasks(engine, "extra")
    assert extra["1.1.1"] == extra["1.1.2"] == "tests.engine.flows.echo"
    assert extra["1.1.3"] == "tests.engine.flows.double"
    # Every key outside branch 1 names the same call in both runs.
    for key, name in plain.items():
        if not key.startswith("1.1."):
            assert extra[key] == name, key


async def nested(inputs: Any, ctx: Any) -> Any:
    async def item(i: int) -> list[int]:
        first = await ctx.task(flows.add, {"a": i, "b": 0})  # …i.0
        pair = await ctx.parallel.all(  # …i.1
            [
                lambda: ctx.task(flows.double, {"x": first}),  # …i.1.0.0
                lambda: ctx.task(flows.add, {"a": first, "b": 100}),  # …i.1.1.0
            ]
        )
        return [first, *pair]

    async def left() -> list[list[int]]:
        return await ctx.parallel.map([1, 2], item)  # 0.0.0

    out = await ctx.parallel.all(  # 0
        [left, lambda: ctx.task(flows.echo, {"value": "right"})]  # 0.1.0
    )
    last = await ctx.task(flows.echo, {"value": "end"})  # 1
    return [out, last]


def test_nested_parallel_inside_map_inside_parallel(make_engine: MakeEngine) -> None:
    engine = make_engine()
    run = engine.run(nested, run_id="r")
    assert run.result == [[[[1, 2, 101], [2, 4, 102]], "right"], "end"]
    assert requested_tasks(engine, "r") == {
        "0.0.0.0.0": "tests.engine.flows.add",
        "0.0.0.0.1.0.0": "tests.engine.flows.double",
        "0.0.0.0.1.1.0": "tests.engine.flows.add",
        "0.0.0.1.0": "tests.engine.flows.add",
        "0.0.0.1.1.0.0": "tests.engine.flows.double",
        "0.0.0.1.1.1.0": "tests.engine.flows.add",
        "0.1.0": "tests.engine.flows.echo",
        "1": "tests.engine.flows.echo",
    }
    # The args recorded at a nested key are the ones that branch passed.
    by_key = {
        key_of(s.event): engine.payload(s.event.args)
        for s in engine.events("r")
        if isinstance(s.event, jf.EffectRequested)
    }
    assert by_key["0.0.0.1.1.1.0"] == {"a": 2, "b": 100}


# -- idempotency keys ---------------------------------------------------------------


async def probes(inputs: Any, ctx: Any) -> Any:
    root = await ctx.task(flows.idem_probe, {"tag": "root"})
    pair = await ctx.parallel.all(
        [
            lambda: ctx.task(flows.idem_probe, {"tag": "b0"}),
            lambda: ctx.task(flows.idem_probe, {"tag": "b1"}),
        ]
    )
    return [root, *pair]


def test_idempotency_key_is_run_id_slash_key(make_engine: MakeEngine) -> None:
    engine = make_engine()
    run = engine.run(probes, run_id="idem-run")
    assert run.result == ["idem-run/0", "idem-run/1.0.0", "idem-run/1.1.0"]


# -- keys are taken at call time, not at await time ------------------------------------


async def awaits_out_of_order(inputs: Any, ctx: Any) -> list[int]:
    early = ctx.task(flows.add, {"a": 1, "b": 1})  # key 0, awaited later
    b = await ctx.task(flows.double, {"x": 5})  # key 1
    if FLAGS.get("stop"):
        early.close()  # type: ignore[attr-defined]
        raise RuntimeError("stopped on purpose before the end")
    a = await early
    return [a, b]


def test_a_call_awaited_after_a_later_one_resumes(
    make_engine: MakeEngine, side: Path
) -> None:
    """Keys are taken when ctx.task is called; awaiting in another order is legal,
    so a resume must not call the not-yet-recorded earlier key an inserted call."""
    engine = make_engine()
    FLAGS["stop"] = True
    assert engine.run(awaits_out_of_order, run_id="r").status == "failed"
    assert keys_of(engine, "r") == ["1"]
    FLAGS["stop"] = False
    try:
        run = engine.resume("r")
    except NonDeterminismError as exc:
        pytest.fail(f"false divergence on a legal await order:\n{exc}")
    assert run.result == [2, 10]
    assert sorted(keys_of(engine, "r")) == ["0", "1"]
    assert [x["key"] for x in starts(read_side(side))] == ["1", "0"]
