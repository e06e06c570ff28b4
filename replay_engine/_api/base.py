"""What every part of ``Engine`` shares: the journal, the executors, the hooks.

``Engine`` is composed of one class per job (executing, external effects,
time travel, inspection), each a subclass of :class:`EngineBase`, which opens
and closes the journal and holds the state they all use.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Self, TypeVar

import journal_format as jf

from .._run.hooks import Hooks
from .._run.stop_request import Stopper
from .._store.env import DEFAULT_MAP_SIZE, FILE_MODE
from .._store.posts import PendingEffect, pending_effects
from .._store.store import Durability, Store, StoredEvent
from ..errors import JournalCorruptError, ReplayEngineError
from .counters import Counters
from .processes import KnownProcesses, ProcessLike

if TYPE_CHECKING:
    from .._run.dispatch import ExecutorSet, Slots
    from .._run.tracing import Tracing

T = TypeVar("T")

DEFAULT_MAX_IN_FLIGHT = 1024
"""Effects executing at once, engine-wide, unless ``max_in_flight`` says otherwise."""


class EngineBase:
    """The journal and executors of an ``Engine`` (see its docstring for the args)."""

    def __init__(
        self,
        path: str = ".replay",
        *,
        durability: Durability = "fsync",
        executor: Any | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        map_size: int | None = None,
        hooks: Hooks | None = None,
        create: bool = True,
        read_only: bool = False,
        file_mode: int = FILE_MODE,
        processes: Iterable[ProcessLike] = (),
        tracing: bool | Any = False,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, not {max_in_flight}")
        # OpenTelemetry (docs/observability.md): imported only when asked for
        # (and before the journal opens, so a missing package leaks nothing);
        # ``None`` costs the hot paths one test each.
        self._tracing: Tracing | None = None
        if tracing is not False and tracing is not None:
            from .._run.tracing import Tracing

            self._tracing = Tracing(None if tracing is True else tracing)
        owned = False
        in_processes = executor == "processes"
        if in_processes or executor == "threads":
            executor = None  # the engine's own pool (see ExecutorSet)
        if executor is not None and (
            not _is_executor(executor)
            or type(executor).__module__.startswith("distributed.")
        ):
            # A distributed.Client (or its executor) or a scheduler address
            # ("dask://host:8786"): dask_executor imports distributed only now.
            from .._run.dask_executor import as_dask_executor

            executor, owned = as_dask_executor(executor), True
        self._store = Store(
            path,
            durability=durability,
            map_size=DEFAULT_MAP_SIZE if map_size is None else map_size,
            access="read" if read_only else "create" if create else "write",
            file_mode=file_mode,
        )
        self.path = self._store.real_path
        try:
            self._processes = KnownProcesses(self.path, processes)
        except BaseException:
            self._store.close()
            raise
        self.max_in_flight = max_in_flight
        # The slots and executors are built by the first execution (see
        # _dispatch), not here: they import the run layer and asyncio, which
        # an engine opened only to read (the CLI's status, runs, pending,
        # post) never needs (issue 16: start-up).
        self._executor_args = (executor, owned, in_processes)
        self._built: tuple[Slots, ExecutorSet] | None = None
        self._build_lock = threading.Lock()
        # Engine.request_stop (the CLI's signal handlers) reaches executions here.
        self._stopper = Stopper()
        # Only replay_engine.testing passes hooks (completion order, crashes).
        self._hooks = hooks
        # What this Engine object did since it opened (Engine.statistics()).
        self._counters = Counters()

    @property
    def _slots(self) -> Slots:
        return self._dispatch()[0]

    @property
    def _executors(self) -> ExecutorSet:
        return self._dispatch()[1]

    def _dispatch(self) -> tuple[Slots, ExecutorSet]:
        """The engine-wide slots and executor set, built on first use."""
        built = self._built
        if built is None:
            # A worker executes runs in several threads of one engine: build once.
            with self._build_lock:
                built = self._built
                if built is None:
                    from .._run.dispatch import ExecutorSet, Slots

                    executor, owned, in_processes = self._executor_args
                    built = (
                        Slots(self.max_in_flight),
                        ExecutorSet(executor, owned=owned, processes=in_processes),
                    )
                    self._built = built
        return built

    def close(self) -> None:
        """Shut down pools this engine created and release the journal."""
        with self._build_lock:
            built = self._built
        if built is not None:
            built[1].shutdown()
        elif self._executor_args[1]:
            # A Dask executor the engine made and never used is still its own.
            self._dispatch()[1].shutdown()
        self._store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def payload(
        self,
        address: bytes,
        *,
        run_id: str | None = None,
        seq: int | None = None,
        key: str | None = None,
    ) -> Any:
        """Decode the payload stored under a content address (checked).

        ``run_id``, ``seq`` and ``key`` say where the address was read from:
        a payload is content-addressed and may be shared by several runs, so
        only the caller can name the run in the error.

        Raises:
            JournalCorruptError: the payload is missing, its digest does not
                check, or its sealed bytes do not decode (too deeply nested,
                invalid UTF-8, an unknown MessagePack extension: a damaged or
                crafted journal).
        """
        data = self._store.get_payload(address)
        try:
            return jf.decode_payload(data)
        except jf.FormatError as exc:
            # A FormatError escaping here would be a traceback in the CLI and a
            # "malformed input" to callers; the bytes came from the journal.
            where = "" if run_id is None else f"run {run_id!r}"
            if seq is not None:
                where += f" event seq {seq}"
            if key is not None:
                where += f" key {key}"
            where = f" ({where.strip()})" if where else ""
            raise JournalCorruptError(
                f"the payload {address.hex()[:16]}…{where} cannot be read: {exc};"
                " the journal is damaged or was crafted: run `replay-engine verify`"
                " and restore it from a copy",
                run_id=run_id,
                seq=seq,
                key=key,
            ) from None

    def _payload_of(self, run_id: str) -> Callable[[bytes], Any]:
        """:meth:`payload` for reads of ``run_id`` (its errors name the run)."""
        return functools.partial(self.payload, run_id=run_id)

    def _pending_effects(
        self, run_id: str, events: Sequence[StoredEvent] | None = None
    ) -> list[PendingEffect]:
        """External effects without a result, from a fold of the whole journal.

        ``events``: the whole journal, when the caller has read it already.
        """
        if events is None:
            events = self._store.read_events(run_id)
        return pending_effects(events, self._payload_of(run_id))

    def _recorded_result(self, record: jf.RunRecord) -> Any:
        for stored in reversed(
            self._store.read_events(record.run_id, max(0, record.events - 4))
        ):
            if isinstance(stored.event, jf.RunCompleted):
                return self.payload(
                    stored.event.result, run_id=record.run_id, seq=stored.seq
                )
        raise JournalCorruptError(
            f"run {record.run_id!r} is marked completed but its last events hold no"
            " run_completed record",
            run_id=record.run_id,
        )


def _is_executor(executor: object) -> bool:
    import concurrent.futures as cf  # not at start-up: only with an executor

    return isinstance(executor, cf.Executor)


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to its end for a synchronous caller (never inside a loop)."""
    import asyncio  # only the methods that execute pay for it

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass  # the normal case; run outside `except` so tracebacks stay clean
    else:
        coro.close()
        raise ReplayEngineError(
            "Engine.run/resume were called inside a running event loop; await"
            " run_async/resume_async instead"
        )
    from .._run import gc_relax

    # Relaxed from here, not only while the process executes: a process's
    # first run or resume imports the run layer in this call, and with the
    # default thresholds the collector walked what those imports allocated
    # several times (a middle-generation pass measured 1-2 ms of a first
    # resume's ~13; bench/README.md, s19i). Nested with the execution's own.
    with gc_relax.relaxed():
        return asyncio.run(coro)
