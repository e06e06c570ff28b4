"""``stats``: what a journal holds, counted (``Engine.statistics()``).

Journal-wide only: the counters of an engine (dispatched, replayed …) belong
to the process that executed, and a fresh command has executed nothing.
Inspects (nothing written, nothing imported).
"""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table
from rich.text import Text

from .. import EngineStatistics
from .common import emit_json, json_option, make_console, open_engine, reporting_errors
from .safe_text import cell


def stats_document(stats: EngineStatistics) -> dict[str, Any]:
    """The ``stats --json`` document (see docs/cli-json.md)."""
    return {
        "runs": stats.runs,
        "runs_by_status": dict(stats.runs_by_status),
        "events": stats.events,
        "payloads": stats.payloads,
        "used_bytes": stats.used_bytes,
        "map_size": stats.map_size,
    }


@click.command("stats")
@json_option
@click.pass_context
@reporting_errors
def stats_command(ctx: click.Context, as_json: bool) -> None:
    """Count the journal's runs by status, its events, payloads and bytes."""
    with open_engine(ctx) as engine:
        doc = stats_document(engine.statistics())
    if as_json:
        emit_json(doc)
        return
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_row("runs", f"{doc['runs']:,}")
    for status, count in doc["runs_by_status"].items():
        table.add_row(Text.assemble("  ", cell(status)), f"{count:,}")
    table.add_row("events", f"{doc['events']:,}")
    table.add_row("payloads", f"{doc['payloads']:,} (stored by address)")
    table.add_row("bytes in use", f"{doc['used_bytes']:,}")
    table.add_row("map size", f"{doc['map_size']:,}")
    make_console().print(table)


def register(group: click.Group) -> None:
    """Add ``stats``."""
    group.add_command(stats_command)
