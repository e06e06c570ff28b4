"""The fault-injection run of issue 12 (``tests/faults/injection.py``).

The quick profile samples pages, offsets and truncations; the full profile
(``--run-slow``, or ``python -m tests.faults.injection --full``) tries every
page at every offset class, every page boundary and commit failures at random
points on a full tmpfs. Done when: 0 hangs, 0 signal deaths, 0 tracebacks, 0
silent wrong results.
"""

from __future__ import annotations

import os

import pytest

from tests.faults.injection import Summary, inject


def assert_all_clean(summary: Summary) -> None:
    counts = summary.counts()
    assert summary.cases, "no command was run"
    assert not summary.bad(), summary.render()
    assert counts["clean"] == len(summary.cases)


def test_quick_profile_is_clean() -> None:
    assert_all_clean(inject(full=False, timeout=20.0))


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_quick_commit_failures_are_clean() -> None:
    assert_all_clean(inject(full=False, timeout=15.0, commit_points=2, damage=False))


@pytest.mark.slow
def test_full_profile_is_clean() -> None:
    assert_all_clean(inject(full=True))
