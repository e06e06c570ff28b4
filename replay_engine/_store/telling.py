"""One write transaction whose appends the executing run is told of, once.

Posts, expiries, signals bound to waits, cancelled branches and children's
outcomes are decided in one transaction each; when the executing run makes
that decision itself it must count the events as its own (``on_append``), not
mistake them for a post that landed meanwhile. LMDB may run a transaction's
body again (when it grows the map), so only the attempt that committed is told,
and only after the commit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import journal_format as jf

from .chain import AppendResult
from .run_txn import RunTxn

if TYPE_CHECKING:
    from .store import Store

T = TypeVar("T")

Append = Callable[[list[jf.Event]], None]
"""Appends events to the run in the transaction (at most once per body)."""


def transact_telling(
    store: Store,
    run_id: str,
    body: Callable[[RunTxn, Append], T],
    on_append: Callable[[AppendResult], None] | None,
) -> T:
    """``store.transact(run_id, ...)``; ``on_append`` told what ``append`` wrote."""
    appended: list[AppendResult] = []

    def attempt(view: RunTxn) -> T:
        appended.clear()  # an attempt LMDB ran again told nobody

        def append(events: list[jf.Event]) -> None:
            appended.append(view.append(events))

        return body(view, append)

    result = store.transact(run_id, attempt)
    if on_append is not None and appended:
        on_append(appended[0])
    return result
