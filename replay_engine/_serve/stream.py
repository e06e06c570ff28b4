"""Live pages: a run's events and status as server-sent events, and its timeline.

``GET /api/runs/{id}/stream`` polls the journal twice a second (each poll
opens an engine briefly, in a worker thread, like every request) and sends
each new event (``event: event``, ``id:`` its seq, so a reconnecting client
resumes with ``Last-Event-ID``) and the run's status whenever it changes
(``event: status``). It ends once the run has ended and every event was
sent, after ``MAX_STREAM`` seconds (clients reconnect), or when the client
goes away.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from .. import Engine
from .._cli.export_cmds import inherited_times
from .._cli.timeline_html import render_html
from .._cli.timeline_model import build_timeline, times_by_seq
from .._cli.values import dumps
from . import views
from .entry import ServeConfig
from .handlers import api, int_query, run_id_param, with_engine

POLL = 0.5
MAX_STREAM = 300.0
KEEPALIVE = 15.0
ENDED = frozenset({"completed", "failed", "cancelled", "timed_out"})
TIMELINE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline';"
    " img-src data:; frame-ancestors 'self'; sandbox allow-scripts"
)


def _sse(kind: str, data: Any, event_id: int | None = None) -> str:
    # dumps escapes control characters and newlines inside strings, so the
    # document is one line of JSON; indent adds newlines, each gets "data: ".
    lines = dumps(data).split("\n")
    head = f"id: {event_id}\n" if event_id is not None else ""
    return head + f"event: {kind}\n" + "".join(f"data: {x}\n" for x in lines) + "\n"


def _poll(
    engine: Engine, run_id: str, start: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    doc = views.status(engine, run_id)
    docs: list[dict[str, Any]] = []
    if doc["events"] > start:
        docs, _ = views.events_page(engine, run_id, start, views.MAX_PAGE)
    return doc, docs


async def _frames(
    request: Request, config: ServeConfig, run_id: str, start: int
) -> AsyncIterator[str]:
    began = last_sent = time.monotonic()
    shown: tuple[str, int] | None = None
    yield "retry: 2000\n\n"
    while time.monotonic() - began < MAX_STREAM:
        doc, docs = await with_engine(
            config, functools.partial(_poll, run_id=run_id, start=start)
        )
        for event in docs:
            yield _sse("event", event, event["seq"])
            start = event["seq"] + 1
        if (doc["status"], doc["events"]) != shown:
            shown = (doc["status"], doc["events"])
            yield _sse("status", doc)
            last_sent = time.monotonic()
        if doc["status"] in ENDED and start >= doc["events"]:
            yield _sse("end", {"run_id": run_id, "status": doc["status"]})
            return
        if time.monotonic() - last_sent > KEEPALIVE:
            yield ": keep-alive\n\n"
            last_sent = time.monotonic()
        if await request.is_disconnected():
            return
        await asyncio.sleep(POLL)


@api
async def run_stream(request: Request, config: ServeConfig) -> Response:
    run_id = run_id_param(request)
    start = int_query(request, "from", 0, 1 << 62)
    last = request.headers.get("last-event-id", "")
    if last.isdigit():
        start = int(last) + 1
    await with_engine(config, lambda e: e.status(run_id))  # 404 before streaming
    return StreamingResponse(
        _frames(request, config, run_id, start),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _timeline(engine: Engine, run_id: str) -> str:
    info = engine.status(run_id)
    events = engine.events(run_id)
    times = times_by_seq(events, inherited_times(engine, info))
    return render_html(
        build_timeline(run_id, info.status, events, times, fork_at=info.fork_at)
    )


@api
async def run_timeline(request: Request, config: ServeConfig) -> Response:
    """The ``timeline`` command's page, sandboxed: it can reach nothing."""
    run_id = run_id_param(request)
    page = await with_engine(config, lambda e: _timeline(e, run_id))
    return Response(
        page,
        media_type="text/html",
        headers={"Content-Security-Policy": TIMELINE_CSP},
    )
