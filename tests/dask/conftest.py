"""A real ``distributed.LocalCluster`` with worker processes, shared by the Dask tests.

Workers import the task functions by reference (``tests.dask.dask_flows``), so
they get the repository root on ``PYTHONPATH``. Skipped when ``distributed``
is not installed (``pip install -e ".[dask]"``).
"""

from __future__ import annotations

import collections
import os
from collections.abc import Iterator
from typing import Any

import pytest

import journal_format as jf
from tests.helpers import ROOT

try:
    import distributed
except ImportError:  # the dask extra is not installed: nothing here runs
    distributed = None
    collect_ignore_glob = ["test_*.py"]


def _worker_env() -> None:
    path = os.environ.get("PYTHONPATH")
    parts = [str(ROOT), *filter(None, [path])]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(parts))


def make_cluster(n_workers: int = 2, **kwargs: Any) -> Any:
    """A LocalCluster of worker processes (one thread each), no dashboard."""
    _worker_env()
    return distributed.LocalCluster(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",  # any free port: never warn that 8787 is taken
        **kwargs,
    )


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """Two worker processes (one thread each); tests that kill one make their own."""
    with make_cluster() as c:
        yield c


@pytest.fixture(scope="module")
def client(cluster: Any) -> Iterator[Any]:
    with distributed.Client(cluster, set_as_default=False) as c:
        yield c


def effect_counts(engine: Any, run_id: str) -> dict[str, collections.Counter[str]]:
    """Per event type, how many events each key has in the run's journal."""
    counts: dict[str, collections.Counter[str]] = collections.defaultdict(
        collections.Counter
    )
    for stored in engine.events(run_id):
        event = stored.event
        key = getattr(event, "key", None)
        if key is not None:
            counts[type(event).__name__][jf.key_bytes_to_text(key)] += 1
    return counts


def side_lines(path: str) -> list[tuple[str, int, int]]:
    """The side channel: one ``(run_id/key, attempt, pid)`` per execution."""
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        rows = [line.split() for line in f if line.strip()]
    return [(r[0], int(r[1]), int(r[2])) for r in rows]
