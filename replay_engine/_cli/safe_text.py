r"""Journal text on a terminal: printed literally, control characters escaped.

A journal is a file people send each other, so every string read from it
(run ids, task names, keys, log messages and fields, results, errors) is
untrusted. Two things could turn such a string into an action on the
reader's terminal:

- **rich markup**: ``[link=https://x]hi[/link]`` would become a hyperlink,
  ``[/]`` would raise ``MarkupError`` and abort the whole command;
- **control characters**: ``ESC [2J`` clears the screen, OSC sequences set
  the title or a clipboard, BEL rings, a C1 ``CSI`` (U+009B) starts an escape
  sequence on some terminals.

Hence: journal text is wrapped in :func:`literal` (a ``rich.text.Text``, never
parsed as markup, control characters shown as ``\x1b``-style escapes) or
made :func:`printable` before it is echoed; and :func:`make_console`, the only
console the commands use, turns markup off for every plain string and escapes
whatever control character still reaches a text segment, so a command that
forgets :func:`literal` still prints safely (only its column widths may be
off). Rich's own styling and cursor control travel in segment styles and
control segments, which are left alone.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from typing import TYPE_CHECKING, Any, NoReturn

import click

if TYPE_CHECKING:
    # Start-up: rich is imported when something is printed with it, so the
    # commands that print JSON or plain lines (--json, log, export) skip it.
    from rich.console import Console
    from rich.style import Style
    from rich.text import Text

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
# The same without line feed and tab: for multi-line messages we print whole
# (an error's lines, a layout's own line breaks), which are not escapes.
CONTROL_BUT_LAYOUT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _NAMED.get(char) or f"\\x{ord(char):02x}"


def printable(text: object, *, keep_lines: bool = False) -> str:
    r"""``str(text)`` with C0, DEL and C1 control characters escaped (``\x1b``).

    ``keep_lines`` keeps line feeds and tabs (for a multi-line message printed
    as a whole); otherwise they are escaped too, so one value stays on one line.
    """
    pattern = CONTROL_BUT_LAYOUT if keep_lines else _CONTROL
    return pattern.sub(_escape, str(text))


def literal(text: object, style: str | Style = "") -> Text:
    """Journal text as a rich ``Text``: no markup, control characters escaped."""
    from rich.text import Text

    return Text(printable(text), style=style)


def cell(text: object | None) -> Text:
    """A table cell holding journal text (``None`` is an empty cell)."""
    return literal("" if text is None else text)


def echo(message: object, *, err: bool = False) -> None:
    """``click.echo`` of a message that may hold journal text (lines kept)."""
    click.echo(printable(message, keep_lines=True), err=err)


def end_on_closed_pipe() -> NoReturn:
    """End the command with exit 0 and no message: stdout's reader has left.

    stdout is pointed at ``/dev/null`` so that the interpreter's last flush
    at exit cannot raise again (Python's documented recipe for SIGPIPE).
    """
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    raise click.exceptions.Exit(0)


def make_console(**overrides: Any) -> Console:
    """The console every command prints human output with (stdout)."""
    stream = sys.stdout
    width = None
    if not stream.isatty() and "COLUMNS" not in os.environ:
        width = 160  # rich would fold tables to 80 columns in a pipe
    settings: dict[str, Any] = {
        "file": stream,
        "width": width,
        "highlight": False,
        "soft_wrap": False,
        "markup": False,
        "emoji": False,
    }
    settings.update(overrides)
    from .safe_console import SafeConsole

    return SafeConsole(**settings)
