"""Naming a process function, loading one, and checking it is one.

A run records its process as ``module:qualname`` plus a fingerprint of its
module's source, so a resume can warn when the code changed since the run
started. A reference read from a journal is only a claim: it is loaded only
when it matches what this user remembered (:mod:`.remembered`), and then from
the remembered import root, never from the current directory.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

import blake3

from ..errors import ProcessImportError
from .tasks import TaskDef, importable_module_name


class NotAProcessError(ProcessImportError, TypeError):
    """The object named as a process is not ``async def process(inputs, ctx)``."""


def reference(fn: Callable[..., Any]) -> str:
    """``module:qualname`` of a process function.

    A function defined in a script run as ``python demo.py`` lives in
    ``__main__``; it is recorded under the module name the script would have
    when imported (``demo``), so another process can import it.
    """
    module = importable_module_name(fn)
    qualname = getattr(fn, "__qualname__", "") or getattr(fn, "__name__", "process")
    return f"{module}:{qualname}"


def fingerprint(fn: Callable[..., Any]) -> str:
    """Hex blake3 of the source of the module that defines ``fn``.

    Falls back to the function's bytecode when the source is unavailable.
    """
    module = sys.modules.get(getattr(fn, "__module__", "") or "")
    data: bytes
    try:
        data = inspect.getsource(module).encode() if module else b""
    except (OSError, TypeError):
        data = b""
    if not data:
        code = getattr(fn, "__code__", None)
        data = code.co_code if code is not None else repr(fn).encode()
    return blake3.blake3(data).hexdigest()


def check_reference(ref: str) -> tuple[str, str]:
    """``(module, qualname)`` of a ``module:qualname`` reference.

    Raises:
        ProcessImportError: ``ref`` is not of that form.
    """
    module_name, sep, qualname = ref.partition(":")
    if not sep or not module_name or not qualname:
        raise ProcessImportError(
            f"{ref!r} is not a process reference; use MODULE:FUNCTION, e.g."
            " mypkg.flows:process"
        )
    return module_name, qualname


def load(ref: str) -> Callable[..., Any]:
    """Import the process named by ``module:qualname``, a reference the user typed.

    Like ``python -m``, modules in the current directory are importable.

    Raises:
        ProcessImportError: the module or attribute cannot be found.
    """
    check_reference(ref)
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    return _import(ref)


def load_remembered(ref: str, path_entry: str | None) -> Callable[..., Any]:
    """Import a remembered process: from ``path_entry``, never from the cwd.

    The current directory may hold anything (a journal's neighbour ``.py``);
    it is off ``sys.path`` during the import. ``path_entry`` (the directory
    the process came from when its run started) stays on it afterwards, for
    the imports the process makes later.
    """
    check_reference(ref)
    with _without_cwd(path_entry):
        fn = _import(ref)
    if path_entry and path_entry not in sys.path:
        sys.path.insert(0, path_entry)
    return fn


@contextlib.contextmanager
def _without_cwd(path_entry: str | None) -> Iterator[None]:
    saved = list(sys.path)
    cwd = os.getcwd()
    kept = [p for p in saved if p not in ("", ".", cwd) and p != path_entry]
    sys.path[:] = [path_entry, *kept] if path_entry else kept
    try:
        yield
    finally:
        sys.path[:] = saved


def check_process(obj: object, ref: str) -> None:
    """Refuse anything but ``async def process(inputs, ctx)``, before it is called.

    Raises:
        NotAProcessError: ``obj`` is a task, not a coroutine function, or
            does not take two positional arguments.
    """
    if isinstance(obj, TaskDef):
        raise NotAProcessError(
            f"{ref} is a task (@task/@external), not a process: a process is"
            " `async def process(inputs, ctx)` and calls tasks with"
            " `await ctx.task(...)`"
        )
    if not _is_async(obj):
        raise NotAProcessError(
            f"{ref} is not an async function: a process is"
            " `async def process(inputs, ctx)`"
        )
    try:
        inspect.signature(obj).bind(None, None)  # type: ignore[arg-type]
    except TypeError:
        raise NotAProcessError(
            f"{ref} does not take (inputs, ctx): a process is"
            " `async def process(inputs, ctx)`"
        ) from None
    except ValueError:
        pass  # no signature to inspect (a builtin): let the call decide


def _is_async(obj: object) -> bool:
    if inspect.iscoroutinefunction(obj):
        return True
    if inspect.iscoroutinefunction(inspect.unwrap(obj)):  # type: ignore[arg-type]
        return True
    # A callable object whose __call__ is async.
    call = getattr(type(obj), "__call__", None)  # noqa: B004
    return not inspect.isroutine(obj) and inspect.iscoroutinefunction(call)


def _import(ref: str) -> Callable[..., Any]:
    module_name, qualname = check_reference(ref)
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ProcessImportError(
            f"cannot import module {module_name!r} for process {ref!r}: {exc}. Run"
            " from the directory that contains it, or put it on PYTHONPATH."
        ) from exc
    except Exception as exc:  # a SyntaxError or an error at module level
        raise ProcessImportError(
            f"importing module {module_name!r} for process {ref!r} failed:"
            f" {type(exc).__name__}: {exc}"
        ) from exc
    try:
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise ProcessImportError(
            f"module {module_name!r} has no {qualname!r} (process {ref!r})"
        ) from None
    if not callable(obj):
        raise ProcessImportError(f"{ref!r} is not a function")
    return obj  # type: ignore[no-any-return]
