"""Small user packages written to ``tmp_path`` for the static-check tests.

``package(files)`` writes the modules and imports ``flows`` from them, so the
checker reads real files, as it does for users; the fixture forgets the
modules again at teardown.
"""

from __future__ import annotations

import importlib
import itertools
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from replay_engine.check import check_process

__all__ = ["Write", "found", "package"]

_names = itertools.count()

Write = Callable[..., Any]


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Write]:
    """``package(files, top=True)``: write modules, import ``flows``, return it.

    ``files`` maps a module name (``"flows"``, ``"helpers"``) to its source. In
    a package (``top=False``, the default) they go in a fresh package directory;
    with ``top=True`` they are top-level modules side by side.
    """
    monkeypatch.syspath_prepend(str(tmp_path))
    loaded: list[str] = []

    def write(files: dict[str, str], top: bool = False) -> Any:
        pkg = f"pkg{next(_names)}"
        where = tmp_path if top else tmp_path / pkg
        where.mkdir(exist_ok=True)
        if not top:
            (where / "__init__.py").write_text("")
        prefix = "" if top else f"{pkg}."
        for name, source in files.items():
            text = textwrap.dedent(source).replace("PKG", pkg)
            (where / f"{name}.py").write_text(text, encoding="utf-8")
            loaded.append(prefix + name)
        loaded.append(pkg)
        importlib.invalidate_caches()
        return importlib.import_module(prefix + "flows")

    yield write
    for name in loaded:
        sys.modules.pop(name, None)


def found(module: Any) -> list[tuple[str, int]]:
    return [(f.code, f.line) for f in check_process(module.process)]
