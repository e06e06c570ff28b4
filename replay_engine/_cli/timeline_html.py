"""The ``timeline`` page: a self-contained HTML Gantt chart of a run.

The rows, colours and boundaries come from :mod:`.timeline_model`.

Long quiet stretches (a run waiting days for an agent) are collapsed to a
narrow hatched gap so the work on either side stays readable; see
:class:`Scale`. Hover texts always give the real times.

The page needs nothing from the network: CSS, SVG and a little script are
inline. Each row is an SVG ``<g class="tl-row" data-key="…">`` whose
``<title>`` is the hover text.
"""

from __future__ import annotations

import html
import itertools
import json
from collections.abc import Callable, Sequence

from .safe_text import printable
from .timeline_model import Row, Timeline

LABEL_WIDTH = 360
CHART_WIDTH = 780
ROW_HEIGHT = 22
HEADER_HEIGHT = 46
INDENT = 14
GAP_WIDTH = 36
"""Pixels a collapsed quiet gap takes."""
QUIET_SHARE = 0.05
"""A gap with no events is collapsed when wider than this share of the span …"""
QUIET_RATIO = 20
"""… and this many times the median gap between events."""


def _esc(text: str) -> str:
    """Journal text for the page: HTML-escaped, control characters shown.

    ``-o -`` prints the page on a terminal, where a raw escape sequence from
    the journal would act; in a browser it would be invisible.
    """
    return html.escape(printable(text))


def _duration(ns: float) -> str:
    if ns == 0:
        return "0"
    if abs(ns) < 1e6:
        return f"{ns / 1e3:.0f} µs"
    if abs(ns) < 1e9:
        return f"{ns / 1e6:.1f} ms"
    if abs(ns) < 600e9:
        return f"{ns / 1e9:.2f} s"
    return f"{ns / 60e9:.1f} min"


