"""RE116: non-determinism hidden in a helper in another module of the user's package.

A process calls ``helpers.make_id()``; ``helpers.py`` calls ``uuid.uuid4()``.
The checker follows such calls into the user's own code — modules of the same
top-level package as the process's module, or, for a process in a top-level
module, the files beside it — by reading and parsing their source with
:mod:`ast`. It never imports them (importing runs code), and it follows at
most :data:`MAX_DEPTH` calls deep and parses at most :data:`MAX_FILES` files,
so a large package cannot make the check slow. The finding is reported at the
call in the process, naming the whole chain with file:line of every step.
"""

from __future__ import annotations

import ast
import builtins
from dataclasses import dataclass
from pathlib import Path

from . import rules

MAX_DEPTH = 4
"""Helper calls followed from a process's call, at most."""
MAX_FILES = 64
"""Modules of the user's package parsed for one check, at most."""
CODE = "RE116"


@dataclass(frozen=True)
class Hop:
    """One step of a chain: a helper function, or the hazard at its end."""

    name: str
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.name} ({self.file}:{self.line})"


@dataclass(frozen=True)
class Reach:
    """A hazard reached from a call: the helpers on the way, then the hazard."""

    chain: tuple[Hop, ...]
    rule: tuple[str, str, str]
    name: str


@dataclass
class _Module:
    name: str
    file: str
    lines: list[str]
    aliases: dict[str, str]
    functions: dict[str, rules.AnyFunction]


class Follower:
    """Finds the hazards reachable from calls into the user's own modules."""

    def __init__(self, module_name: str, module_file: str) -> None:
        self.root: Path | None = None
        self.top: str | None = None
        parts = module_name.split(".")
        path = Path(module_file)
        if module_name in ("", "?", "__main__") or not path.is_file():
            return
        package = path.name == "__init__.py"
        up = len(parts) if package else len(parts) - 1
        if up >= len(path.resolve().parents):
            return
        self.root = path.resolve().parents[up]
        self.top = parts[0] if (package or len(parts) > 1) else None
        self.origin = module_name
        self._modules: dict[str, _Module | None] = {}
        self._memo: dict[str, list[Reach]] = {}
        self._active: set[str] = set()

    def owns(self, dotted: str) -> bool:
        """Whether ``dotted`` names something in the user's own package."""
        if self.root is None:
            return False
        first = dotted.split(".", maxsplit=1)[0]
        if first == "replay_engine" or hasattr(builtins, first):
            return False
        if self.top is not None:
            return first == self.top
        return (self.root / f"{first}.py").is_file() or (
            self.root / first / "__init__.py"
        ).is_file()

    def reaches(self, dotted: str, depth: int = 1) -> list[Reach]:
        """The hazards a call of function ``dotted`` reaches (memoised)."""
        if depth > MAX_DEPTH or dotted in self._active:
            return []
        if dotted in self._memo:
            return self._memo[dotted]
        found = self._function(dotted)
        if found is None:
            return []
        module, node = found
        self._active.add(dotted)
        try:
            out = self._walk(module, node, dotted, depth)
        finally:
            self._active.discard(dotted)
        self._memo[dotted] = out
        return out

    def display(self, dotted: str) -> str:
        """``mypkg.helpers.make_id`` as ``helpers.make_id``."""
        if self.top is not None and dotted.startswith(self.top + "."):
            return dotted[len(self.top) + 1 :]
        return dotted

    # -- walking one helper ----------------------------------------------------------

    def _walk(
        self, module: _Module, node: rules.AnyFunction, dotted: str, depth: int
    ) -> list[Reach]:
        here = Hop(self.display(dotted), module.file, node.lineno)
        local = rules.bound_names(node)
        out: list[Reach] = []
        seen: set[tuple[int, str]] = set()
        for sub in ast.walk(node):
            if not isinstance(sub, ast.Call | ast.Attribute | ast.Name):
                continue
            target = sub.func if isinstance(sub, ast.Call) else sub
            name = _resolve(module, target, local)
            if name is None:
                continue
            rule = rules.rule_for(name) if isinstance(sub, ast.Call) else None
            if name in ("os.environ", "os.environb"):
                rule = rules.ENVIRONMENT
            if name == "random.Random" and isinstance(sub, ast.Call) and sub.args:
                rule = None  # an explicitly seeded generator is deterministic
            if rule is not None:
                line = getattr(sub, "lineno", node.lineno)
                if (line, rule[0]) in seen or _ignored(module, line, rule[0]):
                    continue
                seen.add((line, rule[0]))
                short = rules.short_name(name)
                hazard = Hop(short, module.file, line)
                out.append(Reach((here, hazard), rule, short))
            elif isinstance(sub, ast.Call) and self.owns(name):
                for reach in self.reaches(name, depth + 1):
                    out.append(Reach((here, *reach.chain), reach.rule, reach.name))
        return out

    def _function(self, dotted: str) -> tuple[_Module, rules.AnyFunction] | None:
        module_name, _, function = dotted.rpartition(".")
        module = self._module(module_name) if module_name else None
        if module is None:
            return None
        node = module.functions.get(function)
        if node is None or _is_effect(node):
            return None  # not a plain function of the module, or a task (an effect)
        return module, node

    def _module(self, name: str) -> _Module | None:
        if name in self._modules:
            return self._modules[name]
        self._modules[name] = None
        assert self.root is not None
        if len(self._modules) > MAX_FILES:
            return None
        base = self.root.joinpath(*name.split("."))
        for path in (base.with_suffix(".py"), base / "__init__.py"):
            if path.is_file():
                try:
                    source = path.read_text(encoding="utf-8")
                    tree = ast.parse(source, filename=str(path))
                except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
                    return None
                package = (
                    name if path.name == "__init__.py" else name.rpartition(".")[0]
                )
                module = _Module(
                    name=name,
                    file=str(path.relative_to(self.root)),
                    lines=source.splitlines(),
                    aliases=_aliases(tree, package),
                    functions={
                        n.name: n for n in tree.body if isinstance(n, rules.AnyFunction)
                    },
                )
                self._modules[name] = module
                return module
        return None


