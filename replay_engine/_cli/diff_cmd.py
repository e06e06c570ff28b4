"""``diff RUN_A RUN_B``: where two runs first differ, side by side, then a summary.

Made for "my fork behaved differently: where?" and "this rerun with new code:
what changed?". It compares the two journals (``run_diff``): it executes and
imports nothing, so it works on any two runs of a journal, related or not
(unrelated runs differ at their first key). Exit 0 when the runs made the
same calls with the same outcomes and ended alike (same status, result or
error), 1 when they differ, 2 for an unknown run.

Everything shown comes from a journal, so it is escaped (``safe_text``) and
long values are cut to :data:`VALUE_WIDTH` characters.
"""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table
from rich.text import Text

import journal_format as jf

from .. import Engine
from .common import (
    EXIT_FAILED,
    emit_json,
    json_option,
    make_console,
    open_engine,
    reporting_errors,
)
from .run_diff import KINDS, Call, Difference, RunDiff, RunSide, compare
from .safe_text import cell, literal, printable

VALUE_WIDTH = 72
"""How many characters of a value (args, result, error) the table shows."""
SUMMARY_KEYS = 8
"""How many keys of each kind the human summary lists before "… and N more"."""

_LABELS = {
    "only_in_a": "only in A",
    "only_in_b": "only in B",
    "different_task": "another task",
    "different_args": "same task, other args",
    "different_outcome": "another outcome",
    "different_result": "another result",
}


class _Values:
    """Decodes the payloads one run's journal references (cached)."""

    def __init__(self, engine: Engine, run_id: str) -> None:
        self.engine, self.run_id = engine, run_id
        self.cache: dict[bytes, Any] = {}

    def __call__(self, ref: bytes | None, key: str | None = None) -> Any:
        if ref is None:
            return None
        if ref not in self.cache:
            self.cache[ref] = self.engine.payload(ref, run_id=self.run_id, key=key)
        return self.cache[ref]


def _error(error: jf.ErrorInfo | None) -> dict[str, str] | None:
    return None if error is None else {"type": error.type, "message": error.message}


def call_document(call: Call | None, values: _Values) -> dict[str, Any] | None:
    """A call as JSON: key, seq, kind, task, args, outcome, result, error, duration."""
    if call is None:
        return None
    result = call.value if call.kind == "value" else values(call.result, call.key)
    return {
        "key": call.key,
        "seq": call.seq,
        "kind": call.kind,
        "task": call.task,
        "args": values(call.args, call.key),
        "outcome": call.outcome,
        "result": result,
        "error": _error(call.error),
        "duration": call.duration,
    }


def _side_document(side: RunSide, values: _Values) -> dict[str, Any]:
    return {
        "run_id": side.run_id,
        "status": side.status,
        "events": side.events,
        "parent": side.parent,
        "fork_at": side.fork_at,
        "result": values(side.result),
        "error": _error(side.error),
    }


def diff_document(engine: Engine, diff: RunDiff) -> dict[str, Any]:
    """The ``diff --json`` document (shape in docs/cli-json.md)."""
    va, vb = _Values(engine, diff.a.run_id), _Values(engine, diff.b.run_id)
    first = diff.first
    return {
        "a": _side_document(diff.a, va),
        "b": _side_document(diff.b, vb),
        "identical": diff.identical,
        "common_events": diff.common_events,
        "first": None
        if first is None
        else {
            "key": first.key,
            "kind": first.kind,
            "a": call_document(first.a, va),
            "b": call_document(first.b, vb),
        },
        "summary": {
            **{kind: diff.keys(kind) for kind in KINDS},
            "same_end": diff.same_end,
        },
    }


def _short(value: object) -> str:
    text = printable(value if isinstance(value, str) else repr(value))
    return text if len(text) <= VALUE_WIDTH else text[: VALUE_WIDTH - 1] + "…"


def _duration(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds:.3f}s"


