"""Naming a process function, loading one, and checking it is one.

A run records its process as ``module:qualname`` plus a fingerprint of the
process function's code (and each execution records the fingerprint of the
code it ran), so a resume can warn when the code changed, naming the function.
A reference read from a journal is only a claim: it is loaded only when it
matches what this user remembered (:mod:`.remembered`), and then from
the remembered import root, never from the current directory.

Noticing that a run's process changed (``CodeNow`` and below): every
execution records the fingerprint of the code it ran (``run_started`` for the
first, then each ``execution`` event, JF-114). A resume compares the code it is
about to run with the latest recorded one and, when they differ, warns naming
the functions that changed; if the resume then diverges, the
``NonDeterminismError`` says first that the code changed.

Runs recorded before code fingerprints hold a hash of the module's source;
they are compared with that, as before (any edit of the module counts).

(One module: a first resume names, checks and fingerprints its process and
compares the code, and each module is an import it pays, issue 17.)
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import logging
import os
import sys
import types
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import blake3
import msgspec

import journal_format as jf

from ..errors import NonDeterminismError, ProcessImportError
from .tasks import TaskDef, importable_module_name

if TYPE_CHECKING:
    from .._store.store import Store

_log = logging.getLogger("replay_engine")


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


CODE_PREFIX = "code1:"
"""What starts a code fingerprint (JF-114); older journals hold a module hash."""


def fingerprint(fn: Callable[..., Any]) -> str:
    """The code fingerprint of a process function (:func:`code_of`)."""
    return code_of(fn)[0]


def code_of(fn: Callable[..., Any]) -> tuple[str, dict[str, str]]:
    """The fingerprint of ``fn``'s code, and a short hash per function (JF-114).

    Only the process function's code counts, with the functions it defines
    (lambdas, nested ``async def``): its bytecode, exception table, names,
    argument counts, flags and constants, never line numbers or the file's
    other functions, so an edit elsewhere in the module (a comment, another
    process) changes nothing. The map names the process and each function it
    defines by qualified name, so a warning can say which one changed.
    """
    code = _code_object(fn)
    if code is None:  # no Python code to hash (a builtin): its module's source
        legacy = module_fingerprint(fn)
        return CODE_PREFIX + legacy, {}
    own: dict[str, str] = {}
    total = blake3.blake3()
    for name, digest in _walk(code, own):
        total.update(name.encode() + b"\0" + digest)
    return CODE_PREFIX + total.hexdigest(), own


def _code_object(fn: Callable[..., Any]) -> types.CodeType | None:
    target: Any = inspect.unwrap(fn)
    code = getattr(target, "__code__", None)
    if code is None:  # a callable object whose __call__ is the process
        code = getattr(getattr(type(target), "__call__", None), "__code__", None)  # noqa: B004
    return code if isinstance(code, types.CodeType) else None


def _walk(code: types.CodeType, own: dict[str, str]) -> list[tuple[str, bytes]]:
    """``(name, own hash)`` of ``code`` and every code object nested in it.

    A function's own hash stands in a nested function by its name, so an
    edit inside one nested function changes only that one's hash (and the
    total).
    """
    out: list[tuple[str, bytes]] = []
    stack = [code]
    while stack:
        current = stack.pop()
        h = blake3.blake3()
        for part in (
            current.co_code,
            current.co_exceptiontable,
            repr(current.co_names).encode(),
            repr(current.co_varnames).encode(),
            repr(current.co_freevars).encode(),
            repr(current.co_cellvars).encode(),
            repr(
                (
                    current.co_argcount,
                    current.co_posonlyargcount,
                    current.co_kwonlyargcount,
                    current.co_flags,
                )
            ).encode(),
        ):
            h.update(len(part).to_bytes(8, "big") + part)
        nested: list[types.CodeType] = []
        for const in current.co_consts:
            if isinstance(const, types.CodeType):
                nested.append(const)
                text = f"<code {const.co_qualname}>"
            else:
                text = _const_text(const)
            h.update(len(text).to_bytes(8, "big") + text.encode())
        name = current.co_qualname
        if name in own:
            n = 2
            while f"{name}#{n}" in own:
                n += 1
            name = f"{name}#{n}"
        digest = h.digest()
        own[name] = digest.hex()[:16]
        out.append((name, digest))
        stack.extend(reversed(nested))  # definition order
    return out


def _const_text(const: object) -> str:
    """A constant as text, the same in every interpreter.

    Sets are sorted: their order follows string hashing, randomised per process.
    """
    if isinstance(const, frozenset):
        inner = ", ".join(sorted(_const_text(c) for c in const))
        return f"frozenset:{{{inner}}}"
    if isinstance(const, tuple):
        return f"tuple:({', '.join(_const_text(c) for c in const)})"
    return f"{type(const).__qualname__}:{const!r}"


def module_fingerprint(fn: Callable[..., Any]) -> str:
    """Hex blake3 of the source of the module that defines ``fn``.

    What journals written before code fingerprints recorded; still computed
    to compare with them. Falls back to the function's bytecode when the
    source is unavailable.
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


