"""Retry policies (issue 15): which failures retry, backoff and jitter, the
attempt and the maximum seen by the task, ``error_type`` on ``TaskFailed``.

Real engines on real LMDB journals in ``tmp_path``; attempts are counted from a
side file the tasks append to (``retry_flows``), never from the journal under
test. The crash tests SIGKILL a real child interpreter.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest
from blake3 import blake3

import journal_format as jf
from replay_engine import Engine, NonRetryable, ReplayEngineError, task
from replay_engine._run.hooks import Hooks  # the testing seam: Engine(hooks=...)
from tests.children import start_python

from . import retry_flows as rf
from .replay_helpers import MakeEngine


def _call(engine: Engine, name: str, run_id: str = "r", **args: Any) -> Any:
    run = engine.run(rf.call, {"task": name, "args": args}, run_id=run_id)
    assert run.status == "completed", run.error
    return run.result


def _failed_attempts(engine: Engine, run_id: str = "r") -> list[Any]:
    return [
        s.event for s in engine.events(run_id) if isinstance(s.event, jf.AttemptFailed)
    ]


# -- which failures retry ------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "attempts", "error_type"),
    [
        ("value", [(1, 4)], "builtins.ValueError"),
        ("connection", [(1, 4), (2, 4), (3, 4), (4, 4)], "builtins.ConnectionError"),
        ("declined", [(1, 4)], "tests.engine.retry_flows.CardDeclined"),
        ("nonretryable", [(1, 4)], "replay_engine.NonRetryable"),
    ],
)
def test_non_retryable_types_and_nonretryable_end_the_call_at_once(
    make_engine: MakeEngine, tmp_path: Path, error: str, attempts: Any, error_type: str
) -> None:
    side = str(tmp_path / "side.jsonl")
    engine = make_engine()
    result = _call(engine, "refuses_values", side=side, error=error)
    assert result == {"error_type": error_type, "message": f"attempt {len(attempts)}"}
    assert rf.attempts_of(side) == attempts
    failed = [
        s.event for s in engine.events("r") if isinstance(s.event, jf.EffectFailed)
    ]
    assert [f.attempts for f in failed] == [len(attempts)]
    # The journal records as it always did (builtins by their bare name):
    # error_type qualifies the name when it is read, for old journals too.
    assert failed[0].error.type == error_type.removeprefix("builtins.")
    # Replayed from the journal, the same error_type: the process takes the same path.
    assert engine.resume("r").result == result
    assert len(rf.attempts_of(side)) == len(attempts)


@pytest.mark.parametrize(
    ("error", "tries"),
    [("connection", 4), ("reset", 4), ("rate", 4), ("key", 1), ("value", 1)],
)
def test_retry_on_retries_only_those_types_and_their_subclasses(
    make_engine: MakeEngine, tmp_path: Path, error: str, tries: int
) -> None:
    side = str(tmp_path / "side.jsonl")
    engine = make_engine()
    _call(engine, "only_connections", side=side, error=error)
    assert len(rf.attempts_of(side)) == tries
    assert len(_failed_attempts(engine)) == tries - 1


def test_policy_arguments_are_checked() -> None:
    def f() -> None: ...

    with pytest.raises(TypeError, match="retry_on"):
        task(retry_on=("ValueError",))(f)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="non_retryable"):
        task(non_retryable=(int,))(f)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_backoff"):
        task(max_backoff=-1.0)(f)
    assert task(non_retryable=ValueError)(f).non_retryable == (ValueError,)  # type: ignore[arg-type]


def test_nonretryable_is_a_plain_exception_exported_under_its_public_name() -> None:
    assert issubclass(NonRetryable, Exception)
    assert not issubclass(NonRetryable, ReplayEngineError)
    assert f"{NonRetryable.__module__}.{NonRetryable.__qualname__}" == (
        "replay_engine.NonRetryable"
    )


# -- the attempt and the maximum, wherever the task runs -------------------------------


@pytest.mark.parametrize("name", ["sync_counts", "async_counts", "process_counts"])
def test_task_sees_its_attempt_and_the_maximum(
    make_engine: MakeEngine, tmp_path: Path, name: str
) -> None:
    side = str(tmp_path / "side.jsonl")
    engine = make_engine()
    assert _call(engine, name, side=side) == {"value": [3, 3]}
    assert rf.attempts_of(side) == [(1, 3), (2, 3), (3, 3)]


def test_process_pool_failures_match_the_policy_by_class(
    make_engine: MakeEngine, tmp_path: Path
) -> None:
    side = str(tmp_path / "side.jsonl")
    engine = make_engine()
    result = _call(engine, "process_refuses", side=side)
    assert result["error_type"] == "builtins.ValueError"
    assert rf.attempts_of(side) == [(1, 3)]


# -- backoff: capped, jittered deterministically ---------------------------------------


def _expected_jittered(run_id: str, key: str, attempt: int, base: float) -> float:
    """The documented formula, written out independently of the engine."""
    digest = blake3(f"{run_id}\x00{key}\x00{attempt}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    return base * (0.5 + u / 2)


def _with_sleeps(make_engine: MakeEngine, name: str) -> tuple[Engine, list[float]]:
    asked: list[float] = []

    def sleep(key: str, seconds: float) -> float:
        asked.append(seconds)
        return 0.0

    return make_engine(name, hooks=Hooks(sleep=sleep)), asked


def test_backoff_doubles_up_to_max_backoff(
    make_engine: MakeEngine, tmp_path: Path
) -> None:
    engine, asked = _with_sleeps(make_engine, "j")
    assert _call(engine, "capped", side=str(tmp_path / "s")) == {"value": "done"}
    assert asked == [1.0, 2.0, 3.0, 3.0]
    assert [e.retry_in for e in _failed_attempts(engine)] == asked


def test_jitter_is_the_documented_formula_and_the_same_on_every_replay(
    make_engine: MakeEngine, tmp_path: Path
) -> None:
    engine, asked = _with_sleeps(make_engine, "a")
    assert _call(engine, "jittery", side=str(tmp_path / "s1")) == {"value": "done"}
    bases = [1.0, 2.0, 3.0, 3.0]
    expected = [_expected_jittered("r", "0", n, b) for n, b in enumerate(bases, 1)]
    assert asked == pytest.approx(expected, rel=1e-12)
    assert all(0.5 * b <= d < b for d, b in zip(asked, bases, strict=True))
    assert len(set(asked)) == 4  # drawn per attempt, not one factor for all
    recorded = [e.retry_in for e in _failed_attempts(engine)]
    assert recorded == asked
    # The same run id in another journal (a test, a replay elsewhere): same waits.
    other, asked_again = _with_sleeps(make_engine, "b")
    _call(other, "jittery", side=str(tmp_path / "s2"))
    assert asked_again == asked
    # Another run id: other waits.
    third, asked_other = _with_sleeps(make_engine, "c")
    _call(third, "jittery", run_id="r2", side=str(tmp_path / "s3"))
    assert asked_other != asked


# -- SIGKILL between attempts ----------------------------------------------------------

CHILD = r"""
import sys
from replay_engine import Engine
from tests.engine import retry_flows as rf
journal, name, side, kill_at = sys.argv[1:]
engine = Engine(journal)
engine.run(rf.call, {"task": name, "args": {"side": side, "kill_at": int(kill_at)}},
           run_id="r")
