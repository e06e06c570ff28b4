"""Retries, backoff and attempt timeouts of a task.

Every test runs a real engine on a real LMDB journal in ``tmp_path`` and counts
dispatches on the side channel (``flows.note``), never in the journal under
test.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

import journal_format as jf
from replay_engine import TaskFailed
from replay_engine._run.hooks import Hooks  # the testing seam: Engine(hooks=...)
from tests.journal_views import key_of, tags

from . import flows
from .flows import read_side, starts
from .replay_helpers import FLAGS, MakeEngine, stop_if_asked

# -- retries and timeouts -----------------------------------------------------------


async def retried(inputs: Any, ctx: Any) -> Any:
    good = await ctx.task(flows.flaky, {"x": 4})
    try:
        await ctx.task(flows.always_fails, {"x": 5})
        bad: Any = None
    except TaskFailed as exc:
        bad = [exc.error_type, exc.message]
    stop_if_asked()
    return [good, bad]


def test_retries_record_every_failed_attempt(
    make_engine: MakeEngine, side: Path
) -> None:
    engine = make_engine()
    FLAGS["stop"] = True
    assert engine.run(retried, run_id="r").status == "failed"
    attempts = [
        (key_of(s.event), s.event.attempt, s.event.error.type, s.event.error.message)
        for s in engine.events("r")
        if isinstance(s.event, jf.AttemptFailed)
    ]
    assert attempts == [
        ("0", 1, "ConnectionError", "transient failure of attempt 1 for 4"),
        ("1", 1, "ConnectionError", "attempt 1 failed for 5"),
        ("1", 2, "ConnectionError", "attempt 2 failed for 5"),
    ]
    failed = [
        s.event for s in engine.events("r") if isinstance(s.event, jf.EffectFailed)
    ]
    assert len(failed) == 1
    assert failed[0].attempts == 3
    assert failed[0].error.message == "attempt 3 failed for 5"
    lines = starts(read_side(side))
    assert [(x["key"], x["attempt"]) for x in lines] == [
        ("0", 1),
        ("0", 2),
        ("1", 1),
        ("1", 2),
        ("1", 3),
    ]
    FLAGS["stop"] = False
    run = engine.resume("r")
    assert run.result == [40, ["builtins.ConnectionError", "attempt 3 failed for 5"]]
    assert run.stats.dispatched == 0
    assert len(starts(read_side(side))) == 5
    assert tags(engine, "r").count("attempt_failed") == 3


async def backing_off(inputs: Any, ctx: Any) -> int:
    return await ctx.task(flows.backed_off, {"x": 7})


def test_backoff_doubles_between_attempts(make_engine: MakeEngine, side: Path) -> None:
    # Backoff waits through the hooks' sleep (as ctx.sleep timers do): the test
    # sees the delays the engine asks for and waits for none of them.
    requested: list[tuple[str, float]] = []

    def sleep(key: str, seconds: float) -> float:
        requested.append((key, seconds))
        return 0.0

    engine = make_engine(hooks=Hooks(sleep=sleep))
    assert engine.run(backing_off, run_id="r").result == 7
    retry_in = [
        s.event.retry_in
        for s in engine.events("r")
        if isinstance(s.event, jf.AttemptFailed)
    ]
    assert retry_in == [0.05, 0.1]
    assert requested == [("0", 0.05), ("0", 0.1)]
    assert len(starts(read_side(side))) == 3


async def times_out(inputs: Any, ctx: Any) -> Any:
    try:
        await ctx.task(inputs["task"], {"seconds": inputs["seconds"]})
    except TaskFailed as exc:
        return [exc.error_type, exc.key]
    return "no timeout"


@pytest.mark.parametrize(
    ("which", "seconds"), [("sleepy", 5.0), ("sleepy_sync", 2.5)], ids=["async", "sync"]
)
def test_timeout_fails_the_attempt_with_timeouterror(
    make_engine: MakeEngine, which: str, seconds: float
) -> None:
    engine = make_engine()
    task_def = getattr(flows, which)

    async def process(inputs: Any, ctx: Any) -> Any:
        return await times_out({"task": task_def, "seconds": seconds}, ctx)

    began = time.monotonic()
    run = engine.run(process, run_id="r")
    elapsed = time.monotonic() - began
    assert run.result == ["builtins.TimeoutError", "0"]
    assert elapsed < 1.5  # the 0.2 s timeout, not the task's sleep
    failed = [
        s.event for s in engine.events("r") if isinstance(s.event, jf.EffectFailed)
    ]
    assert [f.error.type for f in failed] == ["TimeoutError"]
