"""Opening LMDB environments: one per path per process, grown on demand.

LMDB forbids opening the same environment twice in one process, so every
``Store`` on a path shares one handle from this registry. Handles are not
usable after ``fork()``; a use from another pid is refused.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import lmdb

from journal_format import (
    DB_BLOBS,
    DB_CHECKPOINTS,
    DB_EVENTS,
    DB_KEYS,
    DB_META,
    DB_RUNS,
)

from ..errors import ReplayEngineError

T = TypeVar("T")

DEFAULT_MAP_SIZE = 256 << 20
"""Initial map size. The map doubles whenever a write finds it full."""


@dataclass
class _Handle:
    env: Any  # lmdb.Environment (untyped library)
    path: str
    sync: bool
    pid: int
    dbs: dict[bytes, Any]
    refs: int = 0
    grow_lock: threading.Lock = field(default_factory=threading.Lock)
    txn_lock: threading.RLock = field(default_factory=threading.RLock)
    """One transaction at a time in this process: py-lmdb invalidates other
    threads' transactions on ``set_mapsize``, and its abort of a write
    transaction waits while other threads are inside the environment."""


_registry: dict[str, _Handle] = {}
_registry_lock = threading.Lock()


def acquire(path: str, *, sync: bool, map_size: int = DEFAULT_MAP_SIZE) -> _Handle:
    """Open (or share) the environment at ``path``, creating it if missing."""
    real = os.path.realpath(path)
    with _registry_lock:
        handle = _registry.get(real)
        if handle is not None and handle.pid != os.getpid():
            # Inherited through fork(): LMDB handles must not be used here.
            del _registry[real]
            handle = None
        if handle is None:
            os.makedirs(real, exist_ok=True)
            env = lmdb.open(
                real,
                map_size=map_size,
                max_dbs=8,
                max_readers=512,
                sync=sync,
                metasync=sync,
                subdir=True,
                lock=True,
            )
            dbs = {
                name: env.open_db(name)
                for name in (DB_META, DB_RUNS, DB_EVENTS, DB_BLOBS, DB_CHECKPOINTS)
            }
            dbs[DB_KEYS] = env.open_db(DB_KEYS, dupsort=True, dupfixed=True)
            handle = _Handle(env=env, path=real, sync=sync, pid=os.getpid(), dbs=dbs)
            _registry[real] = handle
        elif handle.sync != sync:
            raise ReplayEngineError(
                f"the journal {real} is already open in this process with"
                f" durability={'fsync' if handle.sync else 'process'}; open every"
                " engine on one journal with the same durability"
            )
        handle.refs += 1
        return handle


def release(handle: _Handle) -> None:
    """Drop one reference; the environment closes with the last one."""
    with _registry_lock:
        handle.refs -= 1
        if handle.refs <= 0 and _registry.get(handle.path) is handle:
            del _registry[handle.path]
            handle.env.close()


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
    with handle.txn_lock:
        while True:
            try:
                with handle.env.begin(write=True) as txn:
                    return body(txn)
            except lmdb.MapFullError:
                _grow(handle)
            except lmdb.MapResizedError:
                _adopt_size(handle)


def read(handle: _Handle, body: Callable[[Any], T]) -> T:
    """Run ``body(txn)`` in one short read transaction."""
    check_pid(handle)
    with handle.txn_lock:
        while True:
            try:
                with handle.env.begin(write=False, buffers=False) as txn:
                    return body(txn)
            except lmdb.MapResizedError:
                _adopt_size(handle)


def _grow(handle: _Handle) -> None:
    with handle.grow_lock:
        size = handle.env.info()["map_size"]
        handle.env.set_mapsize(size * 2)


def _adopt_size(handle: _Handle) -> None:
    with handle.grow_lock:
        # 0 means: take the size another process has already set.
        handle.env.set_mapsize(0)