print("NOT KILLED")
"""


def _resume_after_kill(tmp_path: Path, side: str) -> tuple[Any, list[Any], list[float]]:
    Path(side + ".resumed").touch()  # the task no longer kills itself
    asked: list[float] = []

    def sleep(key: str, seconds: float) -> float:
        asked.append(seconds)
        return 0.0

    engine = Engine(str(tmp_path / "journal"), hooks=Hooks(sleep=sleep))
    try:
        run = engine.resume("r")
        events = [s.event for s in engine.events("r")]
    finally:
        engine.close()
    return run, events, asked


def test_sigkill_during_an_attempt_resumes_with_that_attempt_and_no_more(
    tmp_path: Path,
) -> None:
    side = str(tmp_path / "side.jsonl")
    child = start_python(CHILD, str(tmp_path / "journal"), "quick_retry", side, "2")
    _, err = child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL, err
    assert rf.attempts_of(side) == [(1, 3), (2, 3)]
    run, events, asked = _resume_after_kill(tmp_path, side)
    assert asked == []  # no backoff: nothing to wait for
    assert run.result == {
        "error_type": "tests.engine.retry_flows.RateLimited",
        "message": "attempt 3",
    }
    # Attempt 2 had no outcome: it runs again as attempt 2; then 3, the last.
    assert rf.attempts_of(side) == [(1, 3), (2, 3), (2, 3), (3, 3)]
    assert [e.attempt for e in events if isinstance(e, jf.AttemptFailed)] == [1, 2]
    assert [e.attempts for e in events if isinstance(e, jf.EffectFailed)] == [3]


def test_sigkill_in_the_backoff_wait_resumes_with_the_next_attempt(
    tmp_path: Path,
) -> None:
    side = str(tmp_path / "side.jsonl")
    journal = tmp_path / "journal"
    child = start_python(CHILD, str(journal), "slow_retry", side, "0")
    try:
        deadline = time.monotonic() + 60
        while not _attempt_failed_recorded(journal):
            assert child.poll() is None, child.communicate()[1]
            assert time.monotonic() < deadline, "attempt 1 never failed"
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL
    assert rf.attempts_of(side) == [(1, 3)]  # killed in the 600 s wait
    run, events, asked = _resume_after_kill(tmp_path, side)
    # The rest of the 600 s wait the crash cut short, then the 1200 s one.
    assert len(asked) == 2 and 300 < asked[0] <= 600 and asked[1] == 1200
    assert run.result["message"] == "attempt 3"
    assert rf.attempts_of(side) == [(1, 3), (2, 3), (3, 3)]
    assert [e.attempt for e in events if isinstance(e, jf.AttemptFailed)] == [1, 2]
    assert [e.attempts for e in events if isinstance(e, jf.EffectFailed)] == [3]


def _attempt_failed_recorded(journal: Path) -> bool:
    if not (journal / "data.mdb").exists():
        return False
    engine = Engine(str(journal))
    try:
        return any(isinstance(s.event, jf.AttemptFailed) for s in engine.events("r"))
    except ReplayEngineError:
        return False  # the run is not recorded yet
    finally:
        engine.close()
