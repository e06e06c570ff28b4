"""The ``timeline`` page: a self-contained HTML Gantt chart of a run.

The rows, colours and boundaries come from :mod:`.timeline_model`; which
calls share a group row, from :mod:`.timeline_layout`; each row's SVG, from
:mod:`.timeline_rows`.

Each execution has its colour (legend) and its lane in the strip above the
rows; a bar is coloured by the execution that ran it. Labels above the chart
(boundaries, lanes, the axis) are placed so that none overlaps another: a
boundary label that would touch one already placed goes one line higher, a
lane's label is cut to its lane. The page checks this itself once drawn
(``data-overlaps`` on ``<body>``: 0), which the browser test reads.

Long quiet stretches (a run waiting days for an agent) are collapsed to a
narrow hatched gap so the work on either side stays readable; see
:class:`Scale`. Hover texts always give the real times.

The page needs nothing from the network: CSS, SVG and a little script are
inline. Each row is an SVG ``<g class="tl-row" data-key="…">`` whose
``<title>`` is the hover text.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence

from .timeline_layout import Group, arrange
from .timeline_model import Timeline
from .timeline_rows import (
    CHART_WIDTH,
    LABEL_WIDTH,
    ROW_HEIGHT,
    Describe,
    duration as _duration,
    esc as _esc,
    execution_name,
    group_svg,
    row_svg,
)

SMALL_CHAR = 6.9
"""Width of a character of the 11px monospace header labels, rounded up."""
LINE = 14
"""Height of one line of boundary labels."""
LANE_HEIGHT = 16
GAP_WIDTH = 36
"""Pixels a collapsed quiet gap takes."""
QUIET_SHARE = 0.05
"""A gap with no events is collapsed when wider than this share of the span …"""
QUIET_RATIO = 20
"""… and this many times the median gap between events."""


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


def _place(spans: list[tuple[float, float]]) -> list[int]:
    """A line for each label span (x0, x1), lowest free, so none overlaps."""
    ends: list[float] = []  # per line: where its last label ends
    lines = []
    for x0, x1 in spans:
        for line, end in enumerate(ends):
            if x0 >= end + 6:
                ends[line] = x1
                lines.append(line)
                break
        else:
            ends.append(x1)
            lines.append(len(ends) - 1)
    return lines


def _boundaries(tl: Timeline, scale: Scale) -> tuple[list[str], int]:
    """The boundary labels on as many lines as they need; the lines' height."""
    right = LABEL_WIDTH + CHART_WIDTH + 20
    spans: list[tuple[float, float]] = []
    texts = []
    for boundary in sorted(tl.boundaries, key=lambda b: scale.x(b.at)):
        px = scale.x(boundary.at)
        width = len(boundary.label) * SMALL_CHAR
        x0 = px + 3 if px + 3 + width <= right else px - 3 - width
        spans.append((x0, x0 + width))
        texts.append((px, x0, boundary.label))
    lines = _place(spans)
    height = (max(lines) + 1) * LINE if lines else LINE
    svg = []
    for (px, x0, label), line in zip(texts, lines, strict=True):
        y = height - line * LINE - 3
        svg.append(
            f'<text class="boundary-label" x="{x0:.1f}" y="{y}">{_esc(label)}</text>'
            f'<line class="boundary-tick" x1="{px:.1f}" y1="{y + 2}" x2="{px:.1f}"'
            f' y2="{height}"/>'
        )
    return svg, height


