"""``log``: a run's events, streamed as plain lines or JSON lines, or as a table.

A table only when it fits on the terminal; otherwise (a pipe, a long run) one
line per event as the events are read, in batches (see ``streaming``), so the
first line comes at once and memory stays flat. ``--json`` keeps its one
document (a list of every event).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import click

import journal_format as jf

from .common import (
    EVENT_TAGS,
    SHORT_DIGEST,
    emit_json,
    json_option,
    make_console,
    open_engine,
    reporting_errors,
    usage_error,
)
from .event_rows import detail, event_document, redispatched
from .safe_text import cell
from .streaming import (
    FORMAT_HELP,
    FORMATS,
    EventDocs,
    choose_format,
    iter_events,
    json_line,
    line_of,
    screen_rows,
    write_lines,
)

if TYPE_CHECKING:
    from .. import Engine


def _key_matches(key: str | None, prefix: tuple[int, ...]) -> bool:
    if key is None or key.startswith("<"):
        return False
    parts = tuple(int(p) for p in key.split("."))
    return parts[: len(prefix)] == prefix


class _Filter:
    """``--type``, ``--key-prefix`` and ``--task`` over event documents."""

    def __init__(
        self,
        types: Sequence[str],
        prefix: tuple[int, ...] | None,
        task_pattern: str | None,
    ) -> None:
        self.types = frozenset(types)
        self.prefix = prefix
        self.task_pattern = task_pattern

    def __call__(self, doc: dict[str, Any]) -> bool:
        if self.types and doc["type"] not in self.types:
            return False
        if self.prefix is not None and not _key_matches(doc["key"], self.prefix):
            return False
        return self.task_pattern is None or (
            doc["task"] is not None
            and fnmatch.fnmatchcase(doc["task"], self.task_pattern)
        )


def _whole_docs(
    engine: Engine, run_id: str, start: int, stop: int | None, keep: _Filter
) -> list[dict[str, Any]]:
    """Every document, each request with its ``redispatched`` count.

    Whole: completions name their task through the request, which may be
    earlier, and whether a request was dispatched again is known later.
    """
    stored_events = engine.events(run_id)
    again = redispatched(stored_events)
    tasks: dict[str, str] = {}
    docs = []
    for stored in stored_events:
        if stop is not None and stored.seq >= stop:
            break
        event = stored.event
        if isinstance(event, jf.EffectRequested):
            tasks[jf.key_bytes_to_text(event.key)] = event.task
        if stored.seq < start:
            continue
        doc = event_document(stored, tasks)
        if doc["type"] == "requested":
            doc["redispatched"] = again.get(stored.seq, 0)
        if keep(doc):
            docs.append(doc)
    return docs


def _streamed_docs(
    engine: Engine, run_id: str, start: int, stop: int | None, keep: _Filter
) -> Iterator[dict[str, Any]]:
    """The documents in order, read in batches from seq 0 (tasks need requests)."""
    docs = EventDocs()
    for stored in iter_events(engine, run_id, 0, stop):
        doc = docs.document(stored)
        if stored.seq >= start and keep(doc):
            yield doc


def _print_table(docs: list[dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table()
    table.add_column("seq", justify="right")
    for name in ("type", "key", "task", "digest", "prev", "detail"):
        table.add_column(name)
    for doc in docs:
        table.add_row(
            str(doc["seq"]),
            doc["type"],
            cell(doc["key"]),
            cell(doc["task"]),
            doc["digest"][:SHORT_DIGEST],
            doc["prev"][:SHORT_DIGEST],
            cell(detail(doc)),
        )
    make_console().print(table)


@click.command("log")
@click.argument("run_id")
@click.option(
    "--type",
    "types",
    multiple=True,
    type=click.Choice(EVENT_TAGS),
    help="Only events of this type (repeatable).",
)
@click.option(
    "--key-prefix",
    metavar="KEY",
    help="Only events whose key is KEY or under it (3.1 matches 3.1, 3.1.0 …).",
)
@click.option(
    "--task",
    "task_pattern",
    metavar="NAME",
    help="Only effect events of tasks matching NAME (a glob such as 'ci.*').",
)
@click.option(
    "--from",
    "from_seq",
    type=click.IntRange(min=0),
    metavar="SEQ",
    help="First seq to show.",
)
@click.option(
    "--to",
    "to_seq",
    type=click.IntRange(min=0),
    metavar="SEQ",
    help="Last seq to show (inclusive).",
)
@click.option("--format", "fmt", type=click.Choice(FORMATS), help=FORMAT_HELP)
@json_option
@click.pass_context
@reporting_errors
def log_command(
    ctx: click.Context,
    run_id: str,
    types: Sequence[str],
    key_prefix: str | None,
    task_pattern: str | None,
    from_seq: int | None,
    to_seq: int | None,
    fmt: str | None,
    as_json: bool,
) -> None:
    """Show the events of RUN_ID: seq, type, key, task and hashes.

    On a terminal, a table when the events fit on it; otherwise one line per
    event, printed as the events are read (--format picks). --json prints one
    document; --format jsonl streams one JSON object per event.
    """
    prefix: tuple[int, ...] | None = None
    if key_prefix is not None:
        try:
            prefix = jf.parse_key(key_prefix)
        except jf.FormatError as exc:
            raise usage_error(f"--key-prefix: {exc}", ctx) from None
    if from_seq is not None and to_seq is not None and to_seq < from_seq:
        raise usage_error(f"--to {to_seq} is before --from {from_seq}", ctx)
    if as_json and fmt is not None:
        raise usage_error("give --json or --format, not both", ctx)
    keep = _Filter(types, prefix, task_pattern)
    start = from_seq or 0
    stop = None if to_seq is None else to_seq + 1
    with open_engine(ctx) as engine:
        if not as_json and fmt is None:
            fits = screen_rows()
            upper = start + fits + 1 if stop is None else min(stop, start + fits + 1)
            first = engine.events(run_id, start, upper)
            fmt = choose_format(None, first, len(first) > fits, fits)
        if as_json or fmt == "table":
            docs = _whole_docs(engine, run_id, start, stop, keep)
            if as_json:
                emit_json(docs)
            else:
                _print_table(docs)
            return
        docs_iter = _streamed_docs(engine, run_id, start, stop, keep)
        if fmt == "jsonl":
            write_lines(json_line(doc) for doc in docs_iter)
        else:
            write_lines(line_of(doc) for doc in docs_iter)
