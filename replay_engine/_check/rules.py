"""The rules of the static determinism check, and the AST facts they need.

``_static_check`` walks a process; this module says what to flag (the tables:
a dotted name resolved through the module's imports -> code, message,
replacement) and answers the questions about syntax the walk asks: is this
expression a set, which names does this function bind, does this statement
write state shared with sibling branches.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

_R = dict[str, tuple[str, str, str]]

_CLOCK = (
    "RE101",
    "{name}() reads the wall clock: it differs on every replay",
    "ctx.now()",
)
_RANDOM = (
    "RE102",
    "{name}() draws unrecorded randomness: replay draws something else",
    "ctx.random() (a random.Random seeded from the run id and the call's key)",
)
_UUID = ("RE103", "{name}() makes a new random id on every replay", "ctx.uuid()")
ENVIRONMENT = (
    "RE104",
    "{name} reads the environment, which can differ when the run is resumed",
    "pass it in the inputs, or read it inside a task",
)
FILE_IO = (
    "RE105",
    "{name}() does I/O outside a task: it is repeated on every replay and its"
    " result is not recorded",
    "do it in a @task (its result is journaled)",
)
_NET = (
    "RE106",
    "{name} does network I/O outside a task: repeated on every replay, result"
    " not recorded",
    "do it in a @task (its result is journaled)",
)
THREADS = (
    "RE108",
    "{name} starts concurrent work the journal does not see",
    "a @task (the engine runs sync tasks in a thread pool)",
)
_ASYNC = (
    "RE109",
    "{name}() runs coroutines outside ctx.parallel: their ctx calls take keys in"
    " the order they happen to run",
    "ctx.parallel.all([...thunks]) or ctx.parallel.map(items, fn)",
)
_SLEEP = (
    "RE110",
    "{name}() is not durable: every replay sleeps again from the start",
    "await ctx.sleep(seconds)",
)
_HASH = (
    "RE111",
    "{name}() differs between interpreters (hash seed, memory addresses)",
    "a stable digest (hashlib.blake2b) or ctx.uuid()",
)

EXACT: _R = {
    **dict.fromkeys(
        [
            "time.time",
            "time.time_ns",
            "time.monotonic",
            "time.monotonic_ns",
            "time.perf_counter",
            "time.perf_counter_ns",
            "time.process_time",
            "time.localtime",
            "time.gmtime",
            "time.ctime",
            "datetime.datetime.now",
            "datetime.datetime.utcnow",
            "datetime.datetime.today",
            "datetime.date.today",
        ],
        _CLOCK,
    ),
    **dict.fromkeys(["os.urandom", "random.SystemRandom"], _RANDOM),
    **dict.fromkeys(["uuid.uuid1", "uuid.uuid4"], _UUID),
    **dict.fromkeys(
        ["os.environ", "os.environb", "os.getenv", "os.putenv", "os.getpid",
         "os.getcwd", "platform.node"],
        ENVIRONMENT,
    ),
    **dict.fromkeys(
        ["builtins.open", "builtins.input", "io.open", "os.listdir", "os.scandir",
         "os.walk", "os.remove", "os.unlink", "os.rename", "os.mkdir",
         "os.makedirs", "os.system", "os.popen", "os.stat", "os.path.exists",
         "os.path.getmtime", "os.path.getsize", "os.path.isfile", "os.path.isdir",
         "glob.glob", "glob.iglob"],
        FILE_IO,
    ),
    **dict.fromkeys(
        ["threading.Thread", "threading.Timer", "asyncio.to_thread"], THREADS
    ),
    **dict.fromkeys(
        ["asyncio.create_task", "asyncio.ensure_future", "asyncio.wait",
         "asyncio.as_completed", "asyncio.TaskGroup", "asyncio.gather"],
        _ASYNC,
    ),
    **dict.fromkeys(["time.sleep", "asyncio.sleep"], _SLEEP),
    **dict.fromkeys(["builtins.hash", "builtins.id"], _HASH),
}  # fmt: skip

PREFIXES: _R = {
    "random.": _RANDOM,
    "secrets.": _RANDOM,
    "numpy.random.": _RANDOM,
    "os.environ.": ENVIRONMENT,
    "shutil.": FILE_IO,
    "subprocess.": FILE_IO,
    "socket.": _NET,
    "ssl.": _NET,
    "requests.": _NET,
    "urllib.request.": _NET,
    "urllib3.": _NET,
    "http.client.": _NET,
    "httpx.": _NET,
    "aiohttp.": _NET,
    "concurrent.futures.": THREADS,
    "multiprocessing.": THREADS,
    "_thread.": THREADS,
}

PATH_IO = {"read_text", "write_text", "read_bytes", "write_bytes"}
ORDER_FREE = {"sorted", "set", "frozenset", "sum", "any", "all", "min", "max", "len"}
ORDERED_SINKS = {"list", "tuple", "enumerate", "zip", "iter", "next", "map", "filter"}
MUTATORS = {"append", "extend", "insert", "appendleft", "extendleft"}
SET_METHODS = {"union", "intersection", "difference", "symmetric_difference", "copy"}
IGNORE = re.compile(r"#\s*replay-engine:\s*ignore(?:\[([A-Z0-9, ]+)\])?")

AnyFunction = ast.FunctionDef | ast.AsyncFunctionDef


def rule_for(dotted: str) -> tuple[str, str, str] | None:
    if dotted in EXACT:
        return EXACT[dotted]
    for prefix, rule in PREFIXES.items():
        if dotted.startswith(prefix):
            return rule
    return None


def short_name(dotted: str) -> str:
    return dotted.removeprefix("builtins.")


def import_aliases(tree: ast.Module) -> dict[str, str]:
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    aliases[alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    aliases[top] = top
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return aliases


def is_ctx_call(node: ast.expr) -> bool:
    """``ctx.task(...)``, or ``*[ctx.task(...) for ...]``: keys taken in order."""
    if isinstance(node, ast.Starred) and isinstance(
        node.value, ast.ListComp | ast.GeneratorExp
    ):
        return is_ctx_call(node.value.elt)
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "task"
    )


def bound_names(fn: AnyFunction) -> set[str]:
    """Names assigned (or taken as parameters) anywhere inside ``fn``."""
    names: set[str] = set()
    for node in ast.walk(fn):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return names


def effect_args(fn: AnyFunction) -> set[int]:
    """The ids of names passed as the task of ``ctx.task(name, ...)`` (effects)."""
    return {
        id(node.args[0])
        for node in ast.walk(fn)
        if isinstance(node, ast.Call) and is_ctx_call(node) and node.args
    }


def set_names(fn: AnyFunction) -> set[str]:
    """Names this function binds to sets (flow-insensitive)."""
    names: set[str] = set()
    for arg in [*fn.args.args, *fn.args.kwonlyargs, *fn.args.posonlyargs]:
        annotation = ast.unparse(arg.annotation) if arg.annotation else ""
        if re.match(
            r"(typing\.)?(set|frozenset|Set|FrozenSet|AbstractSet)\b", annotation
        ):
            names.add(arg.arg)
    for _ in range(2):  # a set assigned from another set name, one hop
        for node in ast.walk(fn):
            if isinstance(node, ast.Assign) and is_set(node.value, names):
                names.update(t.id for t in node.targets if isinstance(t, ast.Name))
            elif (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and (
                    (node.value is not None and is_set(node.value, names))
                    or ast.unparse(node.annotation).startswith(("set", "frozenset"))
                )
            ):
                names.add(node.target.id)
    return names


def is_set(node: ast.expr, names: set[str]) -> bool:
    if isinstance(node, ast.Set | ast.SetComp):
        return True
    if isinstance(node, ast.Name):
        return node.id in names
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Name) and func.id in ("set", "frozenset"):
            return True
        if isinstance(func, ast.Attribute) and func.attr in SET_METHODS:
            return is_set(func.value, names)
    if isinstance(node, ast.BinOp) and isinstance(
        node.op, ast.BitOr | ast.BitAnd | ast.Sub | ast.BitXor
    ):
        return is_set(node.left, names) or is_set(node.right, names)
    return False


def own_nodes(fn: AnyFunction) -> Iterator[ast.AST]:
    """The nodes of ``fn``'s body, not descending into nested functions."""
    stack: list[ast.AST] = list(fn.body)
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, AnyFunction | ast.Lambda | ast.ClassDef):
                stack.append(child)


def local_names(fn: AnyFunction) -> set[str]:
    declared: set[str] = set()
    local = {a.arg for a in [*fn.args.args, *fn.args.kwonlyargs, *fn.args.posonlyargs]}
    for node in own_nodes(fn):
        if isinstance(node, ast.Nonlocal | ast.Global):
            declared.update(node.names)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            local.add(node.id)
    return local - declared


def shared_write(node: ast.AST, local: set[str]) -> tuple[str | None, str]:
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in MUTATORS
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id not in local
    ):
        return node.func.value.id, f"calls .{node.func.attr}() on"
    if isinstance(node, ast.AugAssign | ast.Assign):
        targets = [node.target] if isinstance(node, ast.AugAssign) else node.targets
        for target in targets:
            base = target
            while isinstance(base, ast.Attribute | ast.Subscript):
                base = base.value
            if not isinstance(base, ast.Name) or base.id in local:
                continue
            if isinstance(node, ast.AugAssign) and isinstance(node.value, ast.Constant):
                continue  # a counter: the final value does not depend on order
            if isinstance(node, ast.Assign) and target is not base:
                continue  # results[i] = ...: an indexed slot, not an order
            return base.id, "writes to"
    return None, ""
