"""Processes and tasks for the execution tests (``tests.executions.exec_flows``).

``gate`` blocks in a worker thread until a file exists (bounded), so a test can
hold an execution open while it posts from another process, or kill it while
the task is in flight. Each execution of ``gate`` and ``count`` appends a line
to the side file named by ``REPLAY_EXEC_SIDE`` (which effects really ran).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from replay_engine import external, task, task_context

SIDE_ENV = "REPLAY_EXEC_SIDE"
GATE_SECONDS = 60.0
"""The longest a gate waits for its file: a test that never opens it fails."""


def note(what: str) -> None:
    path = os.environ.get(SIDE_ENV)
    if not path:
        return
    tc = task_context()
    line = {"what": what, "key": tc.key, "pid": os.getpid()}
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(line) + "\n").encode())
    finally:
        os.close(fd)


def side_lines(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]
    except FileNotFoundError:
        return []


@task(name="exec.gate")
def gate(path: str) -> str:
    note("gate")
    deadline = time.monotonic() + GATE_SECONDS
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {path} never opened")
        time.sleep(0.02)
    return "opened"


@task(name="exec.count")
def count(i: int) -> int:
    note("count")
    return i


@external(kind="agent", name="exec.review")
def review(file: str) -> dict[str, Any]:
    """Posted by an agent."""
    raise NotImplementedError


async def result_during(inputs: dict[str, Any], ctx: Any) -> Any:
    """An agent's review (0.0.0) beside a gated task (0.1.0)."""
    return await ctx.parallel.all(
        [
            lambda: ctx.task(review, {"file": "a.py"}),
            lambda: ctx.task(gate, {"path": inputs["gate"]}),
        ]
    )


async def signal_during(inputs: dict[str, Any], ctx: Any) -> Any:
    """A wait for event ``go`` (0.0.0) beside a gated task (0.1.0)."""
    return await ctx.parallel.all(
        [
            lambda: ctx.wait_for_event("go"),
            lambda: ctx.task(gate, {"path": inputs["gate"]}),
        ]
    )


async def approval_during(inputs: dict[str, Any], ctx: Any) -> Any:
    """A breakpoint (0.0.0) beside a gated task (0.1.0)."""
    return await ctx.parallel.all(
        [
            lambda: ctx.breakpoint("ship?", {"n": 1}),
            lambda: ctx.task(gate, {"path": inputs["gate"]}),
        ]
    )


async def iterate_during(inputs: dict[str, Any], ctx: Any) -> Any:
    """A review (0), then a second review (1.0.0) beside a gated task (1.1.0)."""
    first = await ctx.task(review, {"file": "a.py"})
    second, opened = await ctx.parallel.all(
        [
            lambda: ctx.task(review, {"file": "b.py"}),
            lambda: ctx.task(gate, {"path": inputs["gate"]}),
        ]
    )
    return [first, second, opened]


async def counted_then_gated(inputs: dict[str, Any], ctx: Any) -> Any:
    """Two quick tasks (0, 1), then a gated one (2), then one more (3)."""
    a = await ctx.task(count, {"i": 1})
    b = await ctx.task(count, {"i": 2})
    g = await ctx.task(gate, {"path": inputs["gate"]})
    c = await ctx.task(count, {"i": 3})
    return [a, b, g, c]
