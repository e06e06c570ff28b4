"""The suite's own machinery: ``--run-slow`` and the check of spec markers."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CONFTEST = Path(__file__).with_name("conftest.py").read_text(encoding="utf-8")

INI = """
[pytest]
markers =
    slow: slow
    spec(id): a requirement
"""

TESTS = """
import pytest

@pytest.mark.slow
def test_slow():
    pass

def test_fast():
    pass
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makeini(INI)
    return pytester


def test_slow_tests_are_skipped_by_default(suite: pytest.Pytester) -> None:
    suite.makepyfile(TESTS)
    result = suite.runpytest("-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*give --run-slow to run it*"])


def test_run_slow_runs_them(suite: pytest.Pytester) -> None:
    suite.makepyfile(TESTS)
    suite.runpytest("--run-slow").assert_outcomes(passed=2)


@pytest.mark.parametrize("args", ["'JF-1'", "'jf-001'", "", "'JF-001', 'FOO'"])
def test_malformed_spec_ids_are_a_usage_error(
    suite: pytest.Pytester, args: str
) -> None:
    suite.makepyfile(
        f"import pytest\n@pytest.mark.spec({args})\ndef test_a():\n    pass\n"
    )
    result = suite.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*spec marker needs ids like 'JF-017'*"])


def test_journal_dir_and_make_store(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        OPENED = []

        def test_store(journal_dir, make_store, store):
            assert store.path == str(journal_dir)
            other = make_store(journal_dir.parent / "other", durability="process")
            assert other.durability == "process"
            assert store.list_runs() == []
            OPENED.extend([store.real_path, other.real_path])

        def test_closed_after():
            from replay_engine._store import env as _env
            assert len(OPENED) == 2
            assert not set(OPENED) & set(_env._registry)
        """
    )
    suite.runpytest().assert_outcomes(passed=2)
