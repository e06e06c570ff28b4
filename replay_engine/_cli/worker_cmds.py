"""``submit`` (record a queued run) and ``worker`` (recover, wake and start runs).

``worker`` takes repeatable queue groups, each ``--queue NAME`` followed by
the limits that apply to it (``--concurrency N``, ``--rate N/s`` or
``N/m``); click has no grouped options, so the words after the processes are
read here, in order. On SIGTERM or SIGINT it drains (stops taking runs,
effects in flight get ``--grace`` seconds, what completed is committed, locks
are released) and exits 0 with one summary line; a second signal stops the
executions at once.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from types import FrameType
from typing import Any, Literal

import click

from .. import QueueLimits, ReplayEngineError, WorkerEvent, load_process, serve
from .common import (
    EXIT_OK,
    emit_json,
    journal_path,
    json_option,
    open_engine,
    quiet_engine_logger,
    reporting_errors,
    usage_error,
)
from .run_cmds import _read_input
from .safe_text import echo, printable
from .serve_cmd import server_options
from .stop_signals import exit_now, grace_option

_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_SERVE_START = 30.0
"""Seconds ``worker --serve`` waits for its server to listen."""


@click.command("submit")
@click.argument("process", metavar="MODULE:FUNC")
@click.option("--input", "input_json", metavar="JSON", help="The run's inputs (JSON).")
@click.option(
    "--input-file", metavar="FILE", help="Read the inputs from FILE ('-': stdin)."
)
@click.option("--run-id", metavar="ID", help="The new run's id (generated if omitted).")
@click.option("--queue", metavar="NAME", help="The queue to put the run on.")
@json_option
@click.pass_context
@reporting_errors
def submit_command(
    ctx: click.Context,
    process: str,
    input_json: str | None,
    input_file: str | None,
    run_id: str | None,
    queue: str | None,
    as_json: bool,
) -> None:
    """Record a queued run of MODULE:FUNC and return; a worker starts it.

    Nothing executes here. Prints the run id (exit 0); nothing is recorded
    when the process cannot be imported, the input is not valid JSON or the
    run id is taken (exit 2).
    """
    inputs = _read_input(input_json, input_file, ctx)
    fn = load_process(process)  # an import error is reported alone, first
    with open_engine(ctx, access="create") as engine:
        info = engine.submit(fn, inputs, run_id=run_id, queue=queue)
    if as_json:
        emit_json(
            {
                "run_id": info.run_id,
                "status": info.status,
                "queue": info.queue,
                "process": info.process,
            }
        )
    else:
        echo(info.run_id)


def _parse_rate(text: str, ctx: click.Context) -> float:
    number, _, unit = text.partition("/")
    per = {"": 1.0, "s": 1.0, "m": 60.0}.get(unit.strip().lower())
    try:
        value = float(number)
    except ValueError:
        value = math.nan
    if per is None or not math.isfinite(value) or value <= 0:
        raise usage_error(
            f"--rate {text!r}: give a positive number per second or minute, as"
            " 10/s or 30/m",
            ctx,
        )
    return value / per


def _parse_words(
    words: Sequence[str], ctx: click.Context
) -> tuple[list[str], dict[str, QueueLimits]]:
    """PROCESS words, then ``--queue NAME [--concurrency N] [--rate R]`` groups."""
    processes: list[str] = []
    groups: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    items = list(words)
    i = 0
    while i < len(items):
        word = items[i]
        name, eq, inline = word.partition("=")
        if name in ("--queue", "--concurrency", "--rate"):
            if eq:
                value = inline
            elif i + 1 < len(items):
                i += 1
                value = items[i]
            else:
                raise usage_error(f"{name} needs a value", ctx)
            if name == "--queue":
                if value in groups:
                    raise usage_error(f"--queue {value!r} is given twice", ctx)
                current = groups[value] = {}
            elif current is None:
                raise usage_error(f"{name} must follow the --queue it limits", ctx)
            elif name == "--concurrency":
                try:
                    current["concurrency"] = int(value)
                except ValueError:
                    raise usage_error(
                        f"--concurrency {value!r} is not a whole number", ctx
                    ) from None
            else:
                current["rate"] = _parse_rate(value, ctx)
        elif word.startswith("-"):
            raise usage_error(f"no such option: {word}", ctx)
        else:
            processes.append(word)
        i += 1
    try:
        limits = {name: QueueLimits(**opts) for name, opts in groups.items()}
    except ValueError as exc:
        raise usage_error(str(exc), ctx) from None
    return processes, limits


class _Reporter:
    """One line per run started and finished (plain text, or JSON lines)."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def __call__(self, event: WorkerEvent) -> None:
        if self.as_json:
            doc = {"event": event.kind, "run_id": event.run_id, "at": time.time()}
            for name in ("why", "status", "detail"):
                value = getattr(event, name)
                if value is not None:
                    doc[name] = value
            click.echo(json.dumps(doc, ensure_ascii=False))
            return
        words = [event.kind, event.run_id]
        if event.why:
            words.append(f"({event.why})")
        if event.status:
            words.append(event.status)
        if event.detail:
            words.append(f"- {event.detail}")
        echo(printable(" ".join(words)))


