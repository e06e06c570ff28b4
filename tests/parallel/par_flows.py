"""Processes and tasks for the race, settle and failed-wait tests (``tests.parallel``).

In-process tasks report each execution on a side channel (a JSON line appended
to the file named by ``REPLAY_PAR_SIDE``), so a test sees from outside the
journal what ran, and how often.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

from replay_engine import TaskFailed, external, task, task_context

SIDE_ENV = "REPLAY_PAR_SIDE"


def note(what: str, **fields: Any) -> None:
    path = os.environ.get(SIDE_ENV)
    if not path:
        return
    tc = task_context()
    line = {"what": what, "run": tc.run_id, "key": tc.key, "pid": os.getpid(), **fields}
    data = (json.dumps(line, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def read_side(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]
    except FileNotFoundError:
        return []


@task(name="par.step")
def step(i: int, delay: float = 0.0) -> int:
    note("start", i=i)
    if delay:
        time.sleep(delay)
    note("end", i=i)
    return i * 10


@task(name="par.astep")
async def astep(i: int, delay: float = 0.0) -> int:
    note("start", i=i)
    try:
        await asyncio.sleep(delay)
    except asyncio.CancelledError:
        note("cancelled", i=i)
        raise
    note("end", i=i)
    return i * 10


@task(name="par.fail")
def fail(i: int, delay: float = 0.0) -> None:
    note("start", i=i)
    if delay:
        time.sleep(delay)
    raise ValueError(f"branch {i} failed")


@external(kind="agent", name="par.agent")
def agent(i: int) -> Any:
    """Executed outside the engine: a result is posted."""


# -- failing a wait ---------------------------------------------------------------


async def wait_once(inputs: Any, ctx: Any) -> Any:
    """One wait for ``go`` (key 0); a failure comes back as a value."""
    try:
        return {"ok": await ctx.wait_for_event("go")}
    except TaskFailed as exc:
        return {"failed": exc.error_type, "message": exc.message, "key": exc.key}


async def wait_twice(inputs: Any, ctx: Any) -> Any:
    """Two waits for ``go`` (keys 0, 1); failures come back as values."""
    out = []
    for _ in range(2):
        try:
            out.append({"ok": await ctx.wait_for_event("go")})
        except TaskFailed as exc:
            out.append({"failed": exc.error_type, "message": exc.message})
    return out
