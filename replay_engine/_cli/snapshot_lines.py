"""A :class:`Snapshot` as plain lines and JSON lines, for ``replay`` in a pipe.

The rich tree of ``snapshot_views`` is laid out whole before its first line
prints, which takes seconds at tens of thousands of calls; these views
produce one line per call in key order (indented by depth, the same words as
the tree's labels), then the summary, the log lines, the frontier and the
outcome, each as soon as it is formatted.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import journal_format as jf

from .safe_text import printable
from .snapshot_views import (
    _frontier_label,
    _scope_label,
    call_label,
    frontier_lines,
    log_lines,
    outcome_line,
    summary_line,
)

if TYPE_CHECKING:
    from rich.text import Text

    from .. import FrontierCall, Snapshot


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


def snapshot_records(snap: Snapshot) -> Iterator[dict[str, Any]]:
    """The ``replay --json`` document as JSON lines: one object per item.

    ``{"call": …}`` per call, ``{"log": …}`` per log line, ``{"frontier": …}``
    per frontier call, then ``{"snapshot": …}`` with the rest of the document
    (run id, until, events, process status, result, error).
    """
    doc = snap.to_dict()
    for name, kind in (("calls", "call"), ("logs", "log"), ("frontier", "frontier")):
        for item in doc.pop(name):
            yield {kind: item}
    yield {"snapshot": doc}
