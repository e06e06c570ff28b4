"""Opening LMDB environments: one per path per process, grown on demand.

LMDB forbids opening the same environment twice in one process, so every
``Store`` on a path shares one handle from this registry. Handles are not
usable after ``fork()``; a use from another pid is refused.

Every ``lmdb.Error`` stops here: a failed open or read becomes
``JournalCorruptError`` (or ``NotAJournalError``), a failed commit
``JournalWriteError``, each naming the journal and what to do, so no caller
ever sees a raw LMDB exception. The files are checked before LMDB maps them
(``files.prepare``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import lmdb

from journal_format import (
    DB_ACTIVE,
    DB_BLOBS,
    DB_CHECKPOINTS,
    DB_EVENTS,
    DB_KEYS,
    DB_META,
    DB_RUNS,
)

from ..errors import (
    JournalCorruptError,
    JournalWriteError,
    NotAJournalError,
    ReplayEngineError,
)
from . import active as _active
from .files import DATA_FILE, Access, prepare
from .lmdb_pages import main_tree_problems
from .writer_lock import WriterLock, hold_shared

T = TypeVar("T")

DEFAULT_MAP_SIZE = 256 << 20
"""Initial map size. The map doubles whenever a write finds it full."""


class _Handle:
    # A plain class, not a dataclass: made at every CLI start, where a
    # dataclass costs about 0.4 ms to create (issue 16's start-up budget).

    __slots__ = (
        "dbs",
        "env",
        "grow_lock",
        "path",
        "pid",
        "refs",
        "sync",
        "txn_depth",
        "txn_lock",
        "writable",
        "writer_lock",
    )

    def __init__(
        self,
        *,
        env: Any,  # lmdb.Environment (untyped library)
        path: str,
        sync: bool,
        pid: int,
        dbs: dict[bytes, Any],
        writable: bool = True,
    ) -> None:
        self.env = env
        self.path = path
        self.sync = sync
        self.pid = pid
        self.dbs = dbs
        self.writable = writable
        self.refs = 0
        # A writer's shared hold on the journal, which keeps ``compact`` out.
        self.writer_lock: WriterLock | None = None
        self.grow_lock = threading.Lock()
        # One transaction at a time in this process: py-lmdb invalidates other
        # threads' transactions on ``set_mapsize``, and its abort of a write
        # transaction waits while other threads are inside the environment.
        self.txn_lock = threading.RLock()
        # Transactions of this process open inside ``txn_lock`` (nested ones
        # in one thread included): the map may be replaced only at 0.
        self.txn_depth = 0


_registry: dict[str, _Handle] = {}
_registry_lock = threading.Lock()


FILE_MODE = 0o600
"""Mode of the files LMDB creates: journals hold inputs and results."""
DIR_MODE = 0o700
"""Mode of a journal directory ``create`` makes."""


def acquire(
    path: str,
    *,
    sync: bool,
    map_size: int = DEFAULT_MAP_SIZE,
    access: Access = "create",
    file_mode: int = FILE_MODE,
) -> _Handle:
    """Open (or share) the environment at ``path``.

    ``access="create"`` makes the journal when it is missing; ``"write"``
    and ``"read"`` refuse a path that holds no journal, and ``"read"``
    opens it read-only. A read-only handle is shared only by readers.

    Raises:
        NotAJournalError: no journal at ``path``, or its files are unsafe.
        JournalCorruptError: LMDB cannot open the files.
        JournalWriteError: a writable open of a read-only journal.
    """
    real = os.path.realpath(path)
    writable = access != "read"
    with _registry_lock:
        handle = _registry.get(real)
        if handle is not None and handle.pid != os.getpid():
            # Inherited through fork(): LMDB handles must not be used here.
            del _registry[real]
            handle = None
        if handle is not None and writable and not handle.writable:
            raise ReplayEngineError(
                f"the journal {real} is open read-only in this process (for"
                " inspection); close that Engine before opening it for writing"
            )
        if handle is None:
            has_lock = prepare(real, access, dir_mode=DIR_MODE)
            # Held while LMDB opens the files (so an old lock.mdb is never
            # paired with a compacted data.mdb), and by a writer until closed.
            guard = hold_shared(real)
            try:
                _check_main_tree(real)
                env = _open(real, sync, map_size, writable, has_lock, file_mode)
                try:
                    handle = _Handle(
                        env=env,
                        path=real,
                        sync=sync,
                        pid=os.getpid(),
                        dbs=_open_dbs(env, real, writable),
                        writable=writable,
                    )
                    if writable:
                        # A new journal's data.mdb exists only now.
                        handle.writer_lock = _writer_hold(guard, real)
                except BaseException:
                    env.close()
                    raise
            finally:
                if not writable:
                    guard.release()
            _registry[real] = handle
        elif handle.sync != sync and writable:
            raise ReplayEngineError(
                f"the journal {real} is already open in this process with"
                f" durability={'fsync' if handle.sync else 'process'}; open every"
                " engine on one journal with the same durability"
            )
        handle.refs += 1
        return handle


def _writer_hold(guard: WriterLock, path: str) -> WriterLock:
    """The writer's lasting hold: ``guard``, or a new one if the journal was new."""
    if guard.held:
        return guard
    return hold_shared(path)


