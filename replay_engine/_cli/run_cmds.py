"""``run`` and ``resume``: execute a process, with a live progress display."""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import click
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.text import Text

import journal_format as jf

from .. import Run, RunStats, load_process
from .common import (
    EXIT_OK,
    PROCESS_OPTION,
    STATUS_EXIT,
    check_run_id,
    emit_json,
    json_option,
    loads_json,
    make_console,
    open_engine,
    plain,
    quiet_engine_logger,
    reporting_errors,
    status_style,
    usage_error,
)
from .failure_view import failure_lines
from .safe_text import echo, literal
from .stop_signals import grace_option, stopping_on_signals

# -- run and resume ------------------------------------------------------------


class _Live:
    """Progress display and log lines while a run works."""

    def __init__(self, *, as_json: bool) -> None:
        self.as_json = as_json
        self.logs: list[dict[str, Any]] = []
        self.console = make_console()
        self.interactive = not as_json and sys.stdout.isatty()
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._last = 0.0

    def __enter__(self) -> _Live:
        if self.interactive:
            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("[bold]{task.description}"),
                TextColumn(
                    "done {task.fields[done]}  in flight {task.fields[in_flight]}"
                    "  replayed {task.fields[replayed]}"
                ),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task(
                "running", total=None, done=0, in_flight=0, replayed=0
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def on_progress(self, stats: RunStats) -> None:
        if self._progress is None or self._task is None:
            return
        now = time.monotonic()
        if now - self._last < 0.05:  # a wide fan-out reports thousands of times
            return
        self._last = now
        self._progress.update(
            self._task,
            done=max(0, stats.dispatched - stats.in_flight),
            in_flight=stats.in_flight,
            replayed=stats.replayed,
        )

    def on_log(self, key: str, message: str, fields: dict[str, Any]) -> None:
        self.logs.append({"key": key, "message": message, "fields": plain(fields)})
        if self.as_json:
            return
        line = Text()
        line.append(f"log {key:>8}  ", style="dim")
        line.append(message)
        for name, value in fields.items():
            line.append(f" {name}=", style="dim")
            line.append(json.dumps(plain(value), ensure_ascii=False))
        self.console.print(line)


def _run_document(run: Run, process: str | None, logs: list[dict[str, Any]]) -> Any:
    stats = run.stats
    error = None
    if run.error is not None:
        error = {
            "type": run.error.type,
            "message": run.error.message,
            "traceback": run.error.traceback,
        }
    return {
        "run_id": run.run_id,
        "status": run.status,
        "process": process,
        "result": run.result,
        "error": error,
        "pending": list(run.pending),
        "stats": {
            "dispatched": stats.dispatched,
            "redispatched": stats.redispatched,
            "replayed": stats.replayed,
            "events_written": stats.events_written,
            "commits": stats.commits,
            "elapsed": round(stats.elapsed, 6),
        },
        "warnings": list(run.warnings),
        "logs": logs,
    }


def _report_run(run: Run, process: str | None, live: _Live, *, as_json: bool) -> None:
    for warning in run.warnings:
        echo(f"warning: {warning}", err=True)  # may quote the journal
    if as_json:
        emit_json(_run_document(run, process, live.logs))
    else:
        _print_run(run, process)
    code = STATUS_EXIT.get(run.status, EXIT_OK)
    if code:
        click.get_current_context().exit(code)


def _print_run(run: Run, process: str | None) -> None:
    console = make_console()
    head = Text()
    head.append("run ", style="dim")
    head.append(run.run_id, style="bold")
    head.append("  ")
    head.append(run.status, style=f"bold {status_style(run.status)}")
    if process:
        head.append(f"  ({process})", style="dim")
    console.print(head)
    if run.status == "completed":
        console.print(Text("result: ", style="dim"), end="")
        console.print(json.dumps(plain(run.result), ensure_ascii=False), markup=False)
    elif run.status == "failed" and run.error is not None:
        console.print(
            Text(f"error: {run.error.type}: {run.error.message}", style="red")
        )
        for line in failure_lines(run.error):  # where: file:line, task and key
            console.print(literal(line, "dim"))
    elif run.status in ("cancelled", "timed_out"):
        why = (
            "cancelled (replay-engine cancel): nothing more runs;"
            f" `replay-engine status {run.run_id}` shows what was abandoned"
            if run.status == "cancelled"
            else "timed out: it passed its deadline (--timeout); nothing more runs"
        )
        console.print(
            why,
            style="magenta",
            markup=False,
        )
    elif run.status == "waiting":
        keys = ", ".join(run.pending) or "(none)"
        console.print(f"waiting for external effects at keys: {keys}", markup=False)
        console.print(
            f"post their results, then: replay-engine resume {run.run_id}",
            style="dim",
            markup=False,
        )
    s = run.stats
    again = f" ({s.redispatched} again: in flight at a crash)" if s.redispatched else ""
    console.print(
        f"dispatched {s.dispatched}{again} · replayed {s.replayed} · events written"
        f" {s.events_written} · commits {s.commits} · elapsed {s.elapsed:.3f}s",
        style="dim",
        markup=False,
    )


@contextlib.contextmanager
def _executor(kind: str) -> Iterator[cf.Executor | str | None]:
    """What ``--executor`` names, for ``Engine(executor=...)``.

    A Dask scheduler address is passed on as the string: the engine makes
    the client (connected when the first effect is sent) and closes it.
    """
    if kind == "threads":
        yield None
        return
    # "processes": the engine's own pool, whose workers die with it and leave
    # the caller's stdout alone (never forked: a child would inherit the LMDB
    # handle and the run locks); otherwise a Dask address (_executor_option).
    yield kind


def _read_input(text: str | None, file: str | None, ctx: click.Context) -> Any:
    if text is not None and file is not None:
        raise usage_error("give --input or --input-file, not both", ctx)
    source = "--input"
    if file is not None:
        source = f"--input-file {file}"
        try:
            if file == "-":
                text = sys.stdin.read()
            else:
                text = Path(file).read_text(encoding="utf-8")
        except OSError as exc:
            raise usage_error(
                f"cannot read {file!r}: {exc.strerror or exc}", ctx
            ) from None
    if text is None:
        return None
    return loads_json(text, source, ctx)


_DURABILITY = click.option(
    "--durability",
    type=click.Choice(["fsync", "process"]),
    default="fsync",
    show_default=True,
    help="fsync: every commit survives power loss; process: survives a crash"
    " of this process only (faster).",
)


def _executor_option(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """``threads``, ``processes``, or a Dask scheduler ``dask://HOST:PORT``.

    The engine checks an address when it is opened (a usage error there).
    """
    if value in ("threads", "processes"):
        return value
    if "://" not in value:
        raise click.BadParameter(
            f"{value!r} is not one of threads, processes, dask://HOST:PORT",
            ctx,
            param,
        )
    return value


_EXECUTOR = click.option(
    "--executor",
    metavar="threads|processes|dask://HOST:PORT",
    default="threads",
    show_default=True,
    callback=_executor_option,
    help="Where sync tasks run: threads, processes, or the Dask scheduler at"
    " dask://HOST:PORT (processes and Dask import tasks by reference).",
)


@click.command("run")
@click.argument("process", metavar="MODULE:FUNC")
@click.option(
    "--input", "input_json", metavar="JSON", help="The run's inputs, as JSON."
)
@click.option(
    "--input-file",
    metavar="FILE",
    help="Read the inputs (JSON) from FILE ('-' for stdin).",
)
@click.option("--run-id", metavar="ID", help="The new run's id (generated if omitted).")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True, max=366 * 24 * 3600.0),
    metavar="SECONDS",
    help="The run's deadline, in seconds from now: past it the run ends"
    " timed_out (whoever executes or wakes it then records it).",
)
@_DURABILITY
@_EXECUTOR
@grace_option
@json_option
@click.pass_context
@reporting_errors
def run_command(
    ctx: click.Context,
    process: str,
    input_json: str | None,
    input_file: str | None,
    run_id: str | None,
    timeout: float | None,
    durability: Literal["fsync", "process"],
    executor: str,
    grace: float,
    as_json: bool,
) -> None:
    """Start a run of MODULE:FUNC and execute it until it ends or waits.

    The module is imported with the current directory on sys.path, as
    `python -m` does. Exit 0 completed, 1 failed, cancelled or timed out
    (--timeout), 3 waiting; 143 or 130 when stopped by SIGTERM or SIGINT
    (effects in flight get --grace seconds).
    """
    inputs = _read_input(input_json, input_file, ctx)
    if run_id is not None:
        check_run_id(run_id, ctx)
    # Import before the live display starts, so an import error prints alone.
    load_process(process)
    live = _Live(as_json=as_json)
    with (
        stopping_on_signals(ctx, grace, as_json=as_json) as signals,
        _executor(executor) as pool,
        open_engine(
            ctx, access="create", durability=durability, executor=pool
        ) as engine,
        quiet_engine_logger(),
    ):
        signals.attach(engine)
        with live:
            run = engine.run(
                process,
                inputs,
                run_id=run_id,
                on_progress=live.on_progress,
                on_log=live.on_log,
                deadline=timeout,
            )
        _report_run(run, engine.status(run.run_id).process, live, as_json=as_json)


