"""A click group whose commands are imported only when one is used.

``replay-engine --help`` and ``status`` should start in well under 150 ms;
importing every command module would import the engine, asyncio, the static
checker, the timeline and the debugger first. So the group knows its commands
by a table of ``(name, "module:attribute", short help)`` rows (see
``_cli/__init__.py``): ``--help`` lists the table's names and short help in its
order, importing nothing, and a command's module is imported when the command
is resolved (to run it, or for its own ``--help``). ``tests/cli/test_lazy_cli.py``
checks that each row's short help is the command's own.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import click

from .core import OrderedGroup, collector_paused

#: One command: its name, ``"module:attribute"`` (a module of ``_cli``), and
#: the short help ``--help`` lists (the first sentence of its docstring).
LazyCommand = tuple[str, str, str]


class LazyGroup(OrderedGroup):
    """An :class:`OrderedGroup` resolving its commands from a table on demand."""

    def __init__(
        self, *args: Any, lazy_commands: Sequence[LazyCommand] = (), **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = {
            name: (target, short) for name, target, short in lazy_commands
        }

    def list_commands(self, ctx: click.Context) -> list[str]:
        eager = [name for name in self.commands if name not in self.lazy_commands]
        return [*self.lazy_commands, *eager]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        if cmd_name not in self.lazy_commands:
            return None
        command = self.load(cmd_name)
        self.commands[cmd_name] = command
        return command

    def load(self, cmd_name: str) -> click.Command:
        """Import the command ``cmd_name`` names in the table."""
        target = self.lazy_commands[cmd_name][0]
        module_name, _, attr = target.partition(":")
        with collector_paused():
            module = importlib.import_module(f"{__package__}.{module_name}")
        command = getattr(module, attr)
        if not isinstance(command, click.Command):  # a wrong row, caught by tests
            raise TypeError(f"{target} is not a click command")
        return command

    def format_commands(
        self, ctx: click.Context, formatter: click.HelpFormatter
    ) -> None:
        # click's own version resolves every command to ask for its short
        # help; the table has it, so listing the commands imports none.
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            if name in self.commands:
                command = self.commands[name]
                if command.hidden:
                    continue
                text = command.get_short_help_str(limit)
            else:
                text = _shortened(self.lazy_commands[name][1], limit)
            rows.append((name, text))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _shortened(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters as click cuts a short help."""
    if len(text) <= limit:
        return text
    import textwrap

    return textwrap.shorten(
        text, max(limit, 3), placeholder="...", break_on_hyphens=False
    )
