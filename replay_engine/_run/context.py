"""``ctx``: the only door a process has to effects, time, randomness and logs.

``Context`` is a thin front over the runtime (``ContextBackend``): each method
checks its arguments, takes the call's invocation key, and hands the call on.
The runtime asks the journal whether the call was made before
(``RunJournal.answer``) and either answers from it (replay) or records, then
acts (live).

Why keys are taken here, when a method is *called*, and not when its result is
awaited: a key must be fixed by program order alone. Awaits finish in whatever
order effects complete, so keys taken at await time would differ from one
execution to the next; keys taken at call time do not. (Consequence: a call
made but never awaited still holds its key.)
"""

from __future__ import annotations

import datetime as _dt
import random as _random
import uuid as _uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import blake3

import journal_format as jf
from journal_format import ADDRESS_SIZE, EFFECT

from ..errors import PayloadError, ReplayEngineError
from . import race
from .backend import ContextBackend
from .divergence import call_site
from .parallel import Resolved, check_map_fn, check_thunks, run_group
from .scope import Scope, current_scope
from .tasks import TaskDef, as_task

T = TypeVar("T")
U = TypeVar("U")

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)


class Parallel:
    """``ctx.parallel``: run branches concurrently with stable keys."""

    __slots__ = ("_rt",)

    def __init__(self, runtime: ContextBackend) -> None:
        self._rt = runtime

    def all(
        self,
        thunks: Iterable[Callable[[], Awaitable[T] | T]],
        *,
        settled: bool = False,
        fail_fast: bool = False,
    ) -> Awaitable[list[T]]:
        """Run thunks concurrently; results in input order.

        Every branch is settled before this returns. If any failed, the
        failure of the lowest-index branch is raised, whatever order they
        finished in; the other branches' completions stay recorded.

        Args:
            thunks: functions of no argument, one per branch.
            settled: return a failed branch's :class:`TaskFailed` in its place
                instead of raising (other exceptions are still raised).
            fail_fast: on the first failure (in completion order), cancel the
                branches still running (their open effects are recorded
                abandoned) and raise it at once. Not with ``settled``.

        Raises:
            ThunkRequired: an item is an awaitable (``ctx.task(...)``) rather
                than a thunk (``lambda: ctx.task(...)``).
        """
        makers = check_thunks(thunks)
        rt = self._rt
        key = _group_key(rt)
        if settled or fail_fast:
            return race.run_settling(
                rt,
                key,
                makers,
                None,
                None,
                settled=settled,
                fail_fast=fail_fast,
            )
        return run_group(key, makers, None, None, rt.tick, rt.groups)

    def any(
        self, thunks: Iterable[Callable[[], Awaitable[T] | T]]
    ) -> Awaitable[tuple[int, T]]:
        """Race thunks: ``(index, value)`` of the first branch to succeed.

        The branches still running are then cancelled (their open effects
        are recorded abandoned: a late post to one is refused), and the
        decision is journaled, so replay picks the same winner whatever the
        timing. If every branch fails, the lowest-index failure is raised.

        Raises:
            ThunkRequired: an item is an awaitable rather than a thunk.
        """
        return race.run_any(self._rt, check_thunks(thunks))

    def map(
        self,
        items: Sequence[T] | Iterable[T],
        fn: Callable[[T], Awaitable[U] | U],
        *,
        limit: int | None = None,
        settled: bool = False,
        fail_fast: bool = False,
    ) -> Awaitable[list[U]]:
        """Run ``fn(item)`` for every item concurrently; results in input order.

        Args:
            items: the items; branch ``j`` gets ``items[j]``.
            fn: called once per item, in its own branch.
            limit: at most this many branches run at once (the engine's
                in-flight bound applies as well).
            settled: as for :meth:`all`.
            fail_fast: as for :meth:`all`; no branch starts after the first
                failure.
        """
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be >= 1, not {limit}")
        values = items if isinstance(items, list | tuple | range) else list(items)
        fn = check_map_fn(fn)
        rt = self._rt
        key = _group_key(rt)
        if settled or fail_fast:
            return race.run_settling(
                rt,
                key,
                fn,
                values,
                limit,
                settled=settled,
                fail_fast=fail_fast,
            )
        return run_group(key, fn, values, limit, rt.tick, rt.groups)


