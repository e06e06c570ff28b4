"""``runs --tree``: runs grouped into families (a child under its parent).

A child run (``ctx.run_child``) names its parent and the parent's key in its
record (``child_of``, ``child_key``). The tree is built from ``runs``' rows
alone: nothing more is read, nothing is imported.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from .common import status_style
from .safe_text import literal, printable

if TYPE_CHECKING:  # start-up: rich is imported where a tree is printed
    from rich.console import Console
    from rich.text import Text


def _key_order(row: dict[str, Any]) -> tuple[tuple[int, ...], str]:
    key = row.get("child_key") or ""
    try:
        parts = tuple(int(p) for p in key.split(".")) if key else ()
    except ValueError:
        parts = ()  # a journal is untrusted: a bad key sorts first, shown as is
    return parts, str(row["run_id"])


def family_tree(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows nested: each gets ``children`` (its child runs, by key).

    Roots are the runs with no parent among ``rows`` (a child whose parent is
    filtered out, or deleted, is a root), in the order of ``rows``.
    """
    by_id = {row["run_id"]: {**row, "children": []} for row in rows}
    roots: list[dict[str, Any]] = []
    for row in rows:
        node = by_id[row["run_id"]]
        parent = by_id.get(row.get("child_of"))
        # A record naming itself (a hostile journal) must not loop the tree.
        if parent is None or parent is node:
            roots.append(node)
        else:
            parent["children"].append(node)
    for node in by_id.values():
        node["children"].sort(key=_key_order)
    return _acyclic(roots, by_id)


def _acyclic(
    roots: list[dict[str, Any]], by_id: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """Roots plus any run caught in a parent cycle (only a crafted journal has one)."""
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        node = stack.pop()
        seen.add(node["run_id"])
        stack.extend(node["children"])
    for run_id, node in by_id.items():
        if run_id not in seen:
            node["children"] = []
            roots.append(node)
            seen.add(run_id)
    return roots


def _label(node: dict[str, Any]) -> Text:
    text = literal("")  # a rich Text (rich is imported when printing)
    text.append(printable(str(node["run_id"])), style="bold")
    text.append("  ")
    text.append_text(literal(node["status"], style=status_style(node["status"])))
    text.append("  ")
    text.append(printable(str(node["process"])))
    if node.get("child_key") is not None:
        text.append(f"  (at key {printable(str(node['child_key']))})", style="dim")
    return text


def print_tree(
    console: Console, roots: list[dict[str, Any]], status: str | None
) -> None:
    """Print each family as a rich tree."""
    if not roots:
        console.print("no runs" + (f" with status {status}" if status else ""))
        return
    from rich.tree import Tree

    for root in roots:
        tree = Tree(_label(root))
        # Breadth first, iteratively (a deep family must not hit the recursion
        # limit); siblings are added in order, so each shows in key order.
        pending = deque((tree, child) for child in root["children"])
        while pending:
            branch, node = pending.popleft()
            sub = branch.add(_label(node))
            pending.extend((sub, child) for child in node["children"])
        console.print(tree)
