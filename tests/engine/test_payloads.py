"""Payloads that cannot be encoded: args, results and inputs.

Every test runs a real engine on a real LMDB journal in ``tmp_path`` and counts
dispatches on the side channel (``flows.note``), never in the journal under
test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import journal_format as jf
from replay_engine import PayloadError, ReplayEngineError
from tests.journal_views import keys_of, tags

from . import flows
from .flows import read_side, starts
from .replay_helpers import SEEN, MakeEngine
from .test_keys import three_in_a_row

# -- payloads ----------------------------------------------------------------------


async def bad_args_caught(inputs: Any, ctx: Any) -> Any:
    try:
        await ctx.task(flows.add, {"a": object(), "b": 1})
    except PayloadError as exc:
        SEEN.append(exc)
    return await ctx.task(flows.add, {"a": 1, "b": 1})


def test_unencodable_args_raise_payloaderror_and_record_nothing(
    make_engine: MakeEngine, side: Path
) -> None:
    engine = make_engine()
    run = engine.run(bad_args_caught, run_id="r")
    assert run.status == "completed"
    (exc,) = SEEN
    assert isinstance(exc, PayloadError)
    assert isinstance(exc, TypeError)
    assert isinstance(exc, ReplayEngineError)
    assert "tests.engine.flows.add" in str(exc)
    assert f"{__file__}:" in str(exc)
    # Only the valid call was recorded, and only it ran.
    assert tags(engine, "r") == [
        "run_started",
        "requested",
        "completed",
        "run_completed",
    ]
    payloads = [
        engine.payload(s.event.args)
        for s in engine.events("r")
        if isinstance(s.event, jf.EffectRequested)
    ]
    assert payloads == [{"a": 1, "b": 1}]
    assert len(starts(read_side(side))) == 1


async def bad_args_uncaught(inputs: Any, ctx: Any) -> Any:
    await ctx.task(flows.add, {"a": 1, "b": 1})
    return await ctx.task(flows.add, {"a": [object()], "b": 1})


def test_unencodable_args_fail_the_run_without_recording_the_call(
    make_engine: MakeEngine,
) -> None:
    engine = make_engine()
    run = engine.run(bad_args_uncaught, run_id="r")
    assert run.status == "failed"
    assert run.error is not None
    assert run.error.type == "replay_engine.errors.PayloadError"
    assert keys_of(engine, "r") == ["0"]


async def bad_result(inputs: Any, ctx: Any) -> Any:
    return await ctx.task(flows.unencodable_result, {"x": 1})


def test_an_unencodable_task_result_raises_payloaderror_at_the_await(
    make_engine: MakeEngine,
) -> None:
    engine = make_engine()
    run = engine.run(bad_result, run_id="r")
    assert run.status == "failed"
    assert run.error is not None
    assert run.error.type == "replay_engine.errors.PayloadError"
    assert "completed" not in tags(engine, "r")


def test_unencodable_inputs_raise_payloaderror_and_create_no_run(
    make_engine: MakeEngine,
) -> None:
    engine = make_engine()
    with pytest.raises(PayloadError) as info:
        engine.run(three_in_a_row, {"when": object()}, run_id="r")
    assert isinstance(info.value, TypeError)
    assert engine.runs() == []
