from collections.abc import Iterator

import pytest

from tests.engine.fixtures import make_engine, reset_flows, side
from tests.engine.replay_helpers import FLAGS, SEEN

__all__ = ["clean_flags", "make_engine", "reset_flows", "side"]


@pytest.fixture(autouse=True)
def clean_flags() -> Iterator[None]:
    """The flags and sightings of replay_helpers start empty in every test."""
    FLAGS.clear()
    SEEN.clear()
    yield
