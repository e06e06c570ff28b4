"""``replay-engine``: the command line, a thin click layer over :class:`Engine`.

Every command takes ``--json`` and then prints exactly one JSON document on
stdout (the shapes are documented in ``docs/cli-json.md``). Human output uses
rich: tables, and a live progress display while a run works (only when stdout
is a terminal).

Errors print one line ``error: <message>`` on stderr (a multi-line message,
such as a ``NonDeterminismError``'s, keeps its lines); with ``--json`` an
``{"error": {...}}`` document is printed on stdout as well.

Exit codes (CONTRACT): 0 done or completed, 1 the run failed or the journal is
damaged, 2 usage error (bad arguments, unknown run, unimportable process, bad
input JSON), 3 the run is waiting for external effects.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import datetime as _dt
import fnmatch
import json
import logging
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import IO, Any, Literal, NoReturn

import click
import msgspec
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

import journal_format as jf

from . import (
    Engine,
    PayloadError,
    ProcessImportError,
    ReplayEngineError,
    Run,
    RunExistsError,
    RunInfo,
    RunNotFoundError,
    RunStats,
    VerifyReport,
)

ENV_JOURNAL = "REPLAY_ENGINE_JOURNAL"
DEFAULT_JOURNAL = ".replay"

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_WAITING = 3

_STATUS_EXIT = {"completed": EXIT_OK, "failed": EXIT_FAILED, "waiting": EXIT_WAITING}
_STATUSES = ("completed", "failed", "waiting", "running")
_EVENT_TAGS = tuple(sorted(str(t.__struct_config__.tag) for t in jf.EVENT_TYPES))
# A log line's key is an anchor (the key of the next call in its scope), not a
# call of its own, so it must not borrow that call's task name.
_TASKLESS_TAGS = frozenset({"log"})
_SHORT_DIGEST = 12

# Errors that mean "you asked for something that is not there or not valid";
# every other ReplayEngineError (a damaged journal, a locked run, a divergence)
# exits 1.
_USAGE_ERRORS: tuple[type[ReplayEngineError], ...] = (
    RunNotFoundError,
    ProcessImportError,
    PayloadError,
    RunExistsError,
)


# -- errors --------------------------------------------------------------------


class CliError(click.ClickException):
    """An error the CLI reports as ``error: <message>`` (and as JSON with --json).

    Exits 1; :class:`CliUsageError` exits 2.
    """

    exit_code = EXIT_FAILED

    def __init__(
        self,
        message: str,
        *,
        error_type: str = "ReplayEngineError",
        details: Mapping[str, Any] | None = None,
        as_json: bool = False,
    ) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.details = dict(details or {})
        self.as_json = as_json

    @staticmethod
    def from_exception(exc: BaseException, *, as_json: bool) -> CliError:
        """Translate an engine error, choosing the exit code by its type."""
        kind = CliUsageError if isinstance(exc, _USAGE_ERRORS) else CliError
        details = {
            name: _plain(getattr(exc, name))
            for name in ("run_id", "key", "seq")
            if getattr(exc, name, None) not in (None, "")
        }
        return kind(
            str(exc), error_type=type(exc).__name__, details=details, as_json=as_json
        )

    def document(self) -> dict[str, Any]:
        """The ``{"error": ...}`` JSON document."""
        return {
            "error": {
                "type": self.error_type,
                "message": self.message,
                "exit_code": self.exit_code,
                **self.details,
            }
        }

    def show(self, file: IO[Any] | None = None) -> None:
        if self.as_json:
            click.echo(_dumps(self.document()))
        click.echo(f"error: {self.message}", err=True, file=file)


class CliUsageError(CliError):
    """A usage error (exit 2): bad arguments, an unknown run, bad input."""

    exit_code = EXIT_USAGE

    @classmethod
    def bad_usage(
        cls, message: str, *, as_json: bool = False, hint: str | None = None
    ) -> CliUsageError:
        """A usage error of the command line itself, with a hint to --help."""
        text = message.rstrip()
        if hint:
            text = text if text.endswith((".", "?", "!")) else text + "."
            text = f"{text} {hint}"
        return cls(text, error_type="UsageError", as_json=as_json)


def _usage(message: str, ctx: click.Context | None = None) -> CliUsageError:
    ctx = ctx or click.get_current_context(silent=True)
    hint = None
    if ctx is not None:
        hint = f"Try '{ctx.command_path} --help' for help."
    return CliUsageError.bad_usage(message, as_json=_json_mode(ctx), hint=hint)


def _json_mode(ctx: click.Context | None) -> bool:
    root = ctx.find_root() if ctx is not None else None
    return bool(root is not None and root.meta.get("replay_engine.json"))


# -- the group -----------------------------------------------------------------


class OrderedGroup(click.Group):
    """A group that lists its commands in declaration order and reports errors.

    Usage errors raised by click (a missing argument, an unknown option) are
    re-raised as :class:`CliUsageError`, so every error has the same shape.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        # --json is a per-command flag, but a usage error can happen before the
        # command sees it; the raw arguments tell us what the caller wants.
        wants_json = "--json" in args
        try:
            ctx = super().make_context(info_name, args, parent, **extra)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as exc:
            raise _converted(exc, wants_json) from None
        ctx.meta["replay_engine.json"] = wants_json
        return ctx

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CliError:
            raise
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as exc:
            raise _converted(exc, _json_mode(ctx)) from None


