"""Effects on a real Dask cluster (LocalCluster with worker processes).

What must hold: every effect is recorded exactly once; a worker that dies is
an attempt failure retried per the task's policy; an orchestrator killed
mid-fan-out resumes and dispatches only what had not completed (counted
through a side channel the tasks write); a scheduler that goes away stops
the run with ``ExecutorUnavailable`` and a resume completes it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

distributed = pytest.importorskip("distributed")

from replay_engine import Engine, RunStats  # noqa: E402
from replay_engine._run.dask_executor import DaskExecutor  # noqa: E402
from replay_engine.errors import ExecutorUnavailable  # noqa: E402
from tests.children import run_child  # noqa: E402
from tests.dask.conftest import effect_counts, make_cluster, side_lines  # noqa: E402
from tests.dask.dask_flows import executing_count, fan_out, one_failure  # noqa: E402
from tests.helpers import ROOT, child_env  # noqa: E402


def keys(n: int) -> set[str]:
    """The invocation keys of ``fan_out``'s ``n`` branches (the map is call 0)."""
    return {f"0.{i}.0" for i in range(n)}


def executed(path: Path, run_id: str) -> list[str]:
    """Keys of ``run_id`` in the side channel, once per execution."""
    prefix = f"{run_id}/"
    return [
        k[len(prefix) :] for k, _, _ in side_lines(str(path)) if k.startswith(prefix)
    ]


def wait_idle(cluster: Any, client: Any, timeout: float = 30) -> None:
    """Until the scheduler holds no tasks and no worker executes one."""
    deadline = time.monotonic() + timeout
    while True:
        busy = len(cluster.scheduler.tasks) + sum(client.run(executing_count).values())
        if not busy:
            return
        assert time.monotonic() < deadline, f"cluster still busy ({busy})"
        time.sleep(0.05)


def test_the_core_does_not_import_dask() -> None:
    out = run_child(
        "import sys, tempfile\n"
        "import replay_engine, replay_engine._cli, replay_engine._run.dask_executor\n"
        "from replay_engine import Engine\n"
        "from tests.dask.dask_flows import fan_out\n"
        "with Engine(tempfile.mkdtemp()) as e:\n"
        "    assert e.run(fan_out, {'n': 3}).status == 'completed'\n"
        "print(sorted(m for m in sys.modules"
        " if m.split('.')[0] in ('dask', 'distributed')))\n"
    )
    assert out.strip() == "[]"


def test_ten_thousand_effects_each_recorded_exactly_once(
    client: Any, tmp_path: Path
) -> None:
    n = 10_000
    side = tmp_path / "side"
    with Engine(str(tmp_path / "j"), executor=client) as engine:
        run = engine.run(fan_out, {"n": n, "side": str(side)}, run_id="big")
        assert run.status == "completed", run.error
        assert run.result == sum(i * i for i in range(n))
        assert run.stats.dispatched == n
        counts = effect_counts(engine, "big")
        assert engine.verify("big").ok
        again = engine.resume("big")  # terminal: nothing runs again
    assert set(counts["EffectRequested"]) == keys(n)
    assert set(counts["EffectRequested"].values()) == {1}
    assert set(counts["EffectCompleted"]) == keys(n)
    assert set(counts["EffectCompleted"].values()) == {1}
    assert not counts["AttemptFailed"] and not counts["EffectFailed"]
    assert again.status == "completed" and again.stats.dispatched == 0
    # Executed exactly once each, in worker processes (not here).
    lines = side_lines(str(side))
    assert sorted(executed(side, "big")) == sorted(keys(n))
    pids = {pid for _, _, pid in lines}
    assert os.getpid() not in pids and len(pids) >= 1


@pytest.mark.parametrize("scheme", ["tcp", "dask"])
def test_an_address_gives_the_engine_its_own_client(
    cluster: Any, tmp_path: Path, scheme: str
) -> None:
    address = cluster.scheduler_address
    if scheme == "dask":
        address = "dask://" + address.removeprefix("tcp://")
    with Engine(str(tmp_path / "j"), executor=address) as engine:
        run = engine.run(fan_out, {"n": 40, "side": str(tmp_path / "side")})
        dask_executor = engine._executors._given
        assert isinstance(dask_executor, DaskExecutor)
        assert dask_executor._max_workers == 2  # the cluster's threads
    assert run.status == "completed" and run.stats.dispatched == 40
    assert dask_executor._closed  # the engine closed the client it made


def test_a_clients_concurrent_futures_executor_is_wrapped_too(
    client: Any, tmp_path: Path
) -> None:
    with Engine(str(tmp_path / "j"), executor=client.get_executor()) as engine:
        assert isinstance(engine._executors._given, DaskExecutor)
        run = engine.run(fan_out, {"n": 20})
    assert run.status == "completed" and run.stats.dispatched == 20
    assert client.status == "running"


