"""``replay-engine check MODULE:FUNC``: the static determinism check."""

from __future__ import annotations

import click

from ..check import main_check
from .common import json_option, reporting_errors, usage_error


@click.command("check")
@click.argument("process", metavar="MODULE:FUNC")
@json_option
@click.pass_context
@reporting_errors
def check_command(ctx: click.Context, process: str, as_json: bool) -> None:
    """Flag what breaks determinism in a process and what it calls in its module.

    Wall-clock time, randomness, uuids, the environment, file and network I/O,
    iteration over sets, threads: each finding names the deterministic
    replacement. Exit 0 when clean, 1 when something is found, 2 when the
    process cannot be imported.
    """
    try:
        code = main_check(process, as_json)
    except ValueError as exc:  # e.g. no source available for the function
        raise usage_error(str(exc), ctx) from None
    ctx.exit(code)


def register(group: click.Group) -> None:
    """Add ``check``."""
    group.add_command(check_command)
