"""``delete``, ``gc`` and ``compact``: removing finished runs and giving space back.

``delete`` and ``gc`` are :meth:`Engine.delete` and :meth:`Engine.gc`;
``compact`` is :func:`replay_engine.compact_journal`, which needs the journal
closed by every writer. What each removes is in docs/store.md ("Retention");
the JSON shapes are in docs/cli-json.md.
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Any

import click

import journal_format as jf

from .. import NotAJournalError, Removed, compact_journal
from .common import (
    emit_json,
    journal_path,
    json_option,
    make_console,
    open_engine,
    reporting_errors,
    usage_error,
)
from .safe_text import literal

TERMINAL = tuple(sorted(jf.FINISHED_STATUSES))
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

CUTOFF_HELP = (
    "Delete runs last updated before this: an ISO date or date-time"
    " (2026-01-31, 2026-01-31T12:00:00+02:00; UTC when no offset is given),"
    " an age (90s, 30m, 12h, 7d, 2w: that long before now), or `now`."
)


def parse_cutoff(text: str, now: _dt.datetime | None = None) -> _dt.datetime:
    """The time ``--finished-before`` names (timezone-aware).

    Raises:
        ValueError: ``text`` is none of the accepted forms.
    """
    now = now or _dt.datetime.now(_dt.UTC)
    text = text.strip()
    if text == "now":
        return now
    age = _DURATION.fullmatch(text)
    if age:
        return now - _dt.timedelta(seconds=float(age[1]) * _UNIT[age[2]])
    try:
        value = _dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a date, a date-time or an age (like 7d)"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=_dt.UTC)


def removed_document(removed: Removed) -> dict[str, Any]:
    """The counts of a deletion, as JSON."""
    return {
        "runs": list(removed.runs),
        "events": removed.events,
        "records": removed.records,
        "blobs": removed.blobs,
        "bytes": removed.bytes,
        "skipped": list(removed.skipped),
    }


def _summary(removed: Removed, verb: str) -> str:
    text = (
        f"{verb} {len(removed.runs)} run{'s' * (len(removed.runs) != 1)}"
        f" ({removed.events} events, {removed.records} index and checkpoint"
        f" records), {removed.blobs} blobs: {removed.bytes:,} bytes"
    )
    if removed.skipped:
        text += (
            f"; skipped {len(removed.skipped)} held by an executor:"
            f" {', '.join(removed.skipped[:10])}"
        )
    return text


@click.command("delete")
@click.argument("run_id")
@click.option(
    "--force",
    is_flag=True,
    help="Delete a run that is executing: cancel it first, then wait (bounded)"
    " for its executor to stop.",
)
@json_option
@click.pass_context
@reporting_errors
def delete_command(ctx: click.Context, run_id: str, force: bool, as_json: bool) -> None:
    """Delete RUN_ID: its record, events, index entries and checkpoint.

    Blobs stay (forks and identical payloads share them): `gc` sweeps the
    ones no run refers to. A running run is refused unless --force.
    """
    with open_engine(ctx, access="write", run_id=run_id) as engine:
        removed = engine.delete(run_id, force=force)
    if as_json:
        emit_json({"run_id": run_id, **removed_document(removed)})
    else:
        make_console().print(literal(f"run {run_id}: " + _summary(removed, "deleted")))


@click.command("gc")
@click.option(
    "--finished-before", "cutoff", required=True, metavar="WHEN", help=CUTOFF_HELP
)
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(TERMINAL),
    help="Only runs of this status (repeatable; default: every finished status).",
)
@click.option("--dry-run", is_flag=True, help="Say what would go; write nothing.")
@json_option
@click.pass_context
@reporting_errors
def gc_command(
    ctx: click.Context,
    cutoff: str,
    statuses: tuple[str, ...],
    dry_run: bool,
    as_json: bool,
) -> None:
    """Delete finished runs last updated before WHEN, then every unused blob.

    Blobs are swept by mark and sweep: every payload an event or checkpoint
    left in the journal refers to stays (shared with a fork, or an identical
    payload of a kept run); the rest go. One transaction: a process killed
    during gc leaves the journal as it was, or done.
    """
    try:
        before = parse_cutoff(cutoff)
    except ValueError as exc:
        raise usage_error(f"--finished-before: {exc}", ctx) from None
    chosen = statuses or TERMINAL
    with open_engine(ctx, access="write") as engine:
        removed = engine.gc(before, statuses=chosen, dry_run=dry_run)
    if as_json:
        emit_json(
            {
                "dry_run": dry_run,
                "finished_before": before.isoformat(),
                "statuses": list(chosen),
                **removed_document(removed),
            }
        )
    else:
        verb = "would delete" if dry_run else "deleted"
        make_console().print(literal(_summary(removed, verb)))


@click.command("compact")
@json_option
@click.pass_context
@reporting_errors
def compact_command(ctx: click.Context, as_json: bool) -> None:
    """Rewrite the journal without its free pages (space left by deleted runs).

    Refused while any process has the journal open for writing (a worker, a
    run): stop them first. Killed at any point, the journal is the old one or
    the new one, whole.
    """
    path = journal_path(ctx, must_exist=True)
    try:
        done = compact_journal(path)
    except NotAJournalError as exc:
        raise usage_error(f"cannot open the journal at {path!r}: {exc}", ctx) from None
    if as_json:
        emit_json(
            {
                "journal": path,
                "before": done.before,
                "after": done.after,
                "saved": done.before - done.after,
            }
        )
    else:
        make_console().print(
            literal(
                f"compacted {path}: {done.before:,} → {done.after:,} bytes"
                f" ({done.before - done.after:,} bytes freed)"
            )
        )


def register(group: click.Group) -> None:
    """Add ``delete``, ``gc`` and ``compact``."""
    for command in (delete_command, gc_command, compact_command):
        group.add_command(command)
