"""Which calls of a timeline get a row of their own, and which are grouped.

A run of 10,000 calls drawn one row each is a page 220,000 px tall that
nobody reads. So a parallel group (``ctx.parallel.all``/``map`` at key ``k``:
every call under ``k.*``) with more than ``MAX_GROUP`` calls is drawn as one
*group* row, with its counts; so is a stretch of more than ``MAX_RUN``
consecutive calls of one task in one scope (a long sequential loop). Smaller
groups are laid out branch by branch, recursively.

A group never hides what matters: its members that failed, are still in
flight, were abandoned, were retried or were dispatched twice get rows of
their own under it (up to ``MAX_NOTABLE`` per group; the group's counts say
how many more).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from itertools import groupby

from .timeline_model import Row

MAX_GROUP = 40
"""A parallel group with more calls than this is drawn as one group row."""
MAX_RUN = 40
"""A stretch of consecutive calls of one task longer than this, likewise."""
MAX_NOTABLE = 50
"""Members of a group drawn on rows of their own (failed, retried, twice …)."""
MAX_SCOPE_ROWS = 400
"""A scope with more rows than this (a loop over several tasks) is folded
into blocks of ``BLOCK`` consecutive calls, whatever their tasks."""
BLOCK = 100
MAX_NOTABLE_TOTAL = 500
"""Notable members drawn on the whole page; the groups' counts say the rest."""


@dataclass
class Group:
    """Several calls on one row: a parallel group, or a sequential stretch."""

    key: str
    """The group's key (``3``), or the first and last keys of a stretch."""
    label: str
    depth: int
    members: list[Row]
    notable: list[Row] = field(default_factory=list)
    """Members that also get a row of their own (drawn after the group)."""

    @property
    def start(self) -> int:
        """When its first member started."""
        return min(row.start for row in self.members)

    @property
    def end(self) -> int | None:
        """When its last member finished; ``None`` while one has no end."""
        ends = [row.end for row in self.members]
        return None if any(e is None for e in ends) else max(e for e in ends if e)

    def counts(self) -> Counter[str]:
        """Members by status (``done``, ``failed``, ``in flight`` …)."""
        return Counter(row.status for row in self.members)

    def by_execution(self) -> Counter[int]:
        """Members by the execution that finished (or started) them."""
        return Counter(row.execution for row in self.members)


Item = Row | Group


def notable(row: Row) -> bool:
    """A member of a group that deserves its own row."""
    return (
        row.status in ("failed", "in flight", "abandoned")
        or row.redispatched
        or bool(row.attempts)
    )


def arrange(rows: list[Row]) -> list[Item]:
    """The chart's rows, in key order, with big groups and long stretches folded."""
    items = _scope(rows, 0)
    budget = MAX_NOTABLE_TOTAL
    for item in items:
        if isinstance(item, Group):
            item.notable = item.notable[: max(budget, 0)]
            budget -= len(item.notable)
    return items


def _scope(rows: list[Row], depth: int) -> list[Item]:
    """Lay out the calls of one scope (all ``rows`` share its key prefix)."""
    level = 2 * depth  # a scope at depth d has keys of 2d+1 parts
    items: list[Item] = []
    for _, same_index in groupby(rows, key=lambda r: r.parts[level]):
        members = list(same_index)
        direct = [r for r in members if len(r.parts) == level + 1]
        nested = [r for r in members if len(r.parts) > level + 1]
        items.extend(direct)
        if not nested:
            continue
        if len(nested) > MAX_GROUP:
            key = ".".join(str(p) for p in nested[0].parts[: level + 1])
            branches = len({r.parts[level + 1] for r in nested})
            items.append(
                _group(
                    key,
                    f"{key} parallel: {branches:,} branches, {len(nested):,} calls",
                    depth,
                    nested,
                )
            )
            continue
        for _, branch in groupby(nested, key=lambda r: r.parts[level + 1]):
            items.extend(_scope(list(branch), depth + 1))
    return _fold_stretches(items, depth)


def _fold_stretches(items: list[Item], depth: int) -> list[Item]:
    """Fold runs of more than ``MAX_RUN`` consecutive rows of one task."""
    out: list[Item] = []
    for (is_row, task), run in groupby(
        items, key=lambda i: (isinstance(i, Row), i.task if isinstance(i, Row) else "")
    ):
        stretch = list(run)
        if not is_row or len(stretch) <= MAX_RUN:
            out.extend(stretch)
            continue
        rows = [i for i in stretch if isinstance(i, Row)]
        key = f"{rows[0].key}…{rows[-1].key}"
        out.append(_group(key, f"{len(rows):,} calls of {task}", depth, rows))
    if len(out) <= MAX_SCOPE_ROWS:
        return out
    return _blocks(out, depth)


def _blocks(items: list[Item], depth: int) -> list[Item]:
    """Fold consecutive single rows into blocks of ``BLOCK`` calls."""
    out: list[Item] = []
    pending: list[Row] = []

    def flush() -> None:
        if len(pending) <= 1:
            out.extend(pending)
        else:
            key = f"{pending[0].key}…{pending[-1].key}"
            tasks = len({r.task for r in pending})
            label = f"{len(pending):,} calls of {tasks:,} tasks"
            out.append(_group(key, label, depth, list(pending)))
        pending.clear()

    for item in items:
        if isinstance(item, Row):
            pending.append(item)
            if len(pending) == BLOCK:
                flush()
        else:
            flush()
            out.append(item)
    flush()
    return out


def _group(key: str, label: str, depth: int, members: list[Row]) -> Group:
    group = Group(key, label, depth, members)
    group.notable = [r for r in members if notable(r)][:MAX_NOTABLE]
    return group