def _lanes(tl: Timeline, scale: Scale, top: int) -> list[str]:
    """One lane per execution, from its first event to its last, labelled."""
    svg = [
        f'<text class="axis" x="{LABEL_WIDTH - 8}" y="{top + 12}"'
        ' text-anchor="end">executions</text>'
    ]
    for execution in tl.executions:
        x0, x1 = scale.x(execution.start), scale.x(execution.end)
        width = max(x1 - x0, 3)
        name = f"{execution.index + 1} {execution.label}"
        room = int((width - 6) / SMALL_CHAR)
        text = name if len(name) <= room else name[: room - 1] + "…"
        svg.append(
            f'<g class="lane" data-x="{execution.index}">'
            f"<title>{_esc(execution_name(tl, execution.index))}</title>"
            f'<rect class="bar" x="{x0:.1f}" y="{top + 1}" width="{width:.1f}"'
            f' height="{LANE_HEIGHT - 2}" rx="2"/>'
            + (
                f'<text class="lane-label" x="{x0 + 3:.1f}" y="{top + 12}">'
                f"{_esc(text)}</text>"
                if room >= 2
                else ""
            )
            + "</g>"
        )
    return svg


def render_html(tl: Timeline, describe: Describe | None = None) -> str:
    """The page: a header, a legend and the SVG chart.

    ``describe`` turns a payload reference into the text a click on a call
    shows for its args and result (the CLI passes the journal's payloads);
    without it the details give the timings only.
    """
    scale = Scale(tl.start, tl.end, tl.times)
    x = scale.x
    labels, label_height = _boundaries(tl, scale)
    lane_top = label_height + 4
    axis_y = lane_top + LANE_HEIGHT + 14
    rows_top = axis_y + 6
    items = arrange(tl.rows)
    drawn: list[str] = []
    top = rows_top
    for item in items:
        if isinstance(item, Group):
            drawn.append(group_svg(item, tl, top, x))
            top += ROW_HEIGHT
            for member in item.notable:
                drawn.append(row_svg(member, tl, top, x, describe, item.key))
                top += ROW_HEIGHT
        else:
            drawn.append(row_svg(item, tl, top, x, describe))
            top += ROW_HEIGHT
    height = max(top, rows_top + ROW_HEIGHT) + 16
    width = LABEL_WIDTH + CHART_WIDTH + 20
    svg: list[str] = [
        f'<svg id="chart" xmlns="http://www.w3.org/2000/svg" width="{width}"'
        f' height="{height}" viewBox="0 0 {width} {height}">',
        "<defs><pattern id='stripes' width='8' height='8'"
        " patternUnits='userSpaceOnUse' patternTransform='rotate(45)'>"
        "<rect width='8' height='8' fill='#fde68a'/>"
        "<rect width='4' height='8' fill='#f59e0b'/></pattern>"
        "<pattern id='lost' width='6' height='6' patternUnits='userSpaceOnUse'"
        " patternTransform='rotate(45)'><rect width='6' height='6' fill='#fff'/>"
        "<rect width='2' height='6' fill='#94a3b8'/></pattern></defs>",
        *labels,
        *_lanes(tl, scale, lane_top),
    ]
    last_px = -1e9
    for at in scale.ticks():
        px = x(at)
        if px - last_px < 70:  # too close to the previous label (near a gap)
            continue
        last_px = px
        svg.append(
            f'<line class="tick" x1="{px:.1f}" y1="{axis_y + 4}" x2="{px:.1f}"'
            f' y2="{height}"/><text class="axis" x="{px:.1f}" y="{axis_y}"'
            f' text-anchor="middle">+{_duration(at - tl.start)}</text>'
        )
    last_end = -1e9
    for before, after in scale.gaps:
        quiet = f"no events for {_duration(after - before)}"
        mid = x(before) + GAP_WIDTH / 2
        text = f"≈{_duration(after - before)}"
        half = len(text) * SMALL_CHAR / 2
        svg.append(
            f'<rect class="idle" x="{x(before):.1f}" y="{axis_y + 4}"'
            f' width="{GAP_WIDTH}" height="{height - axis_y - 4}">'
            f"<title>{quiet} (collapsed)</title></rect>"
        )
        if mid - half >= last_end + 6:  # else the gap's title says it
            last_end = mid + half
            svg.append(
                f'<text class="axis" x="{mid:.1f}" y="{height - 2}"'
                f' text-anchor="middle">{text}</text>'
            )
    for boundary in tl.boundaries:
        px = x(boundary.at)
        svg.append(
            f'<line class="boundary" x1="{px:.1f}" y1="{lane_top}" x2="{px:.1f}"'
            f' y2="{height}"><title>{_esc(boundary.label)}</title></line>'
        )
    if not tl.rows:
        svg.append(
            f'<text class="empty" x="{LABEL_WIDTH}" y="{rows_top + 14}">'
            "no calls recorded</text>"
        )
    svg.extend(drawn)
    svg.append("</svg>")
    return _PAGE.format(
        title=_esc(f"timeline of run {tl.run_id}"),
        css=_CSS + _execution_css(len(tl.executions), tl.latest_execution),
        header=_header(tl, len(drawn)),
        legend=_legend(tl),
        svg="\n".join(svg),
        script=_SCRIPT,
        data=_esc(json.dumps({"run_id": tl.run_id, "rows": len(tl.rows)})),
    )


