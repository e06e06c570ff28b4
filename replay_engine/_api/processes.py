"""Which code an ``Engine`` may run for a run it is asked to resume or replay.

The journal names its process (``module:qualname``), but a journal may come
from anyone, so that name alone is never imported. The process is, in order:

1. the one the caller passes (``process=`` / ``--process``): always wins;
2. the function this ``Engine`` object itself started (or resumed) the run with;
3. one of ``Engine(path, processes=[...])``, matched by reference;
4. the reference this user remembered when starting the run
   (:mod:`.._run.remembered`), if the journal still agrees with it — same
   reference and same first event — imported from the remembered root, not
   from the current directory.

Anything else is refused with :class:`ProcessImportError` before any import.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import msgspec

import journal_format as jf

from .._store.chain import StoredEvent
from ..errors import JournalCorruptError, ProcessImportError, ReplayEngineError

if TYPE_CHECKING:
    from .._run import remembered as _remembered

# process_ref and remembered (and the task and typing machinery under them)
# are imported by the methods that load or remember a process, not when an
# Engine opens: the CLI's reading commands never need them (issue 16).

ProcessLike = Callable[..., Any] | str


def load_typed(ref: str) -> Callable[..., Any]:
    """Import a reference the user typed, as ``python -m`` would (cwd included)."""
    from .._run import process_ref as _ref

    try:
        return _ref.load(ref)
    except ReplayEngineError:
        raise
    except Exception as exc:
        # Anything else raised on the way (a module __getattr__, say) still
        # means "cannot import the process".
        raise ProcessImportError(
            f"importing process {ref!r} failed: {type(exc).__name__}: {exc}"
        ) from exc


class KnownProcesses:
    """The processes an engine may run without being told (see the module doc)."""

    def __init__(self, journal: str, allowed: Iterable[ProcessLike]) -> None:
        self.journal = journal
        self._allowed: dict[str, Callable[..., Any] | None] = {}
        for item in allowed:
            from .._run import process_ref as _ref  # only with processes=

            if isinstance(item, str):
                _ref.check_reference(item)
                self._allowed[item] = None  # imported when a run needs it
            elif callable(item):
                ref = _ref.reference(item)
                _ref.check_process(item, ref)
                self._allowed[ref] = item
            else:
                raise TypeError(
                    f"processes=: {item!r} is neither a process function nor a"
                    " 'module:qualname' string"
                )
        self._ran: dict[str, Callable[..., Any]] = {}

    def starting(
        self, run_id: str, fn: Callable[..., Any], started: jf.RunStarted
    ) -> _remembered.Note:
        """About to create ``run_id`` with ``fn``: note it first.

        Written before the run exists, so a starter killed right after the
        run's creation leaves a run that still resumes without flags.
        """
        from .._run import remembered as _remembered

        self._ran[run_id] = fn
        note = _remembered.Note(
            v=1,
            journal=self.journal,
            run_id=run_id,
            process=started.process,
            started=_remembered.started_digest(run_id, started),
            created_ns=time.time_ns(),
            path_entry=_remembered.import_root(fn),
        )
        _remembered.remember(note)
        return note

    def started(self, note: _remembered.Note, first_event: bytes) -> None:
        """The run exists: bind the note to its first event's digest."""
        from .._run import remembered as _remembered

        _remembered.remember(
            msgspec.structs.replace(note, first_event=first_event.hex())
        )

    def used(self, run_id: str, fn: Callable[..., Any]) -> None:
        """This engine executed ``run_id`` with ``fn`` (an explicit process)."""
        self._ran[run_id] = fn

    def forked(
        self,
        parent: jf.RunStarted,
        parent_id: str,
        parent_first: StoredEvent,
        child_id: str,
        child_first: jf.Envelope,
        child_digest: bytes,
    ) -> None:
        """A fork of a run this user may run without flags may be run so too."""
        from .._run import process_ref as _ref, remembered as _remembered

        fn = self._ran.get(parent_id)
        if fn is not None and _ref.reference(fn) == parent.process:
            self._ran[child_id] = fn
            path_entry = _remembered.import_root(fn)
        else:
            note = self._matching_note(parent_id, parent.process, parent_first)
            if note is None:
                return
            path_entry = note.path_entry
        _remembered.remember(
            _remembered.Note(
                v=1,
                journal=self.journal,
                run_id=child_id,
                process=parent.process,
                started=_remembered.started_digest(
                    child_id,
                    child_first.event
                    if isinstance(child_first.event, jf.RunStarted)
                    else parent,
                ),
                created_ns=child_first.at,
                first_event=child_digest.hex(),
                path_entry=path_entry,
            )
        )

    def resolve(
        self,
        run_id: str,
        first: StoredEvent,
        explicit: ProcessLike | None,
    ) -> Callable[..., Any]:
        """The process to execute ``run_id`` with, checked to be one.

        Raises:
            ProcessImportError: no explicit process and the journal's reference
                is not known here (nothing was imported), or it cannot be
                imported, or it is not ``async def process(inputs, ctx)``.
        """
        from .._run import process_ref as _ref

        if explicit is not None:
            if callable(explicit):
                fn, label = explicit, _ref.reference(explicit)
            else:
                fn, label = load_typed(explicit), explicit
            _ref.check_process(fn, label)
            return fn
        started = first.event
        if not isinstance(started, jf.RunStarted):
            raise JournalCorruptError(
                f"run {run_id!r} has no run_started event at seq 0",
                run_id=run_id,
                seq=0,
            )
        ref = started.process
        ran = self._ran.get(run_id)
        if ran is not None and _ref.reference(ran) == ref:
            return ran
        if ref in self._allowed:
            allowed = self._allowed[ref]
            if allowed is None:
                allowed = self._allowed[ref] = load_typed(ref)
                _ref.check_process(allowed, ref)
            return allowed
        note = self._matching_note(run_id, ref, first)
        if note is None:
            raise ProcessImportError(self._unknown(run_id, ref))
        fn = _ref.load_remembered(ref, note.path_entry)
        _ref.check_process(fn, ref)
        return fn

    def _matching_note(
        self, run_id: str, ref: str, first: StoredEvent
    ) -> _remembered.Note | None:
        from .._run import remembered as _remembered

        note = _remembered.recall(self.journal, run_id)
        if note is None or not _remembered.matches(
            note, ref, first.envelope, first.digest
        ):
            return None
        return note

    def _unknown(self, run_id: str, ref: str) -> str:
        from .._run import remembered as _remembered

        note = _remembered.recall(self.journal, run_id)
        if note is None:
            why = (
                "which is not known here: this user did not start it on this"
                " machine, and it is not in Engine(processes=...)"
            )
        elif note.process != ref:
            why = (
                f"but this user started it with {note.process!r}: the journal was"
                " changed or replaced since"
            )
        else:
            why = (
                "but its first event is not the one this user started: the"
                " journal was replaced (copied from elsewhere?)"
            )
        return (
            f"run {run_id!r} names process {ref!r}, {why}. Nothing was imported."
            " Name the code to run yourself: --process MODULE:FUNC (CLI) or"
            " process= (Python)"
        )
