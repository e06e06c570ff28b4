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

    from .. import Snapshot


def _labels(snap: Snapshot) -> dict[tuple[int, ...], Text]:
    frontier = {f.key: f for f in snap.frontier}
    labels = {
        jf.parse_key(call.key): call_label(call, frontier.get(call.key))
        for call in snap.calls
    }
    known = {c.key for c in snap.calls}
    for f in snap.frontier:
        if f.key not in known:
            labels[jf.parse_key(f.key)] = _frontier_label(f)
    return labels


def snapshot_lines(snap: Snapshot) -> Iterator[str]:
    """The ``replay`` view as plain lines (text from the journal is escaped)."""
    yield f"run {printable(snap.run_id)}  after {snap.until} of {snap.events} events"
    labels = _labels(snap)
    seen: set[tuple[int, ...]] = {()}
    for parts in sorted(labels):
        for depth in range(1, len(parts) + 1):
            prefix = parts[:depth]
            if prefix in seen:
                continue
            seen.add(prefix)
            text = labels.get(prefix) or _scope_label(prefix)
            yield "  " * depth + text.plain
    yield summary_line(snap).plain
    logs = log_lines(snap)
    if logs:
        yield "log lines"
        yield from (line.plain for line in logs)
    frontier = frontier_lines(snap)
    if frontier:
        yield "frontier"
        yield from (line.plain for line in frontier)
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