def _converted(exc: click.UsageError, as_json: bool) -> CliUsageError:
    hint = None
    if exc.ctx is not None:
        hint = f"Try '{exc.ctx.command_path} --help' for help."
    return CliUsageError.bad_usage(exc.format_message(), as_json=as_json, hint=hint)


@dataclass
class _Options:
    journal: str


@click.group(
    cls=OrderedGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "--journal",
    "journal",
    metavar="DIR",
    envvar=ENV_JOURNAL,
    default=DEFAULT_JOURNAL,
    show_default=True,
    show_envvar=True,
    help="The journal directory (an LMDB environment).",
)
@click.version_option(package_name="replay-engine", prog_name="replay-engine")
@click.pass_context
def cli(ctx: click.Context, journal: str) -> None:
    """Run, resume and inspect durable processes recorded in a journal.

    Exit codes: 0 done (or completed), 1 the run failed or the journal is
    damaged, 2 usage error, 3 the run is waiting for external effects.
    """
    ctx.obj = _Options(journal=journal)


def _json_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        help="Print one JSON document on stdout (see docs/cli-json.md).",
    )(fn)


def _reporting_errors(fn: Callable[..., None]) -> Callable[..., None]:
    """Run a command body, turning engine errors into :class:`CliError`."""

    def wrapper(*args: Any, **kwargs: Any) -> None:
        as_json = bool(kwargs.get("as_json"))
        ctx = click.get_current_context()
        ctx.find_root().meta["replay_engine.json"] = as_json
        try:
            fn(*args, **kwargs)
        except CliError as exc:
            exc.as_json = as_json
            raise
        except click.UsageError as exc:
            raise _converted(exc, as_json) from None
        except ReplayEngineError as exc:
            raise CliError.from_exception(exc, as_json=as_json) from None

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


# -- shared helpers ------------------------------------------------------------


def _journal_path(ctx: click.Context, *, must_exist: bool) -> str:
    opts = ctx.find_object(_Options)
    path = opts.journal if opts is not None else DEFAULT_JOURNAL
    if must_exist and not Path(path).is_dir():
        raise _usage(
            f"no journal at {path!r}: give --journal DIR or set ${ENV_JOURNAL}"
            f" (it defaults to {DEFAULT_JOURNAL!r})",
            ctx,
        )
    return path


@contextlib.contextmanager
def _open_engine(
    ctx: click.Context,
    *,
    must_exist: bool = True,
    durability: Literal["fsync", "process"] = "fsync",
    executor: cf.Executor | None = None,
) -> Iterator[Engine]:
    path = _journal_path(ctx, must_exist=must_exist)
    try:
        engine = Engine(path, durability=durability, executor=executor)
    except OSError as exc:
        raise _usage(
            f"cannot open the journal at {path!r}: {exc.strerror or exc}", ctx
        ) from None
    try:
        yield engine
    finally:
        engine.close()


def _dumps(document: Any) -> str:
    return json.dumps(_plain(document), indent=2, ensure_ascii=False)


def _emit_json(document: Any) -> None:
    click.echo(_dumps(document))


