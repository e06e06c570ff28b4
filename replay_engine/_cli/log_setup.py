"""The CLI's logging: rich on stderr, ``-v``/``-q`` on the group.

The library only logs, through ``logging.getLogger("replay_engine…")``, and
installs no handler (an application's logging is the application's). The
console script is an application: it installs one
:class:`rich.logging.RichHandler` on the root logger, writing to stderr, so
the engine's warnings (and the user's process's own logging) read like the
rest of the output. ``-v`` shows INFO, ``-vv`` DEBUG, ``-q`` only errors;
the default is WARNING.

When the root logger already has handlers (an embedding program, pytest's
log capture), they are left alone: only the level changes, and only when
``-v``/``-q`` was given.

Commands that print ``Run.warnings`` themselves silence the engine's records
meanwhile (:func:`quiet_engine`), so no warning prints twice.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

ENGINE_LOGGER = "replay_engine"


class _State:
    handler: logging.Handler | None = None
    quiet = 0  # nesting depth of quiet_engine()


def level_for(verbose: int, quiet: int) -> int:
    """The root level for ``-v`` given ``verbose`` times and ``-q`` ``quiet`` times."""
    if quiet:
        return logging.ERROR
    return {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)


def _not_while_quiet(record: logging.LogRecord) -> bool:
    name = record.name
    engine = name == ENGINE_LOGGER or name.startswith(ENGINE_LOGGER + ".")
    # Quiet drops what the command prints itself (Run.warnings): warnings.
    return not (engine and _State.quiet and record.levelno >= logging.WARNING)


def configure(verbose: int, quiet: int) -> None:
    """Set up logging for one command line (idempotent: one handler at most)."""
    root = logging.getLogger()
    ours = _State.handler
    if ours is not None and ours in root.handlers:
        root.removeHandler(ours)
        _State.handler = None
    if root.handlers:  # someone else configured logging: theirs wins
        if verbose or quiet:
            root.setLevel(level_for(verbose, quiet))
        return
    handler = _RichOnFirstRecord(verbose > 1)
    handler.addFilter(_not_while_quiet)
    root.addHandler(handler)
    root.setLevel(level_for(verbose, quiet))
    _State.handler = handler


class _RichOnFirstRecord(logging.Handler):
    """A :class:`rich.logging.RichHandler` on stderr, made when a record comes.

    Most commands log nothing: building the handler (and importing rich's
    console for it) at every start would cost what ``status --json`` or
    ``export`` otherwise need not pay.
    """

    def __init__(self, detailed: bool) -> None:
        super().__init__()
        self.detailed = detailed
        self.rich: logging.Handler | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.rich is None:
            from rich.logging import RichHandler

            from .safe_console import SafeConsole  # records may quote the journal

            self.rich = RichHandler(
                console=SafeConsole(
                    stderr=True, highlight=False, markup=False, emoji=False
                ),
                show_time=self.detailed,
                show_path=self.detailed,
                markup=False,
                rich_tracebacks=False,
            )
        self.rich.handle(record)


@contextlib.contextmanager
def quiet_engine() -> Iterator[None]:
    """Drop the engine's warnings from our handler (and logging's last resort)."""
    logger = logging.getLogger(ENGINE_LOGGER)
    null = logging.NullHandler()  # without any handler, lastResort would print
    logger.addHandler(null)
    _State.quiet += 1
    try:
        yield
    finally:
        _State.quiet -= 1
        logger.removeHandler(null)
