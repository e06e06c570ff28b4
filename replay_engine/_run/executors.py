"""Where sync tasks run: the engine's executor, a thread pool, a process pool.

Pools are created on first use and shut down with the engine; an executor the
user passed in is used as given and never shut down by the engine.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
from typing import Any

from . import jobs
from .tasks import TaskDef


class ExecutorSet:
    """Where sync tasks run: the engine's executor, a thread pool, a process pool."""

    def __init__(
        self, executor: Any | None, *, owned: bool = False, processes: bool = False
    ) -> None:
        self._given = executor
        # Every sync task goes to the engine's own process pool.
        self._all_in_processes = processes
        # The engine built it (from a distributed.Client or an address).
        self._owned = owned
        # ``cf.ThreadPoolExecutor`` is imported on first access (about 1 ms:
        # concurrent.futures.thread, queue): not for a resume without a
        # thread task, so only when an executor was given.
        self._threads: cf.ThreadPoolExecutor | None = (
            executor
            if executor is not None and isinstance(executor, cf.ThreadPoolExecutor)
            else None
        )
        self._own_threads = False
        self._processes: cf.ProcessPoolExecutor | None = None
        self.task_cost: dict[str, float] = {}
        """Seconds per attempt of each thread-pool task, a running average.

        Kept here, engine-wide, not per run: a run that started without it
        sent its first fan-out to the pool in small chunks (the cost unknown),
        a pool job, a hand-back and a GIL round trip per 64 tiny tasks. Plain
        dict operations: runs in other threads of a worker only ever lose an
        update of a heuristic.
        """

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
            # Workers die with this process and leave its stdio alone, so
            # killing the engine leaves nothing behind holding a caller's pipe.
            self._processes = cf.ProcessPoolExecutor(
                mp_context=multiprocessing.get_context(method),
                initializer=jobs.worker_init,
                initargs=(os.getpid(),),
            )
        return self._processes

    def for_task(self, tdef: TaskDef[..., Any]) -> tuple[cf.Executor, bool]:
        """The executor for a sync task, and whether it takes tasks by reference."""
        if tdef.executor == "process" or (
            self._all_in_processes and tdef.executor != "thread"
        ):
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
            _stop_pool(self._processes)
            self._processes = None
        if self._owned and self._given is not None:
            self._given.shutdown(wait=False, cancel_futures=True)
            self._owned = False


def _stop_pool(pool: cf.ProcessPoolExecutor) -> None:
    """Shut down a pool the engine owns, ending its workers now.

    Whatever still runs there was abandoned (a stopped run) and has nobody to
    deliver its result to; waiting for it would keep this process, and the
    caller's pipes, alive until it ends.
    """
    # A private attribute, but the only handle on the workers (3.14 adds
    # terminate_workers()).
    workers = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for worker in workers:
        if worker.is_alive():
            worker.terminate()
    for worker in workers:
        worker.join(timeout=2.0)
