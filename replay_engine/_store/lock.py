"""One executor per run across processes: a ``flock`` on a file per run.

The kernel drops an ``flock`` when its holder dies, so a lock left by a
SIGKILLed process is recovered on the next attempt with no stale-lock
heuristics. ``flock`` locks belong to the open file description, so two
engines in one process also exclude each other. The file's content names the
holder, for the error the loser gets.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import os
import socket

from journal_format import check_run_id

from ..errors import RunLockedError


class RunLock:
    """An exclusive lock on executing one run; release it with :meth:`release`."""

    def __init__(self, journal_path: str, run_id: str) -> None:
        check_run_id(run_id)  # FormatError (a ValueError): no "/" or ".." in a path
        directory = os.path.join(journal_path, "locks")
        os.makedirs(directory, exist_ok=True)
        self.run_id = run_id
        self.path = os.path.join(directory, f"{run_id}.lock")
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise RunLockedError(
                run_id,
                int(str(holder.get("pid", -1))),
                str(holder.get("host", "?")),
                str(holder.get("since", "?")),
            ) from None
        except BaseException:
            os.close(fd)
            raise
        self._fd: int | None = fd
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)

    def release(self) -> None:
        """Release the lock (idempotent)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)  # closing the description drops the flock

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_holder(fd: int) -> dict[str, object]:
    try:
        data = os.pread(fd, 4096, 0)
        value = json.loads(data) if data else {}
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}
