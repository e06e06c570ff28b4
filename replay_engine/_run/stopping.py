"""Stopping executions on request: a signal, or another thread.

``Engine.request_stop`` (the CLI calls it from its SIGTERM/SIGINT handlers)
asks every run the engine is executing to stop:

1. the dispatcher holds: nothing new is dispatched (new calls are still
   recorded as requests, which a resume dispatches);
2. effects in flight get ``grace`` seconds to finish, and their outcomes are
   recorded as usual;
3. then the execution stops: what completed is committed, the run keeps the
   status ``running`` (it is not a failure) and ``RunInterrupted`` is raised,
   so the caller releases the run lock on its way out.

A second request stops at once. A request made before an execution starts
stops it before it dispatches anything. Effects abandoned in flight have a
request and no completion: a resume dispatches them again, like after a crash.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..errors import RunInterrupted
from .settle import finish_stats, stop
from .state import ExecutionState
from .stop_request import StopWatch


async def settle_stopped(
    state: ExecutionState, main: asyncio.Task[Any], watch: StopWatch
) -> None:
    """Stop the execution, commit what completed, and raise ``RunInterrupted``.

    The run's status stays ``running``: a stop is not a failure.
    """
    dispatcher = state.dispatcher
    queued = sum(1 for call in dispatcher.ready if not call.future.done())
    abandoned = watch.abandoned
    await stop(state, main)
    finish_stats(state, status=None)
    completed = max(0, state.stats.dispatched - abandoned - queued)
    raise RunInterrupted(
        state.run_id,
        watch.stopper.reason or "a stop request",
        completed=completed,
        abandoned=abandoned,
    )