def test_a_task_error_on_a_worker_is_a_task_failure(
    client: Any, tmp_path: Path
) -> None:
    with Engine(str(tmp_path / "j"), executor=client) as engine:
        run = engine.run(one_failure, None, run_id="f")
        counts = effect_counts(engine, "f")
        failed = [
            s.event
            for s in engine.events("f")
            if type(s.event).__name__ == "EffectFailed"
        ]
    assert run.status == "completed" and run.result == "TaskFailed"
    assert counts["EffectFailed"] == {"0": 1}
    assert failed[0].error.type == "ValueError"
    assert client.status == "running"  # a user's client is never closed


def test_bad_executors_are_refused_before_anything_is_opened(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="dask://HOST:PORT"):
        Engine(str(tmp_path / "j"), executor="localhost:8786")
    with pytest.raises(TypeError, match=r"distributed\.Client"):
        Engine(str(tmp_path / "j"), executor=object())
    assert not (tmp_path / "j").exists()


def test_an_unreachable_scheduler_stops_the_run_resumably(
    client: Any, tmp_path: Path
) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    nowhere = DaskExecutor(f"tcp://127.0.0.1:{port}", connect_timeout=0.5)
    journal = str(tmp_path / "j")
    try:
        with Engine(journal, executor=nowhere) as engine:
            with pytest.raises(ExecutorUnavailable) as caught:
                engine.run(fan_out, {"n": 5}, run_id="u")
            counts = effect_counts(engine, "u")
            status = engine.status("u").stored_status
    finally:
        nowhere.shutdown()
    assert "cannot reach the Dask scheduler" in str(caught.value)
    assert "resume" in str(caught.value)
    assert status == "running"  # not failed: nothing was recorded for the outage
    assert len(counts["EffectRequested"]) == 5
    assert not counts["EffectCompleted"] and not counts["AttemptFailed"]
    with Engine(journal, executor=client) as engine:
        again = engine.resume("u")
    assert again.status == "completed" and again.stats.dispatched == 5


