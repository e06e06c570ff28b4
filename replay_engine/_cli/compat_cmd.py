"""``compat``: which stored runs the given code would break (the CI gate)."""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table
from rich.text import Text

from .. import RunCompatibility, load_process
from .common import (
    EXIT_FAILED,
    STATUSES,
    emit_json,
    json_option,
    make_console,
    open_engine,
    reporting_errors,
)
from .safe_text import cell, literal, printable


def compat_document(found: list[RunCompatibility]) -> dict[str, Any]:
    """The ``compat`` JSON document."""
    return {
        "runs": [
            {
                "run_id": c.run_id,
                "status": c.status,
                "verdict": c.verdict,
                "key": c.key or None,
                "seq": c.seq,
                "message": c.message or None,
            }
            for c in found
        ],
        "compatible": sum(c.compatible for c in found),
        "breaks": sum(c.verdict == "breaks" for c in found),
        "unproven": sum(c.verdict == "unproven" for c in found),
        "errors": sum(c.verdict == "error" for c in found),
    }


@click.command("compat")
@click.argument("process")
@click.option(
    "--runs",
    "run_ids",
    metavar="ID",
    multiple=True,
    help="Check only these runs (repeat, or separate with commas).",
)
@click.option(
    "--status",
    "statuses",
    type=click.Choice(STATUSES),
    multiple=True,
    help="Check only runs with this status (repeatable).",
)
@json_option
@click.pass_context
@reporting_errors
def compat_command(
    ctx: click.Context,
    process: str,
    run_ids: tuple[str, ...],
    statuses: tuple[str, ...],
    as_json: bool,
) -> None:
    """Replay the stored runs of PROCESS (MODULE:FUNC) against the code as it is now.

    Read-only: every call is answered from the journal, nothing is
    dispatched or written. Reports, per run, compatible or the first
    divergence (key, recorded vs replayed). Without --runs, every run
    recorded with this process's reference is checked. Exit 0 if every run
    would replay, 1 if any would break (or could not be replayed, or is
    unproven: a new call before recorded ones it cannot reach, or recorded
    calls not made before a wait), 2 for a
    process that cannot be imported or an unknown run.
    """
    fn = load_process(process)  # the user names it, as for `run`
    chosen = [r for value in run_ids for r in value.split(",") if r] or None
    with open_engine(ctx) as engine:
        found = engine.check_compatible(fn, chosen)
    if statuses:
        found = [c for c in found if c.status in statuses]
    if as_json:
        emit_json(compat_document(found))
    else:
        _show(found)
    if any(not c.compatible for c in found):
        ctx.exit(EXIT_FAILED)


def _show(found: list[RunCompatibility]) -> None:
    console = make_console()
    if not found:
        console.print("no stored runs of this process to check", markup=False)
        return
    table = Table()
    for name in ("run", "status", "verdict", "key", "what"):
        table.add_column(name)
    for c in found:
        style = {"compatible": "green", "breaks": "red"}.get(c.verdict, "yellow")
        table.add_row(
            cell(c.run_id),
            cell(c.status),
            literal(c.verdict, style=style),
            cell(c.key),
            Text(printable(_what(c.message), keep_lines=True)),
        )
    console.print(table)
    broken = sum(not c.compatible for c in found)
    console.print(
        f"{len(found) - broken} of {len(found)} runs compatible", markup=False
    )


def register(group: click.Group) -> None:
    """Add ``compat``."""
    group.add_command(compat_command)


_DETAIL = ("recorded:", "replayed:", "call site:")


def _what(message: str | None) -> str:
    """A divergence's recorded vs replayed call and call site (else its first line).

    The rest of a ``NonDeterminismError``'s text (likely causes, the fork
    command) is the same for every run; ``--json`` keeps it whole.
    """
    lines = [line.strip() for line in (message or "").splitlines()]
    detail = [line for line in lines if line.startswith(_DETAIL)]
    return "\n".join(detail) if detail else (lines[0] if lines else "")
