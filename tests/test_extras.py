"""Extras fit their names (issue 16): ``[test]`` is what the test suite
imports, linters and type checkers are ``[dev]``, ``[dask]`` stays optional,
and ``scripts/test.sh`` (which runs ruff and mypy too) installs both.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT = PYPROJECT["project"]

# Top-level module -> the distribution that provides it.
DISTRIBUTION = {
    "distributed": "dask",
    "dask": "dask",
    "yaml": "pyyaml",
    "websocket": "websocket-client",
    "opentelemetry": "opentelemetry-sdk",
}
# Modules a test writes to a temporary folder and imports.
GENERATED = {"compat_flow"}


def names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\[<>=!~ ;]", r, maxsplit=1)[0].lower() for r in requirements}


def test_test_extra_has_no_linters_and_dev_has_them() -> None:
    extras = PROJECT["optional-dependencies"]
    assert {"pytest", "hypothesis", "dask"} <= names(extras["test"])
    # mypy is in [test] as a library the suite runs (tests/typing checks the
    # revealed types of user code), not as our linter; ruff is the linter.
    assert "ruff" not in names(extras["test"])
    assert {"ruff", "mypy"} <= names(extras["dev"])
    assert "dask" not in names(PROJECT["dependencies"])  # optional: [dask]
    assert "dask" in names(extras["dask"])


def test_every_third_party_module_the_tests_import_is_installed_by_test() -> None:
    local = {
        p.stem
        for folder in ("tests", "docs/examples")  # the examples are on pythonpath
        for p in (ROOT / folder).rglob("*.py")
    } | {
        "tests",
        "replay_engine",
        "journal_format",
        *GENERATED,
    }
    imported: set[str] = set()
    for path in (ROOT / "tests").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - local
    provided = names(PROJECT["dependencies"]) | names(
        PROJECT["optional-dependencies"]["test"]
    )
    missing = {m for m in third_party if DISTRIBUTION.get(m, m) not in provided}
    assert not missing, (
        f"imported by tests, not in [test] or the dependencies: {missing}"
    )


def test_the_test_script_installs_test_and_dev() -> None:
    script = (ROOT / "scripts" / "test.sh").read_text(encoding="utf-8")
    assert re.search(r"_venv\.sh\" test,dev\b", script)
    assert "ruff check" in script and "mypy" in script
    venv = (ROOT / "scripts" / "_venv.sh").read_text(encoding="utf-8")
    assert 'spec=".[$extras]"' in venv  # "test,dev" becomes .[test,dev]
