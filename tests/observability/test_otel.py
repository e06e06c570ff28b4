"""OpenTelemetry (issue 16): spans per execution and per effect attempt.

Through the SDK's ``InMemorySpanExporter`` on a real engine and a real LMDB;
the crash case SIGKILLs a real child while a task is in flight, then resumes
it here with tracing on.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

from replay_engine import Engine
from replay_engine.errors import ReplayEngineError
from tests.executions.conftest import killed_in_gate
from tests.helpers import child_env

from . import obs_flows

A = "replay_engine."


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    yield tp
    tp.shutdown()


def _attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def _effects(spans: tuple[ReadableSpan, ...]) -> list[dict[str, Any]]:
    return [_attrs(s) for s in spans if s.name == "replay_engine.effect"]


def test_spans_per_execution_and_attempt_and_log_events(
    tmp_path: Path, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    obs_flows.SEEN.clear()
    obs_flows.FAIL_FIRST.clear()
    obs_flows.FAIL_FIRST.add("thread-1")
    with Engine(str(tmp_path / "j"), durability="process", tracing=provider) as eng:
        run = eng.run(obs_flows.fan, {"n": 3}, run_id="r1")
        assert run.status == "completed" and run.result == [1, 4, 0, 10, 20]
        spans = exporter.get_finished_spans()
        executions = [s for s in spans if s.name == "replay_engine.execution"]
        assert len(executions) == 1
        execution = executions[0]
        assert _attrs(execution) == {
            A + "run_id": "r1",
            A + "why": "start",
            A + "outcome": "completed",
        }
        # One span per attempt: in_thread(1) failed once and was retried.
        attempts = sorted(
            (a[A + "key"], a[A + "attempt"], a[A + "outcome"], a[A + "source"])
            for a in _effects(spans)
        )
        assert attempts == [
            ("0", 1, "completed", "dispatched"),
            ("1", 1, "completed", "dispatched"),
            ("2.0.0", 1, "completed", "dispatched"),
            ("2.1.0", 1, "failed", "dispatched"),
            ("2.1.0", 2, "completed", "dispatched"),
            ("2.2.0", 1, "completed", "dispatched"),
        ]
        assert {a[A + "task"] for a in _effects(spans)} == {
            "obs.inline",
            "obs.in_loop",
            "obs.in_thread",
        }
        effect_spans = [s for s in spans if s.name == "replay_engine.effect"]
        for span in effect_spans:
            assert span.parent is not None
            assert span.parent.span_id == execution.context.span_id
        # Each task saw its own attempt's span as current (thread, inline, loop).
        ids = {s.context.span_id for s in effect_spans}
        assert len(obs_flows.SEEN) == 6
        assert {seen[1] for seen in obs_flows.SEEN} == ids
        assert {seen[2] for seen in obs_flows.SEEN} == {execution.context.trace_id}
        # A span event per ctx.log line, with its fields.
        events = [(e.name, dict(e.attributes or {})) for e in execution.events]
        assert events == [
            ("starting", {A + "key": "0", A + "field.n": 3, A + "field.tag": "x"}),
            ("done", {A + "key": "3", A + "field.total": 30}),
        ]

        # A resume of the completed run executes nothing: no spans.
        exporter.clear()
        assert eng.resume("r1").status == "completed"
        assert exporter.get_finished_spans() == ()


def test_a_crash_resumed_with_tracing_marks_replayed_and_redispatched(
    tmp_path: Path,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    journal, side, gate = tmp_path / "journal", tmp_path / "side", tmp_path / "gate"
    journal.mkdir()
    killed_in_gate(journal, side, gate)
    gate.touch()
    monkeypatch.setenv("REPLAY_EXEC_SIDE", str(side))
    with Engine(str(journal), durability="process", tracing=provider) as eng:
        run = eng.resume("r")
        assert run.status == "completed"
    spans = exporter.get_finished_spans()
    (execution,) = [s for s in spans if s.name == "replay_engine.execution"]
    assert _attrs(execution)[A + "why"] == "resume"
    assert sorted(
        (a[A + "key"], a[A + "source"], a[A + "outcome"]) for a in _effects(spans)
    ) == [
        ("0", "replayed", "completed"),
        ("1", "replayed", "completed"),
        ("2", "redispatched", "completed"),
        ("3", "dispatched", "completed"),
    ]


def test_tracing_off_imports_no_opentelemetry(tmp_path: Path) -> None:
    """The default engine never imports opentelemetry, even while it runs."""
    code = (
        "import sys, tempfile\n"
        "from replay_engine import Engine\n"
        "from tests.executions.exec_flows import count\n"
        "async def p(inputs, ctx):\n"
        "    ctx.log('x')\n"
        "    return await ctx.task(count, {'i': 1})\n"
        "e = Engine(tempfile.mkdtemp() + '/j', durability='process')\n"
        "assert e.run(p, {}, run_id='a').result == 1\n"
        "assert e.resume('a').status == 'completed'\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_tracing_without_opentelemetry_says_what_to_install(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "sys.modules['opentelemetry'] = None\n"  # as if not installed
        "from replay_engine import Engine\n"
        f"Engine({str(tmp_path / 'j')!r}, tracing=True)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "pip install 'replay-engine[otel]'" in done.stderr
    assert ReplayEngineError.__name__ in done.stderr


def test_tasks_in_a_process_pool_run_inside_their_attempt_span(
    tmp_path: Path, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """Sent by reference, a task gets its attempt span's W3C trace context.

    The task runs in a real pool process; the span it opens there has the
    attempt span recorded here as its parent, in the same trace.
    """

    async def pooled(inputs: Any, ctx: Any) -> list[list[str]]:
        return await ctx.parallel.map(
            [1, 2], lambda i: ctx.task(obs_flows.in_pool, {"i": i})
        )

    with Engine(str(tmp_path / "j"), executor="processes", tracing=provider) as eng:
        seen = eng.run(pooled, {}, run_id="p").result
    spans = {
        _attrs(s)[A + "key"]: s
        for s in exporter.get_finished_spans()
        if s.name == "replay_engine.effect"
    }
    assert sorted(spans) == ["0.0.0", "0.1.0"]
    for key, (trace_id, span_id, child_trace, child_parent, pid) in zip(
        ["0.0.0", "0.1.0"], seen, strict=True
    ):
        attempt = spans[key].get_span_context()
        assert attempt is not None
        assert _attrs(spans[key])[A + "outcome"] == "completed"
        assert int(pid) != os.getpid()  # a real pool process
        assert (trace_id, span_id) == (
            format(attempt.trace_id, "032x"),
            format(attempt.span_id, "016x"),
        )
        assert (child_trace, child_parent) == (trace_id, span_id)
