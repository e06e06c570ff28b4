"""Processes and tasks for the observability tests (``tests.observability.obs_flows``).

Tasks note the OpenTelemetry span current while they run (``SEEN``), so a test
can check that an attempt's span reaches the task, in a thread, inline and in
the event loop.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from opentelemetry import trace

from replay_engine import task

SEEN: list[tuple[str, int, int]] = []
"""(where, span id, trace id) of the span current inside each task attempt."""
_lock = threading.Lock()
FAIL_FIRST: set[str] = set()
"""Tags whose first attempt fails (then succeeds)."""


def _note(where: str) -> None:
    span = trace.get_current_span().get_span_context()
    with _lock:
        SEEN.append((where, span.span_id, span.trace_id))


@task(name="obs.in_thread", retries=1)
def in_thread(i: int) -> int:
    _note(f"thread-{i}")
    if f"thread-{i}" in FAIL_FIRST:
        FAIL_FIRST.discard(f"thread-{i}")
        raise ValueError(f"first attempt of {i} fails")
    return i * 10


@task(name="obs.inline", executor="inline")
def inline(i: int) -> int:
    _note(f"inline-{i}")
    return i + 1


@task(name="obs.in_loop")
async def in_loop(i: int) -> int:
    _note(f"loop-{i}")
    return i - 1


async def fan(inputs: dict[str, Any], ctx: Any) -> list[int]:
    ctx.log("starting", n=inputs["n"], tag="x")
    first = await ctx.task(inline, {"i": 0})
    looped = await ctx.task(in_loop, {"i": 5})
    many = await ctx.parallel.map(
        list(range(inputs["n"])), lambda i: ctx.task(in_thread, {"i": i})
    )
    ctx.log("done", total=sum(many))
    return [first, looped, *many]


@task(name="obs.in_pool")
def in_pool(i: int) -> list[str]:
    """In a pool process (or a Dask worker): the span context it runs in.

    Returns the trace id and span id current when it starts, the trace id
    and parent span id of a span it opens with its own SDK provider (the
    engine's provider and exporter stay in the engine's process), and its
    process id.
    """
    from opentelemetry.sdk.trace import TracerProvider

    current = trace.get_current_span().get_span_context()
    tracer = TracerProvider().get_tracer("obs.in_pool")
    with tracer.start_as_current_span(f"work-{i}") as span:
        parent = span.parent  # type: ignore[attr-defined]
        ours = span.get_span_context()
    return [
        format(current.trace_id, "032x"),
        format(current.span_id, "016x"),
        format(ours.trace_id, "032x"),
        format(parent.span_id, "016x") if parent is not None else "",
        str(os.getpid()),
    ]
