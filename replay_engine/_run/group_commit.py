"""One commit pump shared by every run an event loop executes on one journal.

Each executing run has its own :class:`~.dispatch.Dispatcher`, whose pump
commits the run's buffered events (write-ahead) and then starts what became
ready. Alone, a run pays one commit (one fsync) per pump. With many runs in
one event loop (``asyncio.gather`` of ``run_async``, a worker, sub-runs), each
would commit on its own, one fsync after another: a thousand runs of ten
steps made some 11,000 flushes.

So a dispatcher does not schedule its own pump: it asks the loop's shared
pump (:func:`want`), which runs once per event-loop turn for every run that
asked in the previous one:

1. each run's pre-commit work (starting parallel branches that waited for
   room, whose requests must join the commit);
2. one write transaction carrying every run's buffered events
   (``Store.append_group``), each run's part in its own nested transaction,
   so one run's refused part (a damaged record …) fails that run alone;
   then one fsync;
3. each run whose part was written starts its ready calls, exactly as its own
   pump would have. A run whose part failed ends with its own named error;
   a failure of the whole transaction (disk full, a read-only file system)
   ends each run with its own.

Nothing changes within a run: its events, their order and its chain are what
its own pump would have written, and no call starts before its request is
durable. A turn with a single run calls that run's own pump (the path of a
run executing alone is unchanged).
"""

from __future__ import annotations

import asyncio
import weakref
from typing import TYPE_CHECKING

import journal_format as jf

from .._store.store import AppendResult, GroupItem, Store
from .journal import RunJournal

# For the type checker only: building a Protocol costs a first resume ~20 µs.
if TYPE_CHECKING:
    from typing import Protocol

    class Dispatcher(Protocol):
        """What the pump uses of a ``dispatch.Dispatcher`` (which imports this)."""

        loop: asyncio.AbstractEventLoop
        journal: RunJournal
        closed: bool
        _pump_scheduled: bool

        def _pump(self) -> None: ...
        def _before_commit(self) -> None: ...
        def _after_commit(self) -> None: ...
        def _fault(self, exc: BaseException) -> None: ...


class GroupCommits:
    """The shared pump of one event loop and one store."""

    __slots__ = (
        "__weakref__",
        "_extra",
        "_scheduled",
        "_store",
        "_waiting",
        "executing",
    )

    def __init__(self, store: Store) -> None:
        self._store = weakref.ref(store)
        self._waiting: list[Dispatcher] = []
        self._extra: list[tuple[GroupItem, asyncio.Future[AppendResult]]] = []
        self._scheduled = False
        self.executing = 0
        """Dispatchers open on this loop and store (runs executing)."""

    def want(self, dispatcher: Dispatcher) -> None:
        """Pump ``dispatcher`` in the next turn, with every other that asks."""
        self._waiting.append(dispatcher)
        if not self._scheduled:
            self._scheduled = True
            dispatcher.loop.call_soon(self._pump)

    def worth_sharing(self) -> bool:
        """Whether a commit outside a pump should join the next shared one.

        For a run's creation or its end: when other runs are executing here,
        a shared commit is coming, so it waits for it rather than making its
        own. Alone, a run commits at once.
        """
        return self.executing > 0 or self._scheduled

    def commit(
        self, loop: asyncio.AbstractEventLoop, item: GroupItem
    ) -> asyncio.Future[AppendResult]:
        """Write ``item`` with the next shared commit; the future tells how.

        Its result is the item's ``AppendResult`` (durable, with ``fsync``);
        its exception, what refused the item alone or failed the whole commit.
        """
        future: asyncio.Future[AppendResult] = loop.create_future()
        self._extra.append((item, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._pump)
        return future

    def _pump(self) -> None:
        self._scheduled = False
        batch, self._waiting = self._waiting, []
        extra, self._extra = self._extra, []
        if len(batch) == 1 and not extra:
            batch[0]._pump()  # alone: the run's own pump, unchanged
            return
        todo: list[Dispatcher] = []
        for dispatcher in batch:
            dispatcher._pump_scheduled = False
            if dispatcher.closed:
                continue
            try:
                dispatcher._before_commit()
            except BaseException as exc:
                dispatcher._fault(exc)
                continue
            todo.append(dispatcher)
        written = self._commit(todo, extra)
        for dispatcher in written:
            try:
                dispatcher._after_commit()
            except BaseException as exc:
                dispatcher._fault(exc)

    def _commit(
        self,
        todo: list[Dispatcher],
        extra: list[tuple[GroupItem, asyncio.Future[AppendResult]]],
    ) -> list[Dispatcher]:
        """Commit every run's buffer at once; the runs whose part was written."""
        written: list[Dispatcher] = []
        items: list[GroupItem] = []
        owners: list[Dispatcher] = []
        for dispatcher in todo:
            journal = dispatcher.journal
            item = journal.take_shared()
            if item is not None:
                items.append(item)
                owners.append(dispatcher)
                continue
            try:
                journal.flush()  # nothing buffered, or a case flush handles
            except BaseException as exc:
                dispatcher._fault(exc)
                continue
            written.append(dispatcher)
        items.extend(item for item, _ in extra)
        if not items:
            return written
        results: list[AppendResult | Exception] | list[BaseException]
        store = self._store()
        try:
            if store is None:  # cannot be: a waiting run holds it
                raise RuntimeError("the store of a shared commit was closed")
            results = store.append_group(items)
        except BaseException as exc:  # the whole transaction: every run's
            results = [exc] * len(items)
        for dispatcher, item, result in zip(owners, items, results, strict=False):
            journal = dispatcher.journal
            if isinstance(result, BaseException):
                dispatcher._fault(journal.shared_failed(result))
            else:
                journal.shared_done(item, result)
                written.append(dispatcher)
        for (_, future), result in zip(extra, results[len(owners) :], strict=True):
            if future.done():  # its awaiter was cancelled
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
        return written


_pumps: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, weakref.WeakKeyDictionary[Store, GroupCommits]
] = weakref.WeakKeyDictionary()
"""The shared pump of each live loop and store. The pumps hold neither (only
the dispatchers waiting for the next turn), so both are collected as usual."""


def shared_pump(loop: asyncio.AbstractEventLoop, store: Store) -> GroupCommits:
    """The pump shared by the runs ``loop`` executes on ``store``."""
    by_store = _pumps.get(loop)
    if by_store is None:
        by_store = _pumps[loop] = weakref.WeakKeyDictionary()
    pump = by_store.get(store)
    if pump is None:
        pump = by_store[store] = GroupCommits(store)
    return pump


async def create_run(
    store: Store,
    run_id: str,
    started: jf.RunStarted,
    blobs: dict[bytes, bytes],
    deadline_ns: int | None,
) -> None:
    """``store.create_run`` of a run about to execute here, at once.

    With other runs executing on this loop, the creation joins their next
    shared commit (one fsync for many runs' starts); it has happened, durably,
    when this returns, exactly as ``create_run`` alone.
    """
    loop = asyncio.get_running_loop()
    pump = shared_pump(loop, store)
    if not pump.worth_sharing():
        store.create_run(run_id, started, blobs, deadline_ns=deadline_ns)
        return
    item = store.creating(run_id, started, blobs, deadline_ns=deadline_ns)
    await pump.commit(loop, item)
