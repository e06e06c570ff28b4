"""How sync tasks are grouped into thread-pool jobs.

Counted with a real thread pool that records what each job it is given holds:
tiny tasks, once timed, go many to a job; slow ones go one to a job, so they
still run side by side.
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from replay_engine import Engine, task, task_context


class CountingPool(cf.ThreadPoolExecutor):
    """A thread pool that remembers how many effects each job carried."""

    def __init__(self) -> None:
        super().__init__(max_workers=4)
        self.jobs: list[int] = []
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self.jobs.append(len(args[0]))  # run_local_chunk(items, run_id)
        return super().submit(fn, *args, **kwargs)


@task(name="jobs.tiny")
def tiny(i: int) -> int:
    return i


@task(name="jobs.slow")
def slow(i: int) -> int:
    time.sleep(0.02)
    return i


async def tiny_then_more(inputs: Any, ctx: Any) -> int:
    first = await ctx.parallel.map(range(50), lambda i: ctx.task(tiny, {"i": i}))
    more = await ctx.parallel.map(range(2000), lambda i: ctx.task(tiny, {"i": i}))
    return sum(first) + sum(more)


async def slow_twice(inputs: Any, ctx: Any) -> int:
    first = await ctx.parallel.map(range(8), lambda i: ctx.task(slow, {"i": i}))
    again = await ctx.parallel.map(range(24), lambda i: ctx.task(slow, {"i": i}))
    return sum(first) + sum(again)


def _jobs_of(path: Path, process: Any) -> tuple[Any, list[int]]:
    """Run ``process`` on a counting pool: its result, and what each job held."""
    pool = CountingPool()
    try:
        with Engine(str(path), executor=pool) as engine:
            result = engine.run(process, None).result
    finally:
        pool.shutdown()
    return result, pool.jobs


def test_timed_tiny_tasks_go_many_to_a_job(tmp_path: Path) -> None:
    result, jobs = _jobs_of(tmp_path / "j", tiny_then_more)
    assert result == sum(range(50)) + sum(range(2000))
    assert sum(jobs) == 2050
    # The first 50, not yet timed, are spread over the 4 workers: jobs of 6.
    assert jobs[0] == 50 // (2 * 4)
    # Once timed, a job holds every ready call (up to the in-flight bound),
    # not one 2 * workers-th of them: few jobs for 2,000 tiny tasks.
    assert max(jobs) > 64
    assert len(jobs) < 2050 // 64


def test_slow_tasks_go_one_to_a_job(tmp_path: Path) -> None:
    result, jobs = _jobs_of(tmp_path / "j", slow_twice)
    assert result == sum(range(8)) + sum(range(24))
    # Untimed, 8 calls over 4 workers go one per job (24 would go 3 per job);
    # timed at 20 ms each, 24 go one per job too, so they run side by side.
    assert jobs == [1] * 32


async def wide_tiny(inputs: Any, ctx: Any) -> int:
    out = await ctx.parallel.map(range(1500), lambda i: ctx.task(tiny, {"i": i}))
    return sum(out)


def test_task_costs_outlive_the_run(tmp_path: Path) -> None:
    """A second run starts with the costs the first measured (engine-wide)."""
    pool = CountingPool()
    try:
        with Engine(str(tmp_path / "j"), executor=pool) as engine:
            first = engine.run(wide_tiny, None, run_id="first")
            first_jobs, pool.jobs = pool.jobs, []
            second = engine.run(wide_tiny, None, run_id="second")
            second_jobs = pool.jobs
    finally:
        pool.shutdown()
    assert first.result == second.result == sum(range(1500))
    assert sum(first_jobs) == sum(second_jobs) == 1500
    # The first run's first fan-out, untimed, goes in jobs of 64 at most.
    assert first_jobs[0] == 64
    # The second run knows the task is tiny from its first commit on: every
    # ready call (up to the 1,024 in flight) in one job, not sixteen.
    assert second_jobs[0] > 64
    assert len(second_jobs) <= 4


@task(name="jobs.whoami")
def whoami(i: int) -> str:
    if i % 7 == 3:
        raise ValueError(f"item {i} fails")
    current = task_context()
    return f"{current.key}#{current.attempt}"


async def wide_whoami(inputs: Any, ctx: Any) -> list[str]:
    out = await ctx.parallel.map(
        range(300),
        lambda i: ctx.task(whoami, {"i": i}),
        settled=True,
    )
    return [r if isinstance(r, str) else "failed" for r in out]


def test_each_attempt_of_a_job_sees_its_own_task_context(tmp_path: Path) -> None:
    """Many attempts to a job: each sees its own key, failures stay their own,
    and the worker threads hold no task context once the jobs are done."""
    pool = CountingPool()
    try:
        with Engine(str(tmp_path / "j"), executor=pool) as engine:
            engine.run(wide_tiny, None, run_id="timing")  # tiny: many to a job
            pool.jobs = []
            run = engine.run(wide_whoami, None, run_id="who")
        # Past the counting submit: a plain job on the same worker threads.
        after = [
            cf.ThreadPoolExecutor.submit(pool, _context_in_worker).result()
            for _ in range(8)
        ]
    finally:
        pool.shutdown()
    assert max(pool.jobs) > 1
    assert run.result == ["failed" if i % 7 == 3 else f"0.{i}.0#1" for i in range(300)]
    assert after == [None] * 8


def _context_in_worker() -> Any:
    try:
        return task_context()
    except RuntimeError:  # outside a task
        return None
