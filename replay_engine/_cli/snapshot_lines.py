"""A :class:`Snapshot` as plain lines and JSON lines, for ``replay`` in a pipe.

The rich tree of ``snapshot_views`` is laid out whole before its first line
prints, which takes seconds at tens of thousands of calls; these views
produce one line per call in key order (indented by depth, the same words as
the tree's labels), then the summary, the log lines, the frontier and the
outcome, each as soon as it is formatted.

A long run is not made into a snapshot at all (that holds every call):
:func:`streamed_lines` and :func:`streamed_records` print the calls and log
lines of ``Engine.replay_calls`` as it yields them (journal order, constant
memory), then what only the re-execution knows (the frontier, the process's
outcome) from ``Engine.replay(..., calls=False)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import journal_format as jf

from .safe_text import printable
from .snapshot_views import (
    CALL_STATUSES,
    _frontier_label,
    _scope_label,
    call_label,
    frontier_lines,
    log_line,
    log_lines,
    outcome_line,
    summary_line,
    summary_text,
)

if TYPE_CHECKING:
    from rich.text import Text

    from .. import CallState, FrontierCall, LogEntry, Snapshot


def _label(snap_item: Any, frontier: dict[str, FrontierCall], is_call: bool) -> Text:
    if is_call:
        return call_label(snap_item, frontier.get(snap_item.key))
    return _frontier_label(snap_item)


def snapshot_lines(snap: Snapshot) -> Iterator[str]:
    """The ``replay`` view as plain lines (text from the journal is escaped).

    Each label is made when its line is printed: only the keys are held.
    """
    yield f"run {printable(snap.run_id)}  after {snap.until} of {snap.events} events"
    frontier = {f.key: f for f in snap.frontier}
    items: dict[tuple[int, ...], tuple[Any, bool]] = {
        jf.parse_key(call.key): (call, True) for call in snap.calls
    }
    for f in snap.frontier:
        items.setdefault(jf.parse_key(f.key), (f, False))
    seen: set[tuple[int, ...]] = {()}
    for parts in sorted(items):
        for depth in range(1, len(parts) + 1):
            prefix = parts[:depth]
            if prefix in seen:
                continue
            seen.add(prefix)
            found = items.get(prefix)
            text = (
                _label(found[0], frontier, found[1])
                if found is not None
                else _scope_label(prefix)
            )
            yield "  " * depth + text.plain
    yield summary_line(snap).plain
    logs = log_lines(snap)
    if logs:
        yield "log lines"
        yield from (line.plain for line in logs)
    stops = frontier_lines(snap)
    if stops:
        yield "frontier"
        yield from (line.plain for line in stops)
    yield outcome_line(snap).plain


def streamed_lines(
    head: str,
    items: Iterable[CallState | LogEntry],
    finish: Callable[[], Snapshot],
) -> Iterator[str]:
    """``head``, then a line per call and log line as ``items`` yields them.

    Calls are indented by their depth (no branch headings: the order is the
    journal's, not the tree's). Then the summary, the frontier and the
    outcome, from ``finish()`` (the re-execution, after the last item).
    """
    from .. import LogEntry

    yield head
    tally = dict.fromkeys(CALL_STATUSES, 0)
    logs = 0
    for item in items:
        if isinstance(item, LogEntry):
            logs += 1
            yield log_line(item).plain
        else:
            tally[item.status] = tally.get(item.status, 0) + 1
            depth = item.key.count(".") + 1
            yield "  " * depth + call_label(item).plain
    snap = finish()
    yield summary_text(tally, logs, len(snap.frontier), snap.process_status).plain
    stops = frontier_lines(snap)
    if stops:
        yield "frontier"
        yield from (line.plain for line in stops)
    yield outcome_line(snap).plain


def streamed_records(
    items: Iterable[CallState | LogEntry], finish: Callable[[], Snapshot]
) -> Iterator[dict[str, Any]]:
    """``{"call": …}`` / ``{"log": …}`` as ``items`` yields them, then the rest.

    The rest comes from ``finish()``: ``{"frontier": …}`` per frontier call
    and ``{"snapshot": …}`` (run id, until, events, process status, result,
    error): the items of ``replay --json`` that are not calls or logs.
    """
    from .. import LogEntry

    for item in items:
        yield {"log" if isinstance(item, LogEntry) else "call": item.to_dict()}
    doc = finish().to_dict()
    del doc["calls"], doc["logs"]
    for item in doc.pop("frontier"):
        yield {"frontier": item}
    yield {"snapshot": doc}
