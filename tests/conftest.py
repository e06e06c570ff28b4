"""Shared fixtures and options for the whole test suite.

* ``--run-slow``: tests marked ``slow`` are skipped unless it is given.
* Hypothesis profiles: ``default`` for the everyday run, ``long`` for the
  torture profile (``REPLAY_ENGINE_PROFILE=long``, used by
  ``scripts/test-slow.sh``).
* ``journal_dir``: a fresh journal directory path (not created).
* ``make_store``: opens a real LMDB ``Store`` and closes it at teardown.
* ``open_engine``: opens the test's ``journal`` (a fixture of the test's own
  directory) with the Python API, closed at teardown.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from replay_engine import Engine
from replay_engine._store.store import Store

settings.register_profile("default", deadline=None)
settings.register_profile(
    "long",
    deadline=None,
    max_examples=2000,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("REPLAY_ENGINE_PROFILE", "default"))

_SPEC_ID = re.compile(r"JF-\d{3}")


_STATE_DIRS: list[tempfile.TemporaryDirectory[str]] = []


def pytest_configure(config: pytest.Config) -> None:
    """Remembered processes go to a temporary state directory, never ~/.local/state.

    Set in ``os.environ`` so that child interpreters (``tests.helpers.child_env``,
    ``tests.adversarial``) remember and recall in the same place.
    """
    if not _STATE_DIRS:
        state = tempfile.TemporaryDirectory(prefix="replay-engine-state-")
        _STATE_DIRS.append(state)
        os.environ["REPLAY_ENGINE_STATE_DIR"] = os.path.join(state.name, "state")


def pytest_unconfigure(config: pytest.Config) -> None:
    while _STATE_DIRS:
        _STATE_DIRS.pop().cleanup()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-slow",
        action="store_true",
        default=False,
        help="also run the tests marked slow (torture and soak runs)",
    )


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    run_slow = config.getoption("--run-slow")
    skip_slow = pytest.mark.skip(reason="slow: give --run-slow to run it")
    for item in items:
        if not run_slow and item.get_closest_marker("slow") is not None:
            item.add_marker(skip_slow)
        # A typo in a requirement id would silently cite nothing.
        for mark in item.iter_markers("spec"):
            bad = [a for a in mark.args if not _SPEC_ID.fullmatch(str(a))]
            if bad or not mark.args:
                raise pytest.UsageError(
                    f"{item.nodeid}: spec marker needs ids like 'JF-017', got"
                    f" {mark.args!r}"
                )


@pytest.fixture
def journal_dir(tmp_path: Path) -> Path:
    """A journal directory path inside ``tmp_path`` (the store creates it)."""
    return tmp_path / "journal"


@pytest.fixture
def make_store() -> Iterator[Callable[..., Store]]:
    """A factory for real LMDB stores, each closed at teardown.

    ``make_store(path, **kwargs)`` passes its arguments to ``Store``.
    """
    opened: list[Store] = []

    def make(path: str | os.PathLike[str], **kwargs: Any) -> Store:
        store = Store(os.fspath(path), **kwargs)
        opened.append(store)
        return store

    yield make
    for store in reversed(opened):
        store.close()


@pytest.fixture
def store(make_store: Callable[..., Store], journal_dir: Path) -> Store:
    """A store on ``journal_dir`` with the default (fsync) durability."""
    return make_store(journal_dir)


@pytest.fixture
def open_engine(journal: Path) -> Iterator[Callable[[], Engine]]:
    """Open the test's journal with the Python API (closed at teardown)."""
    opened: list[Engine] = []

    def make() -> Engine:
        engine = Engine(str(journal))
        opened.append(engine)
        return engine

    yield make
    for engine in opened:
        engine.close()
