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
import types
import uuid as _uuid
from collections.abc import Awaitable, Callable, Coroutine, Generator, Mapping
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

import blake3

import journal_format as jf
from journal_format import ADDRESS_SIZE, EFFECT
from journal_format._codec import raw_decode as _raw_decode, raw_encode as _raw_encode

from ..errors import PayloadError
from .branches import Parallel, current
from .decisions import call_site
from .parallel import Resolved
from .scope import Scope, current_scope
from .tasks import TaskDef, as_task
from .typed import bind, check_args, convert_result

if TYPE_CHECKING:
    import random as _random  # imported by ctx.random(): ~0.6 ms of every resume

    from .backend import ContextBackend  # a Protocol class: ~0.1 ms to build

T = TypeVar("T")
U = TypeVar("U")
P = ParamSpec("P")
R = TypeVar("R")

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)


class Context:
    """What a process gets as ``ctx``: ``async def process(inputs, ctx: Context)``.

    Its methods are the process's only door to effects (``task``, ``call``,
    ``breakpoint``, ``wait_for_event``), time and randomness (``now``,
    ``random``, ``uuid``, ``sleep``), concurrency (``parallel.all``,
    ``parallel.map``) and logs (``log``). Import it for annotations:
    ``from replay_engine import Context``.
    """

    __slots__ = ("_rt", "parallel")

    def __init__(self, runtime: ContextBackend) -> None:
        self._rt = runtime
        self.parallel = Parallel(runtime)

    @property
    def run_id(self) -> str:
        """The id of the run being executed."""
        return self._rt.run_id

    @overload
    def task(
        self,
        t: Callable[P, Coroutine[Any, Any, R]],
        args: Mapping[str, Any] | None = None,
    ) -> Awaitable[R]: ...
    @overload
    def task(
        self, t: Callable[P, R], args: Mapping[str, Any] | None = None
    ) -> Awaitable[R]: ...
    def task(self, t: Any, args: Mapping[str, Any] | None = None) -> Awaitable[Any]:
        """Call a task durably: ``result = await ctx.task(lint, {"files": fs})``.

        On replay a completed call is answered from the journal without
        dispatch and a failed one raises the same :class:`TaskFailed`. The
        result has the task's return type (for an ``async def`` task, what it
        returns when awaited), converted to its annotation (``typed``), live
        and replayed alike. ``args`` is checked by the type checker only as a
        mapping: use :meth:`call` to have each argument checked.

        Args:
            t: a ``@task`` (or ``@external``) function; a plain function is
                wrapped with default options.
            args: the keyword arguments, a mapping msgspec can encode.

        Raises:
            PayloadError: ``args`` cannot be encoded, or an argument does not
                fit the task's annotation (nothing is recorded).
            NonDeterminismError: the journal holds another call at this key.
        """
        rt = self._rt
        journal = rt.journal
        if journal.diverged is not None or rt.stopping:
            rt.check_live()
        tdef = t if type(t) is TaskDef else as_task(t)
        try:
            scope = _get_scope()
        except LookupError:
            scope = _scope()  # raises the named error
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
            args_bytes = _raw_encode(args)  # encode_payload's bytes, one call less
        except Exception:
            args_bytes = _encode_args(tdef, args)  # raises its PayloadError
        rt.activity += 1
        # The replay loop's common case, decided here without a call deeper:
        # a completed call whose args are short enough to be their own
        # reference, equal to the recorded ones (JF-026), so the address need
        # not be taken. Anything else (long args, a mismatch, a failed or
        # unfinished call, no entry) is decided by ``journal.answer`` below,
        # exactly as before. Timed by bench/bench_reexec.py.
        entry = journal.entries.get(key)
        if (
            entry is not None
            and entry.args == args_bytes
            and (result := entry.result) is not None
            and entry.task == tdef.name
            and entry.kind == EFFECT
            and len(args_bytes) < ADDRESS_SIZE
        ):
            # What journal.answer does on a match (visited.add(key)), by the
            # entry's seq when the journal marks reached calls by seq.
            marks = journal.marks
            if marks is None:
                journal.visited.add(key)
            else:
                try:
                    marks[entry.seq] = 1
                except IndexError:  # recorded past the load: Reached grows
                    journal.visited.add(key)
        else:
            answered = self._answer(tdef, key, scope, args, args_bytes)
            if not isinstance(answered, bytes):
                return answered  # new, failed, abandoned or unfinished
            result = answered
        # Completed before: answered here rather than one call deeper in the
        # runtime. An inline result is its own ref.
        rt.stats.replayed += 1
        if rt.tracing is not None:  # OpenTelemetry: off unless asked
            rt.tracing.replayed(rt.run_id, key, tdef.name, "completed")
        if len(result) >= ADDRESS_SIZE:
            result = journal.payload(result)
        try:
            value = _raw_decode(result)
        except Exception:
            value = rt.recorded_value(result, key)  # raises the named error
        if tdef.result_type is not None:  # annotated: a tuple, a Struct …
            value = convert_result(tdef, value, rt.run_id, key)
        if scope.next_index == 1 and scope.prefix:
            # A branch's first call (``lambda i: ctx.task(...)``): the branch
            # driver takes a Resolved's value without awaiting it at all.
            resolved = _new(Resolved)  # without a Python __init__ call
            resolved.value = value
            return resolved
        return _resolved(value)  # cheaper to await than a Resolved

    def _answer(
        self,
        tdef: TaskDef[..., Any],
        key: bytes,
        scope: Scope,
        args: Mapping[str, Any],
        args_bytes: bytes,
    ) -> bytes | Awaitable[Any]:
        """:meth:`task` past its fast path: the journal's answer in full.

        The recorded result's reference of a completed call (long args), or
        what the runtime returns for any other call; a mismatch raises the
        divergence (``journal.answer``).
        """
        rt = self._rt
        address = _payload_ref(args_bytes)  # small args are compared inline
        entry = rt.journal.answer(key, EFFECT, tdef.name, address, args_bytes)
        if entry is None:
            if (plan := tdef._plan or tdef.plan).checks:
                # A new call: its args must fit the annotations before
                # anything is recorded (answered calls were checked when
                # first made).
                problem = check_args(plan, args, args_bytes)
                if problem is not None:
                    raise PayloadError(
                        f"ctx.task({tdef.name}, ...) at {call_site()}, key"
                        f" {jf.key_bytes_to_text(key)} of run {rt.run_id!r}:"
                        f" {problem}. Pass a value of the annotated type;"
                        " nothing was recorded."
                    )
        elif entry.result is not None:
            return entry.result  # completed before (its args are long)
        return rt.task(tdef, key, scope, args_bytes, address, entry)

    def run_child(
        self, process: Any, inputs: Any = None, run_id: str | None = None
    ) -> Awaitable[Any]:
        """Start a child run and await its result: ``r = await ctx.run_child(p, x)``.

        The child is a run of its own (``run_id``, or ``{parent}--{key}``),
        linked to this run and key, executed by the same engine; its outcome
        is journaled here, so a replay answers it without reading the child.
        Its failure raises :class:`ChildRunFailed`; a child that waits makes
        this run wait. See docs/design.md, "Sub-runs".

        Raises:
            ChildRunFailed: the child failed, was cancelled or timed out.
            ReplayEngineError: ``run_id`` is taken by a run that is not this
                run's child (nothing is recorded).
        """
        rt = self._rt
        rt.check_live()
        scope = _scope()
        key = scope.next_key()  # at call time, like every ctx call
        return rt.run_child(key, scope, process, inputs, run_id)

    @overload
    def call(
        self, t: Callable[P, Coroutine[Any, Any, R]], /
    ) -> Callable[P, Awaitable[R]]: ...
    @overload
    def call(self, t: Callable[P, R], /) -> Callable[P, Awaitable[R]]: ...
    def call(self, t: Any, /) -> Callable[..., Awaitable[Any]]:
        """The typed call form: ``result = await ctx.call(lint)(files=fs)``.

        Returns a function with the task's own parameters, which the type
        checker verifies argument by argument; calling it is
        ``ctx.task(t, {...})`` with those arguments (positional ones are bound
        to their parameter names), so both forms record the same call and
        either can replay the other's journal. The invocation key is taken
        when the returned function is called, not by ``ctx.call`` itself.
        """
        tdef = t if type(t) is TaskDef else as_task(t)
        task = self.task

        def invoke(*args: Any, **kwargs: Any) -> Awaitable[Any]:
            if args:
                kwargs = bind(tdef.name, tdef.plan.positional, args, kwargs)
            return task(tdef, kwargs)

        return invoke

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
        import random  # here, not at the top: see there

        return random.Random(seed)

    def uuid(self) -> _uuid.UUID:
        """A UUID (version 4 layout) derived from the run id and this call's key."""
        raw = self._value("uuid", lambda key: self._derive(key, "uuid")[:16])
        assert isinstance(raw, bytes)
        b = bytearray(raw)
        b[6] = (b[6] & 0x0F) | 0x40
        b[8] = (b[8] & 0x3F) | 0x80
        return _uuid.UUID(bytes=bytes(b))

    def patched(self, patch_id: str) -> bool:
        """Whether this run takes the new path of the change named ``patch_id``.

        ``if ctx.patched("add-lint"): <new code> else: <old code>``. A run
        that reaches it for the first time records a marker and gets True; a
        run recorded before the change (its journal has calls past this point
        and no marker) gets False and replays its old path without diverging.
        The answer is taken from the journal on every resume, so it never
        flips. See docs/evolving-code.md.

        Raises:
            PatchError: ``patch_id`` is not a non-empty string, or the same id
                would answer differently at another place of this run.
        """
        rt = self._rt
        rt.check_live()
        from .patches import check_id  # not imported by a resume without patches

        return rt.patched(_scope(), check_id(patch_id, "patched"))

    def deprecate_patch(self, patch_id: str) -> None:
        """Retire ``ctx.patched(patch_id)`` once no run needs its old path.

        Replace ``if ctx.patched(id): new else: old`` by
        ``ctx.deprecate_patch(id); new``: the new code always runs, a marker
        recorded for ``id`` is accepted and skipped, and none is written.

        Raises:
            PatchError: ``patch_id`` is not a non-empty string.
        """
        rt = self._rt
        rt.check_live()
        from .patches import check_id

        rt.deprecate_patch(_scope(), check_id(patch_id, "deprecate_patch"))

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


