"""``cancel``: end a run from any shell, whether or not it is executing.

Exit 0 once the run is cancelled (or, for a run executing elsewhere that did
not stop within the wait, once the request is recorded: the document says
``"cancel_requested": true``); 1 when the run had already ended (nothing is
written); 2 for an unknown run.
"""

from __future__ import annotations

from typing import Any

import click

from .. import RunInfo
from .common import (
    emit_json,
    json_option,
    make_console,
    open_engine,
    reporting_errors,
    run_table,
)
from .safe_text import cell, literal


def cancel_document(info: RunInfo) -> dict[str, Any]:
    """The ``cancel --json`` document (see docs/cli-json.md)."""
    return {
        "run_id": info.run_id,
        "status": info.status,
        "cancel_requested": info.cancel_requested,
        "reason": info.cancel_reason,
        "abandoned": list(info.abandoned),
        "events": info.events,
    }


@click.command("cancel")
@click.argument("run_id")
@click.option("--reason", metavar="TEXT", help="Why; recorded with the cancel.")
@json_option
@click.pass_context
@reporting_errors
def cancel_command(
    ctx: click.Context, run_id: str, reason: str | None, as_json: bool
) -> None:
    """Cancel RUN_ID: terminal status `cancelled`, recorded with --reason.

    A run nobody executes is cancelled at once; its pending external effects
    can no longer be posted. A run executing in another process is asked to
    stop: it stops within a second (async effects cancelled, sync ones
    abandoned, their late results never recorded); this waits up to 5 s for
    it. Exit 0 cancelled (or the request recorded), 1 the run already ended
    (completed, cancelled, timed out: nothing written), 2 unknown run.
    """
    with open_engine(ctx, access="write", run_id=run_id) as engine:
        info = engine.cancel(run_id, reason)
    doc = cancel_document(info)
    if as_json:
        emit_json(doc)
        return
    table = run_table(info)
    if info.cancel_reason is not None:
        table.add_row("reason", cell(info.cancel_reason))
    if info.abandoned:
        table.add_row("abandoned", cell(", ".join(info.abandoned)))
    if info.status != "cancelled":
        table.add_row(
            "note",
            literal(
                "the run is still executing: the cancel is recorded and its executor"
                " stops at its next check (or the next resume cancels it)"
            ),
        )
    make_console().print(table)


def register(group: click.Group) -> None:
    """Add ``cancel``."""
    group.add_command(cancel_command)
