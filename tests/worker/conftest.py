from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.worker.procs import Child, children


@pytest.fixture
def procs() -> Iterator[list[Child]]:
    """Append children here: each is SIGKILLed at teardown if still alive."""
    with children() as started:
        yield started
