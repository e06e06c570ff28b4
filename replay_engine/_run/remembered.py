"""Which process each run was started with, remembered outside the journal.

A journal is a file people send each other, so the ``module:qualname`` it
records is never imported on its say-so. When this user starts a run, the
engine notes ``(journal real path, run id) -> (process reference, import
root, digest of the run's first event)`` in a per-user state directory; a
later ``resume``/``replay`` without an explicit process trusts the journal's
reference only when it matches that note. The first event's digest covers
its append time, so a journal copied in from elsewhere under the same path
and run id does not match.

The directory is ``$REPLAY_ENGINE_STATE_DIR``, else
``$XDG_STATE_HOME/replay-engine``, else ``~/.local/state/replay-engine``;
it is owner-only (0700), each note a 0600 msgspec-JSON file named by the
blake3 of its key, written atomically (temp file, rename).
"""

from __future__ import annotations

import contextlib
import logging
import os
import site
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import blake3
import msgspec

import journal_format as jf

from .tasks import importable_module_name

STATE_DIR_ENV = "REPLAY_ENGINE_STATE_DIR"
"""Environment variable naming the state directory (tests point it at a tmp dir)."""

_VERSION = 1
_MAX_NOTE = 64 * 1024  # a note is a few hundred bytes; refuse anything odd
# How far the first event's append time may lie from the note's creation when
# the note was never completed (clock slew before; a slow commit after).
_SLEW_NS = 5 * 10**9
_COMMIT_NS = 600 * 10**9

_log = logging.getLogger("replay_engine")


class Note(msgspec.Struct, frozen=True):
    """What is remembered about one run of one journal."""

    v: int
    journal: str
    run_id: str
    process: str
    """The ``module:qualname`` the run was started with."""
    started: str
    """Hex blake3 of the run id and its ``run_started`` event's content."""
    created_ns: int
    """Wall-clock time just before the run was created (UTC nanoseconds)."""
    first_event: str | None = None
    """Hex digest of the run's first event as stored in its chain (it covers
    the append time); None only if the starter died between creating the run
    and completing this note."""
    path_entry: str | None = None
    """The ``sys.path`` entry the process was imported from, unless it is
    part of the Python installation (see :func:`import_root`)."""


_decoder = msgspec.json.Decoder(Note)


def state_dir() -> Path:
    """The per-user directory holding the notes (not created here)."""
    explicit = os.environ.get(STATE_DIR_ENV)
    if explicit:
        return Path(os.path.abspath(explicit))
    xdg = os.environ.get("XDG_STATE_HOME")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "replay-engine"
    return Path.home() / ".local" / "state" / "replay-engine"


def _note_path(journal: str, run_id: str) -> Path:
    name = blake3.blake3(f"{journal}\0{run_id}".encode()).hexdigest()
    return state_dir() / f"{name}.json"


def import_root(fn: Callable[..., Any]) -> str | None:
    """The directory ``fn``'s module was imported from, unless the install provides it.

    The current directory, a script's directory, a ``PYTHONPATH`` entry or
    one a program put on ``sys.path`` may all be missing when the run is
    resumed by another process elsewhere; site-packages and the standard
    library are not, and are not recorded (so a resume from another
    environment does not mix its packages in).
    """
    module = sys.modules.get(getattr(fn, "__module__", "") or "")
    file = getattr(module, "__file__", None)
    if not isinstance(file, str) or not file:
        return None
    parts = importable_module_name(fn).split(".")
    root = Path(file).resolve().parent
    if Path(file).name == "__init__.py":
        root = root.parent
    for _ in parts[1:]:
        root = root.parent
    return None if root in _installed_roots() else str(root)


def _installed_roots() -> set[Path]:
    import sysconfig  # only when a run starts: replay and resume read notes

    paths = sysconfig.get_paths()
    found = {paths[k] for k in ("purelib", "platlib", "stdlib", "platstdlib")}
    found.update(site.getsitepackages())
    found.add(site.getusersitepackages())
    return {Path(p).resolve() for p in found if p}


def started_digest(run_id: str, started: jf.RunStarted) -> str:
    """What a note binds a run to before its first event exists."""
    data = run_id.encode() + b"\0" + jf.RECORD_ENCODER.encode(started)
    return blake3.blake3(data).hexdigest()


def remember(note: Note) -> None:
    """Write ``note`` (replacing an older one for the same journal and run).

    A failure to write is logged, not raised: the run itself is fine, and a
    later resume asks for ``--process`` with a clear message.
    """
    target = _note_path(note.journal, note.run_id)
    try:
        _ensure_dir(target.parent)
        _write_atomically(target, msgspec.json.encode(note))
    except OSError as exc:
        _log.warning(
            "could not remember the process of run %r in %s (%s): resuming it"
            " will need --process %s",
            note.run_id,
            target.parent,
            exc,
            note.process,
        )


def matches(note: Note, ref: str, first: jf.Envelope, digest: bytes) -> bool:
    """Whether the journal's run is the one ``note`` remembers, with ``ref``.

    A completed note names the first event's digest. A note whose writer died
    between creating the run and completing it is matched by the event's
    content and an append time just after the note was made.
    """
    if note.process != ref or not isinstance(first.event, jf.RunStarted):
        return False
    if note.first_event is not None:
        return note.first_event == digest.hex()
    return (
        note.started == started_digest(note.run_id, first.event)
        and note.created_ns - _SLEW_NS <= first.at <= note.created_ns + _COMMIT_NS
    )


def recall(journal: str, run_id: str) -> Note | None:
    """The note for ``run_id`` of ``journal``, or None (absent or not trustworthy)."""
    path = _note_path(journal, run_id)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        # Only a regular file of ours that nobody else could have written.
        if (
            not stat.S_ISREG(st.st_mode)
            or st.st_uid != os.geteuid()
            or st.st_mode & 0o022
            or st.st_size > _MAX_NOTE
        ):
            return None
        data = os.read(fd, _MAX_NOTE + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    try:
        note = _decoder.decode(data)
    except msgspec.DecodeError:
        return None
    if note.v != _VERSION or note.journal != journal or note.run_id != run_id:
        return None
    return note


def _ensure_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = os.stat(path, follow_symlinks=False)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise OSError(f"{path} is not a directory of this user")
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(path, 0o700)


def _write_atomically(target: Path, data: bytes) -> None:
    # os.urandom, not secrets (what token_hex calls): importing secrets loads
    # hmac and OpenSSL's hashlib, milliseconds of every replay's start-up.
    tmp = target.with_name(f".{target.name}.{os.urandom(4).hex()}.tmp")
    fd = os.open(
        tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
    )
    try:
        # No fsync: starting a run must stay cheap, and a note lost to a power
        # failure only means the user names the process (--process) once.
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
