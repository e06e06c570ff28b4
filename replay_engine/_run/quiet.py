"""Is the run waiting? The quiet check, and abandoning decided groups.

A run whose process still has calls blocked on external effects (or, in a
time-travel replay, on the frontier) is *waiting* once nothing else can make
progress: nothing dispatched, no timer sleeping, nothing left to commit, and
no activity for a few loop iterations. Then the execution stops and records
``RunWaiting``; a later execution picks the run up again.
"""

from __future__ import annotations

import journal_format as jf

from .._store.posts import abandon
from .state import ExecutionState

QUIET_CHECKS = 3
"""Consecutive idle loop iterations before a run counts as waiting. Every hop
of a wake-up (future -> task -> group callback -> parent) ticks the activity
counter, so three quiet checks in a row mean nothing is still in motion."""


def schedule_quiet_check(state: ExecutionState) -> None:
    """Check for quiescence in the next loop iteration (once, however often asked)."""
    if not state.quiet_scheduled:
        state.quiet_scheduled = True
        state.loop.call_soon(_quiet_check, state)


def _quiet_check(state: ExecutionState) -> None:
    state.quiet_scheduled = False
    try:
        _check(state)
    except BaseException as exc:  # abandoning writes: a commit can fail
        state.fail(exc)


def _check(state: ExecutionState) -> None:
    quiet = state.quiet
    if quiet is None or quiet.done() or not (state.external or state.frontier):
        return
    if state.dispatcher.busy or state.sleeping or state.journal.has_pending:
        state.quiet_count = 0
        schedule_quiet_check(state)
        return
    if state.activity != state.quiet_seen:
        state.quiet_seen = state.activity
        state.quiet_count = 0
    state.quiet_count += 1
    if state.quiet_count < QUIET_CHECKS:
        schedule_quiet_check(state)
    elif not state.frozen and _abandon_decided_groups(state):
        state.quiet_count = 0
        schedule_quiet_check(state)
    else:
        quiet.set_result(None)


def _abandon_decided_groups(state: ExecutionState) -> bool:
    """Settle a waiting group whose outcome a failed branch already decides.

    Its still-pending external effects (in higher-index branches) are
    recorded as abandoned, so nobody waits on, or posts to, work whose
    result can no longer matter.
    """
    for group in list(state.groups):
        index = group.decided_failure()
        if index is None:
            continue
        prefixes = tuple(group.unsettled_prefixes())
        keys = [
            k
            for k in state.external
            if k.startswith(prefixes) and k not in state.parked_timers
        ]
        if keys:
            state.journal.flush()
            reason = (
                f"parallel group {jf.key_bytes_to_text(group.key)} failed at"
                f" branch {index}"
            )
            marked = abandon(
                state.journal.store,
                state.run_id,
                keys,
                reason,
                on_append=state.journal.note_append,
            )
            if len(marked) != len(keys):
                continue  # a result arrived meanwhile: the next execution sees it
        for key in keys:
            state.external.pop(key, None)
            state.due.pop(key, None)
        group.abandon_rest()
        state.tick()
        return True
    return False
