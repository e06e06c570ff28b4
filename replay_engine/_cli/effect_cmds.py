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

import contextlib
import datetime as _dt
import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import click
from rich.table import Table
from rich.text import Text

import journal_format as jf

from .. import Engine, PendingEffect, PostRejected, Run, RunInfo
from .._store.posts import pending_effects
from .._store.store import StoredEvent
from .common import (
    EXIT_FAILED,
    STATUS_EXIT,
    CliError,
    emit_json,
    json_option,
    load_process,
    loads_json,
    make_console,
    open_engine,
    quiet_engine_logger,
    reporting_errors,
    usage_error,
)

_ARGS_WIDTH = 60
"""Characters of an effect's args shown in the human ``pending`` table."""


# -- helpers -------------------------------------------------------------------


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


def _iso(value: _dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _from_ns(ns: int | None) -> _dt.datetime | None:
    return None if ns is None else _dt.datetime.fromtimestamp(ns / 1e9, _dt.UTC)


def _parse_json(text: str, option: str, ctx: click.Context) -> Any:
    """The value of a JSON option (``-`` reads stdin); bad JSON is a usage error."""
    source = option
    if text == "-":
        text = sys.stdin.read()
        source = f"{option} - (stdin)"
    return loads_json(text, source, ctx, hint=". Quote strings: --result '\"text\"'")


def _check_key(key: str, ctx: click.Context) -> str:
    """``key`` in canonical dotted form; a malformed key is a usage error."""
    try:
        return jf.key_bytes_to_text(jf.encode_key(jf.parse_key(key)))
    except jf.FormatError as exc:
        raise usage_error(f"KEY: {exc}", ctx) from None


def _rejected(exc: PostRejected, *, as_json: bool) -> CliError:
    """A refused post/claim/heartbeat: exit 1, with its ``reason``."""
    details: dict[str, Any] = {"run_id": exc.run_id, "reason": exc.reason}
    if exc.key is not None:
        details["key"] = exc.key
    return CliError(
        str(exc), error_type="PostRejected", details=details, as_json=as_json
    )


@contextlib.contextmanager
def _rejections(as_json: bool) -> Iterator[None]:
    try:
        yield
    except PostRejected as exc:
        raise _rejected(exc, as_json=as_json) from None


def _signal_waits(events: Sequence[StoredEvent]) -> list[dict[str, Any]]:
    """``ctx.wait_for_event`` calls among ``events`` that have no outcome yet."""
    waits: dict[bytes, StoredEvent] = {}
    for stored in events:
        event = stored.event
        if isinstance(event, jf.EffectRequested) and event.kind == "signal":
            waits[event.key] = stored
        elif isinstance(
            event, jf.EffectCompleted | jf.EffectFailed | jf.EffectAbandoned
        ):
            waits.pop(event.key, None)
    out = []
    for key in sorted(waits):
        stored = waits[key]
        request = stored.event
        assert isinstance(request, jf.EffectRequested)
        out.append(
            {
                "key": jf.key_bytes_to_text(key),
                "name": request.task,
                "requested_at": _iso(_from_ns(stored.envelope.at)),
                "deadline": _iso(_from_ns(request.deadline_ns)),
                "seq": stored.seq,
            }
        )
    return out


def _events_at(engine: Engine, run_id: str, keys: Sequence[str]) -> list[StoredEvent]:
    """The events at ``keys`` through the invocation-key index, in seq order.

    Costs a few reads per key, whatever the length of the journal: this is
    how ``iterate`` describes what a waiting run needs without a second scan.
    """
    seqs: set[int] = set()
    for key in keys:
        raw = jf.encode_key(jf.parse_key(key))
        seqs.update(engine.store.seqs_for_key(run_id, raw))
    out: list[StoredEvent] = []
    for seq in sorted(seqs):
        out.extend(engine.events(run_id, seq, seq + 1))
    return out


def _age(effect: PendingEffect, now: _dt.datetime) -> float:
    return max(0.0, (now - effect.requested_at).total_seconds())


def _lease_expired(effect: PendingEffect) -> bool:
    return effect.stale and not effect.abandoned


def waiting_fields(engine: Engine, info: RunInfo) -> dict[str, Any]:
    """What ``runs`` adds to each row: what a waiting run needs, and since when.

    ``pending`` (keys) and ``pending_count`` count the external effects
    without a result (abandoned ones excluded), ``oldest_pending_age`` is
    the age in seconds of the oldest of them, ``expired_leases`` how many
    were claimed by a worker whose lease ran out, ``signals`` the events the
    run waits for, ``next_due`` when its earliest timer or deadline falls
    due. Empty for a run that is not waiting.
    """
    empty: dict[str, Any] = {
        "pending": [],
        "pending_count": 0,
        "oldest_pending_age": None,
        "expired_leases": 0,
        "signals": [],
        "next_due": None,
    }
    if info.status != "waiting" or info.events == 0:
        return empty
    waiting, events = _last_waiting(engine, info)
    if waiting is None:
        effects = pending_effects(events, engine.payload)
        signals = _signal_waits(events)
        next_due = None
    else:
        keys = [jf.key_bytes_to_text(k) for k in waiting.pending]
        at_keys = _events_at(engine, info.run_id, keys)
        effects = pending_effects(at_keys, engine.payload)
        signals = _signal_waits(at_keys)
        next_due = _from_ns(waiting.next_due_ns)
    live = [e for e in effects if not e.abandoned]
    now = _now()
    return {
        "pending": [e.key for e in live],
        "pending_count": len(live),
        "oldest_pending_age": round(max(_age(e, now) for e in live), 3)
        if live
        else None,
        "expired_leases": sum(1 for e in live if _lease_expired(e)),
        "signals": [s["name"] for s in signals],
        "next_due": _iso(next_due),
    }


def add_waiting_columns(table: Table) -> None:
    """The columns ``runs`` adds to its table when some run is waiting."""
    for name in ("pending", "oldest", "leases expired", "next due"):
        table.add_column(name, justify="right")


def waiting_cells(row: dict[str, Any]) -> tuple[str, ...]:
    """A row's cells for :func:`add_waiting_columns` (blank unless waiting)."""
    if row["status"] != "waiting":
        return ("", "", "", "")
    age = row["oldest_pending_age"]
    signals = len(row["signals"])
    pending = str(row["pending_count"]) + (f" +{signals} events" if signals else "")
    due = row["next_due"]
    return (
        pending,
        "" if age is None else f"{age:.0f}s",
        str(row["expired_leases"]) if row["expired_leases"] else "",
        "" if due is None else due[:19].replace("T", " "),
    )


def _last_waiting(
    engine: Engine, info: RunInfo, chunk: int = 64
) -> tuple[jf.RunWaiting | None, list[StoredEvent]]:
    """The run's last ``run_waiting`` event, read backwards in chunks.

    Posts and claims after it only settle or annotate the keys it names, so
    its keys still cover what the run waits for. Without one, every event
    read is returned for a full scan.
    """
    stop = info.events
    read: list[StoredEvent] = []
    while stop > 0:
        start = max(0, stop - chunk)
        part = engine.events(info.run_id, start, stop)
        for stored in reversed(part):
            if isinstance(stored.event, jf.RunWaiting):
                return stored.event, []
        read = part + read
        stop = start
        chunk *= 2
    return None, read


# -- pending -------------------------------------------------------------------


def _pending_document(
    run_id: str, status: str, effects: Sequence[PendingEffect], signals: Any
) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "status": status,
        "pending": [e.to_dict() for e in effects],
        "signals": signals,
    }


