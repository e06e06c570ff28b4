"""Effects on a Dask cluster: a ``distributed.Client`` as the dispatcher's executor.

Imported only when an engine is given a ``distributed.Client`` or a scheduler
address; ``distributed`` itself is imported only when the adapter is built,
so the core never needs it (``pip install "replay-engine[dask]"``).

The dispatcher hands any executor but a thread pool its tasks *by
reference*: ``submit(jobs.run_remote_chunk, items, run_id)``, where each
item is ``("module:qualname", args_bytes, key, attempt, max_attempts)`` and the result a
list of plain ``(status, payload)`` tuples (with tracing on,
``submit(jobs.run_traced_chunk, items, run_id, carriers)``: the same, plus each
attempt's trace context; merged alike). Workers import the task functions;
args and results cross as msgspec bytes. :class:`DaskExecutor` gives a Client
that interface:

* ``submit`` returns a ``concurrent.futures.Future`` that is resolved only
  once the result has been *gathered* to this process, by a coroutine on
  the client's own event loop, so fetches overlap and the engine's event
  loop never waits on the network. The Dask future is released as soon as
  its result is read, and the engine's ``max_in_flight`` bounds how many
  effects (so how many Dask tasks) are in flight at once.
* ``_max_workers`` is the cluster's total worker threads (refreshed every few
  seconds), which the dispatcher uses to size its chunks. The chunks of one
  pass of the engine's pump are sent together; once the cluster already has
  two tasks per thread, further chunks of a run are merged into bigger tasks
  (up to half a thread's share of the effects in flight, at most 512),
  because Dask's overhead is per task (a millisecond or more of scheduler
  time), not per effect.
* Failures are sorted into what they mean for the journal:

  - a chunk whose worker died (``KilledWorker``) or whose function raised
    on the worker is an *attempt failure* of each task in it, recorded and
    retried per the task's policy with the same idempotency key;
  - a lost scheduler (the connection dropped, the client closed, the
    scheduler unreachable) is :class:`~replay_engine.errors.ExecutorUnavailable`:
    nothing is recorded for the effects in flight, the run stops with that
    error, and a resume once the scheduler is back dispatches exactly the
    effects that had not completed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextlib
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from ..errors import ExecutorUnavailable
from . import jobs

P = ParamSpec("P")
T = TypeVar("T")

SCHEMES = ("dask://", "tcp://", "tls://", "inproc://", "ucx://", "ws://", "wss://")
"""Executor strings read as a scheduler address; ``dask://`` means ``tcp://``."""

_HINT_TTL = 5.0
"""Seconds between refreshes of the cluster's thread count."""

_DEFAULT_HINT = 4

_MERGE_MAX = 512
"""At most this many effects per Dask task when chunks are merged."""

_Part = tuple[cf.Future[Any], int | None]
"""A future a Dask task resolves: with ``n`` of a merged chunk's outcomes, or
(``None``) with the task's whole result."""


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def scheduler_address(text: str) -> str:
    """The ``distributed`` address for ``dask://HOST:PORT`` (or any Dask address).

    Raises:
        ValueError: not an address with a known scheme.
    """
    text = text.strip()
    if text.startswith("dask://"):
        text = "tcp://" + text[len("dask://") :]
    if not text.startswith(SCHEMES[1:]) or text.partition("://")[2] in ("", ":"):
        raise ValueError(
            f"{text!r} is not a Dask scheduler address: give dask://HOST:PORT"
            " (or tcp://HOST:PORT)"
        )
    return text


def as_dask_executor(obj: Any, *, connect_timeout: float = 10.0) -> DaskExecutor:
    """The executor for ``Engine(executor=obj)``: a Client, or an address.

    A ``distributed.Client`` is used as is (and never closed by the engine);
    an address string gets a client of its own, connected on first use. A
    ``distributed`` executor (``client.get_executor()``) is unwrapped to its
    client.

    Raises:
        ValueError: a string that is not a scheduler address.
        TypeError: anything else that is not a Client.
        ImportError: ``distributed`` is not installed (``replay-engine[dask]``).
    """
    if isinstance(obj, DaskExecutor):
        return obj
    if isinstance(obj, str):
        address = scheduler_address(obj)
        _require_distributed()
        return DaskExecutor(address, connect_timeout=connect_timeout)
    distributed = _require_distributed()
    client = getattr(obj, "_client", None) if not _is_client(obj) else obj
    if not isinstance(client, distributed.Client):
        raise TypeError(
            "executor must be None, a concurrent.futures.Executor, a"
            " distributed.Client or a scheduler address ('dask://HOST:PORT'),"
            f" not {type(obj).__module__}.{type(obj).__qualname__}"
        )
    return DaskExecutor(client, connect_timeout=connect_timeout)


