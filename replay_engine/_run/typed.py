"""Values come back as they went in: a task's annotations, applied to its payloads.

Args and results cross the journal as msgpack, which knows dicts, lists, str,
numbers, bool, None and bytes: a tuple arrives as a list, a ``date`` as a
string, a dataclass as a dict. A task that annotates its parameters and its
return gets them back as annotated, through ``msgspec.convert``, on every path
alike: in the task (its arguments), in the process live (the result just
recorded) and on replay (the result read from the journal), so a replayed
result has the same type as the live one.

The plan is computed once per task (at decoration) from its annotations:

* ``checks``: every annotated parameter msgspec understands. A *new* call's
  args are checked against them in the process, before anything is recorded
  (a wrong type is a ``PayloadError`` naming the task, the parameter and the
  type). Calls answered from the journal are not checked again: they were when
  first made.
* ``converts``: the parameters whose decoded form is not already the annotated
  type (``tuple``, ``set``, ``datetime``, Structs, dataclasses …): converted in
  the task, before it is called.
* ``result``: the return annotation, when its decoded form is not already it.

A task with nothing annotated (or only ``int``, ``str``, ``dict[str, Any]`` …)
converts nothing: its payloads go through exactly as before, at the same speed.
Annotations msgspec cannot handle (an arbitrary class) are left alone.
"""

from __future__ import annotations

import contextlib
import inspect
import re
import typing
import weakref
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, NamedTuple, Protocol

import msgspec
import msgspec.inspect as mi

import journal_format as jf

from ..errors import PayloadError

# Types msgpack decodes as themselves (containers: when their items do).
_NATIVE = (
    mi.AnyType,
    mi.NoneType,
    mi.BoolType,
    mi.IntType,
    mi.FloatType,
    mi.StrType,
    mi.BytesType,
    mi.LiteralType,
)


_SCALARS = (int, str, float, bool, bytes)


class Plan(NamedTuple):
    """How one task's payloads are converted (see the module doc)."""

    checks: tuple[tuple[str, Any], ...]
    converts: tuple[tuple[str, Any], ...]
    result: Any
    """The return type to convert results to, or ``None``: leave them."""
    positional: tuple[str, ...]
    """Parameter names in order, to bind positional arguments (``ctx.call``)."""
    exact: tuple[tuple[str, type], ...] | None = None
    """When every check is a plain scalar class (``int``, ``str`` …): a value
    of exactly that class passes without decoding anything."""
    validator: msgspec.msgpack.Decoder[Any] | None = None
    """Decodes args bytes into a Struct of the ``checks``: one C call checks
    them all, several times faster than a decode and a convert per parameter
    (a new call of a typed task pays it on the live path)."""


NO_PLAN = Plan((), (), None, ())

_plans: weakref.WeakKeyDictionary[Any, Plan] = weakref.WeakKeyDictionary()
_bound_plans: weakref.WeakKeyDictionary[Any, Plan] = weakref.WeakKeyDictionary()
"""Plans of bound methods, by their function (ctx.task wraps a bound method
anew on every call; its plan lacks ``self``, unlike its function's)."""


class Unresolved(Exception):
    """An annotation names something not defined yet (resolve at first use)."""


def plan_for(fn: Callable[..., Any]) -> Plan:
    """The conversion plan of ``fn``, from its signature and annotations.

    Raises:
        Unresolved: an annotation refers to a name not defined yet (a forward
            reference to a class defined later in the module).
    """
    base = getattr(fn, "__func__", fn)
    cache = _plans if base is fn else _bound_plans
    try:
        return cache[base]
    except (KeyError, TypeError):
        pass
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins without a signature
        return NO_PLAN
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except NameError as exc:
        raise Unresolved(str(exc)) from None
    except Exception:
        hints = {}
    checks: list[tuple[str, Any]] = []
    converts: list[tuple[str, Any]] = []
    positional: list[str] = []
    for name, param in sig.parameters.items():
        if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            positional.append(name)
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        native = _kind(hints.get(name))
        if native is None:
            continue
        checks.append((name, hints[name]))
        if not native:
            converts.append((name, hints[name]))
    result = hints.get("return")
    if inspect.iscoroutinefunction(fn) and result is not None:
        pass  # an async def's annotation is already the awaited type
    elif typing.get_origin(result) in (Coroutine, typing.Coroutine):
        result = typing.get_args(result)[-1]
    result_native = _kind(result)
    plan = Plan(
        tuple(checks),
        tuple(converts),
        result if result_native is False else None,
        tuple(positional),
        tuple(checks) if all(t in _SCALARS for _, t in checks) else None,
        _validator(checks),
    )
    with contextlib.suppress(TypeError):  # not weak-referenceable: not cached
        cache[base] = plan
    return plan


def _validator(checks: list[tuple[str, Any]]) -> msgspec.msgpack.Decoder[Any] | None:
    if not checks:
        return None
    try:
        shape = msgspec.defstruct(
            "Args",
            [(n, t | msgspec.UnsetType, msgspec.UNSET) for n, t in checks],
        )
        return msgspec.msgpack.Decoder(shape)
    except (TypeError, ValueError):  # a name or type a Struct cannot take
        return None


