"""``ctx.patched`` and ``ctx.deprecate_patch``: changing a process under its runs.

The rule (JF-111, docs/design.md "Changing code under running runs"), after
Temporal's ``patched()``: a patch's answer comes from the journal whenever the
journal can say, and is recorded whenever it cannot.

At the key ``k`` the call would take (the scope's next index):

* ``k`` holds a ``patched`` marker for this id: the run took the new path
  before; True, and the call keeps ``k``.
* ``k`` holds another call, or nothing while the journal holds a later call of
  the same scope or one under ``k``, or nothing in a history that ended: the
  run was recorded by code without the patch; False, and the call takes **no**
  key, so the recorded calls after it keep theirs. Nothing is written: the
  recorded calls this rests on never change, so the answer never flips.
* otherwise (the frontier): a live execution records a marker at ``k`` and
  returns True; a time-travel replay returns True without recording (what a
  resume would do there).

One id gets one answer per execution (JF-112): a frontier place takes the
answer the id already had; a place the journal decides otherwise raises
``PatchError``. ``deprecate_patch`` (JF-113) accepts and skips a marker for its
id at ``k`` and otherwise takes no key, writing nothing: the new code always
runs, and runs recorded with or without the marker line up.
"""

from __future__ import annotations

from typing import Protocol

import journal_format as jf
from journal_format import PATCH, encode_component

from ..errors import PatchConflictError, PatchError
from .decisions import call_site, describe_entry, divergence
from .journal import RunJournal
from .scope import Scope


class _State(Protocol):
    """What this module needs of the execution (``state.ExecutionState``)."""

    run_id: str
    journal: RunJournal
    frozen: bool

    def tick(self) -> None: ...
    def record(
        self, event: jf.Event, blobs: dict[bytes, bytes] | None = None
    ) -> None: ...


def check_id(patch_id: object, method: str) -> str:
    """The id, once it is known to be a non-empty string.

    Raises:
        PatchError: it is not.
    """
    if not isinstance(patch_id, str) or not patch_id:
        raise PatchError(
            f"ctx.{method}({patch_id!r}) at {call_site(3)}: a patch id must be a"
            ' non-empty string naming the change, e.g. ctx.patched("add-lint");'
            " nothing was recorded"
        )
    return patch_id


def patched(state: _State, scope: Scope, patch_id: str) -> bool:
    """``ctx.patched(patch_id)``: whether this run takes the new path (module doc)."""
    state.tick()
    journal = state.journal
    key = scope.prefix + encode_component(scope.next_index)  # not taken yet
    entry = journal.entries.get(key)
    decided: bool | None
    if entry is not None and entry.kind == PATCH:
        if entry.task != patch_id:
            raise journal.remember(
                divergence(
                    state.run_id,
                    key,
                    entry.seq,
                    recorded=describe_entry(entry),
                    replayed=f"ctx.patched({patch_id!r})",
                )
            )
        decided = True
    elif entry is not None or _old_path(journal, key, scope.prefix):
        decided = False
    else:
        decided = None  # the frontier: the journal does not say
    answer = _agree(journal, patch_id, decided, key)
    if answer:
        scope.next_key()
        if entry is not None:
            journal.visited.add(key)
        elif not state.frozen:
            state.record(jf.PatchMarker(key=key, patch=patch_id))
    return answer


def deprecate_patch(state: _State, scope: Scope, patch_id: str) -> None:
    """``ctx.deprecate_patch(patch_id)``: skip a recorded marker, write none."""
    state.tick()
    journal = state.journal
    key = scope.prefix + encode_component(scope.next_index)
    entry = journal.entries.get(key)
    if entry is not None and entry.kind == PATCH and entry.task == patch_id:
        scope.next_key()
        journal.visited.add(key)


def _old_path(journal: RunJournal, key: bytes, prefix: bytes) -> bool:
    """Nothing at ``key``: was the run recorded past it without the patch?"""
    ended = journal.ended
    if ended is not None and ended.closed:
        return True  # the process ended without reaching a patch here
    return journal.recorded_after(key, prefix)


def _agree(
    journal: RunJournal, patch_id: str, decided: bool | None, key: bytes
) -> bool:
    """One answer per id per execution (JF-112)."""
    known = journal.patches.get(patch_id)
    if known is None:
        answer = True if decided is None else decided
        journal.patches[patch_id] = (answer, key)
        return answer
    answer, first = known
    if decided is None or decided == answer:
        return answer
    key_text = jf.key_bytes_to_text(key)
    recorded = (
        f"a patch marker for {patch_id!r}"
        if decided
        else "calls recorded without the patch"
    )
    raise journal.remember(
        PatchConflictError(
            f"run {journal.run_id!r}: ctx.patched({patch_id!r}) at key {key_text}"
            f" ({call_site(4)}) would answer {decided} (the journal holds"
            f" {recorded} there), but the same id answered {answer} at key"
            f" {jf.key_bytes_to_text(first)} in this run: one patch id guards one"
            " change. Give this change its own id, then resume (nothing was"
            " recorded; the run keeps its status).",
            run_id=journal.run_id,
            key=key_text,
            recorded=recorded,
            replayed=f"ctx.patched({patch_id!r}) answered {answer} earlier",
        )
    )
