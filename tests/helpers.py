"""Small builders shared by the store and format tests.

Everything here works on real journals: raw LMDB handles for tests that must
see or damage the bytes. Child interpreters are started by ``tests.children``
(with :func:`child_env`); journals are read by ``tests.journal_views``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lmdb
from click.testing import CliRunner, Result

import journal_format as jf
from replay_engine._cli import cli
from replay_engine._store.store import Store

ROOT = Path(__file__).resolve().parent.parent


def child_env(*import_paths: Path, **extra: str) -> dict[str, str]:
    """The environment for a child interpreter that imports this checkout.

    ``import_paths`` go first on its ``PYTHONPATH`` (say, a folder of test
    processes); ``extra`` variables are set. A ``REPLAY_ENGINE_JOURNAL`` of
    the caller's is not passed on: each test names its own journal.
    """
    env = {k: v for k, v in os.environ.items() if k != "REPLAY_ENGINE_JOURNAL"}
    env["PYTHONPATH"] = os.pathsep.join(
        [*map(str, import_paths), str(ROOT), *filter(None, [env.get("PYTHONPATH")])]
    )
    env.update(extra)
    return env


Invoke = Callable[..., Result]


def cli_invoker(journal: Path) -> Invoke:
    """``invoke(*args, code=N, stdin=TEXT)``: the CLI in-process on ``journal``.

    Runs ``replay-engine --journal JOURNAL *args`` through click's CliRunner
    and asserts the exit code when ``code`` is given; other keyword arguments
    go to ``CliRunner.invoke``.
    """
    runner = CliRunner()

    def invoke(
        *args: str, code: int | None = None, stdin: str | None = None, **kwargs: Any
    ) -> Result:
        kwargs.setdefault("input", stdin)
        result = runner.invoke(
            cli, ["--journal", str(journal), *args], catch_exceptions=False, **kwargs
        )
        if code is not None:
            assert result.exit_code == code, (
                f"{args}: exit {result.exit_code}, expected {code}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result

    return invoke


@contextlib.contextmanager
def raw_env(path: str | os.PathLike[str]) -> Iterator[tuple[Any, dict[bytes, Any]]]:
    """Open a journal with py-lmdb directly (no ``Store`` may hold it)."""
    env = lmdb.open(os.fspath(path), max_dbs=8, subdir=True)
    try:
        dbs = {
            name: env.open_db(name, create=False)
            for name in (jf.DB_META, jf.DB_RUNS, jf.DB_EVENTS, jf.DB_BLOBS)
        }
        dbs[jf.DB_KEYS] = env.open_db(
            jf.DB_KEYS, create=False, dupsort=True, dupfixed=True
        )
        yield env, dbs
    finally:
        env.close()


def payload(value: Any) -> tuple[bytes, dict[bytes, bytes]]:
    """A payload's address and the blobs mapping that stores it."""
    data = jf.encode_payload(value)
    address = jf.address_of(data)
    return address, {address: data}


def started(
    inputs: Any = None, **fields: Any
) -> tuple[jf.RunStarted, dict[bytes, bytes]]:
    """A ``RunStarted`` event and its inputs blob."""
    address, blobs = payload(inputs if inputs is not None else {"n": 1})
    fields.setdefault("process", "tests.procs:process")
    fields.setdefault("fingerprint", "00" * 32)
    return jf.RunStarted(inputs=address, **fields), blobs


def requested(
    key: tuple[int, ...], task: str = "tests.t", args: Any = None
) -> tuple[jf.EffectRequested, dict[bytes, bytes]]:
    """An ``EffectRequested`` event at ``key`` and its args blob."""
    address, blobs = payload(args if args is not None else {"key": list(key)})
    event = jf.EffectRequested(
        key=jf.encode_key(key), task=task, kind="task", args=address
    )
    return event, blobs


def completed(
    key: tuple[int, ...], result: Any
) -> tuple[jf.EffectCompleted, dict[bytes, bytes]]:
    """An ``EffectCompleted`` event at ``key`` and its result blob."""
    address, blobs = payload(result)
    return jf.EffectCompleted(key=jf.encode_key(key), result=address), blobs


def new_run(store: Store, run_id: str, inputs: Any = None) -> None:
    """Create a run with a ``RunStarted`` and its inputs blob."""
    event, blobs = started(inputs)
    store.create_run(run_id, event, blobs)


def effects(
    keys: range | list[tuple[int, ...]], *, prefix: str = "t"
) -> tuple[list[Any], dict[bytes, bytes]]:
    """Requested + completed pairs for each key, with their blobs."""
    events: list[Any] = []
    blobs: dict[bytes, bytes] = {}
    for k in keys:
        key = (k,) if isinstance(k, int) else k
        req, b1 = requested(key, task=f"{prefix}.{jf.format_key(key)}")
        done, b2 = completed(key, {"ok": jf.format_key(key)})
        events += [req, done]
        blobs |= b1 | b2
    return events, blobs
