"""Shared by the engine test modules: module flags processes read, and helpers
that start a run and interrupt it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from replay_engine import Engine

MakeEngine = Callable[..., Engine]

# Module flags the test modules' processes read (cleared before every test by
# conftest.clean_flags): a process that fails until the test says otherwise
# stands for "the run broke, the code was fixed, resume it".
FLAGS: dict[str, Any] = {}
SEEN: list[Any] = []


def stop_if_asked() -> None:
    if FLAGS.get("stop"):
        raise RuntimeError("stopped on purpose before the end")


async def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition never became true")
        await asyncio.sleep(0.005)


def run_and_cancel_when(
    engine: Engine,
    process: Any,
    inputs: Any,
    run_id: str,
    ready: Callable[[], bool],
) -> None:
    """Start a run, cancel its asyncio task once ``ready()``, expect CancelledError."""

    async def main() -> None:
        task = asyncio.create_task(engine.run_async(process, inputs, run_id=run_id))
        await wait_for(lambda: ready() or task.done())
        await asyncio.sleep(0)
        assert not task.done(), "the run ended before it could be interrupted"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