def _aliases(tree: ast.Module, package: str) -> dict[str, str]:
    """Imported names, relative imports resolved against ``package``."""
    aliases = rules.import_aliases(tree)
    for node in ast.walk(tree):  # function-level imports too, as import_aliases
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            base_parts = package.split(".") if package else []
            if node.level > 1:
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
            base = ".".join([*base_parts, *([node.module] if node.module else [])])
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{base}.{alias.name}"
    return aliases


def _resolve(module: _Module, node: ast.expr, local: set[str]) -> str | None:
    if isinstance(node, ast.Name):
        if node.id in local:
            return None
        if node.id in module.aliases:
            return module.aliases[node.id]
        if node.id in module.functions:
            return f"{module.name}.{node.id}"
        return f"builtins.{node.id}" if hasattr(builtins, node.id) else None
    if isinstance(node, ast.Attribute):
        base = _resolve(module, node.value, local)
        return None if base is None else f"{base}.{node.attr}"
    return None


def _is_effect(fn: rules.AnyFunction) -> bool:
    for decorator in fn.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if ast.unparse(target).rsplit(".", 1)[-1] in ("task", "external"):
            return True
    return False


def _ignored(module: _Module, line: int, code: str) -> bool:
    text = module.lines[line - 1] if 0 < line <= len(module.lines) else ""
    found = rules.IGNORE.search(text)
    return found is not None and (not found.group(1) or code in found.group(1))


def message(origin: str, reaches: list[Reach]) -> tuple[str, str]:
    """The RE116 message and replacement for the hazards one call reaches."""
    first = reaches[0]
    chains = [" → ".join([origin, *(str(h) for h in r.chain)]) for r in reaches[:3]]
    more = f" (and {len(reaches) - 3} more)" if len(reaches) > 3 else ""
    text = (
        f"{first.rule[1].format(name=first.name)}, reached through a helper in"
        f" another module: {'; '.join(chains)}{more}"
    )
    return text, f"{first.rule[2]}, in the process (or make the helper a @task)"
