"""Naming a process function so a later resume can find it again.

A run records its process as ``module:qualname`` plus a fingerprint of its
module's source, so ``resume`` knows what to import and can warn when the code
changed since the run started.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable
from typing import Any

import blake3

from ..errors import ProcessImportError
from .tasks import importable_module_name


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


def load(ref: str) -> Callable[..., Any]:
    """Import the process named by ``module:qualname``.

    Raises:
        ProcessImportError: the module or attribute cannot be found.
    """
    module_name, sep, qualname = ref.partition(":")
    if not sep or not module_name or not qualname:
        raise ProcessImportError(
            f"{ref!r} is not a process reference; use MODULE:FUNCTION, e.g."
            " mypkg.flows:process"
        )
    if "" not in sys.path and os.getcwd() not in sys.path:
        # Like `python -m`: modules in the current directory are importable.
        sys.path.insert(0, os.getcwd())
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
