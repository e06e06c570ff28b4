"""Completion order never leaks into the journal (hypothesis).

A process shape is drawn (parallel branches of sync and async tasks, nested
maps with and without limits, a caught failure, a retried task, logs and
uuids), and per-key latencies of 0-5 ms are drawn for every task. The run
with latencies must record exactly what the run without latencies records:
the same keys, task names, args and results (as content addresses), the same
log lines and values, and the same final result. Only the order of events may
differ.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import given, settings, strategies as st

import journal_format as jf
from replay_engine import Engine, TaskFailed
from tests.journal_views import content, key_of, keys_of

from . import flows

leaf = st.one_of(
    st.tuples(st.just("async"), st.integers(0, 9)),
    st.tuples(st.just("sync"), st.integers(0, 9)),
    st.tuples(st.just("fail"), st.integers(0, 9)),
    st.tuples(st.just("flaky"), st.integers(0, 9)),
    st.tuples(st.just("seq"), st.integers(0, 9)),
)
branch = st.one_of(
    leaf,
    st.tuples(
        st.just("map"),
        st.lists(st.integers(0, 9), min_size=0, max_size=4),
        st.one_of(st.none(), st.integers(1, 3)),
    ),
)
shapes = st.lists(branch, min_size=1, max_size=5)


async def shaped(inputs: dict[str, Any], ctx: Any) -> Any:
    async def leaf_call(spec: list[Any]) -> Any:
        kind, value = spec[0], spec[1]
        if kind == "async":
            return await ctx.task(flows.jitter, {"value": value})
        if kind == "sync":
            return await ctx.task(flows.jitter_sync, {"value": value})
        if kind == "fail":
            try:
                return await ctx.task(flows.jitter_fail, {"value": value})
            except TaskFailed as exc:
                return f"caught {exc.error_type}: {exc.message}"
        if kind == "flaky":
            return await ctx.task(flows.flaky, {"x": value})
        # "seq": two dependent calls, a log line and a uuid in one branch
        first = await ctx.task(flows.jitter, {"value": value})
        ctx.log("seq step", value=first)
        second = await ctx.task(flows.jitter_sync, {"value": first})
        return [first, second, str(ctx.uuid())]

    async def one(spec: list[Any]) -> Any:
        if spec[0] != "map":
            return await leaf_call(spec)
        _, values, limit = spec

        async def item(v: int) -> Any:
            a = await ctx.task(flows.jitter, {"value": v})
            return await ctx.task(flows.jitter_sync, {"value": a})

        return await ctx.parallel.map(values, item, limit=limit)

    head = await ctx.task(flows.jitter_sync, {"value": len(inputs["shape"])})
    body = await ctx.parallel.all(
        [lambda spec=spec: one(spec) for spec in inputs["shape"]]
    )
    tail = await ctx.task(flows.jitter, {"value": head})
    return {"head": head, "body": body, "tail": tail}


T = "tests.engine.flows."


def expected_calls(shape: Any) -> list[tuple[str, str]]:
    """The (key, task) of every effect, derived from the shape alone."""
    calls = [("0", T + "jitter_sync"), ("2", T + "jitter")]
    for j, spec in enumerate(shape):
        scope = f"1.{j}"
        kind = spec[0]
        if kind == "map":
            for i in range(len(spec[1])):
                calls.append((f"{scope}.0.{i}.0", T + "jitter"))
                calls.append((f"{scope}.0.{i}.1", T + "jitter_sync"))
        elif kind == "seq":
            calls.append((f"{scope}.0", T + "jitter"))
            calls.append((f"{scope}.1", T + "jitter_sync"))  # the log takes no key
        else:
            task = {"async": "jitter", "sync": "jitter_sync", "fail": "jitter_fail"}
            calls.append((f"{scope}.0", T + task.get(kind, "flaky")))
    return sorted(calls)


def run_once(
    path: Path, shape: Any, seed: int | None
) -> tuple[Any, list[Any], list[str]]:
    flows.DELAYS["seed"] = seed
    try:
        with Engine(str(path), durability="process") as engine:
            run = engine.run(shaped, {"shape": shape}, run_id="sched")
            assert run.status == "completed", run.error
            assert engine.verify("sched").ok
            requested = [
                (key_of(s.event), s.event.task)
                for s in engine.events("sched")
                if isinstance(s.event, jf.EffectRequested)
            ]
            # Keys are structural: one call per key, where the shape puts it.
            assert sorted(requested) == expected_calls(shape)
            values = [
                key_of(s.event)
                for s in engine.events("sched")
                if isinstance(s.event, jf.ValueRecorded)
            ]
            assert sorted(values) == sorted(
                f"1.{j}.2" for j, spec in enumerate(shape) if spec[0] == "seq"
            )
            return (
                run.result,
                content(engine, "sched"),
                keys_of(engine, "sched", "completed"),
            )
    finally:
        flows.DELAYS["seed"] = None


@settings(max_examples=20, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**32))
def test_latencies_and_completion_order_do_not_change_the_journal(
    tmp_path_factory: Any, shape: Any, seed: int
) -> None:
    base = tmp_path_factory.mktemp("sched")
    reference, reference_content, reference_order = run_once(base / "ref", shape, None)
    result, journal, order = run_once(base / "jittered", shape, seed)
    assert result == reference
    assert journal == reference_content
    assert sorted(order) == sorted(reference_order)


@settings(max_examples=15, deadline=None)
@given(shape=shapes, seeds=st.tuples(st.integers(0, 2**32), st.integers(0, 2**32)))
def test_two_different_schedules_record_the_same_journal(
    tmp_path_factory: Any, shape: Any, seeds: tuple[int, int]
) -> None:
    base = tmp_path_factory.mktemp("sched2")
    first = run_once(base / "one", shape, seeds[0])
    second = run_once(base / "two", shape, seeds[1])
    assert first[0] == second[0]
    assert first[1] == second[1]


def test_latencies_really_reorder_completions(tmp_path: Path) -> None:
    """The property above is not vacuous: drawn latencies do reorder events."""
    shape = [["async", i] for i in range(5)]
    flows.DELAYS["max"] = 0.02
    try:
        orders = {
            tuple(run_once(tmp_path / f"j{seed}", shape, seed)[2]) for seed in range(6)
        }
    finally:
        flows.DELAYS["max"] = 0.005
    assert len(orders) > 1
