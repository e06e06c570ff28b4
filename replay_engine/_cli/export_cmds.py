"""``export`` and ``timeline``: a run's events as JSON lines, and as a Gantt chart."""

from __future__ import annotations

import functools
import json
import os.path
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

import click

import journal_format as jf

from .. import Engine, RunInfo, RunNotFoundError
from .common import (
    emit_json,
    json_option,
    make_console,
    open_engine,
    plain,
    reporting_errors,
    usage_error,
)
from .safe_text import literal, printable
from .streaming import EventDocs, iter_events, json_line, write_lines

# (event type, field) pairs that hold the content address of a payload.
ADDRESS_FIELDS = frozenset(
    {
        ("run_started", "inputs"),
        ("requested", "args"),
        ("completed", "result"),
        ("signal", "payload"),
        ("run_completed", "result"),
    }
)
_ENVELOPE = ("seq", "type", "key", "task", "digest", "prev", "at", "v")
_MAX_FORK_DEPTH = 32
_DETAIL_CHARS = 200
"""Characters of an args or result payload the timeline's details show."""


def export_records(
    events: Iterable[Any], payload: Callable[[bytes], Any] | None
) -> Iterator[dict[str, Any]]:
    """One flat JSON-ready object per event (see docs/cli-json.md, ``export``).

    With ``payload``, payload addresses are replaced by the decoded payloads;
    without it they stay as hex. Lazy, and keeps only what later events need
    (``EventDocs``), so a stream of events exports in constant memory.
    """
    docs = EventDocs()
    for stored in events:
        event = stored.event
        doc = docs.document(stored)
        record = {name: doc[name] for name in _ENVELOPE}
        for name, stored_value in doc["fields"].items():
            value = stored_value
            if payload is not None and (doc["type"], name) in ADDRESS_FIELDS:
                value = plain(payload(getattr(event, name)))
            # A field named like an envelope entry (none is, today) keeps both.
            record["field_" + name if name in record else name] = value
        yield record


def _payload_reader(engine: Engine, run_id: str) -> Callable[[bytes], Any]:
    # Bounded: identical payloads are often near each other (a request's args
    # and a retry's), and an export must not hold every payload of a run.
    return functools.lru_cache(maxsize=256)(
        functools.partial(_read_payload, engine, run_id)
    )


def _read_payload(engine: Engine, run_id: str, address: bytes) -> Any:
    return engine.payload(address, run_id=run_id)


def _describer(engine: Engine, run_id: str) -> Callable[[bytes], str]:
    """A payload reference -> its JSON, cut short, and its blake3 address."""

    def describe(ref: bytes) -> str:
        value = engine.payload(ref, run_id=run_id)
        text = json.dumps(plain(value), ensure_ascii=False, default=repr)
        if len(text) > _DETAIL_CHARS:
            text = f"{text[:_DETAIL_CHARS]}… ({len(text):,} characters)"
        inline = jf.ref_is_inline(ref)
        address = jf.address_of(ref) if inline else ref
        return f"{text}  [blake3 {address.hex()}{' inline' if inline else ''}]"

    return describe


def _open_output(path: str, ctx: click.Context) -> IO[str]:
    try:
        return open(path, "w", encoding="utf-8")
    except OSError as exc:
        raise usage_error(
            f"cannot write {path!r}: {exc.strerror or exc}", ctx
        ) from None


