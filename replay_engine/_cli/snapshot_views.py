"""Rich views of a time-travel :class:`Snapshot`, shared by ``replay`` and ``debug``.

The invocation tree is drawn from the keys: a call at ``k`` that runs
parallel branches has the branches ``k.j`` below it, and each branch holds
its own calls ``k.j.0``, ``k.j.1`` …. A ``parallel`` call itself records no
event, so its node has no task and no status.
"""

from __future__ import annotations

import datetime as _dt
import json
import uuid
from typing import Any

import click
from rich.console import Group, RenderableType
from rich.text import Text
from rich.tree import Tree

import journal_format as jf

from .. import CallState, FrontierCall, LogEntry, Snapshot
from .common import plain
from .safe_text import literal, printable

SUMMARY_WIDTH = 60
"""Args and results are cut to about this many characters."""

STATUS_STYLES = {
    "done": "green",
    "failed": "red",
    "in flight": "yellow",
    "not reached": "dim",
    "frontier": "magenta",
}
CALL_STATUSES = ("done", "failed", "in flight", "not reached")

UNTIL_HELP = (
    "Use the first N events (0..events), or key:KEY to stop where the call at"
    " KEY is first recorded. Default: all events."
)


def parse_until(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> int | str | None:
    """``--until``: an event count ``N`` or ``key:3.1.0`` (an option callback)."""
    if value is None:
        return None
    text = value.strip()
    if text.startswith("key:"):
        try:
            jf.parse_key(text[4:])
        except jf.FormatError as exc:
            raise click.BadParameter(f"{text!r}: {exc}", ctx, param) from None
        return text
    try:
        count = int(text)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is neither an event count nor key:KEY"
            " (for example 12 or key:3.1.0)",
            ctx,
            param,
        ) from None
    if count < 0:
        raise click.BadParameter(
            f"{count} is negative: give an event count from 0", ctx, param
        )
    return count


