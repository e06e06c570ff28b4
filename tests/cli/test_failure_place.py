"""A failed run says where (issue 16): the exception, the file:line of the
process, the task and its key, in ``run``, ``resume`` and ``status`` output,
and the end of the recorded traceback in ``status``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .conftest import FLOWS_DIR, Invoke


def line_of(module: str, text: str) -> int:
    lines = (FLOWS_DIR / module).read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


def test_a_failed_task_names_the_process_line_the_task_and_key(
    invoke: Invoke, invoke_json: Callable[..., Any]
) -> None:
    where = (
        f"cli_flows.py:{line_of('cli_flows.py', 'await ctx.task(explode')} in failing"
    )
    out = invoke("run", "cli_flows:failing", "--run-id", "f1", code=1).stdout
    assert "ValueError: boom" in out
    assert where in out
    assert "task cli_flows.explode at key 1" in out
    out = invoke("resume", "f1", code=1).stdout
    assert where in out and "at key 1" in out

    status = invoke("status", "f1", code=0).stdout
    assert where in status
    assert "cli_flows.explode at key 1" in status
    assert "Traceback (most recent call last)" in status

    error = invoke_json("status", "f1")["error"]
    assert error["at"].endswith(where)
    assert (error["task"], error["key"]) == ("cli_flows.explode", "1")
    assert "ValueError" in error["traceback"]


def test_a_process_that_raises_names_its_own_line(
    invoke: Invoke, invoke_json: Callable[..., Any]
) -> None:
    where = (
        f"stream_flows.py:{line_of('stream_flows.py', 'raise ValueError')} in _check"
    )
    out = invoke(
        "run", "stream_flows:raises", "--input", '{"a": 2}', "--run-id", "r1", code=1
    ).stdout
    assert "bad value a=2" in out and where in out
    assert "task " not in out  # no task failed
    status = invoke("status", "r1", code=0).stdout
    assert where in status and "bad value a=2" in status
    error = invoke_json("status", "r1")["error"]
    assert error["at"].endswith(where) and error["key"] is None


def test_the_traceback_tail_keeps_the_process_frames_and_the_header() -> None:
    from replay_engine._cli import failure_view

    engine_file = failure_view._ENGINE_DIR + "_run/runtime.py"
    text = "\n".join(
        [
            "Traceback (most recent call last):",
            *[
                f'  File "/app/flow.py", line {n}, in step{n}\n    await x()'
                for n in (1, 2)
            ],
            f'  File "{engine_file}", line 401, in _fresh_effect',
            "    return await self._attempts(",
            "           ^^^^^^^^^^^^^^^^^^^^^",
            f'  File "{engine_file}", line 495, in _attempts',
            "    raise TaskFailed(",
            "replay_engine.errors.TaskFailed: ValueError: boom",
        ]
    )
    tail = failure_view.traceback_tail(text)
    assert tail[0] == "Traceback (most recent call last):"
    assert tail[-1] == "replay_engine.errors.TaskFailed: ValueError: boom"
    assert '  File "/app/flow.py", line 2, in step2' in tail
    assert not any(engine_file in line or "_attempts(" in line for line in tail)
    short = failure_view.traceback_tail(text, lines=4)
    assert len(short) == 4 and short[0].startswith("Traceback") and short[1] == "  ..."
    assert short[-1].endswith("ValueError: boom")
    assert failure_view.traceback_tail("") == []
