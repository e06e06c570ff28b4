"""Worker processes for the concurrency tests, started through a forkserver.

The forkserver imports replay_engine once (``set_forkserver_preload``), so
each of the 40+ posting processes starts in milliseconds instead of paying
an interpreter start-up: the processes are real (own pid, own LMDB
environment handle) and are released together by a barrier, not by polling.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import traceback
from typing import Any

_CTX: Any = None


def context() -> Any:
    global _CTX  # noqa: PLW0603 - one forkserver context per test session
    if _CTX is None:
        method = (
            "forkserver"
            if "forkserver" in multiprocessing.get_all_start_methods()
            else "spawn"
        )
        _CTX = multiprocessing.get_context(method)
        if method == "forkserver":
            _CTX.set_forkserver_preload(
                ["replay_engine", "tests.external.workers", "tests.external.ext_flows"]
            )
    return _CTX


def poster(
    journal: str,
    run_id: str,
    index: int,
    posts: list[tuple[str, Any]],
    barrier: Any,
    queue: Any,
) -> None:
    """Open an engine, wait at the barrier, post; report (index, outcomes)."""
    from replay_engine import Engine, PostRejected

    try:
        engine = Engine(journal)
        barrier.wait(timeout=120)
        out: list[dict[str, Any]] = []
        for key, value in posts:
            started = time.perf_counter()
            try:
                seq = engine.post(run_id, key, result=value, by=f"pid-{os.getpid()}")
                out.append({"key": key, "won": True, "seq": seq})
            except PostRejected as exc:
                out.append({"key": key, "won": False, "reason": exc.reason})
            out[-1]["took"] = time.perf_counter() - started
        engine.close()
        queue.put((index, os.getpid(), out, None))
    except BaseException:
        queue.put((index, os.getpid(), None, traceback.format_exc()))
        raise


def iterator(journal: str, run_id: str, index: int, barrier: Any, queue: Any) -> None:
    """Iterate the run a few times while the posters post."""
    from replay_engine import Engine

    try:
        engine = Engine(journal)
        barrier.wait(timeout=120)
        statuses = [engine.iterate(run_id).status for _ in range(5)]
        engine.close()
        queue.put((index, os.getpid(), statuses, None))
    except BaseException:
        queue.put((index, os.getpid(), None, traceback.format_exc()))
        raise


def run_together(
    journal: str,
    run_id: str,
    jobs: list[list[tuple[str, Any]]],
    *,
    iterators: int = 0,
) -> tuple[list[list[dict[str, Any]]], list[list[str]], set[int]]:
    """One poster process per job (plus ``iterators``), released together.

    Returns each job's outcomes (in job order), each iterator's statuses, and
    the pids of every process (all distinct from this one).
    """
    ctx = context()
    parties = len(jobs) + iterators
    barrier = ctx.Barrier(parties)
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=poster, args=(journal, run_id, i, job, barrier, queue))
        for i, job in enumerate(jobs)
    ]
    procs += [
        ctx.Process(
            target=iterator, args=(journal, run_id, len(jobs) + i, barrier, queue)
        )
        for i in range(iterators)
    ]
    for p in procs:
        p.start()
    results: dict[int, Any] = {}
    pids: set[int] = set()
    try:
        for _ in procs:
            index, pid, out, error = queue.get(timeout=180)
            assert error is None, f"worker {index} (pid {pid}) failed:\n{error}"
            results[index] = out
            pids.add(pid)
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
                p.join()
        queue.close()
        queue.join_thread()
    for p in procs:
        assert p.exitcode == 0, f"worker pid {p.pid} exited {p.exitcode}"
    assert os.getpid() not in pids and len(pids) == parties
    posted = [results[i] for i in range(len(jobs))]
    iterated = [results[len(jobs) + i] for i in range(iterators)]
    return posted, iterated, pids


def post_loop(journal: str, run_id: str, n: int, rounds: int, ready: Any) -> None:
    """Claim, post and signal in a tight loop (to be SIGKILLed at any moment)."""
    from replay_engine import Engine, PostRejected

    engine = Engine(journal)
    ready.set()
    for r in range(rounds):
        for i in range(n):
            try:
                if i % 5 == 0:
                    engine.claim(run_id, f"w{r}", lease=0.001, limit=1)
                engine.post(run_id, f"0.{i}.0", result=3 * i + 1, by="poster")
            except PostRejected:
                pass
        engine.post_event(run_id, "tick", r)
    engine.close()


def start_post_loop(journal: str, run_id: str, n: int, rounds: int) -> Any:
    """Start :func:`post_loop` in its own process; returns it once it is writing."""
    ctx = context()
    ready = ctx.Event()
    proc = ctx.Process(target=post_loop, args=(journal, run_id, n, rounds, ready))
    proc.start()
    assert ready.wait(timeout=120), "the posting process did not start"
    return proc