def _kind(annotation: Any) -> bool | None:
    """``None``: leave it alone; ``True``: decodes as itself; ``False``: convert."""
    if annotation is None or annotation is inspect.Parameter.empty:
        return None
    try:
        info = mi.type_info(annotation)
    except Exception:
        return None
    if isinstance(info, mi.AnyType):
        return None  # nothing to check or convert
    return _walk(info, set())


def _walk(info: mi.Type, seen: set[int]) -> bool | None:
    """Whether ``info`` decodes as itself; ``None`` if msgspec cannot handle it."""
    if isinstance(info, mi.CustomType):
        return None
    if isinstance(info, _NATIVE):
        return True
    if isinstance(info, mi.ListType):
        return _walk(info.item_type, seen)
    if isinstance(info, mi.DictType):
        key = _walk(info.key_type, seen)
        value = _walk(info.value_type, seen)
        if key is None or value is None:
            return None
        return key and value
    if isinstance(info, mi.UnionType):
        parts = [_walk(t, seen) for t in info.types]
        return None if None in parts else all(parts)
    if id(info) in seen:
        return False
    seen.add(id(info))
    for child in _children(info):
        if _walk(child, seen) is None:
            return None
    return False


def _children(info: mi.Type) -> list[mi.Type]:
    if isinstance(info, mi.StructType | mi.DataclassType | mi.TypedDictType):
        return [f.type for f in info.fields]
    if isinstance(info, mi.NamedTupleType):
        return [f.type for f in info.fields]
    if isinstance(info, mi.TupleType):
        return list(info.item_types)
    if isinstance(info, mi.VarTupleType | mi.SetType | mi.FrozenSetType):
        return [info.item_type]
    if isinstance(info, mi.FrozenDictType):
        return [info.key_type, info.value_type]
    return []


def type_name(annotation: Any) -> str:
    """How an annotation reads in an error message."""
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__qualname__
    return repr(annotation).replace("typing.", "").replace("datetime.", "")


def check_args(plan: Plan, args: Mapping[str, Any], args_bytes: bytes) -> str | None:
    """What is wrong with a new call's args, or ``None``: they fit the annotations.

    The args are checked as the task will receive them (decoded, then
    converted), so a call that passes here converts there.
    """
    exact = plan.exact
    if exact is not None:
        for name, cls in exact:
            if name in args and type(args[name]) is not cls:
                break  # maybe an int for a float: decode to be sure
        else:
            return None
    validator = plan.validator
    if validator is not None:
        try:
            validator.decode(args_bytes)
        except msgspec.ValidationError as exc:
            found = _AT_FIELD.search(str(exc))
            name = found.group(1) if found else ""
            for param, annotation in plan.checks:
                if param == name:
                    return f"argument {name!r} must be {type_name(annotation)} ({exc})"
            return f"its args do not fit the annotations ({exc})"
        return None
    args = jf.decode_payload(args_bytes)
    for name, annotation in plan.checks:
        if name in args:
            try:
                msgspec.convert(args[name], annotation)
            except msgspec.ValidationError as exc:
                return f"argument {name!r} must be {type_name(annotation)} ({exc})"
    return None


_AT_FIELD = re.compile(r"at `\$\.([^`.\[]+)")


def convert_args(
    converts: tuple[tuple[str, Any], ...], args: Mapping[str, Any]
) -> dict[str, Any]:
    """The decoded args with each parameter in ``converts`` converted to its type."""
    out = dict(args)
    for name, annotation in converts:
        if name in out:
            out[name] = msgspec.convert(out[name], annotation)
    return out


def bind(
    name: str,
    positional: tuple[str, ...],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> dict[str, Any]:
    """Positional arguments of a ``ctx.call`` turned into keyword arguments.

    Raises:
        TypeError: more positional arguments than named parameters, or one
            given twice.
    """
    if len(args) > len(positional):
        raise TypeError(
            f"task {name!r} takes {len(positional)} positional argument(s),"
            f" {len(args)} given"
        )
    bound = dict(zip(positional, args, strict=False))
    for key in kwargs:
        if key in bound:
            raise TypeError(f"task {name!r} got multiple values for argument {key!r}")
    bound.update(kwargs)
    return bound


class _Typed(Protocol):
    name: str

    @property
    def plan(self) -> Plan: ...


def convert_result(
    tdef: _Typed, value: Any, run_id: str, key: bytes, *, live: bool = False
) -> Any:
    """A decoded result converted to the task's return annotation.

    Raises:
        PayloadError: it does not fit. Live, nothing is recorded for it; on
            replay, the annotation no longer fits what the journal holds.
    """
    target = tdef.plan.result  # resolves a forward reference the first time
    if target is None:
        return value
    try:
        return msgspec.convert(value, target)
    except msgspec.ValidationError as exc:
        fix = (
            "Nothing was recorded for it; fix the task (or its annotation) and"
            " resume the run."
            if live
            else "The journal holds that result: restore the annotation it was"
            " recorded under, or fork the run before this key."
        )
        raise PayloadError(
            f"task {tdef.name!r} at key {jf.key_bytes_to_text(key)} of run"
            f" {run_id!r}: its result does not fit its annotation"
            f" -> {type_name(target)} ({exc}). {fix}"
        ) from None
