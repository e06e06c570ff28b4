"""``pending``, ``post`` and ``iterate``: external effects, driven from a shell.

The orchestration loop of an agent or a script::

    replay-engine run flows:process --run-id r1        # exit 3: waiting
    replay-engine iterate r1                           # JSON: what is pending
    replay-engine post r1 1.0.0 --result '{"ok": true}'
    replay-engine iterate r1                           # ... until exit 0

``iterate`` always prints one JSON document (the run's status, the pending
external effects, the signals it waits for and when its next timer or
deadline falls due) and exits 3 while the run waits, 0 once it completed and
1 if it failed. ``pending --claim`` hands work out to workers under a lease;
``post --heartbeat`` extends it.

Every write (a post, a claim, a heartbeat, an event) is one atomic LMDB
transaction in the engine: a refused post (``PostRejected``) writes nothing
and exits 1 with the reason; input that is not JSON exits 2.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click

from .. import PendingEffect, SignalWait
from .common import (
    LeaseSeconds,
    emit_json,
    json_option,
    make_console,
    open_engine,
    reporting_errors,
    usage_error,
)
from .iterate_cmd import iterate_command
from .post_cmd import post_command, rejections
from .safe_text import cell, literal
from .waiting_views import age, now

_ARGS_WIDTH = 60
"""Characters of an effect's args shown in the human ``pending`` table."""


def _pending_document(
    run_id: str,
    status: str,
    effects: Sequence[PendingEffect],
    signals: Sequence[SignalWait],
) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "status": status,
        "pending": [e.to_dict() for e in effects],
        "signals": [s.to_dict() for s in signals],
    }


def _print_effects(effects: Sequence[PendingEffect], title: str, empty: str) -> None:
    console = make_console()
    if not effects:
        console.print(literal(empty))
        return
    from rich.table import Table
    from rich.text import Text

    at = now()
    table = Table(title=literal(title), title_justify="left")
    for name in ("key", "task", "kind", "age", "deadline", "claimed by", "state"):
        table.add_column(name, justify="right" if name == "age" else "left")
    table.add_column("args", overflow="ellipsis", max_width=_ARGS_WIDTH)
    for e in effects:
        state = Text("")
        if e.abandoned:
            state = Text("abandoned", style="red")
        elif e.stale:
            state = Text("stale (lease expired)", style="yellow")
        elif e.claimed_by is not None:
            left = (e.lease_expires - at).total_seconds() if e.lease_expires else 0
            state = Text(f"leased {left:.0f}s", style="cyan")
        table.add_row(
            cell(e.key),
            cell(e.task),
            cell(e.kind),
            f"{age(e, at):.0f}s",
            "" if e.deadline is None else e.deadline.strftime("%Y-%m-%d %H:%M:%S"),
            cell(e.claimed_by),
            state,
            cell(json.dumps(e.args, ensure_ascii=False, default=str)),
        )
    console.print(table)


@click.command("pending")
@click.argument("run_id")
@click.option(
    "--claim",
    "worker",
    metavar="WORKER",
    help="Atomically claim unclaimed (or lease-expired) effects for WORKER and"
    " print those.",
)
@click.option(
    "--lease",
    type=LeaseSeconds(),
    metavar="SECONDS",
    help="With --claim: how long the claim holds without a heartbeat.",
)
@click.option(
    "--max",
    "limit",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    metavar="N",
    help="With --claim: claim at most N effects.",
)
@click.option(
    "--kind",
    metavar="KIND",
    help="With --claim: only effects of this kind (agent, breakpoint, ...).",
)
@json_option
@click.pass_context
@reporting_errors
def pending_command(
    ctx: click.Context,
    run_id: str,
    worker: str | None,
    lease: float | None,
    limit: int,
    kind: str | None,
    as_json: bool,
) -> None:
    """List the external effects RUN_ID waits for, or claim some with --claim.

    Each effect shows its key, task, kind, args, when it was requested, its
    deadline, who claimed it and until when, and whether its lease expired
    (stale: offered again) or its parallel group failed (abandoned: posting
    to it is refused). Signals the run waits for (ctx.wait_for_event) are
    listed apart: post them with `post RUN_ID --event NAME`.
    """
    source = click.core.ParameterSource.DEFAULT
    explicit_max = ctx.get_parameter_source("limit") != source
    if worker is None:
        if lease is not None or explicit_max or kind is not None:
            raise usage_error("--lease, --max and --kind go with --claim WORKER", ctx)
    elif lease is None:
        raise usage_error("--claim needs --lease SECONDS", ctx)
    with open_engine(
        ctx, access="read" if worker is None else "write", run_id=run_id
    ) as engine:
        if worker is not None:
            assert lease is not None
            with rejections(as_json):
                claimed = engine.claim(
                    run_id, worker, lease=lease, limit=limit, kind=kind
                )
            if as_json:
                emit_json(
                    {
                        "run_id": run_id,
                        "worker": worker,
                        "lease": lease,
                        "claimed": [e.to_dict() for e in claimed],
                    }
                )
            else:
                _print_effects(
                    claimed,
                    f"claimed for {worker} (lease {lease:g}s): run {run_id}",
                    f"nothing to claim for {worker} in run {run_id}",
                )
            return
        info = engine.status(run_id)
        effects = engine.pending(run_id)  # abandoned ones too, flagged
        signals = engine.waiting(run_id).signals
    if as_json:
        emit_json(_pending_document(run_id, info.status, effects, signals))
        return
    _print_effects(
        effects,
        f"pending external effects: run {run_id} ({info.status})",
        f"run {run_id} ({info.status}) has no pending external effects",
    )
    console = make_console()
    for s in signals:
        console.print(
            literal(
                f"waiting for event {s.name!r} at key {s.key}: post it with"
                f" `replay-engine post {run_id} --event {s.name} --payload JSON`"
            )
        )


def register(group: click.Group) -> None:
    """Add ``pending``, ``post`` and ``iterate``."""
    group.add_command(pending_command)
    group.add_command(post_command)
    group.add_command(iterate_command)