class CodeNow:
    """The code about to run: its fingerprint and per-function hashes.

    A plain class: a dataclass costs about 0.6 ms to build at import, which
    every first resume pays (issue 17).
    """

    __slots__ = ("code", "fingerprint")

    def __init__(self, fingerprint: str, code: dict[str, str]) -> None:
        self.fingerprint = fingerprint
        self.code = code

    @classmethod
    def of(cls, fn: Callable[..., Any]) -> CodeNow:
        fingerprint, code = code_of(fn)
        return cls(fingerprint, code)

    def stamp(self, event: jf.ExecutionStarted) -> jf.ExecutionStarted:
        """The ``execution`` event, carrying this code's fingerprint."""
        return msgspec.structs.replace(
            event, fingerprint=self.fingerprint, code=self.code or None
        )


def last_recorded(
    store: Store, run_id: str, record: jf.RunRecord, started: jf.RunStarted
) -> tuple[str, dict[str, str] | None]:
    """The fingerprint (and function map) of the latest execution that has one.

    One read of one event (the run record knows its seq), on resume only.
    """
    seq = record.last_execution_seq
    if seq is not None and seq > 0:
        for stored in store.read_events(run_id, seq, seq + 1):
            event = stored.event
            if isinstance(event, jf.ExecutionStarted) and event.fingerprint:
                return event.fingerprint, event.code
    return started.fingerprint, started.code


def describe_change(
    fn: Callable[..., Any],
    now: CodeNow,
    recorded: tuple[str, dict[str, str] | None],
) -> str:
    """What changed in the code since it was recorded ("" when nothing did)."""
    fingerprint, code = recorded
    if not fingerprint.startswith(CODE_PREFIX):
        # Written before code fingerprints: compare like with like.
        if module_fingerprint(fn) == fingerprint:
            return ""
        return f"the module of {reference(fn)} changed"
    if fingerprint == now.fingerprint:
        return ""
    if not code:
        return f"the code of {reference(fn)} changed"
    changed = sorted(n for n, h in now.code.items() if code.get(n) not in (None, h))
    added = sorted(n for n in now.code if n not in code)
    removed = sorted(n for n in code if n not in now.code)
    parts = []
    if changed:
        parts.append("changed: " + ", ".join(changed))
    if added:
        parts.append("new: " + ", ".join(added))
    if removed:
        parts.append("gone: " + ", ".join(removed))
    module = reference(fn).partition(":")[0]
    detail = "; ".join(parts) or "its constants or flags"
    return f"functions of {module} ({detail})"


def change_warnings(
    run_id: str, started: jf.RunStarted, fn: Callable[..., Any], change: str
) -> list[str]:
    """The warning (also logged) when the process or its code changed."""
    ref = reference(fn)
    if ref != started.process:
        message = (
            f"run {run_id!r} was started with process {started.process!r} and is"
            f" executed with {ref!r} as asked; replay will stop with"
            " NonDeterminismError if it does not make the calls already recorded"
        )
    elif change:
        message = (
            f"the code of process {started.process!r} changed since run"
            f" {run_id!r} last executed ({change}); replay will stop with"
            " NonDeterminismError if the change alters the calls already"
            " recorded (guard such changes with ctx.patched, docs/evolving-code.md)"
        )
    else:
        return []
    _log.warning("%s", message)
    return [message]


def code_changed_first(error: NonDeterminismError, change: str) -> NonDeterminismError:
    """The same divergence, its message saying first that the code changed."""
    message = str(error)
    head, sep, _causes = message.partition(" Likely causes:\n")
    if not sep:
        return error
    fork = message[message.find("\nTo branch") :] if "\nTo branch" in message else ""
    text = (
        f"the code changed since this run last executed ({change}).\n{head}"
        " Likely causes:\n"
        "  1. the code changed: guard the change with ctx.patched(...) so runs"
        " recorded before it keep their path (docs/evolving-code.md), or fork the"
        " run;\n"
        "  2. a branch on time, randomness or the environment read outside"
        " ctx.now()/ctx.random()/ctx.uuid();\n"
        "  3. iterating a set, or a dict built in an order that changed." + fork
    )
    return type(error)(
        text,
        run_id=error.run_id,
        key=error.key,
        seq=error.seq,
        recorded=error.recorded,
        replayed=error.replayed,
        replayed_args=error.replayed_args,
    )
