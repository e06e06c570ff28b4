"""Retry policies on Dask workers (issue 15): the policy, the attempt and the
maximum hold when attempts run on a real ``LocalCluster``'s worker processes.

The tasks are ``tests.engine.retry_flows``'s, imported by the workers by
reference; attempts are counted from the side file the tasks append to.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from replay_engine import Engine
from tests.engine import retry_flows as rf


def _call(client: Any, tmp_path: Path, name: str, **args: Any) -> Any:
    with Engine(str(tmp_path / "j"), executor=client) as engine:
        run = engine.run(rf.call, {"task": name, "args": args}, run_id="r")
    assert run.status == "completed", run.error
    return run.result


def test_attempt_and_max_attempts_on_a_worker(client: Any, tmp_path: Path) -> None:
    side = str(tmp_path / "side.jsonl")
    assert _call(client, tmp_path, "sync_counts", side=side) == {"value": [3, 3]}
    assert rf.attempts_of(side) == [(1, 3), (2, 3), (3, 3)]
    lines = Path(side).read_text().splitlines()
    assert all(f'"pid": {os.getpid()}' not in line for line in lines)  # on workers


@pytest.mark.parametrize(
    ("error", "error_type"),
    [
        ("value", "builtins.ValueError"),
        ("declined", "tests.engine.retry_flows.CardDeclined"),
    ],
)
def test_a_non_retryable_failure_on_a_worker_is_not_retried(
    client: Any, tmp_path: Path, error: str, error_type: str
) -> None:
    side = str(tmp_path / "side.jsonl")
    result = _call(client, tmp_path, "refuses_values", side=side, error=error)
    assert result == {"error_type": error_type, "message": "attempt 1"}
    assert rf.attempts_of(side) == [(1, 4)]
