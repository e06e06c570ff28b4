"""The replay of a ``parallel.map``: its replayed branches in one tight loop.

On replay nearly every branch of a map is ``lambda item: ctx.task(...)``
answered from the journal: its function returns a :class:`Resolved` at once.
``refill`` (``parallel.py``) handles any branch, so per branch it enters the
shared context (``Context.run``), checks room and limits, and bookkeeps the
group; that was about twice a sequential replayed call's cost (issue 17).

:func:`replay_run` runs inside the shared context, entered once for a whole
run of such branches, and settles each with a slot write, its result and a
counter. It stops at the first branch that does anything else and hands that
branch's answer back, already computed, to ``refill``'s general path, which
treats it exactly as before. So the same branches start in the same order,
with the same scope and context: a branch answered without dispatch frees no
room and takes none, and nothing but such branches runs in the loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from journal_format import encode_component
from journal_format._keys import COMPONENTS

# For the type checker only (as in ``feed.py``): a Protocol built at import
# costs a first resume about 50 µs (issue 17).
if TYPE_CHECKING:
    import contextvars
    from collections.abc import Callable, Sequence
    from typing import Protocol

    from .scope import Scope

    class Settling(Protocol):
        """What the loop reads and writes of ``parallel._Group`` (a plain one)."""

        results: list[Any]
        remaining: int
        stopped: bool


NO_BRANCH = object()
"""``replay_run`` stopped before calling a branch (nothing is pending)."""

_TABLE = len(COMPONENTS)  # keys' components below this are precomputed


def replay_run(
    group: Settling,
    scope: Scope,
    shared: contextvars.Context,
    pristine: contextvars.Context,
    key: bytes,
    text: str,
    make: Callable[[Any], Any],
    items: Sequence[Any],
    index: int,
    resolved: type[Any],
) -> tuple[int, Any, BaseException | None]:
    """Run map branches from ``index`` while each is a replayed first call.

    Called through ``shared.run`` (``shared``: the branches' shared context,
    whose current scope is ``scope``), with room for branch ``index`` already
    checked. Each branch's scope fields are set as ``refill`` sets them; a
    branch whose function returns a ``resolved`` (``parallel.Resolved``: this
    module cannot import it back) after exactly one ctx call, leaving the
    context's variables as they were (``== pristine``), is settled here, as
    ``refill`` settles it, while another unsettled branch remains.

    Returns ``(next_index, value, error)``: the index of the first branch not
    settled here, and, if it was called, what its function returned or raised
    (``value`` is :data:`NO_BRANCH` if it was not called: the map is fully
    started, the group stopped, or only one branch is left unsettled).
    """
    results = group.results
    remaining = group.remaining
    count = len(results)
    try:
        # ``while True`` and a ``break``, not ``while <test>``: CPython 3.11
        # specializes a function's bytecode only after it jumps back with
        # JUMP_BACKWARD (or is called 8 times), and a tested ``while`` jumps
        # back with POP_JUMP_BACKWARD_IF_*: run once per map, the whole loop
        # would stay generic (slower than refill's own loop, measured).
        while True:
            if index >= count or group.stopped:
                break
            # The last unsettled branch settles through the group (its waiter).
            if remaining <= 1:
                break
            part = COMPONENTS[index] if index < _TABLE else None
            scope.prefix = key + (part or encode_component(index))
            scope._text, scope._branch = text, index
            scope.next_index, scope.logs_at = 0, None
            try:
                value = make(items[index])
            except BaseException as exc:  # the branch's failure: refill settles it
                return index, None, exc
            if not (
                type(value) is resolved and scope.next_index == 1 and shared == pristine
            ):
                return index, value, None
            results[index] = value.value
            remaining -= 1
            index += 1
        return index, NO_BRANCH, None
    finally:
        group.remaining = remaining
