"""``status``, ``runs`` and ``verify``: read the journal, execute nothing.

``log`` is in ``log_cmd``.
"""

from __future__ import annotations

import datetime as _dt
import json
from typing import TYPE_CHECKING, Any

import click

from .. import Engine, RunInfo
from .common import (
    EXIT_FAILED,
    STATUSES,
    emit_json,
    journal_path,
    json_option,
    make_console,
    open_engine,
    plain,
    reporting_errors,
    run_table,
    status_style,
    utc_text,
)
from .failure_view import failure_fields, traceback_tail
from .run_tree import family_tree, print_tree
from .safe_text import cell, literal, printable
from .waiting_views import add_waiting_columns, waiting_cells, waiting_fields

if TYPE_CHECKING:
    # rich's tables are imported where a table is printed (not for --json),
    # verify's modules by verify alone (status, runs: start-up).
    from rich.table import Table

    from .. import VerifyReport

# -- inspecting ----------------------------------------------------------------


def _status_cell(info: RunInfo) -> str:
    """The status, with the executor's pid for a run stored ``running``."""
    executor = info.executor
    if executor is None or executor.pid is None:
        return info.status
    return f"{info.status} (pid {executor.pid})"


def status_document(engine: Engine, info: RunInfo) -> dict[str, Any]:
    """The ``status`` document of a run; ``info`` comes from ``Engine.status``."""
    error = (
        {
            "type": info.error.type,
            "message": info.error.message,
            **failure_fields(info.error),
            "traceback": info.error.traceback,
        }
        if info.error
        else None
    )
    pending = list(info.pending)
    return {
        "run_id": info.run_id,
        "status": info.status,
        "result": engine.result(info.run_id),
        "events": info.events,
        "dispatched": info.dispatched,
        "replayed": info.replayed,
        "process": info.process,
        "created": info.created,
        "updated": info.updated,
        "parent": info.parent,
        "fork_at": info.fork_at,
        "error": error,
        "pending": pending,
        "abandoned": list(info.abandoned),
        "deadline": info.deadline,
        "cancel_requested": info.cancel_requested,
        "cancel_reason": info.cancel_reason,
        "stored_status": info.stored_status,
        "executor": executor_document(info),
        "executions": info.executions,
        "last_execution": last_execution(engine, info),
        "child_of": info.child_of,
        "child_key": info.child_key,
        "waiting_on": list(info.waiting_on),
    }


def last_execution(engine: Engine, info: RunInfo) -> dict[str, Any] | None:
    """Who began the run's latest execution, why and when (one event read)."""
    seq = info.last_execution_seq
    if seq is None:
        return None
    stored = engine.events(info.run_id, seq, seq + 1)
    if not stored:
        return None
    event = stored[0].event
    why = getattr(event, "why", "start")  # run_started: the first execution
    return {
        "seq": seq,
        "why": why,
        "pid": getattr(event, "pid", None),
        "host": getattr(event, "host", None),
        "at": _dt.datetime.fromtimestamp(stored[0].envelope.at / 1e9, _dt.UTC),
    }


def executor_document(info: RunInfo) -> dict[str, Any] | None:
    """Who executes a stored ``running`` run (None for any other run)."""
    executor = info.executor
    if executor is None:
        return None
    return {
        "holds_lock": executor.holds_lock,
        "pid": executor.pid,
        "host": executor.host,
        "since": executor.since,
        "alive": executor.alive,
    }


def executor_text(info: RunInfo) -> str | None:
    """``pid 123 on vm since … (alive)``, or None when there is nothing to say."""
    executor = info.executor
    if executor is None:
        return None
    if executor.pid is None:
        return "unknown (no holder recorded)"
    alive = {True: "alive", False: "dead", None: "liveness unknown"}[executor.alive]
    last = "" if executor.holds_lock is not False else "last: "
    return (
        f"{last}pid {executor.pid} on {executor.host or '?'} since"
        f" {executor.since or '?'} ({alive})"
    )


