"""The rows of the ``timeline`` chart: one call, or a group of calls, as SVG.

Every string from the journal goes through ``esc`` (HTML-escaped, control
characters shown) and only into text nodes or quoted attributes; the page's
script reads them back with ``textContent``/``dataset``, never as markup.
"""

from __future__ import annotations

import html
from collections.abc import Callable

from .safe_text import printable
from .timeline_layout import Group
from .timeline_model import Row, Timeline

LABEL_WIDTH = 360
CHART_WIDTH = 780
ROW_HEIGHT = 22
INDENT = 14
CHAR_WIDTH = 7.3
"""Width of a character of the chart's 12px monospace labels, rounded up."""
DETAIL_CHARS = 400
"""How much of an args or result payload a row carries for its details."""

Describe = Callable[[bytes], str]
"""A payload reference -> its text for the details (value and content address)."""
X = Callable[[int], float]


def esc(text: str) -> str:
    """Journal text for the page: HTML-escaped, control characters shown.

    ``-o -`` prints the page on a terminal, where a raw escape sequence from
    the journal would act; in a browser it would be invisible.
    """
    return html.escape(printable(text))


def duration(ns: float) -> str:
    """A span of nanoseconds, in the unit that reads best."""
    if ns == 0:
        return "0"
    if abs(ns) < 1e6:
        return f"{ns / 1e3:.0f} µs"
    if abs(ns) < 1e9:
        return f"{ns / 1e6:.1f} ms"
    if abs(ns) < 600e9:
        return f"{ns / 1e9:.2f} s"
    return f"{ns / 60e9:.1f} min"


def execution_name(tl: Timeline, index: int) -> str:
    """``execution 2 (resume (pid 41))``."""
    label = tl.executions[index].label if index < len(tl.executions) else ""
    return f"execution {index + 1}" + (f" ({label})" if label else "")


def hover(row: Row, tl: Timeline) -> str:
    """The text of a row's tooltip, and the first lines of its details."""
    lines = [f"{row.task}", f"key {row.key} · {row.kind}"]
    lines.append(f"started +{duration(row.start - tl.start)}")
    if row.end is not None:
        lines.append(
            f"finished +{duration(row.end - tl.start)}"
            f" (took {duration(row.end - row.start)})"
        )
    shade = tl.shade(row)
    ran = execution_name(tl, row.execution)
    lines.append(
        {
            "dispatched": f"done: dispatched in execution {row.execution + 1}",
            "replayed": f"done in execution {row.execution + 1}: replayed by the"
            f" latest ({tl.latest_execution + 1})",
            "failed": f"failed: {row.error}",
            "inflight": "in flight: no outcome recorded",
            "value": "recorded value",
        }[shade]
    )
    if shade != "value":
        lines.append(f"ran in {ran}")
    if row.status == "abandoned" and row.error is not None:
        lines.append(row.error)
    if row.redispatched:
        lines.append(
            f"dispatched again in execution {row.execution + 1}: in flight when"
            f" execution {row.requested_in + 1} ended (ran twice)"
        )
    lines += [f"retried after {text}" for _, text in row.attempts]
    return "\n".join(lines)


def _payload(describe: Describe | None, ref: bytes | None) -> str:
    if describe is None or ref is None:
        return ""
    text = describe(ref)
    return text if len(text) <= DETAIL_CHARS else text[:DETAIL_CHARS] + "…"


def _label(text: str, depth: int) -> str:
    """``text`` cut to fit the label column at ``depth`` (never into the chart)."""
    room = int((LABEL_WIDTH - 12 - depth * INDENT) / CHAR_WIDTH)
    return text if len(text) <= room else text[: room - 1] + "…"