def _print_effects(effects: Sequence[PendingEffect], title: str, empty: str) -> None:
    console = make_console()
    if not effects:
        console.print(empty, markup=False)
        return
    now = _now()
    table = Table(title=title, title_justify="left")
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
            left = (e.lease_expires - now).total_seconds() if e.lease_expires else 0
            state = Text(f"leased {left:.0f}s", style="cyan")
        table.add_row(
            e.key,
            e.task,
            e.kind,
            f"{_age(e, now):.0f}s",
            "" if e.deadline is None else e.deadline.strftime("%Y-%m-%d %H:%M:%S"),
            e.claimed_by or "",
            state,
            Text(json.dumps(e.args, ensure_ascii=False, default=str)),
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
    type=click.FloatRange(min=0, min_open=True),
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
    with open_engine(ctx, access="read" if worker is None else "write") as engine:
        if worker is not None:
            assert lease is not None
            with _rejections(as_json):
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
        events = engine.events(run_id)
        effects = pending_effects(events, engine.payload)
        signals = _signal_waits(events)
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
            f"waiting for event {s['name']!r} at key {s['key']}: post it with"
            f" `replay-engine post {run_id} --event {s['name']} --payload JSON`",
            markup=False,
        )


# -- post ----------------------------------------------------------------------


def _one_action(ctx: click.Context, flags: dict[str, bool]) -> str:
    given = [name for name, on in flags.items() if on]
    if len(given) != 1:
        names = ", ".join(f"--{n}" for n in flags)
        what = "none" if not given else ", ".join(f"--{n}" for n in given)
        raise usage_error(f"give exactly one of {names} (got {what})", ctx)
    return given[0]


