"""``iterate``: one turn of the orchestration loop, always answered in JSON.

The document holds the run's status, the pending external effects, the
signals it waits for and when its next timer or deadline falls due; the
command exits 3 while the run waits, 0 once it completed and 1 if it failed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import click

from .. import Engine, PendingEffect, Run, SignalWait
from .common import (
    EXIT_FAILED,
    PROCESS_OPTION,
    STATUS_EXIT,
    emit_json,
    json_option,
    open_engine,
    quiet_engine_logger,
    reporting_errors,
)
from .safe_text import echo
from .stop_signals import grace_option, stopping_on_signals
from .waiting_views import iso, now


def _iterate_document(
    engine: Engine, run: Run, *, was_completed: bool, note: str | None
) -> dict[str, Any]:
    effects: tuple[PendingEffect, ...] = ()
    signals: tuple[SignalWait, ...] = ()
    abandoned: list[PendingEffect] = []
    if run.status == "waiting":
        waiting = engine.waiting(run.run_id)
        effects, signals = waiting.externals, waiting.signals
    elif run.status == "failed":
        # Report what the failure orphaned (its parallel group's siblings).
        abandoned = [e for e in engine.pending(run.run_id) if e.abandoned]
    error = None
    if run.error is not None:
        error = {
            "type": run.error.type,
            "message": run.error.message,
            "traceback": run.error.traceback,
        }
    next_due_in = None
    if run.next_due is not None:
        next_due_in = round(max(0.0, (run.next_due - now()).total_seconds()), 3)
    stats = run.stats
    return {
        "run_id": run.run_id,
        "status": run.status,
        "result": run.result,
        "error": error,
        "pending": [e.to_dict() for e in effects],
        "signals": [s.to_dict() for s in signals],
        "abandoned": [e.to_dict() for e in abandoned],
        "next_due": iso(run.next_due),
        "next_due_in": next_due_in,
        "stats": {
            "dispatched": stats.dispatched,
            "redispatched": stats.redispatched,
            "replayed": stats.replayed,
            "events_written": stats.events_written,
            "commits": stats.commits,
            "elapsed": round(stats.elapsed, 6),
        },
        "already_completed": was_completed,
        "warnings": list(run.warnings),
        "note": note,
    }


def _always_json(fn: Callable[..., None]) -> Callable[..., None]:
    """Errors of ``iterate`` are JSON documents too, with or without --json."""

    def wrapper(*args: Any, **kwargs: Any) -> None:
        kwargs["as_json"] = True
        fn(*args, **kwargs)

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


@click.command("iterate")
@click.argument("run_id")
@PROCESS_OPTION
@grace_option
@json_option
@click.pass_context
@_always_json
@reporting_errors
def iterate_command(
    ctx: click.Context,
    run_id: str,
    process_ref: str | None,
    grace: float,
    as_json: bool,
) -> None:
    """One turn of the orchestration loop for RUN_ID; prints JSON.

    Replays the run from the start, executes every in-process task that can
    now run, and stops at the frontier: where only external results (post
    them), signals (post --event) or timers not yet due (iterate again after
    `next_due`) can move it on. Always prints one JSON document (--json is
    accepted and changes nothing).

    Exit 3 while the run waits, 0 once it completed, 1 if it failed. A
    completed run is terminal: iterating it prints its result and changes
    nothing. A run you did not start on this machine needs --process.
    """
    del as_json  # iterate always speaks JSON (see _always_json)
    started = time.perf_counter()
    with (
        stopping_on_signals(ctx, grace, as_json=True, command="iterate") as signals,
        open_engine(ctx, access="write", run_id=run_id) as engine,
        quiet_engine_logger(),
    ):
        signals.attach(engine)
        # Not engine.status() first: that reads the whole journal of a waiting
        # run, and the replay is about to read it anyway. A run that was
        # already completed comes back completed with nothing written.
        run = engine.iterate(run_id, process=process_ref)
        was_completed = run.status == "completed" and run.stats.events_written == 0
        note = None
        if was_completed:
            note = (
                f"run {run_id!r} was already completed: nothing was executed or"
                f" recorded (fork it to run again: replay-engine fork {run_id}"
                " --at N)"
            )
        doc = _iterate_document(engine, run, was_completed=was_completed, note=note)
    doc["stats"]["wall"] = round(time.perf_counter() - started, 6)
    for warning in run.warnings:
        echo(f"warning: {warning}", err=True)  # may quote the journal
    if note is not None:
        echo(f"note: {note}", err=True)
    emit_json(doc)
    code = STATUS_EXIT.get(run.status, EXIT_FAILED)
    if code:
        ctx.exit(code)