def _check_main_tree(path: str) -> None:
    """Refuse a journal whose main tree or free list LMDB would die reading.

    A damaged branch or leaf page makes LMDB abort the process (or fault on
    a read past the file), so the few pages every open reads are checked by
    plain reads first; ``verify`` walks the rest.
    """
    file = os.path.join(path, DATA_FILE)
    if not os.path.isfile(file) or os.path.getsize(file) == 0:
        return  # a journal being created
    problems = main_tree_problems(path)
    if problems:
        raise JournalCorruptError(
            f"journal {path}: {problems[0]}. LMDB would abort reading it, so"
            " nothing was read or written; run `replay-engine verify` for every"
            " damaged page and restore the journal from a backup."
        )


def _open(
    path: str, sync: bool, map_size: int, writable: bool, has_lock: bool, mode: int
) -> Any:
    try:
        return lmdb.open(
            path,
            map_size=map_size,
            max_dbs=8,
            max_readers=512,
            sync=sync,
            metasync=sync,
            subdir=True,
            readonly=not writable,
            # Without a lock.mdb no writer can be running, and reading
            # without the lock table creates nothing in the directory.
            lock=writable or has_lock,
            create=writable,
            mode=mode,
        )
    except lmdb.Error as exc:
        raise _open_failed(path, writable, exc) from None


def _open_dbs(env: Any, path: str, writable: bool) -> dict[bytes, Any]:
    names = (DB_META, DB_RUNS, DB_EVENTS, DB_BLOBS, DB_CHECKPOINTS)
    try:
        if writable:
            dbs = {name: env.open_db(name) for name in names}
            dbs[DB_KEYS] = env.open_db(DB_KEYS, dupsort=True, dupfixed=True)
            dbs[DB_ACTIVE] = _open_active(env, dbs[DB_RUNS])
            return dbs
        # A read-only environment cannot create databases: a journal missing
        # one is not ours (or is damaged).
        dbs = {name: env.open_db(name, create=False) for name in names}
        dbs[DB_KEYS] = env.open_db(DB_KEYS, dupsort=True, dupfixed=True, create=False)
        # A journal written before the index existed has none: readers scan.
        with contextlib.suppress(lmdb.NotFoundError):
            dbs[DB_ACTIVE] = env.open_db(DB_ACTIVE, create=False)
        return dbs
    except lmdb.NotFoundError:
        env.close()
        raise NotAJournalError(
            f"{path} is an LMDB environment but not a journal (its"
            " databases are missing); nothing was written",
            path=path,
        ) from None
    except lmdb.Error as exc:
        env.close()
        raise _open_failed(path, writable, exc) from None


def _open_active(env: Any, runs_db: Any) -> Any:
    """The ``active`` index, built in one transaction if the journal predates it."""
    try:
        return env.open_db(DB_ACTIVE, create=False)
    except lmdb.NotFoundError:
        pass
    with env.begin(write=True) as txn:
        db = env.open_db(DB_ACTIVE, txn=txn)
        _active.fill(txn, db, runs_db)
    return db


def _open_failed(path: str, writable: bool, exc: lmdb.Error) -> ReplayEngineError:
    reason = str(exc).split(": ", 1)[-1]
    if writable and (isinstance(exc, lmdb.ReadonlyError) or _read_only(exc)):
        return JournalWriteError(
            f"the journal {path} cannot be opened for writing ({reason}): it is on"
            " a read-only file system or not writable by this user. Inspection"
            " commands (status, log, verify) still work; nothing was written.",
            path=path,
        )
    return JournalCorruptError(
        f"journal {path} cannot be opened: LMDB says {reason!r}. The files are"
        " damaged or not a journal: run `replay-engine verify` or restore from a"
        " backup; nothing was written."
    )


def _read_only(exc: lmdb.Error) -> bool:
    # py-lmdb reports OS errors as "PATH: strerror" with no errno attribute.
    text = str(exc)
    return any(os.strerror(code) in text for code in (errno.EROFS, errno.EACCES))


