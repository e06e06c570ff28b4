"""OpenTelemetry spans for executions and effect attempts (``Engine(tracing=...)``).

Off by default, and then free: an engine without tracing holds ``None`` where
a :class:`Tracing` would be, the runtime tests that once per dispatched
attempt or replayed call, and ``opentelemetry`` is never imported. With
tracing on (``pip install replay-engine[otel]``):

* one span per execution (``replay_engine.execution``), current while the
  process runs, so every span below is its child;
* one span per dispatched attempt of an in-process effect
  (``replay_engine.effect``; ``replay_engine.source`` is ``dispatched`` or
  ``redispatched``), and a zero-length one per effect answered from the
  journal (``replayed``);
* a span event on the execution span per ``ctx.log`` line the run emits;
* a sync task in a thread (or inline) and an async task see their attempt's
  span as current, so their own spans nest under it. A task sent by
  reference to a process pool or a Dask cluster gets the span's W3C trace
  context (``traceparent``) with its job, attached in the worker around
  the attempt (``jobs.run_traced_chunk``), so its spans nest under it too
  (see docs/observability.md).
"""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from ..errors import ReplayEngineError
from . import jobs
from .calls import Call
from .tasks import TaskDef

T = TypeVar("T")

_OUTCOMES = {
    jobs.OK: "completed",
    jobs.ERROR: "failed",
    jobs.PAYLOAD_ERROR: "payload_error",
}


class Tracing:
    """The engine's tracer, and the spans it opens (one object per ``Engine``)."""

    def __init__(self, provider: Any = None) -> None:
        try:
            from opentelemetry import context, trace
        except ImportError:
            raise ReplayEngineError(
                "Engine(tracing=...) needs OpenTelemetry: pip install"
                " 'replay-engine[otel]' (opentelemetry-api and -sdk)"
            ) from None
        from opentelemetry.trace.propagation.tracecontext import (
            TraceContextTextMapPropagator,
        )

        self._trace = trace
        self._context = context
        # W3C trace context only (not the global propagator, which may carry
        # baggage the user did not mean to send to workers).
        self._propagator = TraceContextTextMapPropagator()
        self.tracer = trace.get_tracer("replay_engine", tracer_provider=provider)

    async def execution(self, run_id: str, why: str, body: Coroutine[Any, Any, T]) -> T:
        """Await ``body`` (one execution) inside its span, current meanwhile."""
        attributes = {"replay_engine.run_id": run_id, "replay_engine.why": why}
        with self.tracer.start_as_current_span(
            "replay_engine.execution", attributes=attributes
        ) as span:
            outcome = await body
            status = getattr(outcome, "status", None)
            span.set_attribute("replay_engine.outcome", str(status))
            return outcome

    async def attempt(
        self, dispatch: Callable[[Call], None], call: Call, run_id: str, source: str
    ) -> jobs.Outcome:
        """Dispatch ``call`` inside its attempt span; the task sees the span."""
        tdef = call.tdef
        span = self.tracer.start_span(
            "replay_engine.effect",
            attributes={
                "replay_engine.run_id": run_id,
                "replay_engine.key": call.key_text,
                "replay_engine.task": tdef.name,
                "replay_engine.attempt": call.attempt,
                "replay_engine.source": source,
            },
        )
        outcome = "interrupted"
        try:
            ctx = self._trace.set_span_in_context(span)
            call.tdef = self._bound(tdef, ctx)
            carrier: dict[str, str] = {}
            self._propagator.inject(carrier, context=ctx)
            # For a task sent by reference (process pool, Dask): the twin's
            # function stays here, its span context goes with the job.
            call.tdef.trace_carrier = carrier  # type: ignore[attr-defined]
            dispatch(call)
            status, payload = await call.future
            outcome = _OUTCOMES.get(status, "interrupted")
            if status == jobs.ERROR:
                span.set_status(self._trace.StatusCode.ERROR, f"{payload[0]}")
            return status, payload
        finally:
            span.set_attribute("replay_engine.outcome", outcome)
            span.end()

    def replayed(self, run_id: str, key: bytes, task: str, outcome: str) -> None:
        """A zero-length span for an effect answered from the journal."""
        from journal_format import key_bytes_to_text

        span = self.tracer.start_span(
            "replay_engine.effect",
            attributes={
                "replay_engine.run_id": run_id,
                "replay_engine.key": key_bytes_to_text(key),
                "replay_engine.task": task,
                "replay_engine.source": "replayed",
                "replay_engine.outcome": outcome,
            },
        )
        span.end()

    def log(self, key: str, message: str, fields: dict[str, Any]) -> None:
        """A span event on the current span (the execution's) for ``ctx.log``."""
        attributes: dict[str, Any] = {"replay_engine.key": key}
        for name, value in fields.items():
            attributes[f"replay_engine.field.{name}"] = (
                value if isinstance(value, str | int | float | bool) else repr(value)
            )
        self._trace.get_current_span().add_event(message, attributes=attributes)

    def _bound(self, tdef: TaskDef[..., Any], ctx: Any) -> TaskDef[..., Any]:
        """A copy of ``tdef`` whose function runs with ``ctx`` attached.

        The copy keeps the name, reference and options, so the dispatcher
        chooses the same executor; a task sent by reference runs the
        original function (its context goes as ``trace_carrier``).
        """
        attach, detach = self._context.attach, self._context.detach
        fn = tdef.fn
        bound: Callable[..., Any]
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def bound_async(**kwargs: Any) -> Any:
                token = attach(ctx)
                try:
                    return await fn(**kwargs)
                finally:
                    detach(token)

            bound = bound_async
        else:

            @functools.wraps(fn)
            def bound_sync(**kwargs: Any) -> Any:
                token = attach(ctx)
                try:
                    return fn(**kwargs)
                finally:
                    detach(token)

            bound = bound_sync
        twin = copy.copy(tdef)
        twin.fn = bound
        return twin
