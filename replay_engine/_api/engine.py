"""``Engine``: the embedding API, composed of one class per job.

=====================  =========================================================
module                 methods
=====================  =========================================================
:mod:`.base`           ``Engine(...)``, ``close``, ``payload``; the shared state
:mod:`.executing`      ``run``, ``resume`` (and ``_async``), ``durable``
:mod:`.effects`        ``iterate``, ``waiting``, ``pending``, ``post``,
                       ``post_event``, ``claim``, ``heartbeat``
:mod:`.travel`         ``replay`` (and ``_async``), ``fork``
:mod:`.inspecting`     ``status``, ``result``, ``runs``, ``events``, ``verify``
:mod:`.retention`      ``delete``, ``gc`` (and ``compact_journal``, a function)
:mod:`.cancelling`     ``cancel``
:mod:`.compat`         ``check_compatible`` (which stored runs new code breaks)
:mod:`.scheduling`     ``submit`` (a queued run), ``worker`` (:mod:`.worker`)
:mod:`.statistics`     ``statistics`` (runs by status, sizes, this engine's counts)
=====================  =========================================================
"""

from __future__ import annotations

from .cancelling import Cancelling
from .compat import CompatChecking
from .retention import Retention
from .scheduling import Scheduling
from .statistics import Statistics


class Engine(Scheduling, CompatChecking, Retention, Cancelling, Statistics):
    """A journal directory and the runs in it.

    Args:
        path: the LMDB environment directory; created if missing.
        durability: ``"fsync"`` (every group commit survives power loss; the
            default) or ``"process"`` (no fsync: survives a crash of this
            process, not of the machine).
        executor: where sync tasks run: ``None`` (or ``"threads"``) for a
            thread pool, ``"processes"`` for a process pool the engine owns
            (its workers die with the engine and do not inherit its stdio),
            any ``concurrent.futures.Executor``, a ``distributed.Client`` or a Dask
            scheduler address (``"dask://host:8786"``; needs
            ``replay-engine[dask]``, see docs/dask.md). A thread pool gets
            functions; any other executor gets tasks by reference
            (``module:qualname``) with args and results as msgspec bytes.
        max_in_flight: effects executing at once across the engine.
        create: make the journal when ``path`` holds none (the default). With
            ``False``, a missing or empty journal raises ``NotAJournalError``
            instead of starting an empty history.
        read_only: open for inspection: nothing is ever written (not even
            a new journal); every write raises ``JournalWriteError``.
        file_mode: the mode of the journal's files when they are created
            (owner-only by default: journals hold inputs and results). A new
            journal directory is made owner-only (0700).
        tracing: OpenTelemetry spans for executions and effect attempts
            (docs/observability.md): ``True`` uses the global tracer
            provider, a ``TracerProvider`` that one; ``False`` (the
            default) costs nothing and imports nothing. Needs
            ``replay-engine[otel]``.
        processes: processes that runs of this journal may be resumed and
            replayed with when the caller names none: functions, or
            ``"module:qualname"`` strings (imported when needed). A run whose
            recorded reference is not among them runs without ``process=``
            only if this user started it here (see docs/security.md).

    Raises:
        NotAJournalError: no journal at ``path`` (with ``create=False`` or
            ``read_only=True``), or its files are links or not regular files.
        JournalCorruptError: the files are damaged (a truncated ``data.mdb``).
        ValueError: ``executor`` is a string that is not a scheduler address.
        TypeError: ``executor`` is neither an executor nor a Dask client.
        ImportError: a Dask executor without ``distributed`` installed.
        ProcessImportError: an entry of ``processes`` is not a process.

    Example::

        engine = Engine(".replay")
        run = engine.run(process, {"feature": "x"}, run_id="r1")
        run = engine.resume("r1")   # completed effects come from the journal
    """
