"""Tasks and processes for the retry-policy tests (importable by pool processes).

Every task appends one line per attempt to the side file named by its ``side``
argument: ``{"task", "attempt", "max", "pid"}``, so attempts are counted outside
the journal under test.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

from replay_engine import NonRetryable, TaskFailed, task, task_context


class CardDeclined(NonRetryable):
    """A failure no retry can fix."""


class RateLimited(ConnectionError):
    """A transient failure of our own (a ConnectionError, so retry_on matches it)."""


def _note(side: str, name: str) -> int:
    tc = task_context()
    with open(side, "a", encoding="utf-8") as f:
        line = {
            "task": name,
            "attempt": tc.attempt,
            "max": tc.max_attempts,
            "pid": os.getpid(),
        }
        f.write(json.dumps(line) + "\n")
    return tc.attempt


def attempts_of(side: str | Path, name: str | None = None) -> list[tuple[int, int]]:
    """``(attempt, max_attempts)`` of every attempt noted (of task ``name``)."""
    p = Path(side)
    if not p.exists():
        return []
    lines = [json.loads(x) for x in p.read_text().splitlines() if x]
    return [(x["attempt"], x["max"]) for x in lines if name in (None, x["task"])]


_ERRORS: dict[str, type[Exception]] = {
    "value": ValueError,
    "key": KeyError,
    "connection": ConnectionError,
    "reset": ConnectionResetError,
    "rate": RateLimited,
    "declined": CardDeclined,
    "nonretryable": NonRetryable,
}


@task(retries=3, non_retryable=(ValueError,))
def refuses_values(side: str, error: str) -> str:
    """Always fails with the named error."""
    attempt = _note(side, "refuses_values")
    raise _ERRORS[error](f"attempt {attempt}")


@task(retries=3, retry_on=(ConnectionError,))
def only_connections(side: str, error: str) -> str:
    attempt = _note(side, "only_connections")
    raise _ERRORS[error](f"attempt {attempt}")


@task(retries=2)
def sync_counts(side: str) -> list[int]:
    """Fails until its last attempt, which returns what it saw."""
    tc = task_context()
    _note(side, "sync_counts")
    if tc.attempt < tc.max_attempts:
        raise RateLimited(f"attempt {tc.attempt}")
    return [tc.attempt, tc.max_attempts]


@task(retries=2, executor="process")
def process_counts(side: str) -> list[int]:
    tc = task_context()
    _note(side, "process_counts")
    if tc.attempt < tc.max_attempts:
        raise RateLimited(f"attempt {tc.attempt}")
    return [tc.attempt, tc.max_attempts]


@task(retries=2, executor="process", non_retryable=(ValueError,))
def process_refuses(side: str) -> str:
    _note(side, "process_refuses")
    raise ValueError("no retry for this, even in another process")


@task(retries=2)
async def async_counts(side: str) -> list[int]:
    tc = task_context()
    _note(side, "async_counts")
    if tc.attempt < tc.max_attempts:
        raise RateLimited(f"attempt {tc.attempt}")
    return [tc.attempt, tc.max_attempts]


@task(retries=4, backoff=1.0, max_backoff=3.0, jitter=True)
def jittery(side: str) -> str:
    attempt = _note(side, "jittery")
    if attempt < 5:
        raise RateLimited(f"attempt {attempt}")
    return "done"


@task(retries=4, backoff=1.0, max_backoff=3.0)
def capped(side: str) -> str:
    attempt = _note(side, "capped")
    if attempt < 5:
        raise RateLimited(f"attempt {attempt}")
    return "done"


def _fail_or_die(side: str, name: str, kill_at: int) -> str:
    attempt = _note(side, name)
    if attempt == kill_at and not os.path.exists(side + ".resumed"):
        os.kill(os.getpid(), signal.SIGKILL)
    raise RateLimited(f"attempt {attempt}")


@task(retries=2)
def quick_retry(side: str, kill_at: int) -> str:
    """Fails every attempt; SIGKILLs its own process on attempt ``kill_at``."""
    return _fail_or_die(side, "quick_retry", kill_at)


@task(retries=2, backoff=600.0, max_backoff=3600.0)
def slow_retry(side: str, kill_at: int) -> str:
    """Like ``quick_retry``, with a wait between attempts a test kills the run in."""
    return _fail_or_die(side, "slow_retry", kill_at)


async def call(inputs: dict[str, Any], ctx: Any) -> Any:
    """Call ``inputs["task"]`` (a name in this module) and report the failure."""
    tdef = globals()[inputs["task"]]
    try:
        return {"value": await ctx.task(tdef, inputs["args"])}
    except TaskFailed as exc:
        return {"error_type": exc.error_type, "message": exc.message}