PALETTE = ("#94a3b8", "#0d9488", "#d97706", "#db2777", "#65a30d", "#0891b2", "#7c3aed")
"""Colours of earlier executions; the latest is always blue (``#3b82f6``)."""


def _colour(index: int, latest: int) -> str:
    return "#3b82f6" if index == latest else PALETTE[index % len(PALETTE)]


def _execution_css(count: int, latest: int) -> str:
    """A colour per execution, for bars, lanes and the legend's swatches."""
    return "".join(
        f'[data-x="{i}"] .bar, [data-x="{i}"].lane .bar, .sw.x{i}'
        f" {{ fill: {_colour(i, latest)}; background: {_colour(i, latest)}; }}\n"
        for i in range(count)
    )


def _header(tl: Timeline, drawn: int) -> str:
    facts = [
        ("process", tl.process),
        ("status", tl.status),
        ("events", str(tl.events)),
        ("calls", f"{len(tl.rows):,}"),
        ("rows", f"{drawn:,}"),
        ("executions", str(tl.latest_execution + 1)),
        ("span", _duration(tl.end - tl.start)),
    ]
    twice = sum(1 for row in tl.rows if row.redispatched)
    if twice:
        facts.append(("dispatched twice", f"{twice:,}"))
    items = "".join(f"<span><b>{_esc(k)}</b> {_esc(v)}</span>" for k, v in facts)
    return f"<h1>run {_esc(tl.run_id)}</h1><p class='facts'>{items}</p>"


def _legend(tl: Timeline) -> str:
    executions = "".join(
        f"<span><i class='sw x{e.index}'></i>{_esc(execution_name(tl, e.index))}"
        + (" (latest)" if e.index == tl.latest_execution else "")
        + "</span>"
        for e in tl.executions
    )
    return (
        f"<p class='legend'>{executions}</p><p class='legend'>"
        "<span><i class='sw failed'></i>failed</span>"
        "<span><i class='sw inflight'></i>in flight (no outcome)</span>"
        "<span><i class='sw lost'></i>ran twice: the attempt an ended execution"
        " lost (&#215;2)</span>"
        "<span><i class='sw tick'></i>failed attempt, retried</span>"
        "<span><i class='sw value'></i>recorded value</span>"
        "<span><i class='sw boundary'></i>execution boundary</span>"
        "<span>▸ a group of calls (click for its counts)</span></p>"
    )