def clip(text: str, width: int = SUMMARY_WIDTH) -> str:
    """``text`` cut to ``width`` characters, with an ellipsis if it was longer.

    Control characters are escaped first (it is journal text, and a cut must
    not split an escape from what it escapes).
    """
    text = printable(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def summarise(value: Any, width: int = SUMMARY_WIDTH) -> str:
    """``value`` as compact JSON, cut to ``width`` characters."""
    return clip(
        json.dumps(plain(value), ensure_ascii=False, separators=(",", ":")), width
    )


def call_label(call: CallState, frontier: FrontierCall | None = None) -> Text:
    """One call: key, task, status, args and its result or error."""
    label = Text()
    label.append(printable(call.key), style="bold")
    label.append(f"  {printable(call.task)}  ")
    label.append(call.status, style=STATUS_STYLES.get(call.status, ""))
    if call.attempts_failed:
        plural = "s" if call.attempts_failed > 1 else ""
        label.append(f"  {call.attempts_failed} failed attempt{plural}", style="red")
    if call.kind not in ("value", "timer"):
        label.append("  args ", style="dim")
        label.append(summarise(call.args))
    if call.status == "done":
        label.append("  → ", style="dim")
        label.append(_result_text(call))
    elif call.status == "failed" and call.error is not None:
        label.append(
            f"  ✗ {clip(f'{call.error.type}: {call.error.message}')}", style="red"
        )
    if frontier is not None:
        where = printable(f"({frontier.reason}) {frontier.site}")
        label.append(f"  ◀ frontier {where}", "magenta")
    return label


def _result_text(call: CallState) -> str:
    """A done call's result; times (``ctx.now``, a timer's due) as ISO 8601, UUIDs."""
    if call.task == "ctx.uuid" and isinstance(call.result, bytes):
        return str(uuid.UUID(bytes=call.result, version=4))  # as ctx.uuid() made it
    is_time = call.kind == "timer" or call.task == "ctx.now"
    if is_time and isinstance(call.result, int):
        when = _dt.datetime.fromtimestamp(call.result / 1e9, _dt.UTC)
        return ("due " if call.kind == "timer" else "") + when.isoformat()
    return summarise(call.result)


def _frontier_label(call: FrontierCall) -> Text:
    label = Text()
    label.append(printable(call.key), style="bold")
    label.append(f"  {printable(call.task)}  ")
    label.append("frontier", style=STATUS_STYLES["frontier"])
    label.append(printable(f"  ({call.reason}) {call.site}"), style="magenta")
    return label


def snapshot_tree(snap: Snapshot) -> Tree:
    """The invocation tree as of the snapshot, in key order."""
    root = Tree(
        Text.assemble(
            ("run ", "dim"),
            (printable(snap.run_id), "bold"),
            (f"  after {snap.until} of {snap.events} events", "dim"),
        )
    )
    frontier = {f.key: f for f in snap.frontier}
    labels: dict[tuple[int, ...], Text] = {}
    for call in snap.calls:
        labels[jf.parse_key(call.key)] = call_label(call, frontier.get(call.key))
    known = {c.key for c in snap.calls}
    for f in snap.frontier:
        if f.key not in known:
            labels[jf.parse_key(f.key)] = _frontier_label(f)
    nodes: dict[tuple[int, ...], Tree] = {(): root}
    for parts in sorted(labels):
        for depth in range(1, len(parts) + 1):
            prefix = parts[:depth]
            if prefix in nodes:
                continue
            text = labels.get(prefix) or _scope_label(prefix)
            nodes[prefix] = nodes[prefix[:-1]].add(text)
    return root


def _scope_label(prefix: tuple[int, ...]) -> Text:
    key = jf.format_key(prefix)
    if len(prefix) % 2:  # a call whose branches hold the calls below it
        return Text.assemble((key, "bold"), ("  parallel", "dim"))
    return Text.assemble((key, "dim"), (f"  branch {prefix[-1]}", "dim"))


def counts(snap: Snapshot) -> dict[str, int]:
    """How many calls have each status (ctx values included)."""
    out = dict.fromkeys(CALL_STATUSES, 0)
    for call in snap.calls:
        out[call.status] = out.get(call.status, 0) + 1
    return out


def summary_line(snap: Snapshot) -> Text:
    """One line: the call counts, log lines, frontier size and process state."""
    return summary_text(
        counts(snap), len(snap.logs), len(snap.frontier), snap.process_status
    )


def summary_text(
    tally: dict[str, int], logs: int, frontier: int, process_status: str
) -> Text:
    """The summary line from its numbers (``replay`` streaming counts as it goes)."""
    line = Text()
    for status, count in tally.items():
        line.append(f"{status} ", style="dim")
        line.append(str(count), style=STATUS_STYLES[status] if count else "")
        line.append(" · ", style="dim")
    line.append("logs ", style="dim")
    line.append(str(logs))
    line.append(" · frontier ", style="dim")
    line.append(str(frontier))
    line.append(" · process ", style="dim")
    line.append(printable(process_status), style=_process_style(process_status))
    return line


def _process_style(status: str) -> str:
    return {"completed": "green", "failed": "red", "frontier": "magenta"}.get(
        status, ""
    )


def log_lines(snap: Snapshot) -> list[Text]:
    """The ``ctx.log`` lines emitted before the snapshot point."""
    return [log_line(entry) for entry in snap.logs]


def log_line(entry: LogEntry) -> Text:
    """One ``ctx.log`` line: its seq, key, message and fields."""
    line = Text()
    key = printable(entry.key)
    line.append(f"seq {entry.seq:>4}  key {key:>8}  ", style="dim")
    line.append(printable(entry.message))
    for name, value in entry.fields.items():
        line.append(f" {printable(name)}=", style="dim")
        line.append(printable(json.dumps(plain(value), ensure_ascii=False)))
    return line


def frontier_lines(snap: Snapshot) -> list[Text]:
    """The calls the replay stopped at, with their source lines."""
    return [
        Text.assemble(
            (f"{printable(f.key):>8}  ", "bold"),
            f"{printable(f.task)}  ",
            (printable(f"({f.reason})"), "magenta"),
            ("  at ", "dim"),
            printable(f.site),
        )
        for f in snap.frontier
    ]


def outcome_line(snap: Snapshot) -> Text:
    """What the process did with the prefix: returned, raised or stopped."""
    if snap.process_status == "completed":
        return Text.assemble(("result: ", "dim"), summarise(snap.result, 200))
    if snap.process_status == "failed" and snap.error is not None:
        error = f"{snap.error.type}: {snap.error.message}"
        return literal(f"process failed: {error}", "red")
    waiting = len(snap.frontier)
    return Text(
        f"process stopped at {waiting} frontier call{'s' if waiting != 1 else ''}",
        style="magenta",
    )


def snapshot_view(snap: Snapshot) -> RenderableType:
    """The whole ``replay`` view: tree, logs, frontier and outcome."""
    parts: list[RenderableType] = [snapshot_tree(snap), summary_line(snap)]
    logs = log_lines(snap)
    if logs:
        parts += [Text("log lines", style="bold"), *logs]
    frontier = frontier_lines(snap)
    if frontier:
        parts += [Text("frontier", style="bold"), *frontier]
    parts.append(outcome_line(snap))
    return Group(*parts)
