"""``journal_format`` is a leaf: it never imports ``replay_engine``.

It may import the standard library, msgspec and blake3, and itself.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "journal_format"
ALLOWED_THIRD_PARTY = {"msgspec", "blake3"}


def imported_modules(source: str, *, package: str) -> list[str]:
    """Absolute names of every module a source file imports.

    ``package`` is the package holding the file (for ``__init__.py``, the
    package itself): a relative import of level 1 means it.
    """
    names: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                assert node.module is not None
                names.append(node.module)
                continue
            parts = package.split(".")
            up = node.level - 1
            base = parts[: len(parts) - up] if up < len(parts) else ["<beyond-top>"]
            names.append(".".join([*base, *filter(None, [node.module])]))
    return names


def _violations(names: list[str]) -> list[str]:
    bad = []
    for name in names:
        top = name.split(".")[0]
        if top == "journal_format" or top in sys.stdlib_module_names:
            continue
        if top == "__future__" or top in ALLOWED_THIRD_PARTY:
            continue
        bad.append(name)
    return bad


def _sources() -> list[Path]:
    paths = sorted(PACKAGE.rglob("*.py"))
    assert paths, f"no sources under {PACKAGE}"
    return paths


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_journal_format_imports_no_runtime(path: Path) -> None:
    package = ".".join(path.relative_to(ROOT).parts[:-1])
    names = imported_modules(path.read_text(encoding="utf-8"), package=package)
    assert _violations(names) == []


@pytest.mark.parametrize(
    "source",
    [
        "import replay_engine",
        "import replay_engine._store.store as s",
        "from replay_engine import Engine",
        "from replay_engine.errors import JournalCorruptError",
        "def f():\n    from replay_engine import _env",
        "from .. import replay_engine",
        "import lmdb",
    ],
)
def test_the_checker_catches_a_runtime_import(source: str) -> None:
    names = imported_modules(source, package="journal_format")
    assert _violations(names) != []


def test_the_checker_allows_the_leaf_imports() -> None:
    source = (
        "from __future__ import annotations\nimport re, struct\nimport msgspec\n"
        "import blake3\nfrom ._codec import address_of\nfrom . import _keys\n"
    )
    names = imported_modules(source, package="journal_format")
    assert _violations(names) == []
