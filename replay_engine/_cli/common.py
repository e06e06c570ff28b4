"""What every command shares: errors, the JSON and console helpers, opening the engine.

Errors print one line ``error: <message>`` on stderr (a multi-line message,
such as a ``NonDeterminismError``'s, keeps its lines); with ``--json`` an
``{"error": {...}}`` document is printed on stdout as well.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import json
import os.path
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal

import click

import journal_format as jf

from ..errors import NotAJournalError, ReplayEngineError
from . import core, isolation, log_setup, safe_text, values

if TYPE_CHECKING:
    # Start-up time: the engine (asyncio, the run layer) and rich's tables are
    # imported where a command uses them, not when the CLI starts.
    import concurrent.futures as cf

    from rich.table import Table

    from .. import Engine, RunInfo

# What the group needs at start-up lives in ``core`` (no rich, msgspec or
# journal_format: ``--help`` imports only that); the commands know it by these
# names too.
ENV_JOURNAL = core.ENV_JOURNAL
DEFAULT_JOURNAL = core.DEFAULT_JOURNAL
EXIT_OK = core.EXIT_OK
EXIT_FAILED = core.EXIT_FAILED
EXIT_USAGE = core.EXIT_USAGE
EXIT_WAITING = core.EXIT_WAITING
USAGE_ERRORS = core.USAGE_ERRORS
Options = core.Options
CliError = core.CliError
CliKeyboardInterrupt = core.CliKeyboardInterrupt
CliUsageError = core.CliUsageError
OrderedGroup = core.OrderedGroup
usage_error = core.usage_error
json_mode = core.json_mode
converted = core.converted

make_console = safe_text.make_console
"""The one console every command prints human output with (see ``safe_text``)."""
# What the JSON helpers and option types in ``values`` are known by here.
plain = values.plain
dumps = values.dumps
RAW_CONTROLS = values.RAW_CONTROLS
LeaseSeconds = values.LeaseSeconds

STATUS_EXIT = {
    "completed": EXIT_OK,
    "failed": EXIT_FAILED,
    "waiting": EXIT_WAITING,
    # Ended from outside (Engine.cancel, a run deadline): the run did not finish.
    "cancelled": EXIT_FAILED,
    "timed_out": EXIT_FAILED,
}
STATUSES = (
    "completed",
    "failed",
    "waiting",
    "running",
    "queued",
    "cancelled",
    "timed_out",
    "interrupted",
)
EVENT_TAGS = tuple(sorted(str(t.__struct_config__.tag) for t in jf.EVENT_TYPES))
# A log line's key is an anchor (the key of the next call in its scope), not a
# call of its own, so it must not borrow that call's task name.
TASKLESS_TAGS = frozenset({"log"})
SHORT_DIGEST = 12

# Who names the code of resume/iterate/replay/debug: the user, or nobody (see
# Engine.process_for); a journal's own reference is never imported on its say-so.
PROCESS_OPTION = click.option(
    "--process",
    "process_ref",
    metavar="MODULE:FUNC",
    help="Execute the run with this process (imported as `python -m` would)."
    " Needed for a run not started by you on this machine: the process a"
    " journal names is never imported on its say-so.",
)


def json_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        help="Print one JSON document on stdout (see docs/cli-json.md).",
    )(fn)


def reporting_errors(fn: Callable[..., None]) -> Callable[..., None]:
    """Run a command body, turning engine errors into :class:`CliError`."""

    def wrapper(*args: Any, **kwargs: Any) -> None:
        as_json = bool(kwargs.get("as_json"))
        ctx = click.get_current_context()
        ctx.find_root().meta["replay_engine.json"] = as_json
        try:
            _check_run_ids(kwargs, ctx)
            fn(*args, **kwargs)
        except CliError as exc:
            exc.as_json = as_json
            raise
        except click.UsageError as exc:
            raise converted(exc, as_json) from None
        except ReplayEngineError as exc:
            raise CliError.from_exception(exc, as_json=as_json) from None
        except KeyboardInterrupt:
            # Raised inside a task (Ctrl-C is a signal, handled elsewhere):
            # the run stopped with it, as it would with Ctrl-C (exit 130),
            # and click would otherwise say only "Aborted!" with exit 1.
            raise CliKeyboardInterrupt(
                "interrupted: KeyboardInterrupt was raised while the command ran"
                " (in a task, say); nothing was recorded for that attempt, and"
                " resuming the run dispatches it again",
                error_type="KeyboardInterrupt",
                as_json=as_json,
            ) from None
        except SystemExit as exc:
            # Also raised inside a task or the process (click exits with
            # click.exceptions.Exit, never SystemExit): passing it on would
            # exit with the task's code, which may read as "waiting" (3).
            raise CliError(
                f"stopped: SystemExit({exc.code!r}) was raised while the command"
                " ran (in a task, say); nothing was recorded for that attempt,"
                " and resuming the run dispatches it again",
                error_type="SystemExit",
                as_json=as_json,
            ) from None

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


def _check_run_ids(params: Mapping[str, Any], ctx: click.Context) -> None:
    """Every run id a command was given must be one (a usage error otherwise).

    Checked here, for every command, by parameter name (``run_id``,
    ``new_run_id``, ``run_ids`` …), so a new command cannot forget it: an
    empty or malformed id would otherwise reach LMDB as a key it refuses.
    """
    for name, value in params.items():
        if not (name.endswith(("run_id", "run_ids")) or name in ("run_a", "run_b")):
            continue
        ids = value if isinstance(value, list | tuple) else [value]
        for run_id in ids:
            if isinstance(run_id, str):
                try:
                    jf.check_run_id(run_id)
                except jf.FormatError as exc:
                    label = name.upper() if name.startswith("run_") else name
                    raise usage_error(f"{label}: {exc}", ctx) from None


# -- shared helpers ------------------------------------------------------------


def journal_path(ctx: click.Context, *, must_exist: bool) -> str:
    opts = ctx.find_object(Options)
    path = opts.journal if opts is not None else DEFAULT_JOURNAL
    if must_exist and not os.path.isdir(path):  # not pathlib: start-up time
        raise usage_error(
            f"no journal at {path!r}: give --journal DIR or set ${ENV_JOURNAL}"
            f" (it defaults to {DEFAULT_JOURNAL!r})",
            ctx,
        )
    return path


@contextlib.contextmanager
def open_engine(
    ctx: click.Context,
    *,
    access: Literal["create", "write", "read"] = "read",
    durability: Literal["fsync", "process"] = "fsync",
    executor: cf.Executor | str | None = None,
    run_id: str | None = None,
    probe_payloads: bool = True,
) -> Iterator[Engine]:
    """The engine on ``--journal``, opened as ``access`` says; closed after.

    Only ``run`` creates a journal (``create``); commands that change a run
    open an existing one (``write``); every other command inspects (``read``):
    it writes nothing, not even a new journal. ``executor`` is given to
    :class:`Engine` as is: a Dask scheduler address it cannot use (not an
    address, ``distributed`` not installed) is a usage error, reported before
    the journal is opened.

    From the console script, a damaged page cannot kill the command (see
    ``isolation``): a reading command goes on in a child process, and a
    ``write`` first has a child read what changing ``run_id`` will read
    (its record, events and, unless ``probe_payloads`` is false, payloads).
    """
    with core.collector_paused():
        from .. import Engine

    path = journal_path(ctx, must_exist=access != "create")
    if access == "read":
        isolation.read_in_child(path, functools.partial(_report, ctx))
    elif access == "write":
        try:
            isolation.probe_run(path, run_id, payloads=probe_payloads)
        except ReplayEngineError as exc:
            raise CliError.from_exception(exc, as_json=json_mode(ctx)) from None
    try:
        engine = Engine(
            path,
            durability=durability,
            executor=executor,
            create=access == "create",
            read_only=access == "read",
        )
    except NotAJournalError as exc:
        raise usage_error(f"cannot open the journal at {path!r}: {exc}", ctx) from None
    except OSError as exc:
        raise usage_error(
            f"cannot open the journal at {path!r}: {exc.strerror or exc}", ctx
        ) from None
    except (ValueError, ImportError) as exc:
        raise usage_error(f"--executor: {exc}", ctx) from None
    try:
        yield engine
    finally:
        engine.close()


def _report(ctx: click.Context, exc: ReplayEngineError) -> int:
    error = CliError.from_exception(exc, as_json=json_mode(ctx))
    error.show()
    return error.exit_code


def emit_json(document: Any) -> None:
    click.echo(dumps(document))


def key_text(key: bytes | None) -> str | None:
    if key is None:
        return None
    try:
        return jf.key_bytes_to_text(key)
    except jf.FormatError:
        return f"<bytes {key.hex()}>"


def check_run_id(run_id: str, ctx: click.Context) -> None:
    try:
        jf.check_run_id(run_id)
    except jf.FormatError as exc:
        raise usage_error(str(exc), ctx) from None


def run_table(info: RunInfo) -> Table:
    """A two-column table (field, value) that starts with the run's id and status."""
    from rich.table import Table

    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="dim")
    table.add_column()
    table.add_row("run_id", safe_text.cell(info.run_id))
    table.add_row(
        "status", safe_text.literal(info.status, style=status_style(info.status))
    )
    return table


