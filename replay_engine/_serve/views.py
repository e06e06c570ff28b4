"""The documents the API reads: the CLI's, built by the CLI's own code.

Each function takes an open :class:`Engine` and returns a JSON-ready value;
``handlers`` runs them in a worker thread with an engine opened for the
request. Pages of events, the approvals queue and the claims list are the
server's own documents (docs/http-api.md); the rest are exactly what
``status``, ``runs``, ``log`` and ``pending`` print with ``--json``.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

import journal_format as jf

from .. import Engine, RunInfo
from .._cli.event_rows import event_document, redispatched
from .._cli.inspect_cmds import executor_document, status_document
from .._cli.waiting_views import waiting_fields

MAX_PAGE = 1000
"""The most events one page holds."""


def run_row(engine: Engine, info: RunInfo) -> dict[str, Any]:
    """One row of ``runs --json`` (with ``queue``)."""
    return {
        "run_id": info.run_id,
        "status": info.status,
        "process": info.process,
        "events": info.events,
        "created": info.created,
        "updated": info.updated,
        "parent": info.parent,
        "queue": info.queue,
        "executor": executor_document(info),
        **waiting_fields(engine, info),
    }


def runs(
    engine: Engine,
    status: str | None,
    search: str | None,
    process: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    """``runs --json``, filtered: status, a substring of id or process, a process."""
    infos = engine.runs(status)
    if process is not None:
        infos = [i for i in infos if i.process == process]
    if search:
        needle = search.casefold()
        infos = [
            i
            for i in infos
            if needle in i.run_id.casefold() or needle in i.process.casefold()
        ]
    return [run_row(engine, i) for i in infos[:limit]]


def status(engine: Engine, run_id: str) -> dict[str, Any]:
    """``status --json``, plus the failed run's traceback (``error.traceback``)."""
    info = engine.status(run_id)
    doc = status_document(engine, info)
    if info.error is not None:
        doc["error"]["traceback"] = info.error.traceback
    doc["queue"] = info.queue
    return doc


def events_page(
    engine: Engine, run_id: str, start: int, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """Events ``start`` .. ``start + limit`` as ``log --json`` rows; and the next seq.

    The whole journal is read, as ``log`` reads it: a completion names its
    task through an earlier request, and whether a request was dispatched
    again is known only from the executions after it.
    """
    stored_events = engine.events(run_id)
    again = redispatched(stored_events)
    tasks: dict[str, str] = {}
    docs = []
    stop = start + limit
    for stored in stored_events:
        if stored.seq >= stop:
            break
        if isinstance(stored.event, jf.EffectRequested):
            tasks[jf.key_bytes_to_text(stored.event.key)] = stored.event.task
        if stored.seq < start:
            continue
        doc = event_document(stored, tasks)
        if doc["type"] == "requested":
            doc["redispatched"] = again.get(stored.seq, 0)
        docs.append(doc)
    return docs, start + len(docs)


def pending(engine: Engine, run_id: str) -> dict[str, Any]:
    """``pending --json``."""
    info = engine.status(run_id)
    effects = engine.pending(run_id)
    signals = engine.waiting(run_id).signals
    return {
        "run_id": run_id,
        "status": info.status,
        "pending": [e.to_dict() for e in effects],
        "signals": [s.to_dict() for s in signals],
    }


def _last_claims(engine: Engine, run_id: str) -> dict[str, int]:
    """Each key -> when its latest claim or heartbeat was recorded (ns)."""
    out: dict[str, int] = {}
    for stored in engine.events(run_id):
        if isinstance(stored.event, jf.EffectClaimed):
            out[jf.key_bytes_to_text(stored.event.key)] = stored.envelope.at
    return out


def approvals(engine: Engine) -> list[dict[str, Any]]:
    """Every breakpoint a waiting run waits on, oldest first: a person's queue."""
    rows = []
    for info in engine.runs("waiting"):
        for effect in engine.waiting(info.run_id).externals:
            if effect.kind == "breakpoint":
                rows.append(
                    {"run_id": info.run_id, "process": info.process, **effect.to_dict()}
                )
    return sorted(rows, key=lambda r: str(r["requested_at"]))


def claims(engine: Engine) -> list[dict[str, Any]]:
    """Every claimed effect of a waiting run, with its lease and heartbeat age."""
    now = _dt.datetime.now(_dt.UTC)
    rows = []
    for info in engine.runs("waiting"):
        effects = [e for e in engine.waiting(info.run_id).externals if e.claimed_by]
        if not effects:
            continue
        last = _last_claims(engine, info.run_id)
        for effect in effects:
            expires = effect.lease_expires
            beat = last.get(effect.key)
            rows.append(
                {
                    "run_id": info.run_id,
                    "process": info.process,
                    **effect.to_dict(),
                    "lease_left": None
                    if expires is None
                    else round((expires - now).total_seconds(), 3),
                    "heartbeat_age": None
                    if beat is None
                    else round(max(0.0, now.timestamp() - beat / 1e9), 3),
                }
            )
    return rows
