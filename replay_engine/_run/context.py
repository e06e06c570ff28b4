"""``ctx``: the only door a process has to effects, time, randomness and logs.

Every method takes the next invocation key of the calling branch's scope and
either answers from the journal (replay) or records, then acts (live). Keys
are taken when a method is *called*, not when its result is awaited, so a key
is fixed by program order alone.
"""

from __future__ import annotations

import datetime as _dt
import random as _random
import uuid as _uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import blake3

import journal_format as jf

from .._store.payload import encode_or_refuse
from ..errors import PayloadError, ReplayEngineError, task_failure
from .journal import call_site, describe_args, describe_entry, divergence
from .parallel import BranchAbandoned, Resolved, check_map_fn, check_thunks, run_group
from .scope import Scope, current_scope
from .tasks import TaskDef, as_task

if TYPE_CHECKING:
    from .runtime import Runtime

T = TypeVar("T")
U = TypeVar("U")

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
_key_text = jf.key_bytes_to_text
_EFFECT = jf.EFFECT


async def _raise(exc: BaseException) -> Any:
    raise exc


class Parallel:
    """``ctx.parallel``: run branches concurrently with stable keys."""

    __slots__ = ("_rt",)

    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime

    def all(
        self, thunks: Iterable[Callable[[], Awaitable[T] | T]]
    ) -> Awaitable[list[T]]:
        """Run thunks concurrently; results in input order.

        Every branch is settled before this returns. If any failed, the
        failure of the lowest-index branch is raised, whatever order they
        finished in; the other branches' completions stay recorded.

        Raises:
            ThunkRequired: an item is an awaitable (``ctx.task(...)``) rather
                than a thunk (``lambda: ctx.task(...)``).
        """
        makers = check_thunks(thunks)
        key = self._rt.group_key()
        return run_group(key, makers, None, None, self._rt.tick, self._rt.groups)

    def map(
        self,
        items: Sequence[T] | Iterable[T],
        fn: Callable[[T], Awaitable[U] | U],
        *,
        limit: int | None = None,
    ) -> Awaitable[list[U]]:
        """Run ``fn(item)`` for every item concurrently; results in input order.

        Args:
            items: the items; branch ``j`` gets ``items[j]``.
            fn: called once per item, in its own branch.
            limit: at most this many branches run at once (the engine's
                in-flight bound applies as well).
        """
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be >= 1, not {limit}")
        values = items if isinstance(items, list | tuple | range) else list(items)
        fn = check_map_fn(fn)
        key = self._rt.group_key()
        return run_group(key, fn, values, limit, self._rt.tick, self._rt.groups)


class Context:
    """What a process function gets as ``ctx``."""

    __slots__ = ("_rt", "parallel")

    def __init__(self, runtime: Runtime) -> None:
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
        if rt.diverged is not None or rt.stopping:
            rt.check_live()
        tdef = t if type(t) is TaskDef else as_task(t)
        scope = _scope()
        key = scope.next_key()
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
        journal = rt.journal
        entry = journal.entries.get(key)
        if entry is None:
            return rt.run_effect(
                tdef,
                key,
                scope.last_text(),
                scope.prefix,
                args_bytes,
                address,
                0,
                new=True,
            )
        if entry.kind != _EFFECT or entry.task != tdef.name or entry.args != address:
            rt.diverge(
                divergence(
                    rt.run_id,
                    key,
                    entry.seq,
                    recorded=describe_entry(entry),
                    replayed=f"task {tdef.name!r} args {describe_args(address)}",
                    replayed_args=args_bytes,
                )
            )
        journal.visited.add(key)
        result = entry.result
        if result is not None:
            rt.stats.replayed += 1
            return Resolved(jf.decode_payload(journal.payload(result)))
        if entry.abandoned:
            return _raise(BranchAbandoned())
        if entry.error is not None:
            rt.stats.replayed += 1
            error = entry.error
            return _raise(
                task_failure(
                    error.type,
                    error.message,
                    error.traceback,
                    key=_key_text(key),
                    task=tdef.name,
                )
            )
        # Requested but never completed: the crash window. Dispatch again
        # (same idempotency key), continuing its attempt count; an external
        # effect goes back to waiting for its result.
        return rt.run_effect(
            tdef,
            key,
            scope.last_text(),
            scope.prefix,
            args_bytes,
            address,
            entry.attempts,
            new=False,
            deadline_ns=entry.deadline_ns,
        )

    def log(self, message: str, **fields: Any) -> None:
        """Emit a log line once per run (not again on every replay).

        Log lines take no invocation key, so adding one to a running process
        never shifts the keys of later calls.
        """
        rt = self._rt
        rt.check_live()
        scope = _scope()
        anchor, ordinal = scope.log_anchor()
        if (anchor, ordinal) in rt.journal.logs or rt.frozen:
            return
        encode_or_refuse(fields, f"ctx.log({message!r}) at {call_site()}: fields", "")
        rt.record(
            jf.LogLine(key=anchor, ordinal=ordinal, message=str(message), fields=fields)
        )
        rt.emit_log(_key_text(anchor), str(message), fields)

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
        rt.tick()
        entry = rt.journal.entries.get(key)
        if entry is None:
            return rt.run_timer(key, scope.prefix, None, float(seconds))
        if entry.kind != jf.TIMER:
            rt.diverge(
                divergence(
                    rt.run_id,
                    key,
                    entry.seq,
                    recorded=describe_entry(entry),
                    replayed="ctx.sleep()",
                )
            )
        rt.journal.visited.add(key)
        if entry.fired:
            return Resolved(None)
        return rt.run_timer(key, scope.prefix, entry.due_ns, float(seconds))

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
            f"{self._rt.seed}/{_key_text(key)}/{what}".encode()
        ).digest()

    def _value(self, kind: str, make: Callable[[bytes], int | bytes]) -> int | bytes:
        rt = self._rt
        rt.check_live()
        scope = _scope()
        key = scope.next_key()
        rt.tick()
        entry = rt.journal.entries.get(key)
        if entry is not None:
            if entry.kind != jf.VALUE or entry.task != kind:
                rt.diverge(
                    divergence(
                        rt.run_id,
                        key,
                        entry.seq,
                        recorded=describe_entry(entry),
                        replayed=f"ctx.{kind}()",
                    )
                )
            rt.journal.visited.add(key)
            assert entry.value is not None
            return entry.value
        rt.check_new(key, scope.prefix, f"ctx.{kind}()")
        if rt.frozen:
            rt.stop_at_frontier(key, f"ctx.{kind}", "value")
        value = make(key)
        rt.record(jf.ValueRecorded(key=key, kind=kind, value=value))
        return value


def _scope() -> Scope:
    try:
        return current_scope.get()
    except LookupError:
        raise ReplayEngineError(
            "ctx was used outside its run: ctx methods may only be called while the"
            " engine executes the process (not from threads or after it returned)"
        ) from None


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