def status_style(status: str) -> str:
    return {
        "completed": "green",
        "failed": "red",
        "waiting": "yellow",
        "running": "cyan",
        "cancelled": "magenta",
        "timed_out": "magenta",
        "interrupted": "magenta",
    }.get(status, "")


def utc_text(value: _dt.datetime) -> str:
    return value.astimezone(_dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


@contextlib.contextmanager
def quiet_engine_logger() -> Iterator[None]:
    """Silence the engine's logger while a command prints ``Run.warnings`` itself.

    The CLI's log handler (``log_setup``) and logging's last-resort handler
    would otherwise print each warning a second time.
    """
    with log_setup.quiet_engine():
        yield


def loads_json(text: str, source: str, ctx: click.Context, hint: str = "") -> Any:
    """Parse a JSON option's value; bad JSON is a usage error naming ``source``.

    Strict JSON (see :func:`.values.parse_json`): NaN, Infinity, numbers
    beyond a float's range and nesting past the parser's limit are refused.
    """
    try:
        return values.parse_json(text)
    except json.JSONDecodeError as exc:
        raise usage_error(
            f"{source} is not valid JSON: {exc.msg} at line {exc.lineno} column"
            f" {exc.colno}{hint}",
            ctx,
        ) from None
    except values.BadJson as exc:
        raise usage_error(f"{source} {exc}", ctx) from None