def _plain(value: Any) -> Any:
    """A JSON-ready form: bytes as hex, datetimes as ISO 8601, structs as objects."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, _dt.datetime | _dt.date | _dt.time):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_plain(v) for v in value]
        if isinstance(value, set | frozenset):
            items.sort(key=repr)
        return items
    if isinstance(value, msgspec.Struct):
        return {f: _plain(getattr(value, f)) for f in value.__struct_fields__}
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    return str(value)


def _console() -> Console:
    stream = sys.stdout
    width = None
    if not stream.isatty() and "COLUMNS" not in os.environ:
        width = 160  # rich would fold tables to 80 columns in a pipe
    return Console(file=stream, width=width, highlight=False, soft_wrap=False)


def _key_text(key: bytes | None) -> str | None:
    if key is None:
        return None
    try:
        return jf.key_bytes_to_text(key)
    except jf.FormatError:
        return f"<bytes {key.hex()}>"


def _check_run_id(run_id: str, ctx: click.Context) -> None:
    try:
        jf.check_run_id(run_id)
    except jf.FormatError as exc:
        raise _usage(str(exc), ctx) from None


def _load_process(ref: str) -> Callable[..., Any]:
    from ._process_ref import load

    try:
        return load(ref)
    except ReplayEngineError:
        raise
    except Exception as exc:
        # An import that fails with anything else (a SyntaxError, an error at
        # module level) is still "cannot import the process".
        raise ProcessImportError(
            f"importing process {ref!r} failed: {type(exc).__name__}: {exc}"
        ) from exc


# -- run and resume ------------------------------------------------------------


class _Live:
    """Progress display and log lines while a run works."""

    def __init__(self, *, as_json: bool) -> None:
        self.as_json = as_json
        self.logs: list[dict[str, Any]] = []
        self.console = _console()
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
        self.logs.append({"key": key, "message": message, "fields": _plain(fields)})
        if self.as_json:
            return
        line = Text()
        line.append(f"log {key:>8}  ", style="dim")
        line.append(message)
        for name, value in fields.items():
            line.append(f" {name}=", style="dim")
            line.append(json.dumps(_plain(value), ensure_ascii=False))
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
            "replayed": stats.replayed,
            "events_written": stats.events_written,
            "commits": stats.commits,
            "elapsed": round(stats.elapsed, 6),
        },
        "warnings": list(run.warnings),
        "logs": logs,
    }


def _status_style(status: str) -> str:
    return {
        "completed": "green",
        "failed": "red",
        "waiting": "yellow",
        "running": "cyan",
    }.get(status, "")


def _report_run(run: Run, process: str | None, live: _Live, *, as_json: bool) -> None:
    for warning in run.warnings:
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        _emit_json(_run_document(run, process, live.logs))
    else:
        _print_run(run, process)
    code = _STATUS_EXIT.get(run.status, EXIT_OK)
    if code:
        click.get_current_context().exit(code)


def _print_run(run: Run, process: str | None) -> None:
    console = _console()
    head = Text()
    head.append("run ", style="dim")
    head.append(run.run_id, style="bold")
    head.append("  ")
    head.append(run.status, style=f"bold {_status_style(run.status)}")
    if process:
        head.append(f"  ({process})", style="dim")
    console.print(head)
    if run.status == "completed":
        console.print(Text("result: ", style="dim"), end="")
        console.print(json.dumps(_plain(run.result), ensure_ascii=False), markup=False)
    elif run.status == "failed" and run.error is not None:
        console.print(
            Text(f"error: {run.error.type}: {run.error.message}", style="red")
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
    console.print(
        f"dispatched {s.dispatched} · replayed {s.replayed} · events written"
        f" {s.events_written} · commits {s.commits} · elapsed {s.elapsed:.3f}s",
        style="dim",
        markup=False,
    )


@contextlib.contextmanager
def _executor(kind: str) -> Iterator[cf.Executor | None]:
    if kind == "threads":
        yield None
        return
    # Never fork: the child would inherit the LMDB handle and the run locks.
    method = (
        "forkserver"
        if "forkserver" in multiprocessing.get_all_start_methods()
        else "spawn"
    )
    pool = cf.ProcessPoolExecutor(mp_context=multiprocessing.get_context(method))
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@contextlib.contextmanager
def _quiet_engine_logger() -> Iterator[None]:
    # Run.warnings are printed by the CLI; without a handler, logging's
    # last-resort handler would print them a second time.
    logger = logging.getLogger("replay_engine")
    handler = logging.NullHandler()
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def _read_input(text: str | None, file: str | None, ctx: click.Context) -> Any:
    if text is not None and file is not None:
        raise _usage("give --input or --input-file, not both", ctx)
    source = "--input"
    if file is not None:
        source = f"--input-file {file}"
        try:
            if file == "-":
                text = sys.stdin.read()
            else:
                text = Path(file).read_text(encoding="utf-8")
        except OSError as exc:
            raise _usage(f"cannot read {file!r}: {exc.strerror or exc}", ctx) from None
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _usage(
            f"{source} is not valid JSON: {exc.msg} at line {exc.lineno} column"
            f" {exc.colno}",
            ctx,
        ) from None


_DURABILITY = click.option(
    "--durability",
    type=click.Choice(["fsync", "process"]),
    default="fsync",
    show_default=True,
    help="fsync: every commit survives power loss; process: survives a crash"
    " of this process only (faster).",
)
_EXECUTOR = click.option(
    "--executor",
    type=click.Choice(["threads", "processes"]),
    default="threads",
    show_default=True,
    help="Where sync tasks run (processes: tasks are imported by reference).",
)


@cli.command("run")
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
@_DURABILITY
@_EXECUTOR
@_json_option
@click.pass_context
@_reporting_errors
def run_command(
    ctx: click.Context,
    process: str,
    input_json: str | None,
    input_file: str | None,
    run_id: str | None,
    durability: Literal["fsync", "process"],
    executor: str,
    as_json: bool,
) -> None:
    """Start a run of MODULE:FUNC and execute it until it ends or waits.

    The module is imported with the current directory on sys.path, as
    `python -m` does. Exit 0 completed, 1 failed, 3 waiting.
    """
    inputs = _read_input(input_json, input_file, ctx)
    if run_id is not None:
        _check_run_id(run_id, ctx)
    fn = _load_process(process)
    live = _Live(as_json=as_json)
    with (
        _executor(executor) as pool,
        _open_engine(
            ctx, must_exist=False, durability=durability, executor=pool
        ) as engine,
        _quiet_engine_logger(),
    ):
        with live:
            run = engine.run(
                fn,
                inputs,
                run_id=run_id,
                on_progress=live.on_progress,
                on_log=live.on_log,
            )
        _report_run(run, engine.status(run.run_id).process, live, as_json=as_json)


@cli.command("resume")
@click.argument("run_id")
@_DURABILITY
@_EXECUTOR
@_json_option
@click.pass_context
@_reporting_errors
def resume_command(
    ctx: click.Context,
    run_id: str,
    durability: Literal["fsync", "process"],
    executor: str,
    as_json: bool,
) -> None:
    """Re-execute RUN_ID from the start, serving completed effects from the journal.

    A completed run returns its recorded result and executes nothing. Exit 0
    completed, 1 failed, 3 waiting.
    """
    live = _Live(as_json=as_json)
    with (
        _executor(executor) as pool,
        _open_engine(ctx, durability=durability, executor=pool) as engine,
        _quiet_engine_logger(),
    ):
        info = engine.status(run_id)
        # Import here (not inside the engine) so that any failure to import,
        # not only an ImportError, is reported as a ProcessImportError.
        fn = _load_process(info.process) if info.status != "completed" else None
        with live:
            run = engine.resume(
                run_id, process=fn, on_progress=live.on_progress, on_log=live.on_log
            )
        _report_run(run, info.process, live, as_json=as_json)


# -- inspecting ----------------------------------------------------------------


def _last_events(engine: Engine, info: RunInfo, count: int = 4) -> list[Any]:
    return list(engine.events(info.run_id, max(0, info.events - count)))


def _status_document(engine: Engine, info: RunInfo) -> dict[str, Any]:
    error: dict[str, Any] | None = None
    pending: list[str] = []
    if info.status in ("failed", "waiting"):
        for stored in reversed(_last_events(engine, info)):
            event = stored.event
            if isinstance(event, jf.RunFailed):
                error = {"type": event.error.type, "message": event.error.message}
                break
            if isinstance(event, jf.RunWaiting):
                pending = [t for t in map(_key_text, event.pending) if t is not None]
                break
    return {
        "run_id": info.run_id,
        "status": info.status,
        "result": engine.result(info.run_id),
        "events": info.events,
        "dispatched": info.dispatched,
        "replayed": info.replayed,
        "process": info.process,
        "created": info.created,
        "updated": info.updated,
        "parent": info.parent,
        "fork_at": info.fork_at,
        "error": error,
        "pending": pending,
    }


def _when(value: _dt.datetime) -> str:
    return value.astimezone(_dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


@cli.command("status")
@click.argument("run_id")
@_json_option
@click.pass_context
@_reporting_errors
def status_command(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """Show the stored state of RUN_ID (executes nothing)."""
    with _open_engine(ctx) as engine:
        info = engine.status(run_id)
        doc = _status_document(engine, info)
    if as_json:
        _emit_json(doc)
        return
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="dim")
    table.add_column()
    table.add_row("run_id", info.run_id)
    table.add_row("status", Text(info.status, style=_status_style(info.status)))
    table.add_row("process", info.process)
    table.add_row("events", str(info.events))
    table.add_row("dispatched", str(info.dispatched))
    table.add_row("replayed", str(info.replayed))
    table.add_row("created", _when(info.created))
    table.add_row("updated", _when(info.updated))
    if info.parent is not None:
        table.add_row("forked from", f"{info.parent} at event {info.fork_at}")
    if info.status == "completed":
        table.add_row("result", Text(json.dumps(_plain(doc["result"]))))
    error = doc["error"]
    if error is not None:
        table.add_row("error", Text(f"{error['type']}: {error['message']}", "red"))
    if doc["pending"]:
        table.add_row("pending", ", ".join(doc["pending"]))
    _console().print(table)


@cli.command("runs")
@click.option(
    "--status",
    type=click.Choice(_STATUSES),
    help="Only runs with this status.",
)
@_json_option
@click.pass_context
@_reporting_errors
def runs_command(ctx: click.Context, status: str | None, as_json: bool) -> None:
    """List the runs in the journal, newest first."""
    with _open_engine(ctx) as engine:
        infos = engine.runs(status)
    rows = [
        {
            "run_id": i.run_id,
            "status": i.status,
            "process": i.process,
            "events": i.events,
            "created": i.created,
            "updated": i.updated,
            "parent": i.parent,
        }
        for i in infos
    ]
    if as_json:
        _emit_json(rows)
        return
    console = _console()
    if not rows:
        console.print("no runs" + (f" with status {status}" if status else ""))
        return
    table = Table()
    for name in ("run id", "status", "process", "events", "created", "updated"):
        table.add_column(name, justify="right" if name == "events" else "left")
    for i in infos:
        table.add_row(
            i.run_id,
            Text(i.status, style=_status_style(i.status)),
            i.process,
            str(i.events),
            _when(i.created),
            _when(i.updated),
        )
    console.print(table)


def _event_fields(event: Any) -> dict[str, Any]:
    """The event's own fields in readable form (key and task handled apart)."""
    out: dict[str, Any] = {}
    for name in event.__struct_fields__:
        if name in ("key", "task"):
            continue
        value = getattr(event, name)
        if isinstance(event, jf.RunWaiting) and name == "pending":
            value = [_key_text(k) for k in value]
        elif isinstance(event, jf.ValueRecorded) and name == "value":
            value = value.hex() if isinstance(value, bytes) else value
        out[name] = _plain(value)
    if isinstance(event, jf.TimerStarted):
        out["due"] = _dt.datetime.fromtimestamp(event.due_ns / 1e9, _dt.UTC).isoformat()
    return out


