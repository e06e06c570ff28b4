"""The import rules: who may import whom, and no import cycles.

Two packages live in this repository. ``journal_format`` is a leaf: it never
imports ``replay_engine`` (only the standard library, msgspec, blake3 and
itself). ``replay_engine`` is built in layers, each a folder with one job;
``LAYER_RULE`` below says which layers each one may import. A module may
always import its own layer and the standard library.

Every import counts for the layer rule: at module level, inside functions
and under ``if TYPE_CHECKING:`` (a type-only import of a higher layer still
ties the lower layer to it).

Each checker is run on planted violations too, so a checker that stopped
seeing anything would fail here rather than pass quietly.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "journal_format"
ENGINE = ROOT / "replay_engine"
ALLOWED_THIRD_PARTY = {"msgspec", "blake3"}

# ---------------------------------------------------------------- the rule

PUBLIC = "public API"  # replay_engine itself and replay_engine.check: the doors
SEAM = "_testing_seam"  # the documented door for testing and the pytest plugin
ERRORS = "errors"
FORMAT = "journal_format"
THIRD_PARTY = "third-party"  # anything neither stdlib nor ours (lmdb, click, rich …)
ANYTHING = "anything"

#: layer -> the layers it may import (besides itself and the standard library).
LAYER_RULE: dict[str, set[str]] = {
    PUBLIC: {ANYTHING},
    SEAM: {ANYTHING},
    "_cli": {PUBLIC, ERRORS, FORMAT, THIRD_PARTY},
    # The server's documents are the CLI's JSON: it builds them with _cli's code.
    "_serve": {PUBLIC, ERRORS, FORMAT, THIRD_PARTY, "_cli"},
    "demo": {PUBLIC, ERRORS, FORMAT, THIRD_PARTY},
    "testing": {PUBLIC, ERRORS, SEAM, FORMAT, THIRD_PARTY},
    "pytest_plugin": {PUBLIC, ERRORS, SEAM, "testing", FORMAT, THIRD_PARTY},
    "_api": {"_run", "_store", ERRORS, FORMAT, THIRD_PARTY},
    "_run": {"_store", ERRORS, FORMAT, THIRD_PARTY},
    "_store": {ERRORS, FORMAT, THIRD_PARTY},
    "_check": {ERRORS},
    ERRORS: set(),
}


def layer_of(module: str) -> str:
    """The layer a module belongs to, from its dotted name (which is its path).

    ``replay_engine._run.context`` is in ``_run``, ``replay_engine.testing._fakes``
    in ``testing``; ``replay_engine`` itself and ``replay_engine.check`` are the
    public API; any module outside both packages is stdlib or third-party.
    """
    parts = module.split(".")
    if parts[0] == FORMAT:
        return FORMAT
    if parts[0] != "replay_engine":
        return "stdlib" if parts[0] in sys.stdlib_module_names else THIRD_PARTY
    if len(parts) == 1 or parts[1] == "check":
        return PUBLIC
    return parts[1]


def layer_violations(module: str, imported: list[str]) -> list[str]:
    """The imports of ``module`` its layer may not make, as ``name (layer)``."""
    own = layer_of(module)
    allowed = LAYER_RULE[own]
    bad = []
    for name in imported:
        target = layer_of(name)
        if ANYTHING in allowed or target in {own, "stdlib"} or target in allowed:
            continue
        if name == "__future__":
            continue
        bad.append(f"{name} ({target})")
    return bad


# ------------------------------------------------------- reading the imports


def _module_names() -> set[str]:
    """Dotted names of every module and package in both packages."""
    names = set()
    for path in [*ENGINE.rglob("*.py"), *PACKAGE.rglob("*.py")]:
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names.add(".".join(parts))
    return names


KNOWN_MODULES = _module_names()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST, *, module_level: bool) -> Iterator[ast.stmt]:
    """Import statements; with ``module_level``, not those inside functions.

    Class bodies and ``if``/``try`` blocks (``TYPE_CHECKING`` included) run, or
    are read by type checkers, when the module is imported, so they count.
    """
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif module_level and isinstance(
            node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
        ):
            continue
        else:
            yield from _import_nodes(node, module_level=module_level)


def imported_modules(
    source: str,
    *,
    package: str,
    module_level: bool = False,
    known: set[str] | frozenset[str] = frozenset(),
) -> list[str]:
    """Absolute names of every module a source file imports.

    ``package`` is the package holding the file (for ``__init__.py``, the
    package itself): a relative import of level 1 means it. For ``from P
    import name``, the name is taken as the submodule ``P.name`` when such a
    module exists in this repository (or in ``known``).
    """
    names: list[str] = []
    for node in _import_nodes(ast.parse(source), module_level=module_level):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
            continue
        assert isinstance(node, ast.ImportFrom)
        if node.level == 0:
            assert node.module is not None
            base = node.module
        else:
            parts = package.split(".")
            up = node.level - 1
            prefix = parts[: len(parts) - up] if up < len(parts) else ["<beyond-top>"]
            base = ".".join([*prefix, *filter(None, [node.module])])
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            is_module = submodule in KNOWN_MODULES or submodule in known
            names.append(submodule if is_module else base)
    return list(dict.fromkeys(names))


def _module_and_package(path: Path) -> tuple[str, str]:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
        return ".".join(parts), ".".join(parts)
    return ".".join(parts), ".".join(parts[:-1])


def _sources(root: Path) -> list[Path]:
    paths = sorted(root.rglob("*.py"))
    assert paths, f"no sources under {root}"
    return paths


# ------------------------------------------------------ journal_format: a leaf


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


@pytest.mark.parametrize(
    "path", _sources(PACKAGE), ids=lambda p: str(p.relative_to(ROOT))
)
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


# ------------------------------------------------ replay_engine: the layers

#: Violations other branches of issue 11 are removing; the lead empties this
#: table after merging them (strict=False: a fixed module simply passes).


def _layer_cases() -> list[object]:
    return [
        pytest.param(path, id=str(path.relative_to(ROOT))) for path in _sources(ENGINE)
    ]


def test_every_module_has_a_layer() -> None:
    for path in _sources(ENGINE):
        module, _ = _module_and_package(path)
        assert layer_of(module) in LAYER_RULE, f"{module}: add its layer to LAYER_RULE"


@pytest.mark.parametrize("path", _layer_cases())
def test_each_module_imports_only_what_its_layer_may(path: Path) -> None:
    module, package = _module_and_package(path)
    names = imported_modules(path.read_text(encoding="utf-8"), package=package)
    assert layer_violations(module, names) == []


PLANTED_LAYER_VIOLATIONS = {
    "store imports run": (
        "replay_engine._store.store",
        "from .._run.runtime import Runtime",
    ),
    "store imports api": ("replay_engine._store.posts", "from .._api import engine"),
    "run imports api": ("replay_engine._run.context", "from .._api.engine import Run"),
    "cli imports store": ("replay_engine._cli.common", "from .._store.store import S"),
    "cli imports the seam": (
        "replay_engine._cli.common",
        "from .._testing_seam import Hooks",
    ),
    "testing imports run": ("replay_engine.testing._fakes", "from .._run import hooks"),
    "plugin imports check": (
        "replay_engine.pytest_plugin",
        "import replay_engine._check.checker",
    ),
    "demo imports api": ("replay_engine.demo", "from replay_engine._api import engine"),
    "check imports run": ("replay_engine._check.rules", "from .._run import tasks"),
    "check imports third-party": ("replay_engine._check.rules", "import rich"),
    "errors imports store": ("replay_engine.errors", "from ._store import env"),
    "serve imports api": ("replay_engine._serve.views", "from .._api import engine"),
    "errors imports format": ("replay_engine.errors", "import journal_format"),
    "upward import under TYPE_CHECKING": (
        "replay_engine._store.store",
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from .._run.runtime import Runtime\n",
    ),
    "upward import inside a function": (
        "replay_engine._run.runtime",
        "def f():\n    from .._api.engine import Engine\n",
    ),
}


@pytest.mark.parametrize(
    ("module", "source"),
    list(PLANTED_LAYER_VIOLATIONS.values()),
    ids=list(PLANTED_LAYER_VIOLATIONS),
)
def test_the_layer_checker_catches_a_planted_violation(
    module: str, source: str
) -> None:
    package = module.rpartition(".")[0]
    names = imported_modules(source, package=package)
    assert layer_violations(module, names) != []


ALLOWED_IMPORTS = {
    "cli uses the public API": ("replay_engine._cli.common", "from .. import Engine"),
    "cli uses errors": ("replay_engine._cli.common", "from ..errors import TaskFailed"),
    "cli decodes the format": (
        "replay_engine._cli.event_rows",
        "import journal_format",
    ),
    "testing uses the seam": (
        "replay_engine.testing._fakes",
        "from .._testing_seam import Hooks",
    ),
    "api uses run and store": (
        "replay_engine._api.engine",
        "from .._run.runtime import Runtime\nfrom .._store.store import Store",
    ),
    "run uses store": (
        "replay_engine._run.journal",
        "from .._store.store import Store",
    ),
    "store uses the format": ("replay_engine._store.store", "import journal_format"),
    "serve uses the cli's documents": (
        "replay_engine._serve.views",
        "from .. import Engine\nfrom .._cli.event_rows import event_document",
    ),
    "check uses errors": ("replay_engine._check.rules", "from ..errors import X"),
    "the door imports anything": (
        "replay_engine",
        "from ._api.engine import Engine\nfrom ._check import checker",
    ),
    "lower layer under TYPE_CHECKING": (
        "replay_engine._api.engine",
        "if TYPE_CHECKING:\n    from .._store.store import Store\n",
    ),
}


@pytest.mark.parametrize(
    ("module", "source"), list(ALLOWED_IMPORTS.values()), ids=list(ALLOWED_IMPORTS)
)
def test_the_layer_checker_allows_the_rule(module: str, source: str) -> None:
    package = module if module == "replay_engine" else module.rpartition(".")[0]
    names = imported_modules(source, package=package)
    assert layer_violations(module, names) == []


# ------------------------------------------------------------- no cycles


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every group of modules that import each other (strongly connected, > 1).

    Tarjan's algorithm; its recursion is as deep as the longest import chain.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(cycles)


def module_graph(sources: dict[str, tuple[str, str]]) -> dict[str, set[str]]:
    """module -> the modules of ``sources`` it imports at module level.

    ``sources`` maps a module name to (its package, its source text).
    """
    graph = {}
    for module, (package, source) in sources.items():
        names = imported_modules(
            source, package=package, module_level=True, known=set(sources)
        )
        graph[module] = {n for n in names if n in sources and n != module}
    return graph


def _engine_sources() -> dict[str, tuple[str, str]]:
    sources = {}
    for path in _sources(ENGINE):
        module, package = _module_and_package(path)
        sources[module] = (package, path.read_text(encoding="utf-8"))
    return sources


def test_replay_engine_has_no_import_cycles() -> None:
    """No two modules of ``replay_engine`` import each other, even indirectly.

    Counted: imports that run or are read when a module is imported, that is
    at module level, in class bodies and under ``if TYPE_CHECKING:`` (a
    type-only cycle still means neither module can be read alone). Not
    counted, by choice: imports inside a function body, the accepted way to
    defer an optional dependency (Dask, rich) and, where a real cycle must be
    broken, a visible one. Importing a package's submodule is not counted as
    importing the package.
    """
    assert import_cycles(module_graph(_engine_sources())) == []


PLANTED_CYCLES = {
    "two modules": {
        "replay_engine._run.a": ("replay_engine._run", "from . import b"),
        "replay_engine._run.b": ("replay_engine._run", "from .a import X"),
    },
    "three modules": {
        "replay_engine._run.a": ("replay_engine._run", "from .b import X"),
        "replay_engine._run.b": ("replay_engine._run", "from .c import X"),
        "replay_engine._run.c": ("replay_engine._run", "import replay_engine._run.a"),
    },
    "under TYPE_CHECKING": {
        "replay_engine._api.a": ("replay_engine._api", "from .b import X"),
        "replay_engine._api.b": (
            "replay_engine._api",
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from .a import Y\n",
        ),
    },
}


@pytest.mark.parametrize(
    "sources", list(PLANTED_CYCLES.values()), ids=list(PLANTED_CYCLES)
)
def test_the_cycle_checker_catches_a_planted_cycle(
    sources: dict[str, tuple[str, str]],
) -> None:
    assert import_cycles(module_graph(sources)) == [sorted(sources)]


def test_a_function_level_import_does_not_make_a_cycle() -> None:
    sources = {
        "replay_engine._run.a": ("replay_engine._run", "from .b import X"),
        "replay_engine._run.b": (
            "replay_engine._run",
            "def f():\n    from .a import Y\n",
        ),
    }
    assert import_cycles(module_graph(sources)) == []