@click.command("status")
@click.argument("run_id")
@json_option
@click.pass_context
@reporting_errors
def status_command(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """Show the stored state of RUN_ID (executes nothing)."""
    with open_engine(ctx) as engine:
        info = engine.status(run_id)
        doc = status_document(engine, info)
    if as_json:
        emit_json(doc)
        return
    table = run_table(info)
    table.add_row("process", cell(info.process))
    table.add_row("events", str(info.events))
    table.add_row("dispatched", str(info.dispatched))
    table.add_row("replayed", str(info.replayed))
    table.add_row("created", utc_text(info.created))
    table.add_row("updated", utc_text(info.updated))
    executor = executor_text(info)
    if executor is not None:
        table.add_row("executor", cell(executor))
    last = doc["last_execution"]
    if last is not None:
        table.add_row(
            "executions",
            cell(
                f"{info.executions} (latest: {last['why']}, pid {last['pid']} on"
                f" {last['host']}, {utc_text(last['at'])})"
            ),
        )
    if info.parent is not None:
        table.add_row("forked from", cell(f"{info.parent} at event {info.fork_at}"))
    if info.child_of is not None:
        table.add_row("child of", cell(f"{info.child_of} at key {info.child_key}"))
    if info.status == "completed":
        table.add_row("result", cell(json.dumps(plain(doc["result"]))))
    error = doc["error"]
    if error is not None:
        table.add_row("error", literal(f"{error['type']}: {error['message']}", "red"))
        if error["at"]:
            table.add_row("at", cell(error["at"]))
        if error["task"]:
            table.add_row("task", cell(f"{error['task']} at key {error['key']}"))
        tail = traceback_tail(error["traceback"])
        if tail:
            from rich.text import Text

            lines = printable("\n".join(tail), keep_lines=True)
            table.add_row("traceback", Text(lines, style="dim"))
    if doc["pending"]:
        table.add_row("pending", cell(", ".join(doc["pending"])))
    if info.waiting_on:
        table.add_row("waiting on", cell("child runs " + ", ".join(info.waiting_on)))
    _add_end_rows(table, info)
    make_console().print(table)


def _add_end_rows(table: Table, info: RunInfo) -> None:
    """Deadline, cancel request and cancel details, when the run has them."""
    if info.deadline is not None:
        table.add_row("deadline", utc_text(info.deadline))
    if info.cancel_requested:
        table.add_row(
            "cancel", literal("requested; the executor stops at its next check")
        )
    if info.status == "cancelled":
        if info.cancel_reason is not None:
            table.add_row("reason", cell(info.cancel_reason))
        if info.abandoned:
            table.add_row("abandoned", cell(", ".join(info.abandoned)))


@click.command("runs")
@click.option(
    "--status",
    type=click.Choice(STATUSES),
    help="Only runs with this status.",
)
@click.option(
    "--tree",
    is_flag=True,
    help="Show child runs (ctx.run_child) under their parents.",
)
@json_option
@click.pass_context
@reporting_errors
def runs_command(
    ctx: click.Context, status: str | None, tree: bool, as_json: bool
) -> None:
    """List the runs in the journal, newest first (--tree: families)."""
    with open_engine(ctx) as engine:
        infos = engine.runs(status)
        rows = [
            {
                "run_id": i.run_id,
                "status": i.status,
                "process": i.process,
                "events": i.events,
                "created": i.created,
                "updated": i.updated,
                "parent": i.parent,
                "executor": executor_document(i),
                **waiting_fields(engine, i),
                "child_of": i.child_of,
                "child_key": i.child_key,
            }
            for i in infos
        ]
    if tree:
        roots = family_tree(rows)
        if as_json:
            emit_json(roots)
        else:
            print_tree(make_console(), roots, status)
        return
    if as_json:
        emit_json(rows)
        return
    console = make_console()
    if not rows:
        console.print("no runs" + (f" with status {status}" if status else ""))
        return
    from rich.table import Table

    table = Table()
    for name in ("run id", "status", "process", "events", "created", "updated"):
        table.add_column(name, justify="right" if name == "events" else "left")
    waiting = any(row["status"] == "waiting" for row in rows)
    if waiting:
        add_waiting_columns(table)
    for i, row in zip(infos, rows, strict=True):
        table.add_row(
            cell(i.run_id),
            literal(_status_cell(i), style=status_style(i.status)),
            cell(i.process),
            str(i.events),
            utc_text(i.created),
            utc_text(i.updated),
            *(waiting_cells(row) if waiting else ()),
        )
    console.print(table)


def _verify_document(report: VerifyReport) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "runs": report.runs,
        "events": report.events,
        "blobs": report.blobs,
        "problems": [
            {"run_id": p.run_id, "seq": p.seq, "key": p.key, "message": p.message}
            for p in report.problems
        ],
    }


@click.command("verify")
@click.argument("run_id", required=False)
@json_option
@click.pass_context
@reporting_errors
def verify_command(ctx: click.Context, run_id: str | None, as_json: bool) -> None:
    """Recompute every digest and chain link of RUN_ID (or of the whole journal).

    Exit 0 intact, 1 damaged.
    """
    # Opening the journal reads its main tree: damaged pages are found first,
    # since LMDB would abort the process on them.
    from .. import verify_pages

    report = verify_pages(journal_path(ctx, must_exist=True))
    if report is None:
        with open_engine(ctx) as engine:
            report = engine.verify(run_id)
    doc = _verify_document(report)
    if as_json:
        emit_json(doc)
    else:
        console = make_console()
        scope = f"run {run_id}" if run_id else "journal"
        counts = f"{report.runs} runs, {report.events} events, {report.blobs} blobs"
        if report.ok:
            console.print(literal(f"{scope} intact: {counts}", style="green"))
        else:
            from rich.table import Table

            table = Table(
                title=literal(f"{scope} damaged: {len(report.problems)} problems")
            )
            for name in ("run", "seq", "key", "problem"):
                table.add_column(name)
            for p in report.problems:
                table.add_row(
                    cell(p.run_id),
                    "" if p.seq is None else str(p.seq),
                    cell(p.key),
                    cell(p.message),
                )
            console.print(table)
            console.print(f"checked {counts}", style="dim")
    if not report.ok:
        click.echo(
            f"error: {printable(_scope_text(run_id))} is damaged"
            f" ({len(report.problems)} problems)",
            err=True,
        )
        ctx.exit(EXIT_FAILED)


def _scope_text(run_id: str | None) -> str:
    """How verify names what it checked."""
    return f"run {run_id!r}" if run_id else "the journal"


def register(group: click.Group) -> None:
    """Add ``status``, ``runs`` and ``verify`` (``log`` is ``log_cmd``)."""
    for command in (status_command, runs_command, verify_command):
        group.add_command(command)