class Context:
    """What a process function gets as ``ctx``."""

    __slots__ = ("_rt", "parallel")

    def __init__(self, runtime: ContextBackend) -> None:
        self._rt = runtime
        self.parallel = Parallel(runtime)

    @property
    def run_id(self) -> str:
        """The id of the run being executed."""
        return self._rt.run_id

    def task(self, t: Any, args: Mapping[str, Any] | None = None) -> Awaitable[Any]:
        """Call a task durably: ``result = await ctx.task(lint, {"files": fs})``.

        On replay a completed call is answered from the journal without
        dispatch and a failed one raises the same :class:`TaskFailed`.

        Args:
            t: a ``@task`` (or ``@external``) function; a plain function is
                wrapped with default options.
            args: the keyword arguments, a mapping msgspec can encode.

        Raises:
            PayloadError: ``args`` cannot be encoded (nothing is recorded).
            NonDeterminismError: the journal holds another call at this key.
        """
        rt = self._rt
        journal = rt.journal
        if journal.diverged is not None or rt.stopping:
            rt.check_live()
        tdef = t if type(t) is TaskDef else as_task(t)
        scope = _scope()
        key = scope.next_key()  # now, at call time, not at await (module doc)
        if type(args) is dict:
            pass  # the common case, without the slower ABC check below
        elif args is None:
            args = {}
        elif not isinstance(args, Mapping):
            raise PayloadError(
                f"ctx.task({tdef.name}, args) at {call_site()}: args must be a mapping"
                f" of keyword arguments, not {type(args).__name__}"
            )
        try:
            args_bytes = jf.encode_payload(args)
        except jf.FormatError as exc:
            raise PayloadError(
                f"ctx.task({tdef.name}, ...) at {call_site()}: its args cannot be"
                f" encoded: {exc}. Pass only msgspec-encodable values (dicts, lists,"
                " str, int, float, bool, None, bytes, msgspec Structs); nothing was"
                " recorded."
            ) from None
        address = jf.payload_ref(args_bytes)  # small args are compared inline
        rt.activity += 1
        entry = journal.answer(key, EFFECT, tdef.name, address, args_bytes)
        if entry is not None:
            result = entry.result
            if result is not None:
                # Completed before: the replay loop's common case, answered
                # here rather than one call deeper in the runtime (it is timed
                # by bench/bench_engine.py). An inline result is its own ref.
                rt.stats.replayed += 1
                if len(result) >= ADDRESS_SIZE:
                    result = journal.payload(result)
                return Resolved(rt.recorded_value(result, key))
        return rt.task(tdef, key, scope, args_bytes, address, entry)

    def log(self, message: str, **fields: Any) -> None:
        """Emit a log line once per run (not again on every replay).

        Log lines take no invocation key, so adding one to a running process
        never shifts the keys of later calls.
        """
        rt = self._rt
        rt.check_live()
        anchor, ordinal = _scope().log_anchor()
        rt.log(anchor, ordinal, message, fields)

    def now(self) -> _dt.datetime:
        """The current UTC time, recorded at first execution and replayed after."""
        ns = self._value("now", lambda key: self._rt.clock_ns() // 1000 * 1000)
        assert isinstance(ns, int)
        return _EPOCH + _dt.timedelta(microseconds=ns // 1000)

    def random(self) -> _random.Random:
        """A ``random.Random`` seeded from the run id and this call's key."""
        seed = self._value(
            "random", lambda key: int.from_bytes(self._derive(key, "random")[:8], "big")
        )
        assert isinstance(seed, int)
        return _random.Random(seed)

    def uuid(self) -> _uuid.UUID:
        """A UUID (version 4 layout) derived from the run id and this call's key."""
        raw = self._value("uuid", lambda key: self._derive(key, "uuid")[:16])
        assert isinstance(raw, bytes)
        b = bytearray(raw)
        b[6] = (b[6] & 0x0F) | 0x40
        b[8] = (b[8] & 0x3F) | 0x80
        return _uuid.UUID(bytes=bytes(b))

    def sleep(self, seconds: float) -> Awaitable[None]:
        """Sleep durably: the due time is recorded; a resume sleeps what is left."""
        rt = self._rt
        rt.check_live()
        scope = _scope()
        key = scope.next_key()
        return rt.sleep(key, scope.prefix, seconds)

    def breakpoint(
        self, title: str, payload: Any = None, *, timeout: float | None = None
    ) -> Awaitable[dict[str, Any]]:
        """Wait for a person's approval: ``{"approved": bool, "response": ...}``.

        The request (title and payload) is recorded and the run waits; post
        ``--approve``/``--reject`` (or ``engine.post(..., result={"approved":
        ..., "response": ...})``) to answer. A rejection is an answer, not a
        failure.

        Raises:
            Expired: ``timeout`` seconds passed unanswered (recorded).
        """
        return self.task(_breakpoint_def(timeout), {"title": title, "payload": payload})

    def wait_for_event(
        self, name: str, *, timeout: float | None = None
    ) -> Awaitable[Any]:
        """Wait for a signal posted to the run (``post RUN --event NAME``); its payload.

        Each signal is consumed by one wait, in the order signals arrived; the
        pairing is recorded, so replay agrees.

        Raises:
            Expired: ``timeout`` seconds passed without the event (recorded).
        """
        return self.task(_signal_def(name, timeout), {"name": name})

    # -- helpers -----------------------------------------------------------------

    def _derive(self, key: bytes, what: str) -> bytes:
        # The lineage's seed, not the run id: a fork reproduces its parent.
        return blake3.blake3(
            f"{self._rt.seed}/{jf.key_bytes_to_text(key)}/{what}".encode()
        ).digest()

    def _value(self, kind: str, make: Callable[[bytes], int | bytes]) -> int | bytes:
        rt = self._rt
        rt.check_live()
        scope = _scope()
        key = scope.next_key()
        return rt.value(kind, key, scope.prefix, make)


def _scope() -> Scope:
    try:
        return current_scope.get()
    except LookupError:
        raise ReplayEngineError(
            "ctx was used outside its run: ctx methods may only be called while the"
            " engine executes the process (not from threads or after it returned)"
        ) from None


def _group_key(rt: ContextBackend) -> bytes:
    """Take the key of a parallel group (its branches' keys extend it)."""
    rt.check_live()
    key = _scope().next_key()
    rt.group(key)
    return key


_special: dict[tuple[str, str, float | None], TaskDef] = {}


def _noop(**_: Any) -> None:
    return None


def _breakpoint_def(timeout: float | None) -> TaskDef:
    key = ("breakpoint", "breakpoint", timeout)
    if key not in _special:
        _special[key] = TaskDef(
            _noop, name="breakpoint", kind="breakpoint", timeout=timeout
        )
    return _special[key]


def _signal_def(name: str, timeout: float | None) -> TaskDef:
    key = ("signal", name, timeout)
    if key not in _special:
        _special[key] = TaskDef(_noop, name=name, kind="signal", timeout=timeout)
    return _special[key]