@click.command(
    "worker",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": True},
)
@click.argument("words", nargs=-1, type=click.UNPROCESSED, metavar="PROCESS...")
@click.option(
    "--max-runs",
    type=click.IntRange(min=1),
    default=32,
    show_default=True,
    help="Runs this worker executes at once.",
)
@click.option(
    "--recovery-grace",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    help="Seconds a running run nobody holds must be quiet before it is recovered.",
)
@click.option(
    "--durability",
    type=click.Choice(["fsync", "process"]),
    default="fsync",
    show_default=True,
    help="fsync: every commit survives power loss; process: a crash of this"
    " process only.",
)
@click.option(
    "--serve",
    "serve_http",
    is_flag=True,
    help="Also serve the HTTP API and console (see `serve`) in this process.",
)
@server_options
@grace_option
@json_option
@click.pass_context
@reporting_errors
def worker_command(
    ctx: click.Context,
    words: tuple[str, ...],
    max_runs: int,
    recovery_grace: float,
    durability: Literal["fsync", "process"],
    serve_http: bool,
    host: str,
    port: int,
    token: str | None,
    grace: float,
    as_json: bool,
) -> None:
    """Recover, wake and start runs of the PROCESSes (MODULE:FUNC) until stopped.

    Queue limits: --queue NAME [--concurrency N] [--rate N/s|N/m], repeatable;
    a queue's limits hold across every worker on the journal. Runs of other
    processes are left alone. SIGTERM/SIGINT drain the worker (effects in
    flight get --grace seconds) and it exits 0; a second signal stops at once.
    Prints one line per run started and finished (with --json, a JSON line
    per event), then a summary. With --serve (and --host/--port/--token as for
    `serve`), the HTTP API and console run in this process too, and they may
    submit runs of the PROCESSes (and no other).
    """
    processes, queues = _parse_words(words, ctx)
    if not processes:
        raise usage_error(
            "name at least one process the worker may run (MODULE:FUNC)", ctx
        )
    fns = [load_process(p) for p in processes]
    reporter = _Reporter(as_json)
    with (
        open_engine(ctx, access="create", durability=durability) as engine,
        quiet_engine_logger(),
        _serving(ctx, serve_http, fns, durability, host, port, token, as_json),
    ):
        worker = engine.worker(
            [*fns, *processes],
            queues,
            max_runs=max_runs,
            recovery_grace=recovery_grace,
            stop_grace=grace,
            on_event=reporter,
        )
        received: list[str] = []

        def handle(signum: int, frame: FrameType | None) -> None:
            del frame
            received.append(signal.Signals(signum).name)
            worker.stop(grace if len(received) == 1 else 0.0)

        previous: dict[signal.Signals, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in _SIGNALS:
                previous[sig] = signal.signal(sig, handle)
        try:
            summary = worker.run()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    why = f" by {received[0]}" if received else ""
    if as_json:
        click.echo(
            json.dumps(
                {
                    "event": "stopped",
                    "signal": received[0] if received else None,
                    "started": summary.started,
                    "recovered": summary.recovered,
                    "woken": summary.woken,
                    "finished": summary.finished,
                    "errors": summary.errors,
                }
            )
        )
    else:
        echo(f"worker stopped{why}: {summary.line()}")
    # Tasks abandoned in pool threads after a drain must not keep us alive.
    exit_now(EXIT_OK)


@contextlib.contextmanager
def _serving(
    ctx: click.Context,
    wanted: bool,
    fns: Sequence[Callable[..., Any]],
    durability: str,
    host: str,
    port: int,
    token: str | None,
    as_json: bool,
) -> Iterator[None]:
    """``worker --serve``: the HTTP server in a thread of this process, then stopped.

    It shares the worker's journal handle (one per process) and may submit
    only the processes this worker loaded; it imports nothing else.
    """
    if not wanted:
        yield
        return
    path = journal_path(ctx, must_exist=True)
    stop = threading.Event()
    ready: list[str] = []
    failed: list[ReplayEngineError] = []

    def body() -> None:
        try:
            serve(
                path,
                host=host,
                port=port,
                token=token or None,
                on_ready=ready.append,
                stop=stop,
                processes=fns,
                durability=durability,
            )
        except ReplayEngineError as exc:
            failed.append(exc)

    thread = threading.Thread(target=body, name="replay-engine-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + _SERVE_START
    while not ready and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    if not ready:
        stop.set()
        problem = failed[0] if failed else f"it did not start in {_SERVE_START:.0f}s"
        raise usage_error(f"--serve: {problem}", ctx)
    if as_json:
        click.echo(json.dumps({"event": "serving", "url": ready[0]}))
    else:
        echo(printable(f"serving {path} on {ready[0]}"))
    try:
        yield
    finally:
        stop.set()
        thread.join(_SERVE_START)


def register(group: click.Group) -> None:
    """Add ``submit`` and ``worker`` to the command group."""
    group.add_command(submit_command)
    group.add_command(worker_command)
