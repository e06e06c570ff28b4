"""An execution's identity: its ``execution`` event and ``why``; how many passes."""

from __future__ import annotations

import os

import journal_format as jf

from .._store.lock import hostname

WHYS = ("start", "resume", "recovery", "wake", "fork", "iterate")
"""Why an execution runs, as its ``execution`` event records it."""

MAX_PASSES = 100
"""Passes of one ``run``/``resume`` call: an execution is repeated at once when
a post landed while it ran. The last pass records ``run_waiting`` even after a
post (a stream of posts cannot hold a caller forever); the post is then the
next iterate's, or a worker's, to pick up."""


def execution_event(why: str) -> jf.ExecutionStarted:
    """The ``execution`` event of an execution of this process, for ``why``."""
    if why not in WHYS:
        raise ValueError(f"why must be one of {', '.join(WHYS)}, not {why!r}")
    return jf.ExecutionStarted(pid=os.getpid(), host=hostname(), why=why)
