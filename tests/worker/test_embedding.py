"""``async with engine.worker(...)``: a worker in the caller's event loop."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from replay_engine import Engine, QueueLimits, WorkerEvent
from tests.worker import worker_flows as wf


def test_an_embedded_worker_starts_wakes_and_drains(tmp_path: Path) -> None:
    side = str(tmp_path / "side")
    events: list[WorkerEvent] = []

    async def main(engine: Engine) -> None:
        engine.submit(wf.steps, {"n": 2, "side": side}, run_id="e1", queue="q")
        worker = engine.worker(
            [wf.steps, "tests.worker.worker_flows:asks"],
            {"q": QueueLimits(concurrency=1)},
            on_event=events.append,
        )
        async with worker:
            waiting = await engine.run_async(wf.asks, None, run_id="e2")
            assert waiting.status == "waiting"
            engine.post("e2", "0", result="ok")
            for _ in range(1000):
                if all(engine.status(r).status == "completed" for r in ("e1", "e2")):
                    break
                await asyncio.sleep(0.01)
        assert worker.executing == []

    with Engine(str(tmp_path / "j"), durability="process") as engine:
        asyncio.run(main(engine))
        assert engine.result("e1") == 1
        assert engine.result("e2") == {"answer": "ok"}
        # The drained worker leaves its engine usable.
        assert (
            engine.run(wf.steps, {"n": 1, "side": side}, run_id="e3").status
            == "completed"
        )
    kinds = [(e.kind, e.run_id, e.why) for e in events]
    assert ("started", "e1", "start") in kinds and ("started", "e2", "wake") in kinds


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"processes": []}, ValueError),
        ({"processes": [wf.not_a_process]}, Exception),
        (
            {
                "processes": [wf.steps],
                "queues": {"q": QueueLimits(concurrency=1)},
                "max_runs": 0,
            },
            ValueError,
        ),
    ],
)
def test_a_worker_refuses_bad_arguments(
    tmp_path: Path, kwargs: dict, error: type
) -> None:
    with (
        Engine(str(tmp_path / "j"), durability="process") as engine,
        pytest.raises(error),
    ):
        engine.worker(**kwargs)


@pytest.mark.parametrize(
    "limits", [{"concurrency": 0}, {"rate": -1.0}, {"rate": float("nan")}]
)
def test_queue_limits_must_be_positive(limits: dict) -> None:
    with pytest.raises(ValueError):
        QueueLimits(**limits)
