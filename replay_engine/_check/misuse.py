"""Rules about using the engine wrongly rather than about hidden inputs.

RE113 a task called directly, RE114 a ctx call nobody awaits, RE115 module-level
state written by a process. Each rule reads one function's syntax; what a name
means (a task? module-level?) is asked of the walk that owns the module
(:class:`Scope`), so this module stays a set of pure AST questions.
"""

from __future__ import annotations

import ast
import collections
from collections.abc import Iterator
from typing import Any, Protocol

from .rules import AnyFunction, own_nodes

Rule = tuple[str, str, str]
Hit = tuple[ast.AST, str, str, str]
"""``(node, code, message, replacement)``."""

DIRECT_TASK: Rule = (
    "RE113",
    "{name}(...) calls a @{kind} directly: it runs outside the journal, again on"
    " every replay, and its result is not recorded",
    "await ctx.task({name}, {{...keyword arguments...}})",
)
UNAWAITED: Rule = (
    "RE114",
    "{name}(...) is never awaited: the call does nothing (no effect is"
    " dispatched) and the process goes on without its result",
    "await {name}(...)",
)
GLOBAL_STATE: Rule = (
    "RE115",
    "{what} the module-level {name!r}: it outlives the execution, so a resume in"
    " the same interpreter (or another run) sees what earlier executions left"
    " there, and a crash loses it",
    "keep state in local variables and return it; persist it through a @task",
)

CTX_METHODS = {"task", "sleep", "run_child", "wait_for_event", "call"}
PARALLEL_METHODS = {"all", "map", "any"}
MUTATING_METHODS = {
    "append", "extend", "insert", "remove", "pop", "clear", "update", "add",
    "discard", "setdefault", "popitem", "appendleft", "extendleft", "sort",
    "reverse",
}  # fmt: skip


_CONTAINERS = (list, dict, set, bytearray, collections.deque)
"""Mutable containers (subclasses too: defaultdict, Counter, OrderedDict)."""


class Scope(Protocol):
    """What the rules ask of the checker walking the module."""

    ctx_names: set[str]
    module_names: set[str]
    """Names bound at module level (assigned, not functions, classes, imports)."""

    def task_kind(self, func: ast.expr) -> str | None:
        """``"task"``/``"external"`` when ``func`` names one, else None."""


def ctx_call_name(node: ast.AST, ctx_names: set[str]) -> str | None:
    """``"ctx.task"``, ``"ctx.parallel.all"`` … when ``node`` is such a call."""
    if not isinstance(node, ast.Call):
        return None
    if isinstance(node.func, ast.Call):  # ctx.call(step)(n=3): the typed form
        inner = ctx_call_name(node.func, ctx_names)
        return (
            f"{inner}(...)" if inner is not None and inner.endswith(".call") else None
        )
    if not isinstance(node.func, ast.Attribute):
        return None
    func, value = node.func, node.func.value
    if (
        func.attr in CTX_METHODS
        and isinstance(value, ast.Name)
        and value.id in ctx_names
    ):
        return f"{value.id}.{func.attr}"
    if (
        func.attr in PARALLEL_METHODS
        and isinstance(value, ast.Attribute)
        and value.attr == "parallel"
        and isinstance(value.value, ast.Name)
        and value.value.id in ctx_names
    ):
        return f"{value.value.id}.parallel.{func.attr}"
    return None


def check(fn: AnyFunction, scope: Scope) -> Iterator[Hit]:
    """Every RE113, RE114 and RE115 hit in ``fn`` (nested functions included)."""
    yield from _direct_tasks(fn, scope)
    yield from _unawaited(fn, scope.ctx_names)
    yield from _global_writes(fn, scope.module_names)


def _direct_tasks(fn: AnyFunction, scope: Scope) -> Iterator[Hit]:
    for node in ast.walk(fn):
        if isinstance(node, ast.Call):
            kind = scope.task_kind(node.func)
            if kind is not None:
                code, message, use = DIRECT_TASK
                name = ast.unparse(node.func)
                yield (
                    node,
                    code,
                    message.format(name=name, kind=kind),
                    use.format(name=name),
                )


def _unawaited(fn: AnyFunction, ctx_names: set[str]) -> Iterator[Hit]:
    code, message, use = UNAWAITED
    functions = [n for n in ast.walk(fn) if isinstance(n, AnyFunction)]
    for function in functions:
        awaited = _awaited_names(function)
        for node in own_nodes(function):
            value: ast.AST | None = None
            if isinstance(node, ast.Expr) or (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id not in awaited
            ):
                value = node.value
            name = ctx_call_name(value, ctx_names) if value is not None else None
            if name is not None:
                assert value is not None
                yield value, code, message.format(name=name), use.format(name=name)


def _awaited_names(fn: AnyFunction) -> set[str]:
    """Names that reach an ``await`` or a ``return`` (the caller awaits those)."""
    names: set[str] = set()
    for node in own_nodes(fn):
        if isinstance(node, ast.Await | ast.Return | ast.Yield) and node.value:
            names.update(
                n.id
                for n in ast.walk(node.value)
                if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
            )
    return names


def _global_writes(fn: AnyFunction, module_names: set[str]) -> Iterator[Hit]:
    code, message, use = GLOBAL_STATE
    functions = [n for n in ast.walk(fn) if isinstance(n, AnyFunction)]
    for function in functions:
        declared = {
            name
            for node in own_nodes(function)
            if isinstance(node, ast.Global)
            for name in node.names
        }
        local = _local_names(function) - declared
        for node in own_nodes(function):
            name, what = _write(node, local, declared, module_names)
            if name is not None:
                yield node, code, message.format(what=what, name=name), use


def _local_names(fn: AnyFunction) -> set[str]:
    args = fn.args
    names = {a.arg for a in [*args.args, *args.kwonlyargs, *args.posonlyargs]}
    names.update(a.arg for a in (args.vararg, args.kwarg) if a is not None)
    for node in own_nodes(fn):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return names


def _write(
    node: ast.AST, local: set[str], declared: set[str], module_names: set[str]
) -> tuple[str | None, str]:
    """The module-level name ``node`` writes, and how; ``(None, "")`` if none."""
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in MUTATING_METHODS
    ):
        base = _base(node.func.value)
        if base is not None and base in module_names and base not in local:
            return base, f"calls .{node.func.attr}() on"
    targets: list[ast.expr] = []
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, ast.AugAssign | ast.AnnAssign):
        targets = [node.target]
    elif isinstance(node, ast.Delete):
        targets = node.targets
    for target in targets:
        if isinstance(target, ast.Name):
            if target.id in declared:  # global x; x = ...
                return target.id, "assigns (through `global`)"
            continue
        base = _base(target)
        if base is not None and base in module_names and base not in local:
            return base, "writes into"
    return None, ""


def _base(node: ast.expr) -> str | None:
    """``CACHE`` of ``CACHE[k].items``: the name an access chain starts from."""
    while isinstance(node, ast.Attribute | ast.Subscript):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def module_level_names(tree: ast.Module, globals_: dict[str, Any]) -> set[str]:
    """Names of module-level state in a process's module.

    Names assigned at its top level, and imported containers (``from .state
    import CACHE``: another module's state, just as shared).
    """
    names = {
        name
        for name, value in globals_.items()
        if not name.startswith("__") and isinstance(value, _CONTAINERS)
    }
    for node in tree.body:
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign | ast.AugAssign):
            targets = [node.target]
        for target in targets:
            for sub in ast.walk(target):
                if isinstance(sub, ast.Name):
                    names.add(sub.id)
    return names
