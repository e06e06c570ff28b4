"""Reading a journal in a child process, so a damaged page cannot kill the command.

LMDB trusts the pages it maps: a damaged branch or leaf page deep in a tree
makes it read past the file (``SIGBUS``), follow a wild pointer (``SIGSEGV``)
or fail an assertion (``SIGABRT``), and no Python code survives that. Checking
every page before each command would cost a read of the whole file, so the
console script instead lets a child process meet the damage:

* a command that only reads (``access="read"``) runs, from the moment it
  opens the journal, in a forked child; the parent waits, passes on the
  signals sent to it, and exits with the child's code, or, when the child
  died of a fault, reports the damage as a ``JournalCorruptError``;
* a command that changes a run first has a child read what it will read (the
  run's record, events and payloads) and only then goes on itself, so a
  fault ends the probe, not an execution holding the run's lock.

Only :func:`main` turns this on: commands invoked in-process (click's test
runner, an embedding program) must never fork.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn

from ..errors import JournalCorruptError, ReplayEngineError

if TYPE_CHECKING:
    # Start-up: the console script imports this module to enable it, so what
    # only the children use (journal_format, ctypes) is imported there.
    import journal_format as jf

    from .. import Engine

__all__ = ["enable", "probe_run", "read_in_child"]

#: Signals that mean the child met a damaged page, not that someone stopped it.
FAULTS = frozenset({signal.SIGBUS, signal.SIGSEGV, signal.SIGABRT, signal.SIGILL})
#: Signals the parent passes on to the child when they are sent to it alone.
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)
_SI_USER = 0  # si_code of a signal sent by kill(); a terminal's Ctrl-C is SI_KERNEL
_PR_SET_PDEATHSIG = 1


class _Switch:
    on = False  # set by the console script only


def enable() -> None:
    """Let commands fork (called by the console script only)."""
    _Switch.on = True


def damaged(path: str, sig: int, doing: str) -> JournalCorruptError:
    """The error for a child that died of ``sig`` while ``doing``."""
    name = signal.Signals(sig).name
    return JournalCorruptError(
        f"journal {path}: LMDB crashed ({name}) {doing}: a page of data.mdb is"
        " damaged. Nothing was written. Run `replay-engine verify` to see which"
        " pages, and restore the journal from a backup."
    )


def read_in_child(path: str, report: Callable[[ReplayEngineError], int]) -> None:
    """Go on in a forked child; the parent waits for it and exits with its code.

    ``report`` prints the error (as the command would) when the child died
    of a fault and returns the exit code to use.
    """
    if not _Switch.on:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {*FORWARDED, signal.SIGCHLD})
    parent = os.getpid()
    _freeze_heap()
    pid = os.fork()
    if pid == 0:
        _die_with(parent)
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        return
    status = _wait_forwarding(pid)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig in FAULTS:
            code = report(damaged(path, sig, "while reading it"))
        else:
            code = 128 + sig
    else:
        code = os.waitstatus_to_exitcode(status)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def probe_run(path: str, run_id: str | None, *, payloads: bool = True) -> None:
    """Read in a child what a command changing ``run_id`` will read; raise if it died.

    The child reads the run's record and every event, and with ``payloads``
    every payload they name (what a resume reads). ``post`` reads no stored
    payload (it validates the key's events and appends), so it probes
    without (a post to a run of 20,000 events naming 10,000 stored payloads:
    about 13% less CPU; reading and checking the events is the rest).

    Errors the reads raise are left for the command itself to report: only a
    child killed by a fault is turned into a ``JournalCorruptError`` here.
    """
    if not _Switch.on:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    parent = os.getpid()
    _freeze_heap()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child, which never returns
        _probe_child(parent, path, run_id, payloads)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) in FAULTS:
        what = "reading the journal" if run_id is None else f"reading run {run_id!r}"
        raise damaged(path, os.WTERMSIG(status), f"while {what}")


def _probe_child(
    parent: int, path: str, run_id: str | None, payloads: bool
) -> NoReturn:
    code = 0
    try:
        _die_with(parent)
        for sig in FORWARDED:  # the parent's handlers are not ours to run
            signal.signal(sig, signal.SIG_DFL)
        from .. import Engine

        with contextlib.closing(Engine(path, read_only=True)) as engine:
            if run_id is not None:
                _read_run(engine, run_id, payloads=payloads)
    except BaseException:  # the command itself reports what went wrong
        code = 1
    os._exit(code)


def _read_run(engine: Engine, run_id: str, *, payloads: bool = True) -> None:
    import journal_format as jf

    # The run record, every event and (unless the command reads none) every
    # payload: the pages a command changing the run may read. Once each:
    # `status` read them all again (twice), which made the probe cost 20 µs
    # per effect of an `iterate` that itself costs 3-4 (issue 17).
    # In batches, not one list: a list of a million decoded events made the
    # probe child of a 1M-event `resume` peak at 844 MB (issue 17).
    from .streaming import iter_events

    for stored in iter_events(engine, run_id, batch=PROBE_BATCH):
        if not payloads:
            continue
        for ref in _refs_of(stored.event):
            if not jf.ref_is_inline(ref):
                engine.payload(ref, run_id=run_id, seq=stored.seq)


PROBE_BATCH = 16_384
"""Events the probe reads per read transaction."""


def _refs_of(event: jf.Event) -> tuple[bytes, ...]:
    for name in ("inputs", "args", "result", "payload"):
        value = getattr(event, name, None)
        if isinstance(value, bytes):
            return (value,)
    return ()


def _wait_forwarding(pid: int) -> int:
    """Wait for ``pid``, passing on every signal sent to this process by kill().

    A terminal's Ctrl-C reaches the whole foreground process group, the child
    included, so only signals sent to the parent alone are passed on: the
    child must not see one Ctrl-C twice.
    """
    while True:
        info = signal.sigwaitinfo({*FORWARDED, signal.SIGCHLD})
        if info.si_signo == signal.SIGCHLD:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done == pid:
                return status
            continue
        if info.si_code == _SI_USER:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, info.si_signo)


def _freeze_heap() -> None:
    """Keep the objects made so far out of the collector's passes (``gc.freeze``).

    A collection in the forked child would otherwise walk every object the
    imports made, writing to each one's header: the kernel then copies each
    page of the parent's heap into the child, milliseconds of a reading
    command's start-up (as the ``gc`` documentation advises before a fork).
    """
    gc.freeze()


def _die_with(parent: int) -> None:
    """Have the kernel kill this child when its parent dies, as ``timeout`` expects."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(128 + signal.SIGKILL)
