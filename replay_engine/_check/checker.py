"""``replay-engine check MODULE:FUNC``: what breaks determinism, found without running.

The checker reads the source of a process function's module, walks the
function's body (nested functions and lambdas included) and, transitively,
the functions of the same module it refers to by name, except tasks: a task
is an effect and may do anything. It flags the calls that make a re-executed
process behave differently from the first execution, each with its
deterministic replacement:

======  ==========================================  ==============================
code    what                                        instead
======  ==========================================  ==============================
RE101   wall-clock reads (time.time, datetime.now)  ctx.now()
RE102   randomness (random.*, secrets, os.urandom)  ctx.random()
RE103   uuid.uuid1 / uuid.uuid4                     ctx.uuid()
RE104   environment reads (os.environ, getenv)      inputs, or a task
RE105   file and process I/O (open, pathlib, ...)   a task
RE106   network I/O (socket, requests, httpx, ...)  a task
RE107   iterating a set (order varies by process)   sorted(...)
RE108   threads, executors, multiprocessing         a task
RE109   asyncio concurrency outside ctx.parallel    ctx.parallel.all/map
RE110   non-durable sleeps                          ctx.sleep()
RE111   hash() / id() (vary between processes)      a stable digest, ctx.uuid()
RE112   a parallel branch writing shared state      the results list
        after an await (completion order)
RE113   a @task/@external called directly           await ctx.task(step, {...})
RE114   ctx.task(...)/ctx.parallel... not awaited   await it
RE115   module-level state written by a process     locals, results, a task
        (global x; x = ..., LIST.append, D[k] = v)
RE116   a hazard above inside a helper in another   do it in the process, or make
        module of your package (the chain shown)    the helper a @task
======  ==========================================  ==============================

RE116 follows calls into the user's own modules (same top-level package, or
files beside a top-level process module) by parsing their source, never
importing them, at most ``follow.MAX_DEPTH`` calls deep.

Names are resolved through the module's imports and, failing that, through
the function's globals, so ``from time import time as now`` is still caught.
A line ending in ``# replay-engine: ignore`` (or ``ignore[RE101,RE107]``)
is not reported. The check is a heuristic: it finds the common hazards, and
``replay_engine.testing.assert_deterministic`` is the proof.
"""

from __future__ import annotations

import ast
import builtins
import inspect
import textwrap
import types
from collections.abc import Callable
from typing import Any

from . import follow, misuse, rules
from .finding import Finding

__all__ = ["Finding", "check_function"]


def check_function(fn: Callable[..., Any]) -> tuple[list[Finding], list[str]]:
    """The findings for ``fn`` and the names of the functions checked.

    Raises:
        ValueError: the function's source is unavailable.
    """
    fn = inspect.unwrap(fn)
    module = inspect.getmodule(fn)
    try:
        filename = inspect.getsourcefile(fn) or "<unknown>"
        source = inspect.getsource(module) if module is not None else ""
    except (OSError, TypeError):
        source = ""
    tree = ast.parse(source) if source else None
    node = _find_function(tree, fn) if tree is not None else None
    if node is None:  # defined outside a module file: check the function alone
        try:
            lines, start = inspect.getsourcelines(fn)
        except (OSError, TypeError) as exc:
            raise ValueError(f"the source of {fn!r} is not available: {exc}") from None
        try:
            tree = ast.parse(textwrap.dedent("".join(lines)))
        except SyntaxError:
            raise ValueError(
                f"the source of {fn!r} cannot be parsed on its own; define the"
                " process with `async def` at module level"
            ) from None
        ast.increment_lineno(tree, start - 1)
        source = "\n" * (start - 1) + "".join(lines)  # keep line numbers aligned
        node = next(n for n in ast.walk(tree) if isinstance(n, rules.AnyFunction))
    assert tree is not None
    module_name = getattr(module, "__name__", "?")
    checker = _Checker(
        tree, filename, source, getattr(fn, "__globals__", {}), module_name
    )
    params = [*node.args.posonlyargs, *node.args.args]
    if len(params) >= 2:  # (inputs, ctx): whatever the process calls its ctx
        checker.ctx_names.add(params[1].arg)
    checker.visit_function(node, f"{module_name}.{fn.__qualname__}")
    return sorted(set(checker.findings)), checker.visited


def _find_function(
    tree: ast.Module, fn: Callable[..., Any]
) -> rules.AnyFunction | None:
    code = getattr(fn, "__code__", None)
    for node in ast.walk(tree):
        if isinstance(node, rules.AnyFunction) and node.name == fn.__name__:
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            if code is None or first == code.co_firstlineno:
                return node
    return None


def _dotted_of(obj: Any) -> str | None:
    if isinstance(obj, types.ModuleType):
        return obj.__name__
    module, qualname = (
        getattr(obj, "__module__", None),
        getattr(obj, "__qualname__", None),
    )
    if isinstance(module, str) and isinstance(qualname, str):
        return f"{module}.{qualname}"
    return None