def _forbid(ctx: click.Context, action: str, **options: object) -> None:
    for name, value in options.items():
        if value is not None and value is not False:
            flag = "--" + name.replace("_", "-")
            raise usage_error(f"{flag} does not go with --{action}", ctx)


@click.command("post")
@click.argument("run_id")
@click.argument("key", required=False)
@click.option("--result", "result_json", metavar="JSON", help="The effect's result.")
@click.option("--error", "error", metavar="MSG", help="Fail the effect with MSG.")
@click.option(
    "--approve", is_flag=True, help='Answer a breakpoint: {"approved": true, ...}.'
)
@click.option(
    "--reject", is_flag=True, help='Answer a breakpoint: {"approved": false, ...}.'
)
@click.option(
    "--response",
    "response_json",
    metavar="JSON",
    help="With --approve/--reject: the answer's response.",
)
@click.option("--event", metavar="NAME", help="Send the signal NAME (no KEY).")
@click.option(
    "--payload", "payload_json", metavar="JSON", help="With --event: its payload."
)
@click.option(
    "--heartbeat", is_flag=True, help="Extend the lease of --by on KEY by --lease."
)
@click.option("--by", metavar="WORKER", help="The posting (or heartbeating) worker.")
@click.option(
    "--lease",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="With --heartbeat: the new lease, from now.",
)
@json_option
@click.pass_context
@reporting_errors
def post_command(
    ctx: click.Context,
    run_id: str,
    key: str | None,
    result_json: str | None,
    error: str | None,
    approve: bool,
    reject: bool,
    response_json: str | None,
    event: str | None,
    payload_json: str | None,
    heartbeat: bool,
    by: str | None,
    lease: float | None,
    as_json: bool,
) -> None:
    """Post the outcome of the external effect at KEY of RUN_ID, or a signal.

    \b
      post RUN_ID KEY --result JSON            the effect's result
      post RUN_ID KEY --error MSG              the effect failed
      post RUN_ID KEY --approve|--reject [--response JSON]   a breakpoint
      post RUN_ID --event NAME [--payload JSON]              a signal
      post RUN_ID KEY --heartbeat --by WORKER --lease SECONDS

    A JSON value of '-' is read from stdin. The post is validated and atomic:
    an unknown key, a key that already has a result, an abandoned key, a
    finished run, or an effect claimed by another worker is refused (exit 1)
    and nothing is written. Then run `replay-engine iterate RUN_ID` to go on.
    """  # noqa: D301 - \b is click's "keep this paragraph as is" marker
    action = _one_action(
        ctx,
        {
            "result": result_json is not None,
            "error": error is not None,
            "approve": approve,
            "reject": reject,
            "event": event is not None,
            "heartbeat": heartbeat,
        },
    )
    if action != "heartbeat":
        _forbid(ctx, action, lease=lease)
    if action not in ("approve", "reject"):
        _forbid(ctx, action, response=response_json)
    if action != "event":
        _forbid(ctx, action, payload=payload_json)
        if key is None:
            raise usage_error(f"--{action} needs the KEY of the effect", ctx)
        key = _check_key(key, ctx)
    elif key is not None:
        raise usage_error("--event sends a signal to the run: give no KEY", ctx)
    else:
        _forbid(ctx, action, by=by)
    if action == "heartbeat" and (by is None or lease is None):
        raise usage_error("--heartbeat needs --by WORKER and --lease SECONDS", ctx)

    doc: dict[str, Any]
    with open_engine(ctx, access="write") as engine, _rejections(as_json):
        if action == "event":
            assert event is not None
            payload = (
                None
                if payload_json is None
                else _parse_json(payload_json, "--payload", ctx)
            )
            seq = engine.post_event(run_id, event, payload)
            doc = {"run_id": run_id, "event": event, "seq": seq}
            human = f"sent event {event!r} to run {run_id} (event seq {seq})"
        elif action == "heartbeat":
            assert key is not None and by is not None and lease is not None
            until = engine.heartbeat(run_id, key, by, lease=lease)
            doc = {"run_id": run_id, "key": key, "worker": by, "lease_expires": until}
            human = f"lease of {by} on key {key} of run {run_id} extended to {until}"
        else:
            assert key is not None
            if action == "error":
                seq = engine.post(run_id, key, error=error, by=by)
            else:
                if action == "result":
                    assert result_json is not None
                    value = _parse_json(result_json, "--result", ctx)
                else:
                    response = (
                        None
                        if response_json is None
                        else _parse_json(response_json, "--response", ctx)
                    )
                    value = {"approved": action == "approve", "response": response}
                seq = engine.post(run_id, key, result=value, by=by)
            posted = "error" if action == "error" else "result"
            doc = {
                "run_id": run_id,
                "key": key,
                "posted": posted,
                "seq": seq,
                "by": by,
            }
            human = (
                f"posted {'an error' if action == 'error' else 'the result'} to key"
                f" {key} of run {run_id} (event seq {seq}); go on with: replay-engine"
                f" iterate {run_id}"
            )
    if as_json:
        emit_json(doc)
    else:
        make_console().print(human, markup=False)