def release(handle: _Handle) -> None:
    """Drop one reference; the environment closes with the last one."""
    with _registry_lock:
        handle.refs -= 1
        if handle.refs <= 0 and _registry.get(handle.path) is handle:
            del _registry[handle.path]
            handle.env.close()
            if handle.writer_lock is not None:
                handle.writer_lock.release()


def check_pid(handle: _Handle) -> None:
    """Refuse to use an environment inherited through ``fork()``."""
    if handle.pid != os.getpid():
        raise ReplayEngineError(
            f"the journal {handle.path} was opened in process {handle.pid} and"
            " cannot be used after fork(); open a new Engine in the child"
        )


def write(handle: _Handle, body: Callable[[Any], T]) -> T:
    """Run ``body(txn)`` in one write transaction and commit it.

    A full map is doubled and the transaction retried, so a long run never
    dies of ``MapFullError``; a map grown by another process is adopted.
    """
    check_pid(handle)
    if not handle.writable:
        raise JournalWriteError(
            f"the journal {handle.path} was opened read-only, for inspection;"
            " nothing was written",
            path=handle.path,
        )
    with handle.txn_lock:
        while True:
            try:
                handle.txn_depth += 1
                try:
                    with handle.env.begin(write=True) as txn:
                        return body(txn)
                finally:
                    handle.txn_depth -= 1
            except lmdb.MapFullError:
                _grow(handle)
            except lmdb.MapResizedError:
                _adopt_size(handle)
            except _DAMAGE as exc:
                raise _damaged(handle, exc) from None
            except lmdb.Error as exc:
                raise JournalWriteError(
                    f"the journal {handle.path} could not be written ({exc}): is"
                    " the disk full or the file system read-only? Nothing of this"
                    " commit was recorded; what was committed before is intact.",
                    path=handle.path,
                ) from None


def read(handle: _Handle, body: Callable[[Any], T]) -> T:
    """Run ``body(txn)`` in one short read transaction."""
    check_pid(handle)
    with handle.txn_lock:
        while True:
            try:
                handle.txn_depth += 1
                try:
                    with handle.env.begin(write=False, buffers=False) as txn:
                        return body(txn)
                finally:
                    handle.txn_depth -= 1
            except lmdb.MapResizedError:
                _adopt_size(handle)
            except lmdb.Error as exc:
                raise _damaged(handle, exc) from None


_DAMAGE = (
    lmdb.CorruptedError,
    lmdb.PageNotFoundError,
    lmdb.InvalidError,
    lmdb.PanicError,
    lmdb.BadTxnError,
)


def _damaged(handle: _Handle, exc: lmdb.Error) -> JournalCorruptError:
    return JournalCorruptError(
        f"journal {handle.path}: LMDB cannot read its pages ({exc}); the file is"
        " damaged. Run `replay-engine verify` and restore from a backup."
    )


def _grow(handle: _Handle) -> None:
    with handle.grow_lock:
        size = handle.env.info()["map_size"]
        handle.env.set_mapsize(size * 2)


def _adopt_size(handle: _Handle) -> None:
    with handle.grow_lock:
        # 0 means: take the size another process has already set.
        handle.env.set_mapsize(0)


def release_map(handle: _Handle) -> bool:
    """Unmap the journal's pages this process has read; False if it could not.

    LMDB reads through a shared read-only map of ``data.mdb``: every page a
    transaction touches stays mapped, and counted in this process's RSS, for
    as long as the environment is open, though it is page cache the kernel
    can take back. A fold of a million events touches 230 MB of them (issue
    17: the cold resume's peak). ``mdb_env_set_mapsize`` at the current size
    replaces the map with a fresh one (LMDB's documented way to remap; the
    map is re-read from the page cache on demand). It invalidates every open
    transaction of the process, so it is done only while none is open:
    every transaction here is begun under ``txn_lock`` and counted in
    ``txn_depth``. Nothing read is lost: reads copy values out
    (``buffers=False``).
    """
    check_pid(handle)
    with handle.txn_lock, handle.grow_lock:
        if handle.txn_depth:
            return False  # called from inside a transaction of this thread
        try:
            handle.env.set_mapsize(handle.env.info()["map_size"])
        except lmdb.Error as exc:  # mmap refused (address space, say)
            raise ReplayEngineError(
                f"journal {handle.path}: LMDB could not map the file again"
                f" ({exc}); nothing was written. Close the Engine and open it"
                " again."
            ) from None
        return True
