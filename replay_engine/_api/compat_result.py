"""``RunCompatibility``: what ``Engine.check_compatible`` found for one run.

A module of its own so that an ``Engine`` opened to read a journal does not
make this dataclass (issue 16's start-up budget): :mod:`.compat` imports it
when it checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Verdict = Literal["compatible", "breaks", "unproven", "error"]


@dataclass(frozen=True)
class RunCompatibility:
    """What replaying one stored run against the given code found."""

    run_id: str
    status: str
    """The run's status (as ``Engine.status`` shows it)."""
    verdict: Verdict
    """``compatible``; ``breaks`` (the code diverges from the journal);
    ``unproven`` (a run that has not ended: the code makes a new call, which
    a resume would dispatch, before recorded calls this check cannot reach
    without its result, so whether they replay is unknown; or it stops at a
    wait without recorded calls the run had made by then, which it may or
    may not make once the wait is over); or ``error``
    (the replay could not be made: a damaged journal, say)."""
    key: str = ""
    """For ``breaks``: the invocation key of the first divergence; for
    ``unproven``: the new call's, or (no new call) the first recorded call
    not made."""
    seq: int | None = None
    """For ``breaks``: the journal event recorded there, if any; for
    ``unproven``: the first recorded call not reached."""
    message: str = ""
    """For ``breaks``, ``unproven`` and ``error``: what was found."""

    @property
    def compatible(self) -> bool:
        """True when the run would replay as recorded."""
        return self.verdict == "compatible"
