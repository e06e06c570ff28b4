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

from collections.abc import Callable, Iterable
from typing import Any

import journal_format as jf

from .._run import process_ref as _ref, remembered as _remembered
from ..errors import ProcessImportError, ReplayEngineError

ProcessLike = Callable[..., Any] | str


def load_typed(ref: str) -> Callable[..., Any]:
    """Import a reference the user typed, as ``python -m`` would (cwd included)."""
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

    def started(self, run_id: str, fn: Callable[..., Any], first_event: bytes) -> None:
        """This engine started ``run_id`` with ``fn``: remember it, here and on disk."""
        self._ran[run_id] = fn
        _remembered.remember(
            self.journal,
            run_id,
            _ref.reference(fn),
            first_event,
            _remembered.import_root(fn),
        )

    def used(self, run_id: str, fn: Callable[..., Any]) -> None:
        """This engine executed ``run_id`` with ``fn`` (an explicit process)."""
        self._ran[run_id] = fn

    def forked(
        self,
        parent: jf.RunStarted,
        parent_id: str,
        parent_first: bytes,
        child_id: str,
        child_first: bytes,
    ) -> None:
        """A fork of a run this user may run without flags may be run so too."""
        fn = self._ran.get(parent_id)
        if fn is not None and _ref.reference(fn) == parent.process:
            self.started(child_id, fn, child_first)
            return
        note = self._matching_note(parent_id, parent.process, parent_first)
        if note is not None:
            _remembered.remember(
                self.journal, child_id, note.process, child_first, note.path_entry
            )

    def resolve(
        self,
        run_id: str,
        started: jf.RunStarted,
        first_event: bytes,
        explicit: ProcessLike | None,
    ) -> Callable[..., Any]:
        """The process to execute ``run_id`` with, checked to be one.

        Raises:
            ProcessImportError: no explicit process and the journal's reference
                is not known here (nothing was imported), or it cannot be
                imported, or it is not ``async def process(inputs, ctx)``.
        """
        if explicit is not None:
            if callable(explicit):
                fn, label = explicit, _ref.reference(explicit)
            else:
                fn, label = load_typed(explicit), explicit
            _ref.check_process(fn, label)
            return fn
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
        note = self._matching_note(run_id, ref, first_event)
        if note is None:
            raise ProcessImportError(self._unknown(run_id, ref, first_event))
        fn = _ref.load_remembered(ref, note.path_entry)
        _ref.check_process(fn, ref)
        return fn

    def _matching_note(
        self, run_id: str, ref: str, first_event: bytes
    ) -> _remembered.Note | None:
        note = _remembered.recall(self.journal, run_id)
        if note is None or note.process != ref or note.first_event != first_event.hex():
            return None
        return note

    def _unknown(self, run_id: str, ref: str, first_event: bytes) -> str:
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
