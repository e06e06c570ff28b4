"""Shared pieces of the hostile-journal and fault tests (issue 12).

Black-box only: the CLI runs as a real subprocess in its own session (a hang
becomes a test failure and the whole process group is killed), and journals
are crafted or damaged with raw ``lmdb`` writes and ``journal_format``'s
encoders, never through ``replay_engine`` internals.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lmdb
import pytest

import journal_format as jf
from tests.helpers import child_env

CLI = [sys.executable, "-m", "replay_engine._cli"]
TIMEOUT = 30.0


@dataclass
class Done:
    """A finished CLI child."""

    args: Sequence[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def describe(self) -> str:
        return (
            f"{' '.join(self.args)}: exit {self.returncode}\n"
            f"stdout:\n{self.stdout[-3000:]}\nstderr:\n{self.stderr[-3000:]}"
        )


def kill_group(proc: subprocess.Popen[Any]) -> None:
    """SIGKILL the child's whole process group (it leads its own session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def env_for(*paths: Path, **extra: str) -> dict[str, str]:
    env = child_env(*paths, **extra)
    env.setdefault("COLUMNS", "200")
    return env


def spawn(
    journal: Path | str,
    *args: str,
    paths: Sequence[Path] = (),
    cwd: Path | str | None = None,
    extra_env: dict[str, str] | None = None,
    stdin: int | None = subprocess.DEVNULL,
) -> subprocess.Popen[str]:
    """Start ``replay-engine --journal JOURNAL *args`` in a new session."""
    return subprocess.Popen(
        [*CLI, "--journal", str(journal), *args],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env=env_for(*paths, **(extra_env or {})),
        start_new_session=True,
    )


def finish(
    proc: subprocess.Popen[str], timeout: float = TIMEOUT, stdin: str | None = None
) -> Done:
    """Wait for ``proc`` (and the pipes to close); a hang fails the test."""
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, err = proc.communicate()
        pytest.fail(
            f"{' '.join(map(str, proc.args))} did not finish (or close its pipes)"
            f" within {timeout}s\nstdout:\n{out[-2000:]}\nstderr:\n{err[-2000:]}"
        )
    finally:
        kill_group(proc)  # leftovers of a finished child
    return Done(list(map(str, proc.args))[3:], proc.returncode, out, err)


def cli(
    journal: Path | str,
    *args: str,
    paths: Sequence[Path] = (),
    cwd: Path | str | None = None,
    extra_env: dict[str, str] | None = None,
    stdin: str | None = None,
    timeout: float = TIMEOUT,
) -> Done:
    """Run the CLI to its end (bounded by ``timeout``)."""
    proc = spawn(
        journal,
        *args,
        paths=paths,
        cwd=cwd,
        extra_env=extra_env,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
    )
    return finish(proc, timeout, stdin)


def assert_clean_error(done: Done, code: int | None = None) -> None:
    """A handled error: exit ``code`` (or any failure), no traceback, no signal."""
    assert done.returncode >= 0, (
        f"killed by signal {-done.returncode}\n{done.describe()}"
    )
    assert done.returncode != 135, f"SIGBUS\n{done.describe()}"
    if code is None:
        assert done.returncode != 0, done.describe()
    else:
        assert done.returncode == code, done.describe()
    assert "Traceback" not in done.output, done.describe()
    assert "error" in done.stderr.lower(), done.describe()


def tree_snapshot(path: Path) -> dict[str, bytes | None]:
    """Every entry under ``path`` with its bytes (None for directories)."""
    snap: dict[str, bytes | None] = {}
    for p in sorted(path.rglob("*")):
        rel = str(p.relative_to(path))
        snap[rel] = None if p.is_dir() and not p.is_symlink() else p.read_bytes()
    return snap


# -- raw journal crafting -------------------------------------------------------


@contextlib.contextmanager
def raw(journal: Path | str) -> Iterator[tuple[Any, dict[bytes, Any]]]:
    """py-lmdb handles on every database of a journal (no engine may hold it)."""
    env = lmdb.open(os.fspath(journal), max_dbs=8, subdir=True)
    try:
        dbs = {
            name: env.open_db(name)
            for name in (
                jf.DB_META,
                jf.DB_RUNS,
                jf.DB_EVENTS,
                jf.DB_BLOBS,
                jf.DB_CHECKPOINTS,
                jf.DB_ACTIVE,
            )
        }
        dbs[jf.DB_KEYS] = env.open_db(jf.DB_KEYS, dupsort=True, dupfixed=True)
        yield env, dbs
    finally:
        env.close()


