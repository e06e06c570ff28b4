"""Tasks and processes shared by the engine tests and the crash children.

Every task reports each dispatch on a *side channel* outside the journal: a
JSON line appended (one ``os.write`` on an ``O_APPEND`` descriptor, so
concurrent threads never interleave) to the file named by the environment
variable ``REPLAY_TEST_SIDE``. Tests count dispatches there, never in the
journal they are checking.

Process-pool tasks get the side-channel path in their args instead: a pool
process inherits the environment of the moment the pool started.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from replay_engine import TaskFailed, external, task, task_context

SIDE_ENV = "REPLAY_TEST_SIDE"
KILL_FLAG_ENV = "REPLAY_TEST_KILL_FLAG"
KILL_AT_START_ENV = "REPLAY_TEST_KILL_AT_START"


# -- the side channel ------------------------------------------------------------


def note(kind: str, task_name: str, path: str | None = None, **fields: Any) -> None:
    """Append one line about the current task attempt to the side channel."""
    path = path or os.environ.get(SIDE_ENV)
    if not path:
        return
    tc = task_context()
    line = {
        "kind": kind,
        "task": task_name,
        "pid": os.getpid(),
        "run": tc.run_id,
        "key": tc.key,
        "attempt": tc.attempt,
        "idem": tc.idempotency_key,
        "at": time.time(),
        **fields,
    }
    data = (json.dumps(line, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    kill_at = os.environ.get(KILL_AT_START_ENV)
    # Crash children only: die inside the n-th attempt, after noting it.
    if kill_at and kind == "start" and len(read_side(path)) >= int(kill_at):
        os.kill(os.getpid(), signal.SIGKILL)


def read_side(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every line of a side-channel file (none if it does not exist)."""
    p = Path(path)
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line]


def starts(lines: list[dict[str, Any]], **match: Any) -> list[dict[str, Any]]:
    """The ``start`` lines (one per dispatched attempt) matching ``match``."""
    return [
        line
        for line in lines
        if line["kind"] == "start" and all(line.get(k) == v for k, v in match.items())
    ]


# -- concurrency gauge -------------------------------------------------------------


class Gauge:
    """Counts attempts executing at once (thread-safe); remembers the peak."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.current = 0
        self.peak = 0

    def reset(self) -> None:
        with self._lock:
            self.current = 0
            self.peak = 0

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._lock:
            self.current += 1
            self.peak = max(self.peak, self.current)
        try:
            yield
        finally:
            with self._lock:
                self.current -= 1


GAUGE = Gauge()


class Gate:
    """Lets a test hold a task until it says so (threading events: any thread)."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()


GATES: dict[str, Gate] = {}


def gate(name: str) -> Gate:
    """A fresh gate under ``name`` (replacing any earlier one)."""
    GATES[name] = Gate()
    return GATES[name]


# Per-key latencies for the schedule tests: ``DELAYS["seed"]`` picks them.
DELAYS: dict[str, Any] = {"seed": None, "max": 0.005}


def delay_for(key: str) -> float:
    seed = DELAYS["seed"]
    if seed is None:
        return 0.0
    return random.Random(f"{seed}/{key}").random() * float(DELAYS["max"])


# -- tasks ------------------------------------------------------------------------


@task
def add(a: int, b: int) -> int:
    note("start", "add")
    return a + b


@task
def double(x: int) -> int:
    note("start", "double")
    return x * 2


@task
def echo(value: Any) -> Any:
    note("start", "echo")
    return value


@task
async def slow_echo(value: Any, delay: float) -> Any:
    note("start", "slow_echo")
    await asyncio.sleep(delay)
    return value


@task
def sync_sleep_echo(value: Any, delay: float) -> Any:
    note("start", "sync_sleep_echo")
    time.sleep(delay)
    return value


@task(retries=2, backoff=0.0)
def flaky(x: int) -> int:
    """Fails on its first attempt at every key, succeeds on the second."""
    attempt = task_context().attempt
    note("start", "flaky")
    if attempt == 1:
        raise ConnectionError(f"transient failure of attempt {attempt} for {x}")
    return x * 10


@task(retries=2, backoff=0.0)
def always_fails(x: int) -> int:
    note("start", "always_fails")
    raise ConnectionError(f"attempt {task_context().attempt} failed for {x}")


@task
def boom(message: str) -> None:
    note("start", "boom")
    raise ValueError(message)


@task(retries=2, backoff=0.05)
def backed_off(x: int) -> int:
    """Fails twice, then succeeds: retried after 0.05 s, then 0.1 s."""
    attempt = task_context().attempt
    note("start", "backed_off")
    if attempt < 3:
        raise ConnectionError(f"attempt {attempt} failed")
    return x


@task
def unencodable_result(x: int) -> object:
    note("start", "unencodable_result")
    return object()


@task(timeout=0.2)
async def sleepy(seconds: float) -> str:
    note("start", "sleepy")
    await asyncio.sleep(seconds)
    return "woke"


@task(timeout=0.2)
def sleepy_sync(seconds: float) -> str:
    note("start", "sleepy_sync")
    time.sleep(seconds)
    return "woke"


@external(kind="agent")
def review(diff: str) -> dict[str, Any]:
    """Done by an agent outside the engine; this body must never run."""
    note("start", "review")
    raise AssertionError("an external task's body was executed by the engine")