def row_svg(
    row: Row,
    tl: Timeline,
    top: int,
    x: X,
    describe: Describe | None,
    member_of: str | None = None,
) -> str:
    """One call: its band, label, bar(s), attempt ticks and details."""
    depth = len(row.parts) // 2 + (1 if member_of is not None else 0)
    shade = tl.shade(row)
    mid = top + ROW_HEIGHT / 2
    extra = "" if member_of is None else f' data-member="{esc(member_of)}"'
    if row.redispatched:
        extra += ' data-twice="1"'
    args = _payload(describe, row.args)
    result = _payload(describe, row.result)
    parts = [
        f'<g class="tl-row {shade}" data-key="{esc(row.key)}"'
        f' data-task="{esc(row.task)}" data-status="{row.status}"'
        f' data-x="{row.execution}"{extra}'
        + (f' data-args="{esc(args)}"' if args else "")
        + (f' data-result="{esc(result)}"' if result else "")
        + ">",
        f"<title>{esc(hover(row, tl))}</title>",
        f'<rect class="band" x="0" y="{top}" width="{LABEL_WIDTH + CHART_WIDTH + 20}"'
        f' height="{ROW_HEIGHT}"/>',
        f'<text class="label" x="{6 + depth * INDENT}" y="{mid + 4:.1f}">'
        f"{esc(_label(f'{row.key}  {row.task}', depth))}</text>",
    ]
    x0 = x(row.start)
    if row.kind == "value":
        parts.append(
            f'<path class="bar" d="M{x0:.1f} {mid - 6:.1f} l6 6 l-6 6 l-6 -6 z"/>'
        )
    else:
        end = row.end if row.end is not None else tl.end
        if row.redispatched and row.requested_in < len(tl.executions):
            # Two bars, not one across the crash: the attempt the ended
            # execution lost, then the one the later execution ran.
            lost_end = tl.executions[row.requested_in].end
            again = tl.executions[min(row.execution, len(tl.executions) - 1)].start
            parts.append(_bar(x0, x(lost_end), top, "lost"))
            x0 = max(x(again), x(lost_end) + 2)
        x1 = x(end)
        parts.append(_bar(x0, x1, top, "bar"))
        if row.redispatched:
            parts.append(
                f'<text class="twice" x="{max(x1, x0 + 2) + 4:.1f}" y="{mid + 4:.1f}">'
                "&#215;2</text>"
            )
    for at, text in row.attempts:
        px = x(at)
        parts.append(
            f'<line class="attempt" x1="{px:.1f}" y1="{top + 1}" x2="{px:.1f}"'
            f' y2="{top + ROW_HEIGHT - 1}"><title>{esc(text)}</title></line>'
        )
    parts.append("</g>")
    return "".join(parts)


def _bar(x0: float, x1: float, top: int, cls: str, y: int = 4, h: int = 0) -> str:
    height = h or ROW_HEIGHT - 8
    return (
        f'<rect class="{cls}" x="{x0:.1f}" y="{top + y}" width="{max(x1 - x0, 2):.1f}"'
        f' height="{height}" rx="2"/>'
    )


def group_hover(group: Group, tl: Timeline) -> str:
    """A group's counts: by status, by execution, twice, retried."""
    counts = group.counts()
    lines = [group.label, f"{len(group.members):,} calls (collapsed)"]
    lines.append(", ".join(f"{n:,} {status}" for status, n in sorted(counts.items())))
    for index, n in sorted(group.by_execution().items()):
        lines.append(f"{n:,} finished in {execution_name(tl, index)}")
    twice = sum(1 for r in group.members if r.redispatched)
    if twice:
        lines.append(f"{twice:,} dispatched twice (in flight at a crash)")
    retried = sum(1 for r in group.members if r.attempts)
    if retried:
        lines.append(f"{retried:,} retried")
    end = group.end
    lines.append(
        f"from +{duration(group.start - tl.start)} to "
        + ("(in flight)" if end is None else f"+{duration(end - tl.start)}")
    )
    shown = len(group.notable)
    flagged = sum(
        1 for r in group.members if r.status != "done" or r.redispatched or r.attempts
    )
    if shown:
        lines.append(
            f"{shown:,} of them shown below"
            + (f" ({flagged - shown:,} more not shown)" if flagged > shown else "")
        )
    return "\n".join(lines)


def group_svg(group: Group, tl: Timeline, top: int, x: X) -> str:
    """A collapsed group: one bar per execution that ran members, and counts."""
    counts = group.counts()
    shade = "failed" if counts.get("failed") else "group"
    if counts.get("in flight") or counts.get("abandoned"):
        shade = "inflight" if shade == "group" else shade
    mid = top + ROW_HEIGHT / 2
    execs = sorted(group.by_execution())
    label = f"▸ {group.label}"
    parts = [
        f'<g class="tl-group {shade}" data-group="{esc(group.key)}"'
        f' data-count="{len(group.members)}" data-x="{execs[-1]}">',
        f"<title>{esc(group_hover(group, tl))}</title>",
        f'<rect class="band" x="0" y="{top}" width="{LABEL_WIDTH + CHART_WIDTH + 20}"'
        f' height="{ROW_HEIGHT}"/>',
        f'<text class="label" x="{6 + group.depth * INDENT}" y="{mid + 4:.1f}">'
        f"{esc(_label(label, group.depth))}</text>",
    ]
    # Stacked thin bars, one per execution: which execution ran which part.
    share = max(2, (ROW_HEIGHT - 8) // len(execs))
    for slot, index in enumerate(execs):
        mine = [r for r in group.members if r.execution == index]
        start = min(r.start for r in mine)
        end = max((r.end if r.end is not None else tl.end) for r in mine)
        parts.append(
            f'<g data-x="{index}">'
            + _bar(x(start), x(end), top, "bar", 4 + slot * share, share)
            + "</g>"
        )
    parts.append("</g>")
    return "".join(parts)