class Scale:
    """Maps times to x: linear, except that long quiet gaps collapse.

    A run that waited hours for an external result, or a fork resumed long
    after its parent ran, would otherwise squeeze all its work into slivers.
    A gap between consecutive events that is wider than ``QUIET_SHARE`` of the
    span and ``QUIET_RATIO`` times the median gap is drawn ``GAP_WIDTH``
    pixels wide instead, and marked; a run of evenly spaced work keeps a
    linear axis.
    """

    def __init__(self, start: int, end: int, times: Sequence[int]) -> None:
        self.start = start
        span = max(end - start, 1)
        ordered = sorted(set(times))
        pairs = list(itertools.pairwise(ordered))
        widths = sorted(b - a for a, b in pairs)
        median = widths[len(widths) // 2] if widths else 0
        self.gaps: list[tuple[int, int]] = []
        for a, b in pairs:
            if b - a <= span * QUIET_SHARE or b - a <= median * QUIET_RATIO:
                continue
            if self.gaps and self.gaps[-1][1] == a:  # one gap, a lone event inside
                self.gaps[-1] = (self.gaps[-1][0], b)
            else:
                self.gaps.append((a, b))
        hidden = sum(after - before for before, after in self.gaps)
        self.visible = max(span - hidden, 1)
        self.per_ns = (CHART_WIDTH - GAP_WIDTH * len(self.gaps)) / self.visible

    def x(self, at: int) -> float:
        """The x coordinate of time ``at``."""
        px, last = 0.0, self.start
        for before, after in self.gaps:
            if at <= before:
                break
            px += (before - last) * self.per_ns
            if at < after:
                return LABEL_WIDTH + px + (at - before) / (after - before) * GAP_WIDTH
            px += GAP_WIDTH
            last = after
        return LABEL_WIDTH + px + (at - last) * self.per_ns

    def _real(self, offset: int) -> int:
        """The time ``offset`` ns of drawn (not collapsed) time after the start."""
        at = self.start
        for before, after in self.gaps:
            if at + offset <= before:
                break
            offset -= before - at
            at = after
        return at + offset

    def ticks(self, count: int = 6) -> list[int]:
        """Times at round steps of drawn time."""
        raw = self.visible / count
        magnitude = 10 ** (len(str(max(int(raw), 1))) - 1)
        step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
        return [self._real(v) for v in range(0, self.visible + 1, int(step))]


def _hover(row: Row, tl: Timeline) -> str:
    lines = [f"{row.task}", f"key {row.key} · {row.kind}"]
    lines.append(f"started +{_duration(row.start - tl.start)}")
    if row.end is not None:
        lines.append(
            f"finished +{_duration(row.end - tl.start)}"
            f" (took {_duration(row.end - row.start)})"
        )
    shade = tl.shade(row)
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
    if row.status == "abandoned" and row.error is not None:
        lines.append(row.error)
    if row.redispatched:
        lines.append(
            f"dispatched again in execution {row.execution + 1}: in flight when"
            f" execution {row.requested_in + 1} ended"
        )
    lines += [f"retried after {text}" for _, text in row.attempts]
    return "\n".join(lines)


def render_html(tl: Timeline) -> str:
    """The page: a header, a legend and the SVG chart."""
    scale = Scale(tl.start, tl.end, tl.times)
    x = scale.x
    height = HEADER_HEIGHT + max(len(tl.rows), 1) * ROW_HEIGHT + 16
    width = LABEL_WIDTH + CHART_WIDTH + 20
    svg: list[str] = [
        f'<svg id="chart" xmlns="http://www.w3.org/2000/svg" width="{width}"'
        f' height="{height}" viewBox="0 0 {width} {height}">',
        "<defs><pattern id='stripes' width='8' height='8'"
        " patternUnits='userSpaceOnUse' patternTransform='rotate(45)'>"
        "<rect width='8' height='8' fill='#fde68a'/>"
        "<rect width='4' height='8' fill='#f59e0b'/></pattern></defs>",
    ]
    last_px = -1e9
    for at in scale.ticks():
        px = x(at)
        if px - last_px < 70:  # too close to the previous label (near a gap)
            continue
        last_px = px
        svg.append(
            f'<line class="tick" x1="{px:.1f}" y1="{HEADER_HEIGHT - 6}" x2="{px:.1f}"'
            f' y2="{height}"/><text class="axis" x="{px:.1f}" y="{HEADER_HEIGHT - 10}"'
            f' text-anchor="middle">+{_duration(at - tl.start)}</text>'
        )
    for before, after in scale.gaps:
        quiet = f"no events for {_duration(after - before)}"
        svg.append(
            f'<rect class="idle" x="{x(before):.1f}" y="{HEADER_HEIGHT - 6}"'
            f' width="{GAP_WIDTH}" height="{height - HEADER_HEIGHT + 6}">'
            f"<title>{quiet} (collapsed)</title></rect>"
            f'<text class="axis" x="{x(before) + GAP_WIDTH / 2:.1f}" y="{height - 2}"'
            f' text-anchor="middle">≈{_duration(after - before)}</text>'
        )
    for boundary in tl.boundaries:
        px = x(boundary.at)
        label = _esc(boundary.label)
        svg.append(
            f'<line class="boundary" x1="{px:.1f}" y1="14" x2="{px:.1f}" y2="{height}">'
            f"<title>{label}</title></line>" + _boundary_text(px, label)
        )
    if not tl.rows:
        svg.append(
            f'<text class="empty" x="{LABEL_WIDTH}" y="{HEADER_HEIGHT + 14}">'
            "no calls recorded</text>"
        )
    for index, row in enumerate(tl.rows):
        svg.append(_row_svg(row, tl, HEADER_HEIGHT + index * ROW_HEIGHT, x))
    svg.append("</svg>")
    return _PAGE.format(
        title=_esc(f"timeline of run {tl.run_id}"),
        css=_CSS,
        header=_header(tl),
        legend=_LEGEND,
        svg="\n".join(svg),
        script=_SCRIPT,
        data=_esc(json.dumps({"run_id": tl.run_id, "rows": len(tl.rows)})),
    )


def _boundary_text(px: float, label: str) -> str:
    """A boundary's label, right of its line, or left of it near the right edge."""
    if px > LABEL_WIDTH + CHART_WIDTH - 120:
        return (
            f'<text class="boundary-label" x="{px - 3:.1f}" y="12"'
            f' text-anchor="end">{label}</text>'
        )
    return f'<text class="boundary-label" x="{px + 3:.1f}" y="12">{label}</text>'


def _row_svg(row: Row, tl: Timeline, top: int, x: Callable[[int], float]) -> str:
    depth = len(row.parts) // 2
    label = f"{row.key}  {row.task}"
    if len(label) > 46 - depth * 2:
        label = label[: 45 - depth * 2] + "…"
    shade = tl.shade(row)
    mid = top + ROW_HEIGHT / 2
    parts = [
        f'<g class="tl-row {shade}" data-key="{_esc(row.key)}"'
        f' data-task="{_esc(row.task)}" data-status="{row.status}">',
        f"<title>{_esc(_hover(row, tl))}</title>",
        f'<rect class="band" x="0" y="{top}" width="{LABEL_WIDTH + CHART_WIDTH + 20}"'
        f' height="{ROW_HEIGHT}"/>',
        f'<text class="label" x="{6 + depth * INDENT}" y="{mid + 4:.1f}">'
        f"{_esc(label)}</text>",
    ]
    x0 = x(row.start)
    if row.kind == "value":
        parts.append(
            f'<path class="bar" d="M{x0:.1f} {mid - 6:.1f} l6 6 l-6 6 l-6 -6 z"/>'
        )
    else:
        x1 = x(row.end if row.end is not None else tl.end)
        wide = max(x1 - x0, 2)
        parts.append(
            f'<rect class="bar" x="{x0:.1f}" y="{top + 4}" width="{wide:.1f}"'
            f' height="{ROW_HEIGHT - 8}" rx="2"/>'
        )
    for at, text in row.attempts:
        px = x(at)
        parts.append(
            f'<line class="attempt" x1="{px:.1f}" y1="{top + 1}" x2="{px:.1f}"'
            f' y2="{top + ROW_HEIGHT - 1}"><title>{_esc(text)}</title></line>'
        )
    parts.append("</g>")
    return "".join(parts)


def _header(tl: Timeline) -> str:
    facts = [
        ("process", tl.process),
        ("status", tl.status),
        ("events", str(tl.events)),
        ("calls", str(len(tl.rows))),
        ("executions", str(tl.latest_execution + 1)),
        ("span", _duration(tl.end - tl.start)),
    ]
    items = "".join(f"<span><b>{_esc(k)}</b> {_esc(v)}</span>" for k, v in facts)
    return f"<h1>run {_esc(tl.run_id)}</h1><p class='facts'>{items}</p>"


_LEGEND = (
    "<p class='legend'>"
    "<span><i class='sw dispatched'></i>dispatched in the latest execution</span>"
    "<span><i class='sw replayed'></i>completed in an earlier execution"
    " (replayed)</span>"
    "<span><i class='sw failed'></i>failed</span>"
    "<span><i class='sw inflight'></i>in flight (no outcome)</span>"
    "<span><i class='sw tick'></i>failed attempt, retried</span>"
    "<span><i class='sw value'></i>recorded value</span>"
    "<span><i class='sw boundary'></i>execution boundary</span></p>"
)

_CSS = """
body { font: 13px system-ui, sans-serif; margin: 16px; color: #1e293b; }
h1 { font-size: 18px; margin: 0 0 4px; }
.facts span, .legend span { margin-right: 16px; white-space: nowrap; }
.sw { display: inline-block; width: 14px; height: 10px; margin-right: 5px;
      vertical-align: middle; border-radius: 2px; }
.sw.dispatched { background: #3b82f6; } .sw.replayed { background: #94a3b8; }
.sw.failed { background: #ef4444; } .sw.value { background: #8b5cf6; }
.sw.inflight { background: repeating-linear-gradient(45deg, #f59e0b 0 3px,
               #fde68a 3px 6px); }
.sw.tick { width: 2px; background: #111827; }
.sw.boundary { width: 0; height: 12px; border-left: 2px dashed #64748b;
               border-radius: 0; }
#filter { margin: 6px 0 10px; padding: 3px 6px; width: 280px; }
svg text { font: 12px ui-monospace, monospace; fill: #1e293b; }
.axis { fill: #64748b; font-size: 11px; }
.tick { stroke: #e2e8f0; }
.boundary { stroke: #64748b; stroke-dasharray: 4 3; stroke-width: 1.5; }
.boundary-label { fill: #475569; font-size: 11px; }
.band { fill: transparent; }
.idle { fill: #f1f5f9; stroke: #cbd5e1; stroke-dasharray: 2 2; }
.tl-row:nth-of-type(even) .band { fill: #f8fafc; }
.tl-row:hover .band, .tl-row.picked .band { fill: #e0f2fe; }
.tl-row.hidden { display: none; }
.dispatched .bar { fill: #3b82f6; } .replayed .bar { fill: #94a3b8; }
.failed .bar { fill: #ef4444; } .inflight .bar { fill: url(#stripes); }
.value .bar { fill: #8b5cf6; }
.attempt { stroke: #111827; stroke-width: 2; }
#detail { white-space: pre; font: 12px ui-monospace, monospace; background: #f1f5f9;
          padding: 6px 8px; min-height: 3em; border-radius: 4px; }
"""

_SCRIPT = """
(function () {
  var rows = Array.prototype.slice.call(document.querySelectorAll('.tl-row'));
  var detail = document.getElementById('detail');
  rows.forEach(function (row) {
    row.addEventListener('click', function () {
      rows.forEach(function (r) { r.classList.remove('picked'); });
      row.classList.add('picked');
      detail.textContent = row.querySelector('title').textContent;
    });
  });
  document.getElementById('filter').addEventListener('input', function (e) {
    var needle = e.target.value.toLowerCase();
    rows.forEach(function (row) {
      var text = (row.dataset.key + ' ' + row.dataset.task).toLowerCase();
      row.classList.toggle('hidden', needle !== '' && text.indexOf(needle) < 0);
    });
  });
})();
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>{css}</style>
</head>
<body data-timeline="{data}">
{header}
{legend}
<input id="filter" type="search" placeholder="filter by key or task">
<div id="detail">click a row for its details; hover a bar for its timings</div>
{svg}
<script>{script}</script>
</body>
</html>
"""