# -- iterate -------------------------------------------------------------------


def _iterate_document(
    engine: Engine, run: Run, *, was_completed: bool, note: str | None
) -> dict[str, Any]:
    effects: list[PendingEffect] = []
    signals: list[dict[str, Any]] = []
    abandoned: list[PendingEffect] = []
    if run.status == "waiting":
        at_keys = _events_at(engine, run.run_id, run.pending)
        effects = pending_effects(at_keys, engine.payload)
        signals = _signal_waits(at_keys)
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
        next_due_in = round(max(0.0, (run.next_due - _now()).total_seconds()), 3)
    stats = run.stats
    return {
        "run_id": run.run_id,
        "status": run.status,
        "result": run.result,
        "error": error,
        "pending": [e.to_dict() for e in effects if not e.abandoned],
        "signals": signals,
        "abandoned": [e.to_dict() for e in abandoned],
        "next_due": _iso(run.next_due),
        "next_due_in": next_due_in,
        "stats": {
            "dispatched": stats.dispatched,
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
@json_option
@click.pass_context
@_always_json
@reporting_errors
def iterate_command(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """One turn of the orchestration loop for RUN_ID; prints JSON.

    Replays the run from the start, executes every in-process task that can
    now run, and stops at the frontier: where only external results (post
    them), signals (post --event) or timers not yet due (iterate again after
    `next_due`) can move it on. Always prints one JSON document (--json is
    accepted and changes nothing).

    Exit 3 while the run waits, 0 once it completed, 1 if it failed. A
    completed run is terminal: iterating it prints its result and changes
    nothing.
    """
    del as_json  # iterate always speaks JSON (see _always_json)
    started = time.perf_counter()
    with open_engine(ctx, access="write") as engine, quiet_engine_logger():
        # The stored record, not engine.status(): that reads the whole journal
        # for a waiting run, and the replay is about to read it anyway.
        record = engine.store.require_run(run_id)
        was_completed = record.status == "completed"
        fn = None if was_completed else load_process(record.process)
        run = engine.iterate(run_id, process=fn)
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
        click.echo(f"warning: {warning}", err=True)
    if note is not None:
        click.echo(f"note: {note}", err=True)
    emit_json(doc)
    code = STATUS_EXIT.get(run.status, EXIT_FAILED)
    if code:
        ctx.exit(code)


def register(group: click.Group) -> None:
    """Add ``pending``, ``post`` and ``iterate``."""
    group.add_command(pending_command)
    group.add_command(post_command)
    group.add_command(iterate_command)
