"""The pytest plugin of replay-engine (registered by entry point ``pytest11``).

It gives every project that installs replay-engine:

* the ``replay_engine`` fixture: an :class:`~replay_engine.Engine` on a fresh
  journal in the test's temporary directory, closed after the test (also
  available by its old name, ``engine``);
* ``--replay-schedules N``: how many schedules
  :func:`~replay_engine.testing.assert_deterministic` tries by default;
* ``--replay-seed N``: its hypothesis seed, to reproduce a failure a CI run
  printed.

The plugin imports nothing heavier than pytest until a test uses it (the
engine, asyncio and ``replay_engine.testing``, which needs hypothesis, are
imported by the fixture or the options that need them): it is loaded by every
pytest run in an environment where replay-engine is installed.

.. versionadded:: 0.1
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from replay_engine import Engine


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register ``--replay-seed`` and ``--replay-schedules``."""
    group = parser.getgroup("replay-engine", "replay-engine determinism testing")
    group.addoption(
        "--replay-seed",
        type=int,
        default=None,
        metavar="N",
        help="hypothesis seed for assert_deterministic (reproduces a reported"
        " failure); default: random, printed on failure",
    )
    group.addoption(
        "--replay-schedules",
        type=int,
        default=None,
        metavar="N",
        help="schedules assert_deterministic tries per call unless told"
        " otherwise (default 30)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Hand the options to ``replay_engine.testing``, if any were given."""
    seed = config.getoption("--replay-seed")
    schedules = config.getoption("--replay-schedules")
    if schedules is not None and schedules < 1:
        raise pytest.UsageError("--replay-schedules must be at least 1")
    if seed is not None or schedules is not None:
        from replay_engine.testing._assert import configure

        configure(max_examples=schedules, seed=seed)


def pytest_report_header(config: pytest.Config) -> str | None:
    """Say which determinism settings are in force, when any were given."""
    seed = config.getoption("--replay-seed")
    schedules = config.getoption("--replay-schedules")
    if seed is None and schedules is None:
        return None
    return f"replay-engine: seed={seed}, schedules={schedules}"


@pytest.fixture(name="replay_engine")
def replay_engine_fixture(tmp_path: Path) -> Iterator[Engine]:
    """An Engine on a fresh journal under ``tmp_path``, closed after the test."""
    # Imported here, not at the top: the plugin is loaded by every pytest
    # session where replay-engine is installed, most of which never use it.
    from replay_engine import Engine

    with Engine(str(tmp_path / "replay-journal")) as opened:
        yield opened


@pytest.fixture
def engine(replay_engine: Engine) -> Engine:
    """The ``replay_engine`` fixture by its old name (kept for existing tests)."""
    return replay_engine