@click.command("resume")
@click.argument("run_id")
@PROCESS_OPTION
@_DURABILITY
@_EXECUTOR
@grace_option
@json_option
@click.pass_context
@reporting_errors
def resume_command(
    ctx: click.Context,
    run_id: str,
    process_ref: str | None,
    durability: Literal["fsync", "process"],
    executor: str,
    grace: float,
    as_json: bool,
) -> None:
    """Re-execute RUN_ID from the start, serving completed effects from the journal.

    A completed run returns its recorded result and executes nothing; a
    cancelled or timed-out one is shown as it is (exit 1). A run
    you started on this machine resumes with the process it was started
    with; any other run (a journal from elsewhere) needs --process. Exit 0
    completed, 1 failed, 3 waiting; 143 or 130 when stopped by SIGTERM or
    SIGINT (effects in flight get --grace seconds).
    """
    live = _Live(as_json=as_json)
    with (
        stopping_on_signals(ctx, grace, as_json=as_json) as signals,
        _executor(executor) as pool,
        open_engine(
            ctx,
            access="write",
            durability=durability,
            executor=pool,
            run_id=run_id,
        ) as engine,
        quiet_engine_logger(),
    ):
        signals.attach(engine)
        info = engine.status(run_id)
        # Import before the live display starts, so an import error prints alone.
        # An ended run is returned as it is: nothing to import.
        fn = (
            engine.process_for(run_id, process_ref)
            if info.status not in jf.ENDED_STATUSES
            else None
        )
        with live:
            run = engine.resume(
                run_id, process=fn, on_progress=live.on_progress, on_log=live.on_log
            )
        _report_run(run, info.process, live, as_json=as_json)


def register(group: click.Group) -> None:
    """Add ``run`` and ``resume``."""
    group.add_command(run_command)
    group.add_command(resume_command)