@task
def whoami(tag: str) -> dict[str, Any]:
    """Where the attempt ran and under which idempotency key."""
    note("start", "whoami")
    tc = task_context()
    return {
        "tag": tag,
        "pid": os.getpid(),
        "thread": threading.current_thread().name,
        "idem": tc.idempotency_key,
    }


@task(executor="process")
def cpu_square(x: int, side: str) -> dict[str, int]:
    note("start", "cpu_square", path=side)
    return {"square": x * x, "pid": os.getpid()}


@task(executor="process")
def cpu_fail(x: int) -> int:
    raise ArithmeticError(f"cannot square {x}")


def plain_square(x: int) -> dict[str, int]:
    """A plain function (no decorator) for executors that take tasks by reference."""
    return {"square": x * x, "pid": os.getpid()}


@task
def held(i: int, hold: float) -> int:
    """Holds a slot of the gauge for ``hold`` seconds (in a thread)."""
    note("start", "held")
    with GAUGE.held():
        time.sleep(hold)
    return i


@task
async def held_async(i: int, hold: float) -> int:
    note("start", "held_async")
    with GAUGE.held():
        await asyncio.sleep(hold)
    return i


@task
async def wait_gate(name: str) -> str:
    """Blocks until the test releases gate ``name``; notes a cancellation."""
    note("start", "wait_gate")
    g = GATES[name]
    g.entered.set()
    try:
        while not g.release.is_set():
            await asyncio.sleep(0.005)
    except asyncio.CancelledError:
        note("cancelled", "wait_gate")
        raise
    note("end", "wait_gate")
    return f"passed {name}"


@task
def wait_file(path: str) -> str:
    """Blocks (in a thread) until ``path`` exists: a gate across processes."""
    note("start", "wait_file")
    deadline = time.monotonic() + 60
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.01)
    return "opened"


@task
def idem_probe(tag: str) -> str:
    note("start", "idem_probe")
    return task_context().idempotency_key


@task
def suicide(x: int) -> int:
    """SIGKILLs its own process on its first attempt ever (a flag file says)."""
    note("start", "suicide")
    flag = os.environ.get(KILL_FLAG_ENV)
    if flag and not os.path.exists(flag):
        Path(flag).write_text("killed once")
        os.kill(os.getpid(), signal.SIGKILL)
    return x + 1000


@task
async def jitter(value: int) -> int:
    note("start", "jitter")
    await asyncio.sleep(delay_for(task_context().key))
    return value * 3


@task
def jitter_sync(value: int) -> int:
    note("start", "jitter_sync")
    time.sleep(delay_for(task_context().key))
    return value + 7


@task
def jitter_fail(value: int) -> int:
    note("start", "jitter_fail")
    time.sleep(delay_for(task_context().key))
    raise KeyError(f"no item {value}")


# -- processes --------------------------------------------------------------------


async def mixed_process(inputs: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """Sequential calls, parallel.all, a nested parallel.map, a caught failing
    branch and a retried task: the process of the crash sweep.
    """
    base = await ctx.task(add, {"a": inputs["x"], "b": 1})  # 0
    pair = await ctx.parallel.all(  # 1
        [
            lambda: ctx.task(double, {"x": base}),  # 1.0.0
            lambda: ctx.task(slow_echo, {"value": base, "delay": 0.002}),  # 1.1.0
            lambda: ctx.task(flaky, {"x": base}),  # 1.2.0 (retried)
        ]
    )

    async def per_item(item: int) -> dict[str, Any]:
        inner = await ctx.parallel.map(  # 2.j.0
            range(item + 1), lambda j: ctx.task(add, {"a": item, "b": j}), limit=2
        )
        try:
            if item == 1:
                await ctx.task(boom, {"message": f"item {item} is bad"})  # 2.1.1
            status = "ok"
        except TaskFailed as exc:
            status = f"{exc.error_type}: {exc.message}"
        return {"item": item, "inner": inner, "status": status}

    rows = await ctx.parallel.map(inputs["items"], per_item, limit=2)  # 2
    ctx.log("rows done", count=len(rows))
    uid = ctx.uuid()  # 3
    total = await ctx.task(  # 4
        add, {"a": sum(sum(r["inner"]) for r in rows), "b": sum(pair)}
    )
    return {"base": base, "pair": pair, "rows": rows, "uid": str(uid), "total": total}


async def suicide_process(inputs: dict[str, Any], ctx: Any) -> dict[str, Any]:
    first = await ctx.task(add, {"a": 1, "b": 2})
    probe = await ctx.task(idem_probe, {"tag": "before"})
    both = await ctx.parallel.all(
        [
            lambda: ctx.task(suicide, {"x": first}),
            lambda: ctx.task(double, {"x": first}),
        ]
    )
    last = await ctx.task(idem_probe, {"tag": "after"})
    return {"first": first, "probe": probe, "both": both, "last": last}


async def locked_process(inputs: dict[str, Any], ctx: Any) -> str:
    """Holds its run (and its lock) until ``inputs["open"]`` exists."""
    await ctx.task(add, {"a": 1, "b": 1})
    return await ctx.task(wait_file, {"path": inputs["open"]})