def _event_document(stored: Any, tasks: Mapping[str, str]) -> dict[str, Any]:
    event = stored.event
    tag = jf.event_tag(event)
    key = _key_text(getattr(event, "key", None))
    task = None
    if isinstance(event, jf.EffectRequested):
        task = event.task
    elif tag not in _TASKLESS_TAGS and key is not None:
        task = tasks.get(key)
    envelope = stored.envelope
    return {
        "seq": stored.seq,
        "type": tag,
        "key": key,
        "task": task,
        "digest": stored.digest.hex(),
        "prev": envelope.prev.hex(),
        "at": _dt.datetime.fromtimestamp(envelope.at / 1e9, _dt.UTC).isoformat(),
        "v": envelope.v,
        "fields": _event_fields(event),
    }


def _key_matches(key: str | None, prefix: tuple[int, ...]) -> bool:
    if key is None or key.startswith("<"):
        return False
    parts = tuple(int(p) for p in key.split("."))
    return parts[: len(prefix)] == prefix


def _detail(doc: Mapping[str, Any]) -> str:
    f = doc["fields"]
    kind = doc["type"]
    if kind == "run_started":
        return str(f.get("process", ""))
    if kind in ("failed", "attempt_failed", "run_failed"):
        error = f.get("error") or {}
        return f"{error.get('type')}: {error.get('message')}"
    if kind == "log":
        extra = " ".join(f"{k}={json.dumps(v)}" for k, v in f.get("fields", {}).items())
        return f"{f.get('message', '')} {extra}".rstrip()
    if kind == "value":
        return f"{f.get('kind')} = {f.get('value')}"
    if kind == "run_waiting":
        return "pending " + ", ".join(str(k) for k in f.get("pending", []))
    if kind == "timer_started":
        return f"due {f.get('due')}"
    if kind == "signal":
        return str(f.get("name", ""))
    return ""


