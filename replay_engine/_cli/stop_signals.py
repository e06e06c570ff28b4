"""SIGTERM and SIGINT while ``run``, ``resume`` or ``iterate`` executes a run.

The first signal asks the engine to stop (``Engine.request_stop``): nothing
new is dispatched, effects in flight get ``--grace`` seconds to finish, what
completed is committed and the run lock is released. The command then exits
143 (SIGTERM) or 130 (SIGINT) with one line on stderr, and under ``--json`` an
error document on stdout, both saying how to resume. A second signal stops at
once, with the same exit code. The run is not failed: it stays ``running``
(``interrupted`` once no executor holds it), and a resume dispatches again
only the effects abandoned in flight.
"""

from __future__ import annotations

import contextlib
import math
import os
import shlex
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import IO, TYPE_CHECKING, Any

import click

from ..errors import RunInterrupted

if TYPE_CHECKING:  # the engine is imported by the commands that execute (start-up)
    from .. import Engine
from .common import DEFAULT_JOURNAL, CliError, Options, dumps

ENV_GRACE = "REPLAY_ENGINE_GRACE"
DEFAULT_GRACE = 10.0
EXIT_CODES = {"SIGTERM": 143, "SIGINT": 130}
_SIGNALS = (signal.SIGTERM, signal.SIGINT)

_stopped = threading.Event()
"""Set once a command ended by a signal stop: ``main`` then exits without
waiting for abandoned tasks still running in pool threads."""


def stopped_by_signal() -> bool:
    """Whether a command of this process ended by a signal stop."""
    return _stopped.is_set()


def _check_grace(ctx: click.Context, param: click.Parameter, value: float) -> float:
    if not math.isfinite(value) or value < 0:
        raise click.BadParameter(
            f"{value!r} is not a number of seconds >= 0", ctx, param
        )
    return value


def grace_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--grace SECONDS`` (or ``$REPLAY_ENGINE_GRACE``)."""
    return click.option(
        "--grace",
        metavar="SECONDS",
        type=float,
        envvar=ENV_GRACE,
        default=DEFAULT_GRACE,
        show_default=True,
        show_envvar=True,
        callback=_check_grace,
        help="On SIGTERM or SIGINT, how long effects in flight may take to"
        " finish before the run stops (a second signal stops at once).",
    )(fn)


class CliStopped(CliError):
    """A run stopped by SIGTERM (exit 143; :class:`CliInterrupted`: SIGINT, 130)."""

    exit_code = EXIT_CODES["SIGTERM"]

    def __init__(self, exc: RunInterrupted, resume: str, *, as_json: bool) -> None:
        message = (
            f"stopped by {exc.reason}: {exc.completed} effects completed were"
            f" recorded, {exc.abandoned} in flight were abandoned; resume with:"
            f" {resume}"
        )
        super().__init__(
            message,
            error_type=type(exc).__name__,
            details={
                "run_id": exc.run_id,
                "signal": exc.reason,
                "completed": exc.completed,
                "abandoned": exc.abandoned,
                "resume": resume,
            },
            as_json=as_json,
        )

    def show(self, file: IO[Any] | None = None) -> None:
        # Not "error: ...": the run did not fail, it was stopped as asked.
        if self.as_json:
            click.echo(dumps(self.document()))
        click.echo(self.message, err=True, file=file)


class CliInterrupted(CliStopped):
    """A run stopped by SIGINT (Ctrl-C): exit 130."""

    exit_code = EXIT_CODES["SIGINT"]


class SignalStop:
    """The handlers' state: which signal came, and the engine to tell."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.received: str | None = None
        self.count = 0
        self.engine: Engine | None = None

    def handle(self, signum: int, frame: FrameType | None) -> None:
        """SIGTERM/SIGINT: ask the engine to stop (runs in the main thread)."""
        del frame
        self.count += 1
        if self.received is None:
            self.received = signal.Signals(signum).name
        if self.engine is not None:
            self.engine.request_stop(self.received, grace=self.grace)

    def attach(self, engine: Engine) -> None:
        """From now on, signals stop ``engine``'s run (and any that came already)."""
        self.engine = engine
        if self.received is not None:
            for _ in range(min(self.count, 2)):
                engine.request_stop(self.received, grace=self.grace)


def resume_hint(ctx: click.Context, command: str, run_id: str) -> str:
    """The command line that carries the run on."""
    words = ["replay-engine"]
    opts = ctx.find_object(Options)
    if opts is not None and opts.journal != DEFAULT_JOURNAL:
        words += ["--journal", opts.journal]
    words += [command, run_id]
    return shlex.join(words)


@contextlib.contextmanager
def stopping_on_signals(
    ctx: click.Context, grace: float, *, as_json: bool, command: str = "resume"
) -> Iterator[SignalStop]:
    """Handle SIGTERM/SIGINT for the block; a stopped run becomes :class:`CliStopped`.

    Installed before anything executes, so a signal that comes while the
    process is imported still stops the run before it dispatches anything.
    """
    state = SignalStop(grace)
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in _SIGNALS:
            previous[sig] = signal.signal(sig, state.handle)
    try:
        yield state
    except RunInterrupted as exc:
        _stopped.set()
        hint = resume_hint(ctx, command, exc.run_id)
        kind = CliInterrupted if exc.reason == "SIGINT" else CliStopped
        raise kind(exc, hint, as_json=as_json) from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def exit_now(code: int) -> None:
    """Exit without waiting for tasks abandoned in pool threads (after a stop).

    Everything was committed and the journal closed (its lock released)
    before this; a thread still running an abandoned task would otherwise
    keep the process alive until the task ends.
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)
