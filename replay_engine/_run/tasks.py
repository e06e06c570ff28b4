"""Task definitions.

``@task`` for effects the engine executes, ``@external`` for effects executed
elsewhere and posted back.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import os
import sys
from collections.abc import Callable
from typing import (
    Any,
    Generic,
    Literal,
    NamedTuple,
    ParamSpec,
    Protocol,
    TypeVar,
    overload,
)

from ..errors import TaskCalledDirectly
from .typed import NO_PLAN, Plan, Unresolved, plan_for

P = ParamSpec("P")
R = TypeVar("R")
P2 = ParamSpec("P2")
R2 = TypeVar("R2")

ExecutorChoice = Literal["default", "thread", "process", "inline"]


def importable_module_name(fn: object) -> str:
    """The module name under which ``fn`` can be imported by another process.

    Code run as a script or with ``python -m`` lives in ``__main__``; its
    importable name is the spec name (``-m pkg.mod``) or the script's stem, so
    names and references recorded in the journal do not depend on how the
    program was started.
    """
    module = getattr(fn, "__module__", None) or "__main__"
    if module != "__main__":
        return str(module)
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name:
        return str(spec.name)
    path = getattr(main, "__file__", None)
    if isinstance(path, str) and path:
        return os.path.splitext(os.path.basename(path))[0]
    return "__main__"


class NonRetryable(Exception):
    """Raised by a task: this failure is final, skip the retries left.

    Subclass it for failures of your own that no retry can fix::

        class CardDeclined(NonRetryable): ...

    The call then raises :class:`~replay_engine.TaskFailed` with ``error_type``
    naming the class raised (``"myapp.errors.CardDeclined"``, or
    ``"replay_engine.NonRetryable"`` for this class itself). It is a plain
    ``Exception``, not a ``ReplayEngineError``: it is the task's own failure,
    never something the engine raises.
    """


# Recorded and pickled under its public home, whatever module defines it.
NonRetryable.__module__ = "replay_engine"


class TaskContext(NamedTuple):
    """What a running task knows about the call it serves.

    Immutable. (A named tuple rather than a frozen dataclass: one is made per
    task attempt, and a frozen dataclass costs three times as much to make.)

    Attributes:
        run_id: the run the effect belongs to.
        key: the call's invocation key (``"3.1.0"``).
        attempt: 1 for the first attempt, 2 for the first retry, …
        max_attempts: the most attempts the call may take (``retries + 1``);
            ``attempt == max_attempts`` is its last chance.
        idempotency_key: ``run_id/key``; the same for every attempt and every
            re-dispatch after a crash, so an external system can deduplicate.
    """

    run_id: str
    key: str
    attempt: int
    max_attempts: int = 1

    @property
    def idempotency_key(self) -> str:
        """``"run_id/key"``: stable across attempts, resumes and machines."""
        return f"{self.run_id}/{self.key}"


_task_context: contextvars.ContextVar[TaskContext | None] = contextvars.ContextVar(
    "replay_engine_task_context", default=None
)


_running_process: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "replay_engine_running_process", default=None
)
"""The run id, in the context of a process the engine is executing (and of the
branches it spawns); ``None`` elsewhere. Set by ``Runtime.execute``."""


def task_context() -> TaskContext:
    """The context of the task currently executing (in its thread or process).

    Raises:
        RuntimeError: called outside a task dispatched by the engine.
    """
    ctx = _task_context.get()
    if ctx is None:
        raise RuntimeError(
            "task_context() is only available inside a task the engine is executing"
        )
    return ctx


class TaskDef(Generic[P, R]):
    """A function made into a durable effect by ``@task`` or ``@external``.

    Generic over the function's parameters ``P`` and return type ``R``, so a
    type checker sees ``@task`` keep the signature, and ``await ctx.task(t,
    args)`` / ``await ctx.call(t)(...)`` have the task's result type.

    Calling it directly calls the function (handy in unit tests, and inside
    another task's body, where it is a plain helper). Inside a process it
    raises :class:`~replay_engine.errors.TaskCalledDirectly`: go through
    ``await ctx.task(t, args)`` so the call is journaled.
    """

    __slots__ = (
        "__dict__",
        "_plan",
        "backoff",
        "executor",
        "fn",
        "is_async",
        "jitter",
        "kind",
        "max_backoff",
        "name",
        "non_retryable",
        "ref",
        "result_type",
        "retries",
        "retry_on",
        "timeout",
    )

    def __init__(
        self,
        fn: Callable[P, R],
        *,
        name: str | None = None,
        kind: str = "task",
        retries: int = 0,
        backoff: float = 0.0,
        timeout: float | None = None,
        executor: ExecutorChoice = "default",
        non_retryable: tuple[type[BaseException], ...] = (),
        retry_on: tuple[type[BaseException], ...] | None = None,
        max_backoff: float = 60.0,
        jitter: bool = False,
    ) -> None:
        if retries < 0:
            raise ValueError(f"retries must be >= 0, not {retries}")
        if backoff < 0:
            raise ValueError(f"backoff must be >= 0, not {backoff}")
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, not {timeout}")
        if executor not in ("default", "thread", "process", "inline"):
            raise ValueError(
                "executor must be 'default', 'thread', 'process' or 'inline',"
                f" not {executor!r}"
            )
        if max_backoff < 0:
            raise ValueError(f"max_backoff must be >= 0, not {max_backoff}")
        self.non_retryable = _exception_types("non_retryable", non_retryable)
        self.retry_on = (
            None if retry_on is None else _exception_types("retry_on", retry_on)
        )
        self.max_backoff = float(max_backoff)
        self.jitter = bool(jitter)
        self.fn = fn
        module = importable_module_name(fn)
        qualname = getattr(fn, "__qualname__", None) or repr(fn)
        self.name = name or f"{module}.{qualname}"
        self.ref = f"{module}:{qualname}"
        self.kind = kind
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self.executor: ExecutorChoice = executor
        self.is_async = inspect.iscoroutinefunction(fn)
        self.__dict__.update(getattr(fn, "__dict__", {}))
        self.__doc__ = fn.__doc__
        # The conversion plan, once (typed.py). ``result_type`` is what the
        # replay loop reads: ``None`` unless results need converting.
        self._plan: Plan | None = None
        self.result_type: Any = None
        try:
            self._set_plan(plan_for(fn))
        except Unresolved:
            self.result_type = _UNRESOLVED  # a forward reference: at first use

    def _set_plan(self, plan: Plan) -> None:
        self._plan = plan
        self.result_type = plan.result

    @property
    def plan(self) -> Plan:
        """How args and results are converted to the annotations (``typed``)."""
        plan = self._plan
        if plan is None:
            try:
                plan = plan_for(self.fn)
            except Unresolved:
                plan = NO_PLAN  # still undefined: convert nothing, as before
            self._set_plan(plan)
        return plan

    def __getstate__(self) -> dict[str, Any]:
        # The plan holds a msgspec Decoder, which does not pickle: leave it out
        # and let the copy compute its own at first use.
        state = {
            name: getattr(self, name)
            for name in TaskDef.__slots__
            if name not in ("__dict__", "_plan", "result_type") and hasattr(self, name)
        }
        state["__dict__"] = dict(self.__dict__)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state.pop("__dict__", {}))
        for name, value in state.items():
            setattr(self, name, value)
        self._plan = None
        self.result_type = _UNRESOLVED

    @property
    def max_attempts(self) -> int:
        """The most attempts a call of this task takes: ``retries + 1``."""
        return self.retries + 1

    @property
    def external(self) -> bool:
        """True for effects executed outside the engine (``@external``)."""
        return self.kind != "task"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        # Inside the process's own code (not inside a task's body, which sets
        # a task context, nor in a pool thread, which has neither) a direct
        # call would run the effect outside the journal, again on every resume.
        if _running_process.get() is not None and _task_context.get() is None:
            raise _direct_call(self)
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<{'external' if self.external else 'task'} {self.name!r}>"


_UNRESOLVED: Any = object()


def _direct_call(tdef: TaskDef[Any, Any]) -> TaskCalledDirectly:
    frame = sys._getframe(2)
    site = f"{frame.f_code.co_filename}:{frame.f_lineno}"
    short = tdef.name.rpartition(".")[2]
    return TaskCalledDirectly(
        f"{tdef!r} was called directly at {site}, inside the process of run"
        f" {_running_process.get()!r}: its effect would run outside the journal,"
        f" and again on every resume. Call it through the journal: `await"
        f" ctx.task({short}, {{...}})` or `await ctx.call({short})(...)`.",
        task=tdef.name,
        site=site,
    )


class TaskDecorator(Protocol):
    """What ``@task(...)`` and ``@external(...)`` return: keeps the signature."""

    def __call__(self, fn: Callable[P2, R2], /) -> TaskDef[P2, R2]: ...


@overload
def task(fn: Callable[P, R], /) -> TaskDef[P, R]: ...
@overload
def task(
    *,
    name: str | None = None,
    retries: int = 0,
    backoff: float = 0.0,
    timeout: float | None = None,
    executor: ExecutorChoice = "default",
    non_retryable: tuple[type[BaseException], ...] = (),
    retry_on: tuple[type[BaseException], ...] | None = None,
    max_backoff: float = 60.0,
    jitter: bool = False,
) -> TaskDecorator: ...
def task(
    fn: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    retries: int = 0,
    backoff: float = 0.0,
    timeout: float | None = None,
    executor: ExecutorChoice = "default",
    non_retryable: tuple[type[BaseException], ...] = (),
    retry_on: tuple[type[BaseException], ...] | None = None,
    max_backoff: float = 60.0,
    jitter: bool = False,
) -> TaskDef[P, R] | TaskDecorator:
    """Make a function a durable task, as ``@task`` or ``@task(...)``.

    Args:
        fn: the function (sync or async); its arguments are keyword arguments.
        name: the task's name in the journal; defaults to ``module.qualname``.
            Renaming a task changes what replay expects at its keys.
        retries: attempts after the first one before the call fails for good.
        backoff: seconds before the first retry, doubled for each later one.
        timeout: seconds an attempt may take; a timed-out attempt fails.
        executor: where a sync task runs: ``"default"`` (the engine's
            executor: a thread pool unless the engine was given another),
            ``"thread"``, ``"process"`` (a process pool; the function must be
            importable by reference) or ``"inline"`` (on the event loop, for
            tiny pure functions). Sync tasks on a pool run several to a pool
            job, one after another (sized from their measured cost: a job of
            tiny tasks holds hundreds), so a sync task must never wait for
            another task of the same run to be running; make such tasks
            ``async`` (or give them a ``timeout``, which runs each attempt in a
            job of its own).

        non_retryable: exception types that end the call at once, without
            the retries left (matched with ``isinstance``, as are the others:
            subclasses count). A task can also raise
            :class:`~replay_engine.NonRetryable` (or a subclass of it).
        retry_on: when given, only failures of these types are retried;
            ``None`` (the default) retries every failure not excluded above.
        max_backoff: the longest wait between two attempts, in seconds.
        jitter: scale each wait by a factor in ``[0.5, 1)`` drawn from the
            run id, the call's key and the attempt number (blake3), so the
            same call waits the same on every replay and in every test.

    Returns:
        The :class:`TaskDef`, or a decorator making one.
    """

    def make(f: Callable[P2, R2]) -> TaskDef[P2, R2]:
        return TaskDef(
            f,
            name=name,
            retries=retries,
            backoff=backoff,
            timeout=timeout,
            executor=executor,
            non_retryable=non_retryable,
            retry_on=retry_on,
            max_backoff=max_backoff,
            jitter=jitter,
        )

    return make(fn) if fn is not None else make


@overload
def external(fn: Callable[P, R], /) -> TaskDef[P, R]: ...
@overload
def external(
    *, kind: str = "agent", name: str | None = None, timeout: float | None = None
) -> TaskDecorator: ...
def external(
    fn: Callable[P, R] | None = None,
    /,
    *,
    kind: str = "agent",
    name: str | None = None,
    timeout: float | None = None,
) -> TaskDef[P, R] | TaskDecorator:
    """Declare an effect executed outside the engine, whose result is posted back.

    The engine records the request with its full args and does not run the
    function; a worker, an agent or a person posts the result with
    ``engine.post`` (or ``replay-engine post``). The function's body is not
    called by the engine; it documents the signature.

    Args:
        fn: the function, when used as ``@external`` without arguments.
        kind: what executes it: ``"agent"``, ``"breakpoint"``, or any string
            except ``"task"``.
        name: the name in the journal; defaults to ``module.qualname``.
        timeout: seconds to wait for a result; after that the call raises
            :class:`~replay_engine.errors.Expired` (recorded, so replay agrees).
    """
    if kind in ("task", "signal"):
        raise ValueError(f"external effects need a kind other than {kind!r}")

    def make(f: Callable[P2, R2]) -> TaskDef[P2, R2]:
        return TaskDef(f, name=name, kind=kind, timeout=timeout)

    return make(fn) if fn is not None else make


def _exception_types(what: str, types: object) -> tuple[type[BaseException], ...]:
    """``types`` checked: a tuple of exception classes (one class is accepted)."""
    items = (types,) if isinstance(types, type) else types
    if not isinstance(items, tuple | list):
        raise TypeError(f"{what} must be a tuple of exception classes, not {types!r}")
    out: list[type[BaseException]] = []
    for cls in items:
        if not (isinstance(cls, type) and issubclass(cls, BaseException)):
            raise TypeError(
                f"{what} must be a tuple of exception classes, got {cls!r} in it"
            )
        out.append(cls)
    return tuple(out)


def as_task(obj: object) -> TaskDef[..., Any]:
    """The TaskDef for ``obj``: itself, or a plain function wrapped (cached).

    Raises:
        TypeError: ``obj`` is not callable.
    """
    if isinstance(obj, TaskDef):
        return obj
    if not callable(obj):
        raise TypeError(
            f"ctx.task expects a @task function, got {type(obj).__name__}: {obj!r}"
        )
    cached = getattr(obj, "__replay_engine_task__", None)
    if isinstance(cached, TaskDef):
        return cached
    definition: TaskDef[..., Any] = TaskDef(obj)
    # Builtins and bound methods cannot carry attributes; they are re-wrapped.
    with contextlib.suppress(AttributeError, TypeError):
        obj.__replay_engine_task__ = definition  # type: ignore[attr-defined]
    return definition