def payload_ref(
    value: Any = None, *, data: bytes | None = None
) -> tuple[bytes, dict[bytes, bytes]]:
    """The reference an event stores for a payload, and the blob it needs."""
    raw_bytes = jf.encode_payload(value) if data is None else data
    # A hostile payload is always stored as a blob (addressed, so it reaches
    # the decoder after check_blob passes).
    if data is not None:
        address = jf.address_of(raw_bytes)
        return address, {address: raw_bytes}
    ref = jf.payload_ref(raw_bytes)
    return ref, jf.blobs_for(ref, raw_bytes)


def write_run(
    journal: Path | str,
    run_id: str,
    events: Sequence[Any],
    blobs: dict[bytes, bytes] | None = None,
    *,
    status: str = "running",
    process: str | None = None,
    record_run_id: str | None = None,
    write_record: bool = True,
    index: bool = True,
) -> list[bytes]:
    """Write a correctly sealed and chained run (events, index, blobs, record).

    An event may be a callable ``(seq, prev, at) -> envelope bytes`` for
    envelopes no encoder would write. Returns the digests of the events.
    ``record_run_id`` stores a run record naming another run (under
    ``run_id``'s key); ``write_record=False`` leaves the run without one.
    """
    prefix = jf.run_prefix(run_id)
    prev = jf.genesis_digest(run_id)
    digests: list[bytes] = []
    now = time.time_ns()
    with raw(journal) as (env, dbs), env.begin(write=True) as txn:
        for address, data in (blobs or {}).items():
            txn.put(address, data, db=dbs[jf.DB_BLOBS])
        for seq, body in enumerate(events):
            if callable(body):  # raw envelope bytes, made by the caller
                sealed = jf.seal(body(seq, prev, now))
            else:
                envelope = jf.Envelope(
                    v=jf.FORMAT_VERSION, seq=seq, prev=prev, at=now, event=body
                )
                sealed = jf.seal(jf.encode_record(envelope))
            txn.put(jf.event_key(prefix, seq), sealed, db=dbs[jf.DB_EVENTS])
            key = getattr(body, "key", None)
            if index and key is not None and not isinstance(body, jf.LogLine):
                txn.put(prefix + key, jf.pack_seq(seq), db=dbs[jf.DB_KEYS])
            prev = sealed[: jf.ADDRESS_SIZE]
            digests.append(prev)
        if write_record:
            started = events[0]
            record = jf.RunRecord(
                v=jf.FORMAT_VERSION,
                run_id=record_run_id or run_id,
                process=process or started.process,
                fingerprint=started.fingerprint,
                status=status,
                created_ns=now,
                updated_ns=now,
                events=len(events),
                head=prev,
            )
            txn.put(
                run_id.encode(), jf.seal(jf.encode_record(record)), db=dbs[jf.DB_RUNS]
            )
    return digests


def started(
    process: str, inputs: Any = None
) -> tuple[jf.RunStarted, dict[bytes, bytes]]:
    ref, blobs = payload_ref(inputs if inputs is not None else {})
    return jf.RunStarted(process=process, fingerprint="00" * 32, inputs=ref), blobs


def effect(
    key: tuple[int, ...],
    task: str,
    result: Any = None,
    *,
    result_data: bytes | None = None,
) -> tuple[list[Any], dict[bytes, bytes]]:
    """A requested + completed pair at ``key``."""
    args_ref, blobs = payload_ref({"k": list(key)})
    res_ref, res_blobs = payload_ref(result, data=result_data)
    kb = jf.encode_key(key)
    events = [
        jf.EffectRequested(key=kb, task=task, kind="task", args=args_ref),
        jf.EffectCompleted(key=kb, result=res_ref),
    ]
    return events, blobs | res_blobs


def make_journal(journal: Path) -> None:
    """An empty but initialised journal, created through the public API."""
    from replay_engine import Engine

    Engine(str(journal)).close()


# -- processes ------------------------------------------------------------------


def proc_status(pid: int) -> dict[str, str]:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def session_members(sid: int) -> list[int]:
    """Live (non-zombie) processes whose session id is ``sid``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, session = fields[0], int(fields[3])
        if session == sid and state != "Z":
            found.append(int(entry))
    return found


def wait_for(predicate: Any, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")
