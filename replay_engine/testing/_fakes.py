"""Fake tasks: test a process without running its real effects.

``FakeTasks({"mod.lint": {"ok": True}, "mod.deploy": RuntimeError("boom"),
"mod.f": lambda **kw: ...})`` answers each named task with a value, a failure
or a function of its args.

Two ways in, one behaviour:

* under :func:`~replay_engine.testing.run_schedule`,
  :func:`~replay_engine.testing.assert_deterministic` and
  :class:`~replay_engine.testing.ScheduleChecker`, the fakes answer through
  the engine's ``Hooks.fake``: the attempt is answered before dispatch, for
  every executor;
* as a context manager around your own :class:`~replay_engine.Engine` (which
  has no hooks), the ``fn`` of every matching ``TaskDef`` loaded in this
  interpreter is swapped for the fake and put back on exit. That reaches
  tasks executed in this process (threads, inline, async); a process-pool or
  remote executor imports the real function by reference.
"""

from __future__ import annotations

import difflib
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from types import ModuleType, TracebackType
from typing import Any

from .. import TaskDef
from .._testing_seam import Hooks, as_task, importable_module_name

Fake = Any
"""A value to return, an exception (instance or class) to raise, or a callable
taking the task's keyword arguments."""


class FakeTasks:
    """Answer tasks by name instead of executing them.

    Args:
        fakes: task name (as recorded: ``module.qualname`` unless the task
            was given a ``name=``) to a return value, an exception instance or
            class to raise, or a callable called with the task's keyword
            arguments.

    Use it as a context manager around your own engine, or pass it to
    :func:`~replay_engine.testing.assert_deterministic` /
    :func:`~replay_engine.testing.run_schedule` (``fakes=``)::

        fakes = FakeTasks({"app.deploy": RuntimeError("no capacity")})
        with fakes:
            run = engine.run(process, inputs)
        assert fakes.calls == [("app.deploy", {"service": "api"})]

    Raises:
        ValueError: on entry, a name matches no task loaded in this
            interpreter (close matches are suggested).

    .. versionadded:: 0.1
    """

    def __init__(self, fakes: Mapping[str, Fake]) -> None:
        self.fakes: dict[str, Fake] = dict(fakes)
        self.calls: list[tuple[str, dict[str, Any]]] = []
        """Every faked call, as ``(task name, args)``, in the order they ran."""
        self._saved: list[tuple[TaskDef[..., Any], Callable[..., Any]]] = []
        self._depth = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FakeTasks({self.fakes!r})"

    # -- answering -------------------------------------------------------------

    def failure(self, task: str) -> BaseException | None:
        """The exception faked for ``task``, if its fake is a failure."""
        fake = self.fakes.get(task)
        if isinstance(fake, BaseException):
            return fake
        if isinstance(fake, type) and issubclass(fake, BaseException):
            return fake(f"faked failure of task {task!r}")
        return None

    def answer(self, task: str, args: dict[str, Any]) -> Any:
        """What the fake for ``task`` gives for ``args`` (raising a faked failure)."""
        with self._lock:
            self.calls.append((task, dict(args)))
        failure = self.failure(task)
        if failure is not None:
            raise failure
        fake = self.fakes[task]
        return fake(**args) if callable(fake) else fake

    def hook(self, key: str, task: str, attempt: int, args: Any) -> Any:
        """The engine's ``Hooks.fake``: the faked answer, or ``Hooks.REAL``."""
        if task not in self.fakes:
            return Hooks.REAL
        return self.answer(task, args)

    def check_names(self) -> dict[str, list[TaskDef[..., Any]]]:
        """The loaded tasks each fake names.

        Raises:
            ValueError: a name matches no loaded task (close matches suggested).
        """
        found = _find_tasks(set(self.fakes))
        missing = sorted(set(self.fakes) - found.keys())
        if missing:
            known = sorted(t.name for t in _all_tasks())
            hints = [
                f"{name!r} (did you mean {', '.join(map(repr, close))}?)"
                if (close := difflib.get_close_matches(name, known, n=2))
                else repr(name)
                for name in missing
            ]
            raise ValueError(
                f"FakeTasks: no task named {', '.join(hints)} is loaded. A task's"
                " name is module.qualname of its function unless @task(name=...)"
                " says otherwise; import the module that defines it first."
            )
        return found

    # -- installing (standalone use) ---------------------------------------------

    def __enter__(self) -> FakeTasks:
        if self._depth == 0:
            found = self.check_names()
            for tdefs in found.values():
                for tdef in tdefs:
                    self._saved.append((tdef, tdef.fn))
                    tdef.fn = self._fake_fn(tdef)
        self._depth += 1
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._depth -= 1
        if self._depth == 0:
            for tdef, fn in reversed(self._saved):
                tdef.fn = fn
            self._saved.clear()

    def _fake_fn(self, tdef: TaskDef[..., Any]) -> Callable[..., Any]:
        name = tdef.name
        if tdef.is_async:

            async def fake_async(**kwargs: Any) -> Any:
                return self.answer(name, kwargs)

            return fake_async

        def fake_sync(**kwargs: Any) -> Any:
            return self.answer(name, kwargs)

        return fake_sync


def _module_values(module: ModuleType) -> Iterator[Any]:
    try:
        return iter(list(vars(module).values()))
    except TypeError:  # pragma: no cover - modules without a __dict__
        return iter(())


def _modules() -> list[ModuleType]:
    # sys.modules may hold None (blocked imports) or stand-ins that are not modules.
    loaded: list[object] = list(sys.modules.values())
    return [m for m in loaded if isinstance(m, ModuleType)]


def _all_tasks() -> Iterator[TaskDef[..., Any]]:
    """Every TaskDef reachable from a loaded module's globals."""
    seen: set[int] = set()
    for module in _modules():
        for value in _module_values(module):
            tdef = _as_taskdef(value)
            if tdef is not None and id(tdef) not in seen:
                seen.add(id(tdef))
                yield tdef


def _as_taskdef(value: Any) -> TaskDef[..., Any] | None:
    if isinstance(value, TaskDef):
        return value
    cached = getattr(value, "__replay_engine_task__", None)
    return cached if isinstance(cached, TaskDef) else None


def _find_tasks(names: set[str]) -> dict[str, list[TaskDef[..., Any]]]:
    """The TaskDefs named ``names``; plain functions get (and cache) one."""
    found: dict[str, list[TaskDef[..., Any]]] = {}
    for tdef in _all_tasks():
        if tdef.name in names:
            found.setdefault(tdef.name, []).append(tdef)
    for name in names - found.keys():
        # A plain function passed to ctx.task is wrapped on first use; wrap it
        # now (as_task caches the wrapper on the function) so it can be faked.
        for module in _modules():
            for value in _module_values(module):
                if (
                    callable(value)
                    and not isinstance(value, type)
                    and getattr(value, "__module__", None) == module.__name__
                    and f"{importable_module_name(value)}."
                    f"{getattr(value, '__qualname__', '')}"
                    == name
                ):
                    found.setdefault(name, []).append(as_task(value))
                    break
            if name in found:
                break
    return found