@cli.command("log")
@click.argument("run_id")
@click.option(
    "--type",
    "types",
    multiple=True,
    type=click.Choice(_EVENT_TAGS),
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
@_json_option
@click.pass_context
@_reporting_errors
def log_command(
    ctx: click.Context,
    run_id: str,
    types: Sequence[str],
    key_prefix: str | None,
    task_pattern: str | None,
    from_seq: int | None,
    to_seq: int | None,
    as_json: bool,
) -> None:
    """Show the events of RUN_ID: seq, type, key, task and hashes."""
    prefix: tuple[int, ...] | None = None
    if key_prefix is not None:
        try:
            prefix = jf.parse_key(key_prefix)
        except jf.FormatError as exc:
            raise _usage(f"--key-prefix: {exc}", ctx) from None
    if from_seq is not None and to_seq is not None and to_seq < from_seq:
        raise _usage(f"--to {to_seq} is before --from {from_seq}", ctx)
    with _open_engine(ctx) as engine:
        start = from_seq or 0
        stop = None if to_seq is None else to_seq + 1
        if task_pattern is not None and start > 0:
            # Completions name their task through the request, which may be earlier.
            stored_events = engine.events(run_id, 0, stop)
        else:
            stored_events = engine.events(run_id, start, stop)
    tasks: dict[str, str] = {}
    docs = []
    for stored in stored_events:
        event = stored.event
        if isinstance(event, jf.EffectRequested):
            tasks[jf.key_bytes_to_text(event.key)] = event.task
        if stored.seq < start:
            continue
        doc = _event_document(stored, tasks)
        if types and doc["type"] not in types:
            continue
        if prefix is not None and not _key_matches(doc["key"], prefix):
            continue
        if task_pattern is not None and (
            doc["task"] is None or not fnmatch.fnmatchcase(doc["task"], task_pattern)
        ):
            continue
        docs.append(doc)
    if as_json:
        _emit_json(docs)
        return
    table = Table()
    table.add_column("seq", justify="right")
    for name in ("type", "key", "task", "digest", "prev", "detail"):
        table.add_column(name)
    for doc in docs:
        table.add_row(
            str(doc["seq"]),
            doc["type"],
            doc["key"] or "",
            doc["task"] or "",
            doc["digest"][:_SHORT_DIGEST],
            doc["prev"][:_SHORT_DIGEST],
            Text(_detail(doc)),
        )
    _console().print(table)


def _verify_document(report: VerifyReport) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "runs": report.runs,
        "events": report.events,
        "blobs": report.blobs,
        "problems": [
            {"run_id": p.run_id, "seq": p.seq, "key": p.key, "message": p.message}
            for p in report.problems
        ],
    }