def _is_client(obj: object) -> bool:
    return any(
        c.__name__ == "Client" and c.__module__.startswith("distributed")
        for c in type(obj).__mro__
    )


def _require_distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(
            "running effects on Dask needs the 'distributed' package: pip install"
            f" 'replay-engine[dask]' ({exc})"
        ) from exc
    return distributed


class DaskExecutor(cf.Executor):
    """A ``concurrent.futures`` face on a ``distributed.Client``.

    Args:
        client: a connected ``distributed.Client`` (left open on shutdown),
            or a scheduler address (``"tcp://host:8786"``); the executor then
            connects on first use, reconnects after the scheduler went away,
            and closes its client on shutdown.
        connect_timeout: seconds to wait for a scheduler when connecting.
        retry_after: after a failed connection attempt, submissions fail at
            once for this many seconds (a run that lost its scheduler stops
            fast instead of trying again for every remaining effect).
    """

    def __init__(
        self,
        client: Any,
        *,
        connect_timeout: float = 10.0,
        retry_after: float = 2.0,
    ) -> None:
        self._distributed = _require_distributed()
        self._own_client = isinstance(client, str)
        self._client: Any | None = None if self._own_client else client
        if isinstance(client, str):
            self.address: str | None = scheduler_address(client)
        else:
            self.address = _client_address(client)
        self.connect_timeout = connect_timeout
        self.retry_after = retry_after
        self._lock = threading.Lock()
        self._failed: ExecutorUnavailable | None = None
        self._failed_at = 0.0
        self._closed = False
        self._hint = 0
        self._hint_at = 0.0
        # Dask future key -> (Dask future, what it resolves), until it is read.
        self._pending: dict[str, tuple[Any, list[_Part]]] = {}
        # Chunks submitted during this pass of the engine's pump, not sent yet.
        # (run id, items, future, trace carriers or None: tracing.py).
        self._queued: list[tuple[str, Any, cf.Future[Any], Any]] = []
        self._flush_scheduled = False

    def __repr__(self) -> str:
        return f"<DaskExecutor {self.address or '(no scheduler)'}>"

    # -- what the dispatcher uses -------------------------------------------------

    @property
    def _max_workers(self) -> int:
        """The cluster's worker threads, as last seen (a chunk-size hint)."""
        return self._hint or _DEFAULT_HINT

    def submit(
        self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> cf.Future[T]:
        """Run ``fn(*args, **kwargs)`` on the cluster; its result comes back here.

        Never raises for a missing scheduler: the returned future then fails
        with :class:`~replay_engine.errors.ExecutorUnavailable`.
        """
        out: cf.Future[T] = cf.Future()
        out.set_running_or_notify_cancel()
        loop = _running_loop()
        traced = fn is jobs.run_traced_chunk and len(args) == 3
        if (
            (traced or (fn is jobs.run_remote_chunk and len(args) == 2))
            and loop is not None
            and not kwargs
        ):
            # Chunks submitted in one pass of the engine's pump are sent
            # together once it ends, merged when the cluster is saturated.
            items, run_id = args[0], args[1]
            carriers = args[2] if traced else None
            with self._lock:
                self._queued.append((str(run_id), items, out, carriers))
                schedule = not self._flush_scheduled
                self._flush_scheduled = True
            if schedule:
                loop.call_soon(self._flush)
            return out
        self._send(fn, args, kwargs, [(out, None)])
        return out

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop; close the client if this executor made it.

        Effects still running fail with ``ExecutorUnavailable`` (nothing is
        recorded for them; a resume dispatches them again).
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            client, self._client = self._client, None
            pending = list(self._pending.values())
            self._pending.clear()
            queued, self._queued = self._queued, []
        gone = ExecutorUnavailable(
            "the Dask executor was shut down while effects were running",
            address=self.address,
        )
        for _, _, out, _ in queued:
            _settle(out, exc=gone)
        for dfut, parts in pending:
            for out, _ in parts:
                _settle(out, exc=gone)
            if cancel_futures and client is not None and not self._own_client:
                with contextlib.suppress(Exception):
                    dfut.cancel()
        if client is not None and self._own_client:
            with contextlib.suppress(Exception):
                client.close(timeout=self.connect_timeout if wait else 2)

    # -- sending ----------------------------------------------------------------------

    def _flush(self) -> None:
        """Send the chunks queued during one pass of the engine's pump.

        While the cluster has idle threads, each chunk is its own Dask task
        (the dispatcher sized them to spread over the workers). Once it is
        saturated (two tasks per thread in flight), further chunks of a run
        are merged into tasks of up to half a thread's share of the effects
        in flight (at most 512): they would queue anyway, and Dask's cost is
        per task, not per effect.
        """
        with self._lock:
            queued, self._queued = self._queued, []
            self._flush_scheduled = False
        threads = self._max_workers
        pending = list(self._pending.values())
        idle = max(0, 2 * threads - len(pending))
        in_flight = sum(n or 1 for _, parts in pending for _, n in parts)
        in_flight += sum(len(entry[1]) for entry in queued)
        # Half a thread's share of what is in flight: the backlog stays
        # spread over every thread, so no merged task makes a long tail.
        cap = max(1, min(_MERGE_MAX, in_flight // (2 * threads)))
        # (run id, items, parts, trace carriers: None for an untraced pack)
        Pack = tuple[str, list[Any], list[_Part], list[Any] | None]
        packs: list[Pack] = []
        merging: dict[tuple[str, bool], Pack] = {}
        for run_id, items, out, carriers in queued:
            if idle > 0:
                idle -= 1
                packs.append((run_id, list(items), [(out, len(items))], carriers))
                continue
            traced = carriers is not None
            pack = merging.get((run_id, traced))
            if pack is None or len(pack[1]) + len(items) > cap:
                pack = (run_id, [], [], [] if traced else None)
                merging[run_id, traced] = pack
                packs.append(pack)
            pack[1].extend(items)
            pack[2].append((out, len(items)))
            if pack[3] is not None:
                pack[3].extend(carriers)
        for run_id, items, parts, carried in packs:
            if carried is None:
                self._send(jobs.run_remote_chunk, (items, run_id), {}, parts)
            else:
                self._send(jobs.run_traced_chunk, (items, run_id, carried), {}, parts)

    def _send(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        parts: list[_Part],
    ) -> None:
        """Submit one Dask task whose result resolves ``parts``; never raises."""
        key = f"replay-engine-{uuid.uuid4().hex}"
        dfut = None
        try:
            client = self._connected()
            dfut = client.submit(fn, *args, key=key, pure=False, **kwargs)
            self._pending[key] = (dfut, parts)
            # Wait for and fetch the result on the client's own event loop:
            # fetches overlap, and the engine's loop never waits on the network.
            client.loop.add_callback(self._fetch, dfut, parts)
        except BaseException as exc:
            if self._pending.pop(key, None) is not None and dfut is not None:
                with contextlib.suppress(Exception):
                    dfut.release()
            if isinstance(exc, Exception) and self._infrastructure(exc):
                exc = self._unavailable(exc)
            for out, _ in parts:
                _settle(out, exc=exc)
            if not isinstance(exc, Exception):
                raise
            return
        if time.monotonic() - self._hint_at > _HINT_TTL:
            self._hint_at = time.monotonic()
            client.loop.add_callback(self._refresh_hint, client)

    # -- the connection -------------------------------------------------------------

    def _connected(self) -> Any:
        """The client, if it is connected to its scheduler; else raise."""
        with self._lock:
            if self._closed:
                raise ExecutorUnavailable(
                    "the Dask executor was shut down", address=self.address
                )
            client = self._client
            if client is not None:
                status = client.status
                if status == "running":
                    return client
                if not self._own_client or status in ("connecting", "newly-created"):
                    # distributed reconnects by itself; until then, fail fast.
                    raise ExecutorUnavailable(
                        self._lost_message(status), address=self.address
                    )
                # Our client gave up on its scheduler: start afresh below.
                self._client = None
                with contextlib.suppress(Exception):
                    client.close(timeout=1)
            failed = self._failed
            if (
                failed is not None
                and time.monotonic() - self._failed_at < self.retry_after
            ):
                raise failed
            try:
                client = self._distributed.Client(
                    self.address,
                    timeout=self.connect_timeout,
                    set_as_default=False,
                )
            except Exception as exc:
                self._failed = ExecutorUnavailable(
                    f"cannot reach the Dask scheduler at {self.address}"
                    f" ({type(exc).__name__}: {exc}). Start it (or check the"
                    " address), then resume the run: effects that completed are"
                    " kept, the others are dispatched again.",
                    address=self.address,
                )
                self._failed_at = time.monotonic()
                raise self._failed from exc
            self._client = client
            self._failed = None
            return client

    def _lost_message(self, status: str) -> str:
        what = (
            "lost its connection to the Dask scheduler"
            if status in ("connecting", "running")
            else f"Dask client is {status}"
        )
        return (
            f"the engine's executor {what} ({self.address}). Nothing was recorded"
            " for the effects in flight: resume the run once the scheduler is back"
            " and they are dispatched again (effects that completed are kept)."
        )

    def _unavailable(self, exc: BaseException) -> ExecutorUnavailable:
        client = self._client
        status = client.status if client is not None else "closed"
        error = ExecutorUnavailable(self._lost_message(status), address=self.address)
        error.__cause__ = exc
        return error

    def _infrastructure(self, exc: BaseException) -> bool:
        """True for errors meaning the scheduler (not a task) is unreachable."""
        d = self._distributed
        comm_closed = d.comm.core.CommClosedError
        closed_client = d.client.ClosedClientError
        return isinstance(exc, OSError | TimeoutError | comm_closed | closed_client)

    # -- on the client's event loop -------------------------------------------------

    async def _refresh_hint(self, client: Any) -> None:
        with contextlib.suppress(Exception):
            self._hint = max(1, sum((await client.nthreads()).values()))

    async def _fetch(self, dfut: Any, parts: list[_Part]) -> None:
        """Wait for one task, fetch its result, resolve its parts, release the key."""
        try:
            result = await dfut.result()
        except BaseException as exc:
            # KilledWorker, or the chunk function raised on the worker: an
            # attempt failure of each task in the chunk. A cancelled key or a
            # failed fetch: the scheduler is gone, unless the client is fine.
            lost = dfut.status != "error" and self._lost(dfut, exc)
            error = self._unavailable(exc) if lost else exc
            for out, _ in parts:
                _settle(out, exc=error)
        else:
            start = 0
            for out, n in parts:
                if n is None:
                    _settle(out, result=result)
                else:
                    _settle(out, result=result[start : start + n])
                    start += n
        finally:
            self._pending.pop(dfut.key, None)
            with contextlib.suppress(Exception):
                dfut.release()

    def _lost(self, dfut: Any, exc: BaseException) -> bool:
        """Whether ``exc`` from a chunk means the scheduler is gone, not the task."""
        if getattr(exc, "reason", None) == "scheduler-connection-lost":
            return True
        client = dfut.client
        if client is None or client.status != "running" or self._closed:
            return True  # the client closed or is reconnecting
        # Anything else (a restart of the cluster, a key cancelled by someone
        # else) is a failure of this attempt.
        return self._infrastructure(exc)


def _client_address(client: Any) -> str | None:
    with contextlib.suppress(Exception):
        return str(client.scheduler.address)
    return None


def _settle(
    out: cf.Future[Any], *, result: Any = None, exc: BaseException | None = None
) -> None:
    with contextlib.suppress(cf.InvalidStateError):
        if exc is not None:
            out.set_exception(exc)
        else:
            out.set_result(result)
