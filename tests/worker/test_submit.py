"""``submit``: a queued run is recorded and nothing runs; bad submits write nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from replay_engine import (
    Engine,
    PayloadError,
    ProcessImportError,
    ReplayEngineError,
    RunExistsError,
)
from tests.helpers import cli_invoker
from tests.worker import worker_flows as wf


def test_submit_records_a_queued_run_and_executes_nothing(tmp_path: Path) -> None:
    side = tmp_path / "side"
    with Engine(str(tmp_path / "j"), durability="process") as engine:
        info = engine.submit(
            wf.steps, {"n": 2, "side": str(side)}, run_id="s1", queue="batch"
        )
        assert (info.status, info.queue, info.events) == ("queued", "batch", 1)
        assert engine.status("s1").status == "queued"
        assert [i.run_id for i in engine.runs("queued")] == ["s1"]
        active = engine._store.active_runs()
        assert [(a.run_id, a.entry.status, a.entry.queue) for a in active] == [
            ("s1", "queued", "batch")
        ]
    assert not side.exists()  # nothing executed


def test_a_submitted_run_resumes_without_naming_its_process(tmp_path: Path) -> None:
    # Remembered like `run`: a later engine (a worker) may run it without flags.
    journal = str(tmp_path / "j")
    with Engine(journal, durability="process") as engine:
        engine.submit(wf.steps, {"n": 2, "side": str(tmp_path / "side")}, run_id="s1")
    with Engine(journal, durability="process") as engine:
        run = engine.resume("s1")
        assert (run.status, run.result) == ("completed", 1)


@pytest.mark.parametrize(
    ("process", "inputs", "run_id", "queue", "error"),
    [
        ("tests.worker.worker_flows:nope", None, "n1", None, ProcessImportError),
        (wf.not_a_process, None, "n2", None, ProcessImportError),
        (wf.steps, {"bad": object()}, "n3", None, PayloadError),
        (wf.steps, None, "taken", None, RunExistsError),
        (wf.steps, None, "bad id!", None, ReplayEngineError),
        (wf.steps, None, "n4", "no spaces", ReplayEngineError),
    ],
)
def test_a_refused_submit_writes_nothing(
    tmp_path: Path,
    process: object,
    inputs: object,
    run_id: str,
    queue: str | None,
    error: type[Exception],
) -> None:
    with Engine(str(tmp_path / "j"), durability="process") as engine:
        engine.submit(wf.steps, {"n": 1, "side": "x"}, run_id="taken")
        before = engine._store.change_counter()
        runs_before = [(i.run_id, i.events, i.updated) for i in engine.runs()]
        with pytest.raises(error):
            engine.submit(process, inputs, run_id=run_id, queue=queue)  # type: ignore[arg-type]
        assert engine._store.change_counter() == before
        assert [(i.run_id, i.events, i.updated) for i in engine.runs()] == runs_before


def test_cli_submit_prints_the_run_id_and_refuses_bad_input(tmp_path: Path) -> None:
    journal = tmp_path / "j"
    invoke = cli_invoker(journal)
    side = str(tmp_path / "side")
    out = invoke(
        "submit",
        "tests.worker.worker_flows:steps",
        "--input",
        json.dumps({"n": 1, "side": side}),
        "--run-id",
        "c1",
        "--queue",
        "q",
        code=0,
    )
    assert out.output.strip() == "c1"
    doc = json.loads(invoke("status", "c1", "--json", code=0).output)
    assert doc["status"] == "queued"
    invoke("submit", "tests.worker.worker_flows:steps", "--input", "{", code=2)
    invoke("submit", "tests.worker.worker_flows:nope", code=2)
    taken = invoke(
        "submit", "tests.worker.worker_flows:steps", "--run-id", "c1", "--json", code=2
    )
    assert '"type": "RunExistsError"' in taken.output
    runs = json.loads(invoke("runs", "--json", code=0).output)
    assert [r["run_id"] for r in runs] == ["c1"]
