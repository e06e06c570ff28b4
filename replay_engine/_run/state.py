"""The state of one execution, shared by the runtime's parts.

The runtime is split by job (``runtime``: the calls ctx makes and the whole
execution; ``waits``: external waits, timers and frontier stops; ``quiet``:
deciding that a run is waiting; ``settle``: recording how it ended). They all
read and write the one :class:`ExecutionState` defined here, which also holds
the primitives every part uses (record an event, count activity, refuse calls
once the execution is stopping or diverged).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from types import CodeType
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

import journal_format as jf

from ..errors import ExecutorUnavailable, JournalCorruptError, ReplayEngineError
from .dispatch import Dispatcher, ExecutorSet, Slots
from .feed import Feed
from .hooks import Hooks
from .journal import RunJournal
from .stats import FrontierCall, RunStats

if TYPE_CHECKING:  # imported only when tracing is on (``Engine(tracing=...)``)
    from .tracing import Tracing

_log = logging.getLogger("replay_engine.process")

BRANCH_WINDOW = 4096
"""Parallel branches start while fewer attempts than this are queued or
executing (or twice the in-flight bound, if larger): the started branches are
what a fan-out holds in memory, about 2.5 KB each while suspended."""


class Stopped(BaseException):
    """Internal: the run is being stopped; ctx calls made while it unwinds end here.

    A ``BaseException`` so that ``except Exception`` in user code cannot
    swallow it.
    """


# For the type checker only: a TypedDict class costs about 0.2 ms to build at
# import (a ForwardRef compiled per string annotation), paid by every first
# resume; ``**options: Unpack[...]`` is an annotation, never evaluated.
if TYPE_CHECKING:

    class ExecutionOptions(TypedDict, total=False):
        """The optional keywords of an execution (``Runtime`` passes them on)."""

        on_progress: Callable[[RunStats], None] | None
        on_log: Callable[[str, str, dict[str, Any]], None] | None
        clock_ns: Callable[[], int]
        """The clock behind ``ctx.now()`` and timers (``time.time_ns``)."""
        frozen: bool
        """Time travel: answer only from the loaded prefix; dispatch, write nothing."""
        park_timers: bool
        """iterate: a timer not yet due makes the run wait instead of sleeping."""
        hooks: Hooks | None
        tracing: Tracing | None
        """OpenTelemetry spans (``Engine(tracing=...)``); ``None``: off, and free."""
        carry: RunStats | None
        """The stats of the earlier passes of the same ``run``/``resume`` call
        (an execution is repeated at once when a post landed while it ran)."""


class ExecutionState:
    """State of one execution of one run, and the primitives on it."""

    def __init__(
        self,
        journal: RunJournal,
        run_id: str,
        *,
        executors: ExecutorSet,
        max_in_flight: int | Slots,
        **options: Unpack[ExecutionOptions],
    ) -> None:
        on_progress = options.get("on_progress")
        on_log = options.get("on_log")
        frozen = options.get("frozen", False)
        park_timers = options.get("park_timers", False)
        hooks = options.get("hooks")
        clock_ns = options.get("clock_ns", time.time_ns)
        self.loop = asyncio.get_running_loop()
        # Time travel: answer only from the loaded prefix; dispatch, write nothing.
        self.frozen = frozen
        self.frontier: dict[bytes, FrontierCall] = {}
        # iterate: a timer not yet due makes the run wait instead of sleeping.
        self.park_timers = park_timers
        self.parked_timers: set[bytes] = set()
        self.due: dict[bytes, int] = {}
        """Deadlines and parked timers of blocked calls (UTC ns)."""
        self.run_deadline_ns: int | None = None
        """The run's own deadline (UTC ns), set by ``settle.HaltWatch``."""
        self.groups: set[Any] = set()
        self.unawaited: dict[bytes, tuple[Any, str, tuple[CodeType, int] | None]] = {}
        """Live ``ctx.task`` calls made and not yet started: key -> (coroutine,
        task name, (code, instruction offset) of the caller). What is left when
        the process returns was never awaited (``settle.settle_finished``)."""
        self.journal = journal
        self.run_id = run_id
        self.stats = RunStats()
        self.carry = options.get("carry")
        self.tracing = options.get("tracing")
        self.hooks = hooks
        self.clock_ns = hooks.clock_ns if hooks is not None else clock_ns
        self.crashed = False
        if hooks is not None and hooks.crash_after_events is not None:
            journal.crash_after_events = hooks.crash_after_events
            journal.on_crash = self._crash
        self._on_progress = on_progress
        self._on_log = on_log
        self.dispatcher = Dispatcher(
            self.loop,
            journal,
            run_id,
            executors=executors,
            max_in_flight=max_in_flight,
            on_progress=self._progress if on_progress else None,
            on_fault=self.fail,
            hooks=hooks,
        )
        self.feed = self._feed_branches()
        journal.on_broken = self.fail
        started = journal.started
        self.seed = (started.seed if started is not None else None) or run_id
        self.activity = 0
        """Ticks on every step of progress; the quiet check watches it."""
        self.sleeping = 0
        self.external: dict[bytes, asyncio.Future[None]] = {}
        """Futures of the calls blocked until a later execution (see ``waits``)."""
        self.executor_lost: ExecutorUnavailable | None = None
        self.fault: BaseException | None = None
        """What ends the execution at once, whatever the process does: a
        failed commit, an interrupt raised in a task, a failed loop callback."""
        self.stopping = False
        # The quiet check's state (see ``quiet``).
        self.quiet: asyncio.Future[None] | None = None
        self.quiet_seen = -1
        self.quiet_count = 0
        self.quiet_scheduled = False

    def _feed_branches(self) -> Feed:
        """Wire the dispatcher: tracing, and lazy branch start (``feed``).

        A window of twice the in-flight bound (at least ``BRANCH_WINDOW``)
        keeps the executors fed while the next attempts queue behind them.
        """
        dispatcher = self.dispatcher
        dispatcher.traced = self.tracing is not None
        feed = Feed(dispatcher, max(BRANCH_WINDOW, 2 * dispatcher.slots.limit))
        dispatcher.feed = feed
        return feed

    def tick(self) -> None:
        """Count a step of progress (the quiet check waits for these to stop)."""
        self.activity += 1

    def check_live(self) -> None:
        """Refuse a ctx call once the execution diverged or is being stopped."""
        diverged = self.journal.diverged
        if diverged is not None:
            raise diverged
        if self.stopping:
            raise Stopped

    def record(self, event: jf.Event, blobs: dict[bytes, bytes] | None = None) -> None:
        """Buffer an event for the next group commit (the pump commits it)."""
        if self.frozen:  # a bug if reached: every recording path checks first
            raise ReplayEngineError(
                "internal error: a time-travel replay tried to write"
            )
        journal = self.journal
        if journal.crashed or journal.read_only:
            journal.record(event, blobs)  # refuses it, as it should
        else:
            # RunJournal.record's common case, one call less: this runs
            # twice per effect of every fresh run.
            journal._pending.append(event)
            if blobs:
                journal._pending_blobs.update(blobs)
        dispatcher = self.dispatcher
        if not dispatcher._pump_scheduled:
            dispatcher.schedule_pump()

    def emit_log(self, key: str, message: str, fields: dict[str, Any]) -> None:
        """Hand a new log line to Python logging and the ``on_log`` callback."""
        _log.info(
            "%s", message, extra={"run_id": self.run_id, "key": key, "fields": fields}
        )
        if self._on_log is not None:
            self._on_log(key, message, fields)
        if self.tracing is not None:
            self.tracing.log(key, message, fields)

    def fail(self, exc: BaseException) -> None:
        """End the execution with ``exc`` (the first fault wins), at once.

        Every loop callback that can fail routes its failure here: raised in
        the callback, it would reach asyncio's default handler, which logs it
        and carries on, and the run would wait forever.
        """
        if self.fault is None:
            self.fault = exc
        self.stopping = True
        if self.quiet is not None and not self.quiet.done():
            self.quiet.set_result(None)

    def recorded_value(self, data: bytes, key: bytes) -> Any:
        """Decode a payload the journal recorded for ``key``, or end the run.

        The bytes passed their seal, but a seal proves integrity, not that
        the payload is well formed (a journal may come from anyone): a payload
        that does not decode is damage, raised as ``JournalCorruptError`` and
        made the run's outcome even if the process catches it.
        """
        try:
            return jf.decode_payload(data)
        except jf.FormatError as err:
            exc = JournalCorruptError(
                f"run {self.run_id!r}: the payload recorded for key"
                f" {jf.key_bytes_to_text(key)} does not decode ({err}). The journal"
                " is damaged: run `replay-engine verify`, and restore it from a"
                " backup or fork the run before this key.",
                run_id=self.run_id,
                key=jf.key_bytes_to_text(key),
            )
            self.fail(exc)
            raise exc from None

    def _crash(self) -> None:
        """The hooks' simulated crash: stop now, as a killed process would."""
        self.crashed = True
        self.stopping = True
        if self.hooks is not None:
            self.hooks.crashed = True
        if self.quiet is not None and not self.quiet.done():
            self.quiet.set_result(None)

    def _progress(self) -> None:
        if self._on_progress is not None:
            self.stats.in_flight = self.dispatcher.in_flight
            self._on_progress(self.stats)