_scope = current  # the scope of the ctx call being made
_get_scope = current_scope.get  # the same, without a call (LookupError outside)
_payload_ref = jf.payload_ref
_new = object.__new__


_special: dict[tuple[str, str, float | None], TaskDef[..., Any]] = {}


def _noop(**_: Any) -> None:
    return None


def _breakpoint_def(timeout: float | None) -> TaskDef[..., Any]:
    key = ("breakpoint", "breakpoint", timeout)
    if key not in _special:
        _special[key] = TaskDef(
            _noop, name="breakpoint", kind="breakpoint", timeout=timeout
        )
    return _special[key]


def _signal_def(name: str, timeout: float | None) -> TaskDef[..., Any]:
    key = ("signal", name, timeout)
    if key not in _special:
        _special[key] = TaskDef(_noop, name=name, kind="signal", timeout=timeout)
    return _special[key]


# Pieces of ``ctx.task``'s replay path. ``_resolved`` is the awaitable a replayed
# call returns; ``_encode_args`` the slow path of encoding a call's args, taken
# only when the fast one raised.
@types.coroutine
def _resolved(value: T) -> Generator[Any, Any, T]:
    """An awaitable that returns ``value`` at once: a replayed ``ctx.task``.

    A generator-based coroutine: ``await`` runs it straight away (no
    ``__await__`` lookup and call, as a :class:`Resolved` needs; about 80 ns
    less per replayed call). Like a coroutine, it is awaited once: live code
    cannot await a ``ctx.task`` twice either.
    """
    return value
    yield  # type: ignore[unreachable]  # a generator that never suspends


def _encode_args(tdef: TaskDef[..., Any], args: Mapping[str, Any]) -> bytes:
    """``args`` encoded, or the ``PayloadError`` saying why they cannot be."""
    try:
        return jf.encode_payload(args)
    except jf.FormatError as exc:
        raise PayloadError(
            f"ctx.task({tdef.name}, ...) at {call_site()}: its args cannot be"
            f" encoded: {exc}. Pass only msgspec-encodable values (dicts, lists,"
            " str, int, float, bool, None, bytes, msgspec Structs); nothing was"
            " recorded."
        ) from None