@cli.command("verify")
@click.argument("run_id", required=False)
@_json_option
@click.pass_context
@_reporting_errors
def verify_command(ctx: click.Context, run_id: str | None, as_json: bool) -> None:
    """Recompute every digest and chain link of RUN_ID (or of the whole journal).

    Exit 0 intact, 1 damaged.
    """
    with _open_engine(ctx) as engine:
        report = engine.verify(run_id)
    doc = _verify_document(report)
    if as_json:
        _emit_json(doc)
    else:
        console = _console()
        scope = f"run {run_id}" if run_id else "journal"
        counts = f"{report.runs} runs, {report.events} events, {report.blobs} blobs"
        if report.ok:
            console.print(Text(f"{scope} intact: {counts}", style="green"))
        else:
            table = Table(title=f"{scope} damaged: {len(report.problems)} problems")
            for name in ("run", "seq", "key", "problem"):
                table.add_column(name)
            for p in report.problems:
                table.add_row(
                    p.run_id or "",
                    "" if p.seq is None else str(p.seq),
                    p.key or "",
                    Text(p.message),
                )
            console.print(table)
            console.print(f"checked {counts}", style="dim")
    if not report.ok:
        click.echo(
            f"error: {_scope_text(run_id)} is damaged"
            f" ({len(report.problems)} problems)",
            err=True,
        )
        ctx.exit(EXIT_FAILED)


def _scope_text(run_id: str | None) -> str:
    """How verify names what it checked."""
    return f"run {run_id!r}" if run_id else "the journal"


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """The ``replay-engine`` console script."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="replay-engine")
    raise SystemExit(0)  # pragma: no cover - click always exits in standalone mode


if __name__ == "__main__":
    main()
