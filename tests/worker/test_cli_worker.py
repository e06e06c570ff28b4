"""``replay-engine worker``: its arguments, and its JSON lines."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from replay_engine import Engine
from tests.helpers import cli_invoker
from tests.worker import worker_flows as wf
from tests.worker.procs import Child, start_worker, wait_for


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--queue", "q"],
        ["tests.worker.worker_flows:steps", "--concurrency", "3"],
        ["tests.worker.worker_flows:steps", "--queue", "q", "--rate", "0/s"],
        ["tests.worker.worker_flows:steps", "--queue", "q", "--rate", "3/h"],
        ["tests.worker.worker_flows:steps", "--queue", "q", "--concurrency", "x"],
        ["tests.worker.worker_flows:steps", "--queue", "q", "--concurrency", "0"],
        ["tests.worker.worker_flows:steps", "--queue", "q", "--queue", "q"],
        ["tests.worker.worker_flows:steps", "--bogus"],
        ["tests.worker.worker_flows:nope"],
    ],
)
def test_bad_worker_arguments_are_usage_errors(tmp_path: Path, args: list[str]) -> None:
    invoke = cli_invoker(tmp_path / "j")
    result = invoke("worker", *args, code=2)
    assert "error" in result.output


def test_worker_json_prints_one_line_per_event(
    tmp_path: Path, procs: list[Child]
) -> None:
    journal, side = tmp_path / "j", tmp_path / "side"
    with Engine(str(journal), durability="process") as engine:
        engine.submit(wf.steps, {"n": 1, "side": str(side)}, run_id="j1", queue="a")
        worker = start_worker(
            journal,
            ["steps"],
            "--queue",
            "a",
            "--concurrency",
            "2",
            "--rate",
            "30/m",
            "--json",
        )
        procs.append(worker)
        wait_for(lambda: engine.status("j1").status == "completed", 30, "the run")
        worker.wait_line(lambda line: '"finished"' in line)
        worker.signal(signal.SIGINT)
        assert worker.wait(timeout=30) == 0
    docs = [json.loads(line) for line in worker.lines]
    assert [(d["event"], d.get("run_id")) for d in docs] == [
        ("started", "j1"),
        ("finished", "j1"),
        ("stopped", None),
    ]
    assert docs[1]["status"] == "completed" and docs[2]["signal"] == "SIGINT"
