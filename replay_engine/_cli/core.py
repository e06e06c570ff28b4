"""What the ``replay-engine`` group needs before any command runs.

Exit codes, the journal option's defaults, :class:`CliError` and the group
class that reports click's usage errors as one: ``--help`` and ``--version``
import this module and nothing heavier than click (issue 16's start-up
budget), so it imports neither rich, msgspec nor ``journal_format``; what
reporting an error needs beyond that (JSON, escaping) is imported when an
error is shown. The commands import these names from ``common``, which
re-exports them.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator, Mapping
from typing import IO, Any

import click

from ..errors import (
    PayloadError,
    ProcessImportError,
    ReplayEngineError,
    RunExistsError,
    RunNotFoundError,
)

ENV_JOURNAL = "REPLAY_ENGINE_JOURNAL"
DEFAULT_JOURNAL = ".replay"

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_WAITING = 3

# Errors that mean "you asked for something that is not there or not valid";
# every other ReplayEngineError (a damaged journal, a locked run, a divergence)
# exits 1.
USAGE_ERRORS: tuple[type[ReplayEngineError], ...] = (
    RunNotFoundError,
    ProcessImportError,
    PayloadError,
    RunExistsError,
)


class Options:
    """What the group's options tell every command: the journal directory."""

    __slots__ = ("journal",)

    def __init__(self, journal: str) -> None:
        self.journal = journal

    def __repr__(self) -> str:
        return f"Options(journal={self.journal!r})"


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
        from .values import plain

        kind = CliUsageError if isinstance(exc, USAGE_ERRORS) else CliError
        details = {
            name: plain(getattr(exc, name))
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
        from .safe_text import printable
        from .values import dumps

        if self.as_json:
            click.echo(dumps(self.document()))
        # The message may quote the journal (a task's error, a run id).
        text = printable(self.message, keep_lines=True)
        click.echo(f"error: {text}", err=True, file=file)


class CliKeyboardInterrupt(CliError):
    """A ``KeyboardInterrupt`` ended the command: exit 130, as Ctrl-C does."""

    exit_code = 130


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


def usage_error(message: str, ctx: click.Context | None = None) -> CliUsageError:
    """A usage error (exit 2) with a hint to the current command's ``--help``."""
    ctx = ctx or click.get_current_context(silent=True)
    hint = None
    if ctx is not None:
        hint = f"Try '{ctx.command_path} --help' for help."
    return CliUsageError.bad_usage(message, as_json=json_mode(ctx), hint=hint)


def json_mode(ctx: click.Context | None) -> bool:
    """Whether the command line asked for JSON (``--json``)."""
    root = ctx.find_root() if ctx is not None else None
    return bool(root is not None and root.meta.get("replay_engine.json"))


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
            raise converted(exc, wants_json) from None
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
            raise converted(exc, json_mode(ctx)) from None


def converted(exc: click.UsageError, as_json: bool) -> CliUsageError:
    """A usage error raised by click, as ours (exit 2, shaped as every error)."""
    hint = None
    if exc.ctx is not None:
        hint = f"Try '{exc.ctx.command_path} --help' for help."
    return CliUsageError.bad_usage(exc.format_message(), as_json=as_json, hint=hint)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection in the block (imports), and none of it after.

    Importing a command and the engine makes some hundred thousand objects,
    all alive for good (modules, classes, functions): the collector would
    walk them dozens of times while they are made, and again as they age
    through its generations. So it is paused meanwhile, and what exists at
    the end is frozen (``gc.freeze``: left out of every later pass).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