def test_a_worker_killed_mid_run_is_an_attempt_failure_and_the_run_completes(
    tmp_path: Path,
) -> None:
    n = 120
    side = tmp_path / "side"
    inputs = {"n": n, "side": str(side), "seconds": 0.02}
    # allowed_failures=0: Dask does not rerun the chunk itself, so the worker's
    # death is an attempt failure the journal records, retried by the engine.
    with (
        make_cluster(scheduler_kwargs={"allowed_failures": 0}) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        victim = next(iter(client.run(os.getpid).values()))
        killed: list[float] = []

        def kill_one(stats: RunStats) -> None:
            if not killed and stats.dispatched - stats.in_flight >= 10:
                os.kill(victim, signal.SIGKILL)
                killed.append(time.monotonic())

        with Engine(str(tmp_path / "j"), executor=client) as engine:
            run = engine.run(fan_out, inputs, run_id="w", on_progress=kill_one)
            counts = effect_counts(engine, "w")
            failures = [
                s.event
                for s in engine.events("w")
                if type(s.event).__name__ == "AttemptFailed"
            ]
    assert killed, "the run ended before a worker could be killed"
    assert run.status == "completed", run.error
    assert run.result == sum(i * i for i in range(n))
    assert set(counts["EffectCompleted"]) == keys(n)
    assert set(counts["EffectCompleted"].values()) == {1}
    assert failures, "no attempt was running on the killed worker"
    assert {f.error.type for f in failures} == {"distributed.scheduler.KilledWorker"}
    # The retry ran as attempt 2 under the same idempotency key.
    retried = {k for k, attempt, _ in side_lines(str(side)) if attempt == 2}
    assert {f"w/{k}" for k in counts["AttemptFailed"]} <= retried


def test_an_orchestrator_killed_mid_fan_out_resumes_only_what_had_not_completed(
    cluster: Any, client: Any, tmp_path: Path
) -> None:
    n = 400
    journal = tmp_path / "j"
    side = tmp_path / "side"
    inputs = {"n": n, "side": str(side), "seconds": 0.01}
    address = cluster.scheduler_address

    def orchestrator(*args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.dask.orchestrator", *args],
            cwd=ROOT,
            env=child_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    proc = orchestrator("run", str(journal), address, "k", json.dumps(inputs))
    # Kill it once about a quarter of the effects have completed.
    target = 1 + n + n // 4
    deadline = time.monotonic() + 60
    reader: Engine | None = None
    try:
        while True:
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the run never got going"
            if reader is None and (journal / "data.mdb").exists():
                reader = Engine(str(journal))
            if reader is not None:
                try:
                    if reader.status("k").events >= target:
                        break
                except KeyError:
                    pass
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
        assert reader is not None
        wait_idle(cluster, client)  # chunks left running by the dead orchestrator
        before = set(effect_counts(reader, "k")["EffectCompleted"])
        ran_before = len(executed(side, "k"))
    finally:
        if proc.poll() is None:
            proc.kill()
        if reader is not None:
            reader.close()
    assert 0 < len(before) < n

    proc = orchestrator("resume", str(journal), address, "k")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    resumed = json.loads(out)
    again = executed(side, "k")[ran_before:]
    assert resumed["status"] == "completed"
    assert not set(again) & before  # nothing completed was dispatched again
    assert set(again) == keys(n) - before
    assert len(again) == resumed["dispatched"] == n - len(before)
    with Engine(str(journal)) as engine:
        counts = effect_counts(engine, "k")
        assert engine.result("k") == sum(i * i for i in range(n))
    assert set(counts["EffectCompleted"]) == keys(n)
    assert set(counts["EffectCompleted"].values()) == {1}


def test_a_scheduler_that_goes_away_stops_the_run_and_a_resume_completes_it(
    tmp_path: Path,
) -> None:
    n = 150
    journal = str(tmp_path / "j")
    inputs = {"n": n, "side": str(tmp_path / "side"), "seconds": 0.02}
    first = make_cluster(n_workers=1)
    closing: list[threading.Thread] = []

    def close_cluster(stats: RunStats) -> None:
        if not closing and stats.dispatched - stats.in_flight >= 10:
            closing.append(threading.Thread(target=first.close))
            closing[0].start()

    try:
        with Engine(journal, executor=first.scheduler_address) as engine:
            with pytest.raises(ExecutorUnavailable) as caught:
                engine.run(fan_out, inputs, run_id="s", on_progress=close_cluster)
            info = engine.status("s")
            before = set(effect_counts(engine, "s")["EffectCompleted"])
    finally:
        for t in closing:
            t.join()
        first.close()
    assert closing, "the run ended before the scheduler could be closed"
    assert "resume the run once the scheduler is back" in str(caught.value)
    # Resumable: stored running (shown interrupted), no RunFailed was recorded.
    assert (info.stored_status, info.status) == ("running", "interrupted")
    assert 0 < len(before) < n

    with make_cluster(n_workers=1) as second:
        address = "dask://" + second.scheduler_address.removeprefix("tcp://")
        with Engine(journal, executor=address) as engine:
            again = engine.resume("s")
            counts = effect_counts(engine, "s")
    assert again.status == "completed", again.error
    assert again.result == sum(i * i for i in range(n))
    assert again.stats.dispatched == n - len(before)
    assert set(counts["EffectCompleted"]) == keys(n)
    assert set(counts["EffectCompleted"].values()) == {1}


def test_executor_unavailable_is_a_replay_engine_error() -> None:
    error = ExecutorUnavailable("gone", address="tcp://x:1")
    assert error.address == "tcp://x:1"
    from replay_engine import ReplayEngineError

    assert isinstance(error, ReplayEngineError)


def test_the_cli_runs_and_resumes_on_a_dask_scheduler(
    cluster: Any, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from replay_engine._cli import cli

    journal = str(tmp_path / "j")
    address = "dask://" + cluster.scheduler_address.removeprefix("tcp://")
    runner = CliRunner()

    def invoke(*args: str) -> Any:
        return runner.invoke(cli, ["--journal", journal, *args], catch_exceptions=False)

    done = invoke(
        "run",
        "tests.dask.dask_flows:fan_out",
        "--input",
        '{"n": 30}',
        "--run-id",
        "c",
        "--executor",
        address,
        "--json",
    )
    assert done.exit_code == 0, done.output
    document = json.loads(done.stdout)
    assert document["status"] == "completed"
    assert document["stats"]["dispatched"] == 30
    again = invoke("resume", "c", "--executor", address, "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["status"] == "completed"
    for bad in ("bogus", "dask://", "http://host:1"):
        refused = invoke("resume", "c", "--executor", bad)
        assert refused.exit_code == 2, (bad, refused.output)


@pytest.mark.parametrize("saturated", [False, True])
def test_a_task_on_a_worker_runs_inside_its_attempt_span(
    tmp_path: Path, client: Any, saturated: bool
) -> None:
    """With tracing on, the job carries the attempt span's W3C trace context.

    ``saturated``: the executor believes the cluster has one thread, so all
    but the first two chunks of a pass are merged into one Dask task; each
    attempt in it still runs in its own span's context.
    """
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
        InMemorySpanExporter,
    )

    from tests.observability import obs_flows

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    async def traced(inputs: Any, ctx: Any) -> list[list[str]]:
        return await ctx.parallel.map(
            list(range(200)), lambda i: ctx.task(obs_flows.in_pool, {"i": i})
        )

    executor = DaskExecutor(client)
    if saturated:
        executor._hint = 1  # the size hint, not refreshed for an hour
        executor._hint_at = time.monotonic() + 3600
    try:
        with Engine(str(tmp_path / "j"), executor=executor, tracing=provider) as eng:
            seen = eng.run(traced, {}, run_id="t").result
    finally:
        executor.shutdown()
        provider.shutdown()
    attempts = {
        (s.attributes or {})["replay_engine.key"]: s.get_span_context()
        for s in exporter.get_finished_spans()
        if s.name == "replay_engine.effect"
    }
    assert len(attempts) == 200
    for i, (trace_id, span_id, child_trace, child_parent, _) in enumerate(seen):
        key = f"0.{i}.0"
        attempt = attempts[key]
        assert attempt is not None
        expected = (format(attempt.trace_id, "032x"), format(attempt.span_id, "016x"))
        assert (trace_id, span_id) == expected
        assert (child_trace, child_parent) == expected
