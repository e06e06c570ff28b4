"""``replay`` and ``fork``: a run as it stood after N events, and a branch from there.

``replay`` re-executes the process against a prefix of its journal through
:meth:`Engine.replay`, which dispatches nothing and writes nothing. ``fork``
is :meth:`Engine.fork`. The interactive stepper over the same machinery is
``debug`` (``_debug.py``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Any

import click
from rich.text import Text

from .. import CallState, Engine, LogEntry, Snapshot
from .common import (
    PROCESS_OPTION,
    check_run_id,
    emit_json,
    json_option,
    make_console,
    open_engine,
    plain,
    reporting_errors,
    usage_error,
)
from .inspect_cmds import status_document
from .safe_text import printable
from .snapshot_lines import (
    snapshot_lines,
    streamed_lines,
    streamed_records,
)
from .snapshot_views import UNTIL_HELP, parse_until, snapshot_view
from .streaming import FORMATS, json_line, screen_rows, write_lines

SNAPSHOT_EVENTS = 2000
"""On a terminal, a run of at most this many events is replayed whole and shown
as a tree when it fits; a longer one streams lines (a snapshot holds every call)."""


def replay_process(
    engine: Engine, run_id: str, process_ref: str | None
) -> Callable[..., Any]:
    """The process to execute ``run_id`` with: ``process_ref`` or a known one.

    Without ``process_ref``, the run's recorded process is used only if this
    user started the run here (or the engine allows it); otherwise a
    ProcessImportError asking for --process (exit 2). Raises RunNotFoundError
    before trying to import anything.
    """
    return engine.process_for(run_id, process_ref)


def take_snapshot(
    engine: Engine,
    run_id: str,
    until: int | str | None,
    process: Callable[..., Any],
    ctx: click.Context,
    *,
    calls: bool = True,
) -> Snapshot:
    """``engine.replay``, with an out-of-range ``until`` reported as a usage error."""
    check_until(engine, run_id, until, ctx)
    try:
        return engine.replay(run_id, until, process=process, calls=calls)
    except ValueError as exc:  # an unknown key:KEY
        raise usage_error(f"--until: {exc}", ctx) from None


def check_until(
    engine: Engine, run_id: str, until: int | str | None, ctx: click.Context
) -> None:
    """An event count past the run's end is a usage error (one event read)."""
    if not isinstance(until, int) or until == 0:
        return
    if not engine.events(run_id, until - 1, until):
        events = engine.status(run_id).events
        raise usage_error(
            f"--until {until} is outside 0..{events}: run {run_id!r} has"
            f" {events} events",
            ctx,
        )


@click.command("replay")
@click.argument("run_id")
@click.option("--until", metavar="N|key:KEY", callback=parse_until, help=UNTIL_HELP)
@PROCESS_OPTION
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    help="table: the rich tree (default on a terminal when it fits on it);"
    " lines: one plain line per call, log line and frontier call (default"
    " otherwise); jsonl: one JSON object per item.",
)
@json_option
@click.pass_context
@reporting_errors
def replay_command(
    ctx: click.Context,
    run_id: str,
    until: int | str | None,
    process_ref: str | None,
    fmt: str | None,
    as_json: bool,
) -> None:
    """Show RUN_ID as it stood after its first N events; dispatches nothing.

    The process is re-executed against that prefix of its journal: the
    invocation tree with each call done, failed, in flight or not reached, the
    log lines emitted so far, the frontier calls the process stopped at (with
    their source lines), and its result if it returned.
    """
    if as_json and fmt is not None:
        raise usage_error("give --json or --format, not both", ctx)
    with open_engine(ctx) as engine:
        fn = replay_process(engine, run_id, process_ref)
        check_until(engine, run_id, until, ctx)
        if not as_json and fmt is None:
            # Someone is waiting: say what is happening before the replay,
            # which takes seconds on a long run.
            write_lines(
                [
                    f"replaying run {printable(run_id)} to {_upto(until)};"
                    " dispatching nothing"
                ]
            )
        if not as_json and fmt != "table":
            try:
                stream = engine.replay_calls(run_id, until)
            except ValueError as exc:  # an unknown key:KEY
                raise usage_error(f"--until: {exc}", ctx) from None
            tty = sys.stdout.isatty()
            if fmt is not None or not tty or stream.events > SNAPSHOT_EVENTS:
                head = f"run {printable(run_id)}  after {stream.until}"
                head += f" of {stream.events} events"
                _stream(engine, run_id, until, fn, stream, head, fmt == "jsonl", ctx)
                return
        snap = take_snapshot(engine, run_id, until, fn, ctx)
    if as_json:
        emit_json(snap.to_dict())
        return
    size = len(snap.calls) + len(snap.logs) + len(snap.frontier)
    if fmt == "table" or size <= screen_rows():
        make_console().print(snapshot_view(snap))
    else:
        write_lines(snapshot_lines(snap))


def _upto(until: int | str | None) -> str:
    if isinstance(until, int):
        return f"event {until}"
    if until is not None:
        return f"the call at {until}"
    return "its end"


def _stream(
    engine: Engine,
    run_id: str,
    until: int | str | None,
    fn: Callable[..., Any],
    stream: Iterator[CallState | LogEntry],
    head: str,
    jsonl: bool,
    ctx: click.Context,
) -> None:
    """The calls and log lines as they are read, then the re-execution's part."""

    def finish() -> Snapshot:
        return take_snapshot(engine, run_id, until, fn, ctx, calls=False)

    if jsonl:
        write_lines(json_line(record) for record in streamed_records(stream, finish))
        return
    write_lines(streamed_lines(head, stream, finish))


@click.command("fork")
@click.argument("run_id")
@click.option(
    "--at",
    "at",
    type=click.IntRange(min=1),
    required=True,
    metavar="N",
    help="Share the first N events of RUN_ID (1..events).",
)
@click.option(
    "--run-id",
    "new_run_id",
    metavar="NEW",
    help="The new run's id (default: RUN_ID-fork-xxxx).",
)
@json_option
@click.pass_context
@reporting_errors
def fork_command(
    ctx: click.Context, run_id: str, at: int, new_run_id: str | None, as_json: bool
) -> None:
    """Branch RUN_ID at event N: a new run sharing its first N events.

    Nothing executes; resume the new run to go on from the fork point with
    the current code. The parent run is left as it is.
    """
    if new_run_id is not None:
        check_run_id(new_run_id, ctx)
    with open_engine(ctx, access="write", run_id=run_id) as engine:
        engine.status(run_id)  # an unknown run is reported before --at
        try:
            info = engine.fork(run_id, at, new_run_id)
        except ValueError as exc:
            raise usage_error(f"--at: {exc}", ctx) from None
        doc = status_document(engine, info)
    if as_json:
        emit_json(plain(doc))
        return
    console = make_console()
    console.print(
        Text.assemble(
            ("forked ", "dim"),
            (run_id, "bold"),
            (" at event ", "dim"),
            (str(info.fork_at), "bold"),
            (" → ", "dim"),
            (info.run_id, "bold green"),
            (f"  ({info.events} events, {info.status})", "dim"),
        )
    )
    console.print(
        f"resume it with: replay-engine resume {info.run_id}",
        style="dim",
        markup=False,
    )


def register(group: click.Group) -> None:
    """Add ``replay`` and ``fork``."""
    group.add_command(replay_command)
    group.add_command(fork_command)
