"""``ctx.parallel``: branches with stable keys — all, map, any (a race).

Each method takes the group's invocation key when it is *called* (like every
ctx call), then hands the branches to ``parallel.run_group`` or, for races,
settled and fail-fast groups, to ``race``.

The signatures are overloads rather than ``Awaitable[T] | T``, from which a
type checker cannot tell ``T``: thunks of ctx calls give their results' type,
and ``settled=True`` adds :class:`TaskFailed` to each result's type.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from ..errors import ReplayEngineError, TaskFailed
from .parallel import check_map_fn, check_thunks, run_group
from .scope import Scope, current_scope

if TYPE_CHECKING:  # annotations only: ``backend`` is not imported by a resume
    from .backend import ContextBackend

T = TypeVar("T")
U = TypeVar("U")


class Parallel:
    """``ctx.parallel``: run branches concurrently with stable keys."""

    __slots__ = ("_rt",)

    def __init__(self, runtime: ContextBackend) -> None:
        self._rt = runtime

    @overload
    def all(
        self,
        thunks: Iterable[Callable[[], Awaitable[T]]],
        *,
        settled: Literal[False] = False,
        fail_fast: bool = False,
    ) -> Awaitable[list[T]]: ...
    @overload
    def all(
        self,
        thunks: Iterable[Callable[[], T]],
        *,
        settled: Literal[False] = False,
        fail_fast: bool = False,
    ) -> Awaitable[list[T]]: ...
    @overload
    def all(
        self,
        thunks: Iterable[Callable[[], Awaitable[T]]],
        *,
        settled: Literal[True],
        fail_fast: Literal[False] = False,
    ) -> Awaitable[list[T | TaskFailed]]: ...
    @overload
    def all(
        self,
        thunks: Iterable[Callable[[], T]],
        *,
        settled: Literal[True],
        fail_fast: Literal[False] = False,
    ) -> Awaitable[list[T | TaskFailed]]: ...
    def all(
        self,
        thunks: Iterable[Callable[[], Any]],
        *,
        settled: bool = False,
        fail_fast: bool = False,
    ) -> Awaitable[list[Any]]:
        """Run thunks concurrently; results in input order.

        Every branch is settled before this returns. If any failed, the
        failure of the lowest-index branch is raised, whatever order they
        finished in; the other branches' completions stay recorded.

        Args:
            thunks: functions of no argument, one per branch.
            settled: return a failed branch's :class:`TaskFailed` in its place
                instead of raising (other exceptions are still raised).
            fail_fast: on the first failure (in completion order), cancel the
                branches still running (their open effects are recorded
                abandoned) and raise it at once. Not with ``settled``.

        Raises:
            ThunkRequired: an item is an awaitable (``ctx.task(...)``) rather
                than a thunk (``lambda: ctx.task(...)``).
        """
        makers = check_thunks(thunks)
        rt = self._rt
        key = group_key(rt, decided=fail_fast)
        if settled or fail_fast:
            # Imported by the first race or settled group: a plain resume has
            # none (bench/README.md, s19i).
            from . import race

            return race.run_settling(
                rt, key, makers, None, None, settled=settled, fail_fast=fail_fast
            )
        return run_group(key, makers, None, None, rt.tick, rt.groups, feed=rt.feed)

    @overload
    def any(
        self, thunks: Iterable[Callable[[], Awaitable[T]]]
    ) -> Awaitable[tuple[int, T]]: ...
    @overload
    def any(self, thunks: Iterable[Callable[[], T]]) -> Awaitable[tuple[int, T]]: ...
    def any(self, thunks: Iterable[Callable[[], Any]]) -> Awaitable[tuple[int, Any]]:
        """Race thunks: ``(index, value)`` of the first branch to succeed.

        The branches still running are then cancelled (their open effects
        are recorded abandoned: a late post to one is refused), and the
        decision is journaled, so replay picks the same winner whatever the
        timing. If every branch fails, the lowest-index failure is raised.

        Raises:
            ThunkRequired: an item is an awaitable rather than a thunk.
        """
        from . import race

        return race.run_any(self._rt, check_thunks(thunks))

    @overload
    def map(
        self,
        items: Sequence[T] | Iterable[T],
        fn: Callable[[T], Awaitable[U]],
        *,
        limit: int | None = None,
        settled: Literal[False] = False,
        fail_fast: bool = False,
    ) -> Awaitable[list[U]]: ...
    @overload
    def map(
        self,
        items: Sequence[T] | Iterable[T],
        fn: Callable[[T], U],
        *,
        limit: int | None = None,
        settled: Literal[False] = False,
        fail_fast: bool = False,
    ) -> Awaitable[list[U]]: ...
    @overload
    def map(
        self,
        items: Sequence[T] | Iterable[T],
        fn: Callable[[T], Awaitable[U]],
        *,
        limit: int | None = None,
        settled: Literal[True],
        fail_fast: Literal[False] = False,
    ) -> Awaitable[list[U | TaskFailed]]: ...
    @overload
    def map(
        self,
        items: Sequence[T] | Iterable[T],
        fn: Callable[[T], U],
        *,
        limit: int | None = None,
        settled: Literal[True],
        fail_fast: Literal[False] = False,
    ) -> Awaitable[list[U | TaskFailed]]: ...
    def map(
        self,
        items: Sequence[Any] | Iterable[Any],
        fn: Callable[[Any], Any],
        *,
        limit: int | None = None,
        settled: bool = False,
        fail_fast: bool = False,
    ) -> Awaitable[list[Any]]:
        """Run ``fn(item)`` for every item concurrently; results in input order.

        Args:
            items: the items; branch ``j`` gets ``items[j]``.
            fn: called once per item, in its own branch.
            limit: at most this many branches run at once (the engine's
                in-flight bound applies as well).
            settled: as for :meth:`all`.
            fail_fast: as for :meth:`all`; no branch starts after the first
                failure.
        """
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be >= 1, not {limit}")
        values = items if isinstance(items, list | tuple | range) else list(items)
        fn = check_map_fn(fn)
        rt = self._rt
        key = group_key(rt, decided=fail_fast)
        if settled or fail_fast:
            from . import race

            return race.run_settling(
                rt, key, fn, values, limit, settled=settled, fail_fast=fail_fast
            )
        return run_group(key, fn, values, limit, rt.tick, rt.groups, feed=rt.feed)


def current() -> Scope:
    """The scope of the ctx call being made (refused outside a run)."""
    try:
        return current_scope.get()
    except LookupError:
        raise ReplayEngineError(
            "ctx was used outside its run: ctx methods may only be called while the"
            " engine executes the process (not from threads or after it returned)"
        ) from None


def group_key(rt: ContextBackend, *, decided: bool = False) -> bytes:
    """Take the key of a parallel group (its branches' keys extend it).

    ``decided``: the group may record its decision at its key (fail-fast,
    JF-144); its runner asks the journal itself.
    """
    rt.check_live()
    key = current().next_key()
    if not decided:
        rt.group(key)
    return key