@click.command("export")
@click.argument("run_id")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl"]),
    default="jsonl",
    show_default=True,
    help="jsonl: one JSON object per line, one line per event.",
)
@click.option(
    "--payloads/--no-payloads",
    default=True,
    show_default=True,
    help="Inline decoded payloads (inputs, args, results), or keep their"
    " content addresses as hex.",
)
@click.option("-o", "--output", metavar="FILE", help="Write to FILE instead of stdout.")
@json_option
@click.pass_context
@reporting_errors
def export_command(
    ctx: click.Context,
    run_id: str,
    fmt: str,
    payloads: bool,
    output: str | None,
    as_json: bool,
) -> None:
    """Export the events of RUN_ID, one JSON object per event.

    Each object has seq, type, key, task, digest, prev, at and v, then the
    event's own fields. With --json and no -o, the objects are printed as one
    JSON array; with -o, a summary document is printed.
    """
    with open_engine(ctx) as engine:
        engine.events(run_id, 0, 0)  # an unknown run: an error, and no file written
        reader = _payload_reader(engine, run_id) if payloads else None
        records = export_records(iter_events(engine, run_id), reader)
        if output is None:
            if as_json:
                emit_json(list(records))
            else:
                write_lines(json_line(record) for record in records)
            return
        count = 0
        with _open_output(output, ctx) as fh:
            for record in records:
                fh.write(json_line(record) + "\n")
                count += 1
    doc = {
        "run_id": run_id,
        "format": fmt,
        "events": count,
        "payloads": payloads,
        "output": os.path.realpath(output),
    }
    if as_json:
        emit_json(doc)
    else:
        make_console().print(
            literal(f"wrote {count} events of run {run_id} to {output}")
        )


def inherited_times(engine: Engine, info: RunInfo, depth: int = 0) -> dict[int, int]:
    """For a fork: when its shared events happened in its parent (and so on up)."""
    if info.parent is None or info.fork_at is None or depth > _MAX_FORK_DEPTH:
        return {}
    try:
        events = engine.events(info.parent)
    except RunNotFoundError:
        return {}
    # status reads the parent's whole journal anyway: read it once, for both.
    parent = engine.status(info.parent, events=events)
    upstream = inherited_times(engine, parent, depth + 1)
    shared = events[: min(info.fork_at, parent.events)]
    return {s.seq: upstream.get(s.seq, s.envelope.at) for s in shared}


@click.command("timeline")
@click.argument("run_id")
@click.option(
    "-o",
    "--output",
    metavar="FILE",
    help="The HTML file to write (default: RUN_ID.timeline.html; '-' for stdout).",
)
@json_option
@click.pass_context
@reporting_errors
def timeline_command(
    ctx: click.Context, run_id: str, output: str | None, as_json: bool
) -> None:
    """Write a self-contained HTML Gantt chart of RUN_ID's calls.

    One row per call in key order, a bar from its request to its outcome;
    blue: dispatched by the latest execution, another colour: completed by
    the earlier execution of that colour (replayed), red: failed, striped:
    in flight, ticks: retried attempts. Each execution has its lane; an
    effect that ran twice (in flight at a crash) is marked x2. Big parallel
    groups and long loops are folded into one row with their counts. Click a
    call for its args and result (with their blake3 addresses). The page
    loads nothing from the network.
    """
    # Here, not at the top: ``export`` (same module) streams without them.
    from rich.text import Text

    from .timeline_html import render_html
    from .timeline_model import build_timeline, times_by_seq

    with open_engine(ctx) as engine:
        events = engine.events(run_id)
        # One read of a long run, not two: status reuses the events.
        info = engine.status(run_id, events=events)
        times = times_by_seq(events, inherited_times(engine, info))
        timeline = build_timeline(
            run_id, info.status, events, times, fork_at=info.fork_at
        )
        # Payloads are read only for the calls drawn on a row of their own.
        page = render_html(timeline, _describer(engine, run_id))
    path = output or f"{run_id}.timeline.html"
    if path == "-" and as_json:
        raise usage_error("give -o FILE with --json: stdout holds the JSON", ctx)
    if path == "-":
        sys.stdout.write(page)
        return
    with _open_output(path, ctx) as fh:
        fh.write(page)
    doc = {
        "run_id": run_id,
        "output": os.path.realpath(path),
        "rows": len(timeline.rows),
        "keys": [row.key for row in timeline.rows],
        "events": timeline.events,
        "executions": timeline.latest_execution + 1,
    }
    if as_json:
        emit_json(doc)
        return
    make_console().print(
        Text.assemble(
            ("wrote ", "dim"),
            (printable(path), "bold"),
            (f": {len(timeline.rows)} calls, {timeline.events} events,", "dim"),
            (f" {timeline.latest_execution + 1} execution(s)", "dim"),
        )
    )


def register(group: click.Group) -> None:
    """Add ``export`` and ``timeline``."""
    group.add_command(export_command)
    group.add_command(timeline_command)
