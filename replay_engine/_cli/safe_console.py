"""The console the commands print with: ``safe_text``'s rules on every segment.

A module of its own so that importing ``safe_text`` (which the commands that
print only JSON or plain lines use too) does not import rich's console:
``make_console`` imports this module when a command first prints with rich.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.console import Console, ConsoleOptions, RenderableType
from rich.segment import Segment

from .safe_text import CONTROL_BUT_LAYOUT, end_on_closed_pipe, printable


class SafeConsole(Console):
    """A console whose plain strings are never markup and whose text is escaped.

    The escaping happens on the rendered segments, after rich has laid them
    out: it is the safety net under :func:`literal`, not a replacement for it.
    """

    def render(
        self, renderable: RenderableType, options: ConsoleOptions | None = None
    ) -> Iterable[Segment]:
        for segment in super().render(renderable, options):
            text, style, control = segment
            if control or not CONTROL_BUT_LAYOUT.search(text):
                yield segment
            else:
                yield Segment(printable(text, keep_lines=True), style, control)

    def on_broken_pipe(self) -> None:
        """Stdout's reader left (``| head``): end quietly, as ``log`` does.

        Rich's own handler raises ``SystemExit(1)``, which the commands'
        error handling would report as an error on stderr.
        """
        self.quiet = True  # drop whatever this console still prints
        if self.stderr:
            return  # a log line lost on a closed stderr is not worth a stop
        end_on_closed_pipe()