_CSS = """
body { font: 13px system-ui, sans-serif; margin: 16px; color: #1e293b; }
h1 { font-size: 18px; margin: 0 0 4px; }
.facts span, .legend span { margin-right: 16px; white-space: nowrap; }
.legend { margin: 4px 0; }
.sw { display: inline-block; width: 14px; height: 10px; margin-right: 5px;
      vertical-align: middle; border-radius: 2px; }
.sw.failed { background: #ef4444; } .sw.value { background: #8b5cf6; }
.sw.inflight { background: repeating-linear-gradient(45deg, #f59e0b 0 3px,
               #fde68a 3px 6px); }
.sw.lost { background: repeating-linear-gradient(45deg, #94a3b8 0 2px,
           #fff 2px 5px); }
.sw.tick { width: 2px; background: #111827; }
.sw.boundary { width: 0; height: 12px; border-left: 2px dashed #64748b;
               border-radius: 0; }
#filter { margin: 6px 0 10px; padding: 3px 6px; width: 280px; }
svg text { font: 12px ui-monospace, monospace; fill: #1e293b; }
.axis, .boundary-label, .lane-label { font-size: 11px; }
.axis { fill: #64748b; } .boundary-label { fill: #475569; }
.lane-label { fill: #fff; }
.tick { stroke: #e2e8f0; }
.boundary { stroke: #64748b; stroke-dasharray: 4 3; stroke-width: 1.5; }
.boundary-tick { stroke: #cbd5e1; }
.band { fill: transparent; }
.idle { fill: #f1f5f9; stroke: #cbd5e1; stroke-dasharray: 2 2; }
.tl-row:nth-of-type(even) .band { fill: #f8fafc; }
.tl-row:hover .band, .tl-row.picked .band, .tl-group:hover .band,
.tl-group.picked .band { fill: #e0f2fe; }
.tl-group .label { font-weight: bold; }
.hidden { display: none; }
.bar { fill: #94a3b8; }
.lost { fill: url(#lost); stroke: #94a3b8; }
.twice { fill: #b91c1c; font-weight: bold; }
.tl-row.failed .bar { fill: #ef4444; } .tl-row.inflight .bar { fill: url(#stripes); }
.tl-row.value .bar { fill: #8b5cf6; }
.tl-group.failed > .band { fill: #fef2f2; }
.attempt { stroke: #111827; stroke-width: 2; }
#detail { white-space: pre-wrap; word-break: break-all;
          font: 12px ui-monospace, monospace; background: #f1f5f9;
          padding: 6px 8px; min-height: 3em; border-radius: 4px; }
"""

_SCRIPT = """
(function () {
  var rows = Array.prototype.slice.call(
    document.querySelectorAll('.tl-row, .tl-group'));
  var detail = document.getElementById('detail');
  rows.forEach(function (row) {
    row.addEventListener('click', function () {
      rows.forEach(function (r) { r.classList.remove('picked'); });
      row.classList.add('picked');
      var text = row.querySelector('title').textContent;
      if (row.dataset.args) { text += '\\nargs: ' + row.dataset.args; }
      if (row.dataset.result) { text += '\\nresult: ' + row.dataset.result; }
      detail.textContent = text;
    });
  });
  document.getElementById('filter').addEventListener('input', function (e) {
    var needle = e.target.value.toLowerCase();
    rows.forEach(function (row) {
      var text = ((row.dataset.key || row.dataset.group) + ' ' +
                  (row.dataset.task || row.querySelector('.label').textContent));
      row.classList.toggle('hidden',
        needle !== '' && text.toLowerCase().indexOf(needle) < 0);
    });
  });
  // Self-check: no two labels above the chart overlap (read by the tests).
  var labels = Array.prototype.slice.call(document.querySelectorAll(
    '.boundary-label, .lane-label, text.axis'));
  var boxes = labels.map(function (t) { return t.getBBox(); });
  var overlaps = 0;
  for (var i = 0; i < boxes.length; i++) {
    for (var j = i + 1; j < boxes.length; j++) {
      var a = boxes[i], b = boxes[j];
      if (a.x < b.x + b.width - 0.5 && b.x < a.x + a.width - 0.5 &&
          a.y < b.y + b.height - 0.5 && b.y < a.y + a.height - 0.5) {
        overlaps++;
      }
    }
  }
  document.body.dataset.overlaps = String(overlaps);
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
<div id="detail">click a call for its args, result and timings; a group for its\
 counts</div>
{svg}
<script>{script}</script>
</body>
</html>
"""