class _Checker:
    def __init__(
        self,
        tree: ast.Module,
        filename: str,
        source: str,
        globals_: dict[str, Any],
        module_name: str,
    ) -> None:
        self.filename = filename
        self.module_name = module_name
        self.lines = source.splitlines()
        self.globals = globals_
        self.aliases = rules.import_aliases(tree)
        self.module_functions = {
            n.name: n for n in tree.body if isinstance(n, rules.AnyFunction)
        }
        self.module_names = misuse.module_level_names(tree, globals_)
        self.ctx_names = {"ctx"}
        self.follower = follow.Follower(module_name, filename)
        self.findings: list[Finding] = []
        self.visited: list[str] = []
        self._seen: set[int] = set()
        self._emitted: set[tuple[int, int, str]] = set()
        self._current = ""
        self._locals: set[str] = set()

    # -- walking -------------------------------------------------------------------

    def visit_function(self, node: rules.AnyFunction, name: str) -> None:
        if id(node) in self._seen:
            return
        self._seen.add(id(node))
        self.visited.append(name)
        previous, self._current = self._current, name
        previous_locals, self._locals = self._locals, rules.bound_names(node)
        sets = rules.set_names(node)
        nested = {n.name: n for n in ast.walk(node) if isinstance(n, rules.AnyFunction)}
        effects = rules.effect_args(node)
        calls: list[tuple[str, rules.AnyFunction]] = []
        for sub in ast.walk(node):
            if isinstance(sub, ast.Call):
                self._call(sub, sets)
                self._parallel(sub, nested)
            elif isinstance(sub, ast.Attribute | ast.Name) and isinstance(
                sub.ctx, ast.Load
            ):
                self._reference(sub)
            if isinstance(sub, ast.For | ast.AsyncFor) and rules.is_set(sub.iter, sets):
                self._set_hazard(sub.iter)
            elif isinstance(sub, ast.ListComp | ast.DictComp | ast.GeneratorExp):
                for gen in sub.generators:
                    if rules.is_set(gen.iter, sets) and not self._order_free(sub, node):
                        self._set_hazard(gen.iter)
            elif isinstance(sub, ast.Starred) and rules.is_set(sub.value, sets):
                self._set_hazard(sub.value)
            if (
                isinstance(sub, ast.Name)
                and sub.id in self.module_functions
                and id(sub) not in effects
            ):
                target = self.module_functions[sub.id]
                if self._kind(target) is None:
                    calls.append((sub.id, target))
        for hit, code, message, use in misuse.check(node, self):
            self._emit(hit, code, message, use)
        self._current, self._locals = previous, previous_locals
        for called, target in calls:
            self.visit_function(target, f"{self.module_name}.{called}")

    def _order_free(self, comp: ast.AST, root: ast.AST) -> bool:
        """A generator consumed by sorted()/sum()/set()...: its order cannot leak."""
        for parent in ast.walk(root):
            if isinstance(parent, ast.Call) and comp in parent.args:
                name = self.resolve(parent.func)
                return (
                    name is not None
                    and name.removeprefix("builtins.") in rules.ORDER_FREE
                )
        return False

    # -- rules ---------------------------------------------------------------------

    def _call(self, call: ast.Call, sets: set[str]) -> None:
        name = self.resolve(call.func)
        if name is not None:
            rule = rules.rule_for(name)
            if name == "random.Random" and (call.args or call.keywords):
                rule = None  # an explicitly seeded generator is deterministic
            if name == "asyncio.gather" and all(
                rules.is_ctx_call(a) for a in call.args
            ):
                rule = None  # keys are taken when ctx.task is called: in order
            if rule is not None:
                self._add(call, rule, rules.short_name(name))
            else:
                self._follow(call, name)
            plain = name.removeprefix("builtins.")
            if plain in rules.ORDERED_SINKS and any(
                rules.is_set(a, sets) for a in call.args
            ):
                self._set_hazard(next(a for a in call.args if rules.is_set(a, sets)))
        func = call.func
        if isinstance(func, ast.Attribute):
            if func.attr in rules.PATH_IO:
                self._add(call, rules.FILE_IO, f"Path.{func.attr}")
            if func.attr == "run_in_executor":
                self._add(call, rules.THREADS, "loop.run_in_executor")
            if func.attr in {"join", "map", "extend"} and call.args:
                first = call.args[0] if func.attr != "join" else call.args[-1]
                if rules.is_set(first, sets):
                    self._set_hazard(first)
            if func.attr == "pop" and not call.args and rules.is_set(func.value, sets):
                self._set_hazard(func.value, "set.pop() takes an arbitrary element")

    def _reference(self, node: ast.Attribute | ast.Name) -> None:
        name = self.resolve(node)
        if name in ("os.environ", "os.environb"):
            self._add(node, rules.ENVIRONMENT, name)

    def _set_hazard(self, node: ast.expr, what: str | None = None) -> None:
        text = ast.unparse(node)
        if len(text) > 40:
            text = text[:37] + "..."
        message = what or (
            f"iterating the set {text}: set order depends on the hash seed (for"
            " strings) and on insertion history, so it changes between processes"
        )
        self._emit(node, "RE107", message, f"sorted({text})")

    def _parallel(self, call: ast.Call, nested: dict[str, rules.AnyFunction]) -> None:
        """RE112: branches of ctx.parallel.all/map that write shared state late."""
        func = call.func
        if not (
            isinstance(func, ast.Attribute)
            and func.attr in ("all", "map")
            and isinstance(func.value, ast.Attribute)
            and func.value.attr == "parallel"
        ):
            return
        if func.attr == "map":
            branches = call.args[1:2] or [
                k.value for k in call.keywords if k.arg == "fn"
            ]
        else:
            first = call.args[0] if call.args else None
            branches = (
                list(first.elts) if isinstance(first, ast.List | ast.Tuple) else []
            )
        for branch in branches:
            target = branch.body if isinstance(branch, ast.Lambda) else branch
            if isinstance(target, ast.Call):
                target = target.func
            if isinstance(target, ast.Name):
                fn = nested.get(target.id) or self.module_functions.get(target.id)
                if fn is not None:
                    self._shared_writes(fn)

    def _shared_writes(self, fn: rules.AnyFunction) -> None:
        awaits = [n for n in rules.own_nodes(fn) if isinstance(n, ast.Await)]
        if not awaits:
            return
        first = min((a.lineno, a.col_offset) for a in awaits)
        local = rules.local_names(fn)
        for node in rules.own_nodes(fn):
            end = (
                getattr(node, "end_lineno", 0) or 0,
                getattr(node, "end_col_offset", 0) or 0,
            )
            if end <= first:
                continue
            name, what = rules.shared_write(node, local)
            if name is not None:
                self._emit(
                    node,
                    "RE112",
                    f"parallel branch {fn.name}() {what} {name!r} after an await:"
                    f" {name!r} is shared with its sibling branches, so what it"
                    " holds follows the order in which branches complete",
                    "return the value from the branch and use the list"
                    " ctx.parallel.all/map returns (it is in input order)",
                )

    # -- helpers ---------------------------------------------------------------------

    def resolve(self, node: ast.expr) -> str | None:
        if isinstance(node, ast.Name):
            if node.id in self._locals:
                return None  # a local variable shadowing a module or builtin
            if node.id in self.aliases:
                return self.aliases[node.id]
            if node.id in self.globals:
                return _dotted_of(self.globals[node.id])
            return f"builtins.{node.id}" if hasattr(builtins, node.id) else None
        if isinstance(node, ast.Attribute):
            base = self.resolve(node.value)
            return None if base is None else f"{base}.{node.attr}"
        return None

    def _kind(self, fn: rules.AnyFunction) -> str | None:
        """``"task"``/``"external"`` for a function so decorated, else None."""
        for decorator in fn.decorator_list:
            target = decorator.func if isinstance(decorator, ast.Call) else decorator
            name = (self.resolve(target) or "").rsplit(".", 1)[-1]
            if name in ("task", "external"):
                return name
        return None

    def task_kind(self, func: ast.expr) -> str | None:
        """RE113: ``"task"``/``"external"`` when ``func`` names one (misuse.Scope)."""
        if isinstance(func, ast.Name) and func.id in self._locals:
            return None
        obj = self._lookup(func)
        if type(obj).__name__ == "TaskDef":  # duck-typed: _check imports no engine
            return "task" if getattr(obj, "kind", "task") == "task" else "external"
        if (
            obj is None
            and isinstance(func, ast.Name)
            and func.id in self.module_functions
        ):
            return self._kind(self.module_functions[func.id])
        return None

    def _lookup(self, node: ast.expr) -> Any:
        """The object a name (or ``module.name``) names in the process's module."""
        if isinstance(node, ast.Name):
            return None if node.id in self._locals else self.globals.get(node.id)
        if isinstance(node, ast.Attribute):
            base = self._lookup(node.value)
            if isinstance(base, types.ModuleType):
                return getattr(base, node.attr, None)
        return None

    def _follow(self, call: ast.Call, name: str) -> None:
        """RE116: a call into another module of the user's package reaching a hazard."""
        if name.rpartition(".")[0] == self.module_name or not self.follower.owns(name):
            return
        reaches = self.follower.reaches(name)
        if reaches:
            origin = self.follower.display(self._current)
            text, use = follow.message(origin, reaches)
            self._emit(call, follow.CODE, text, use)

    def _add(self, node: ast.AST, rule: tuple[str, str, str], name: str) -> None:
        code, message, replacement = rule
        self._emit(node, code, message.format(name=name), replacement)

    def _emit(self, node: ast.AST, code: str, message: str, replacement: str) -> None:
        line = getattr(node, "lineno", 0)
        text = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        ignored = rules.IGNORE.search(text)
        if ignored and (not ignored.group(1) or code in ignored.group(1)):
            return
        col = getattr(node, "col_offset", 0) + 1
        if (line, col, code) in self._emitted:
            return  # os.environ.get(...): one finding, not one per sub-expression
        self._emitted.add((line, col, code))
        self.findings.append(
            Finding(
                file=self.filename,
                line=line,
                col=col,
                code=code,
                message=message,
                replacement=replacement,
                function=self._current,
            )
        )