def _call_rows(first: Difference, va: _Values, vb: _Values) -> Table:
    table = Table(box=None, pad_edge=False, show_edge=False)
    table.add_column("")
    table.add_column("A", overflow="fold")
    table.add_column("B", overflow="fold")
    docs = [call_document(first.a, va), call_document(first.b, vb)]

    def row(label: str, pick: Any) -> None:
        table.add_row(
            Text(label, style="dim"),
            *(cell(None) if d is None else cell(pick(d)) for d in docs),
        )

    row("task", lambda d: f"{d['task']} ({d['kind']})")
    row("args", lambda d: _short(d["args"]))
    row("outcome", lambda d: d["outcome"])
    row(
        "result",
        lambda d: (
            _short(d["result"])
            if d["error"] is None
            else _short(f"{d['error']['type']}: {d['error']['message']}")
        ),
    )
    row("duration", lambda d: _duration(d["duration"]))
    row("seq", lambda d: str(d["seq"]))
    if first.a is None or first.b is None:
        missing = "A" if first.a is None else "B"
        table.add_row(Text(""), Text(f"(no call at this key in {missing})", "dim"))
    return table


def _end_text(side: RunSide, values: _Values) -> str:
    if side.error is not None:
        return _short(f"{side.status}: {side.error.type}: {side.error.message}")
    if side.result is not None:
        return _short(f"{side.status}: {values(side.result)!r}")
    return side.status


def print_diff(engine: Engine, diff: RunDiff) -> None:
    """The human view: the runs, the first divergent key side by side, a summary."""
    console = make_console()
    va, vb = _Values(engine, diff.a.run_id), _Values(engine, diff.b.run_id)
    a, b = diff.a, diff.b
    header = Text.assemble(
        ("A ", "dim"),
        literal(a.run_id, "bold"),
        (f" ({a.status}, {a.events} events)   B ", "dim"),
        literal(b.run_id, "bold"),
        (f" ({b.status}, {b.events} events)", "dim"),
    )
    console.print(header)
    for child, parent in ((b, a), (a, b)):
        if child.parent == parent.run_id:
            name = "B" if child is b else "A"
            console.print(f"{name} is a fork of the other at event {child.fork_at}.")
    console.print(f"They share their first {diff.common_events} events.", style="dim")
    first = diff.first
    if first is None:
        console.print("Every call is the same in both runs.")
    else:
        console.print(
            Text.assemble(
                ("\nfirst difference at key ", ""),
                literal(first.key, "bold"),
                (f": {_LABELS[first.kind]}", "bold red"),
            )
        )
        console.print(_call_rows(first, va, vb))
    console.print("\nsummary", style="bold")
    summary = Table(box=None, pad_edge=False, show_edge=False, show_header=False)
    summary.add_column("")
    summary.add_column("", justify="right")
    summary.add_column("", overflow="fold")
    for kind in KINDS:
        keys = diff.keys(kind)
        listed = ", ".join(keys[:SUMMARY_KEYS])
        if len(keys) > SUMMARY_KEYS:
            listed += f" … and {len(keys) - SUMMARY_KEYS} more"
        summary.add_row(Text(_LABELS[kind]), Text(str(len(keys))), cell(listed))
    summary.add_row(Text("A ended"), Text(""), cell(_end_text(a, va)))
    summary.add_row(Text("B ended"), Text(""), cell(_end_text(b, vb)))
    console.print(summary)
    verdict = "the runs are the same" if diff.identical else "the runs differ"
    console.print(verdict, style="bold green" if diff.identical else "bold red")


@click.command("diff")
@click.argument("run_a")
@click.argument("run_b")
@json_option
@click.pass_context
@reporting_errors
def diff_command(ctx: click.Context, run_a: str, run_b: str, as_json: bool) -> None:
    """Where RUN_A and RUN_B first differ, side by side, then a summary.

    Pairs the two runs' calls by invocation key and shows the first key where
    they differ (task, args, result or error, duration), then every key only
    in one run, with another task or args, another outcome or result, and
    how each run ended. Compares the journals only: nothing is executed or
    imported. Exit 0 if the runs made the same calls with the same results
    and ended alike, 1 if they differ, 2 for an unknown run.
    """
    with open_engine(ctx) as engine:
        diff = compare(engine, run_a, run_b)
        if as_json:
            emit_json(diff_document(engine, diff))
        else:
            print_diff(engine, diff)
    if not diff.identical:
        ctx.exit(EXIT_FAILED)


def register(group: click.Group) -> None:
    """Add ``diff``."""
    group.add_command(diff_command)
