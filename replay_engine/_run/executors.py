"""Where sync tasks run: the engine's executor, a thread pool, a process pool.

Pools are created on first use and shut down with the engine; an executor the
user passed in is used as given and never shut down by the engine.
"""

from __future__ import annotations

import concurrent.futures as cf
from typing import Any

from .tasks import TaskDef


class ExecutorSet:
    """Where sync tasks run: the engine's executor, a thread pool, a process pool."""

    def __init__(self, executor: Any | None, *, owned: bool = False) -> None:
        self._given = executor
        # The engine built it (from a distributed.Client or an address).
        self._owned = owned
        self._threads: cf.ThreadPoolExecutor | None = (
            executor if isinstance(executor, cf.ThreadPoolExecutor) else None
        )
        self._own_threads = False
        self._processes: cf.ProcessPoolExecutor | None = None

    def threads(self) -> cf.ThreadPoolExecutor:
        if self._threads is None:
            self._threads = cf.ThreadPoolExecutor(thread_name_prefix="replay-engine")
            self._own_threads = True
        return self._threads

    def processes(self) -> cf.ProcessPoolExecutor:
        if self._processes is None:
            import multiprocessing

            # forkserver/spawn: a fork of this process would inherit the LMDB
            # handle and the run locks, which must never happen.
            method = (
                "forkserver"
                if "forkserver" in multiprocessing.get_all_start_methods()
                else "spawn"
            )
            self._processes = cf.ProcessPoolExecutor(
                mp_context=multiprocessing.get_context(method)
            )
        return self._processes

    def for_task(self, tdef: TaskDef) -> tuple[cf.Executor, bool]:
        """The executor for a sync task, and whether it takes tasks by reference."""
        if tdef.executor == "process":
            return self.processes(), True
        if tdef.executor == "thread" or self._given is None:
            return self.threads(), False
        if isinstance(self._given, cf.ThreadPoolExecutor):
            return self._given, False
        return self._given, True

    def shutdown(self) -> None:
        """Shut down the pools this set created (never one the user passed in)."""
        if self._own_threads and self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)
            self._threads = None
        if self._processes is not None:
            self._processes.shutdown(wait=False, cancel_futures=True)
            self._processes = None
        if self._owned and self._given is not None:
            self._given.shutdown(wait=False, cancel_futures=True)
            self._owned = False
