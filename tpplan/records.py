"""Records: tpplan's value classes, built without compiling code at import time.

`@record` gives a class what `@dataclass(frozen=True, slots=True, kw_only=True)` gives it, and
`@record(frozen=False)` / `@record(kw_only=False)` what those dataclass options give, with the same behaviour
seen from outside: keyword-only `__init__` with defaults, `dataclasses.field(default=...)` and
`field(default_factory=...)`, `__post_init__`, `__slots__`, immutability (`dataclasses.FrozenInstanceError`),
equality and hashing over the fields that compare, a repr of the fields that show, pickling and copying,
`inspect.signature` / `help()` of the constructor, and `copy.replace` on Python 3.13+. The standard library's
functions work on records because each record carries `__dataclass_fields__`: `dataclasses.replace`, `fields`,
`asdict`, `is_dataclass`.

Why not `@dataclass` itself: on Python 3.11 it compiles up to six functions per class from source with
`exec` (`__init__`, `__repr__`, `__eq__`, `__hash__`, `__setattr__`, `__delattr__`), 1 to 6 ms a class on the
2-core CI machine; the 34 classes on the path of `tpplan recommend --model llama-70b --gpus 8` took 45-60 ms of
a 250 ms cold run (timed 2026-12-07 by wrapping `dataclasses._process_class`), a fifth of the run and more
than half of tpplan's own share. A record's methods are shared functions closed over the class's field table,
so a class costs tens of microseconds to define. The price is a slower `__init__` (a loop instead of generated
straight-line code: about 1 us more for a four-field record), which a planner that builds a few hundred
records per run does not notice.

Not supported (no record needs them; `record` refuses them rather than doing something else): inheritance
between records, `ClassVar` / `InitVar` fields, `field(init=False)`, and a `__slots__` of the class's own.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
MISSING = dataclasses.MISSING
_MUTABLE_DEFAULTS = (list, dict, set)


def record(cls: type[T] | None = None, /, *, frozen: bool = True, kw_only: bool = True) -> Any:
    """Class decorator: `@record`, `@record(frozen=False)`, `@record(kw_only=False)` (see the module doc)."""
    def wrap(c: type[T]) -> type[T]:
        return _build(c, frozen=frozen, kw_only=kw_only)
    return wrap if cls is None else wrap(cls)


def _fields_of(cls: type, kw_only: bool) -> list[dataclasses.Field]:
    """The class's annotated attributes as dataclasses.Field objects, in order, named and typed."""
    for base in cls.__mro__[1:-1]:
        if "__dataclass_fields__" in base.__dict__:
            raise TypeError(f"{cls.__qualname__}: a record cannot inherit from another record or dataclass")
    out = []
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():
        text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
        if "ClassVar" in text or "InitVar" in text:
            raise TypeError(f"{cls.__qualname__}.{name}: ClassVar and InitVar fields are not supported by record")
        value = cls.__dict__.get(name, MISSING)
        f = value if isinstance(value, dataclasses.Field) else dataclasses.field(default=value)
        if not f.init:
            raise TypeError(f"{cls.__qualname__}.{name}: field(init=False) is not supported by record")
        if isinstance(f.default, _MUTABLE_DEFAULTS):
            raise ValueError(f"{cls.__qualname__}.{name}: mutable default {type(f.default).__name__} is not "
                             "allowed: use default_factory")
        f.name, f.type, f.kw_only = name, annotation, kw_only
        f._field_type = dataclasses._FIELD  # what dataclasses.fields() selects on (a private marker, 3.7-3.14)
        out.append(f)
    if not kw_only:
        seen_default = None
        for f in out:
            if f.default is MISSING and f.default_factory is MISSING and seen_default:
                raise TypeError(f"{cls.__qualname__}: non-default argument {f.name!r} follows default argument "
                                f"{seen_default!r}")
            if f.default is not MISSING or f.default_factory is not MISSING:
                seen_default = f.name
    return out


def _build(cls: type[T], *, frozen: bool, kw_only: bool) -> type[T]:
    if "__slots__" in cls.__dict__:
        raise TypeError(f"{cls.__qualname__}: a record makes its own __slots__")
    table = _fields_of(cls, kw_only)
    names = tuple(f.name for f in table)
    namespace = {k: v for k, v in cls.__dict__.items() if k not in names and k not in ("__dict__", "__weakref__")}
    namespace.update(__slots__=names, __qualname__=cls.__qualname__,
                     __dataclass_fields__={f.name: f for f in table},
                     __match_args__=() if kw_only else names,
                     __init__=_init(cls.__qualname__, table, kw_only, "__post_init__" in cls.__dict__),
                     __replace__=_replace,
                     __repr__=_repr(tuple(f.name for f in table if f.repr)),
                     __signature__=_LazySignature(table))
    compared = tuple(f.name for f in table if f.compare)
    key = operator.attrgetter(*compared) if compared else _no_key
    namespace["__eq__"] = _eq(key)
    if frozen:
        namespace.update(__hash__=_hash(key), __setattr__=_frozen_setattr, __delattr__=_frozen_delattr,
                         __getstate__=_getstate(names), __setstate__=_setstate(names))
    else:
        namespace["__hash__"] = None  # mutable and compared by value: unhashable, as a dataclass with eq is
    return type(cls)(cls.__name__, cls.__bases__, namespace)


def _no_key(obj: object) -> tuple:
    return ()


def _replace(self: object, /, **changes: Any) -> object:
    """copy.replace (Python 3.13+) of a record, as of a dataclass."""
    return dataclasses.replace(self, **changes)


class _Factory:
    """The default a signature shows for a default_factory field, as dataclasses shows it."""

    def __repr__(self) -> str:
        return "<factory>"


def _init(class_name: str, table: list[dataclasses.Field], kw_only: bool, post_init: bool) -> Callable:
    names = tuple(f.name for f in table)
    every = frozenset(names)
    defaults = {f.name: f.default for f in table if f.default is not MISSING}
    factories = tuple((f.name, f.default_factory) for f in table if f.default_factory is not MISSING)
    required = tuple(f.name for f in table if f.default is MISSING and f.default_factory is MISSING)
    put = object.__setattr__

    def complete(given: dict[str, Any]) -> dict[str, Any]:
        unknown = [k for k in given if k not in every]
        if unknown:
            raise TypeError(f"{class_name}.__init__() got an unexpected keyword argument {unknown[0]!r}")
        missing = [n for n in required if n not in given]
        if missing:
            raise TypeError(f"{class_name}.__init__() missing {len(missing)} required argument"
                            f"{'s' if len(missing) > 1 else ''}: {', '.join(repr(n) for n in missing)}")
        out = {**defaults, **given}
        for name, factory in factories:
            if name not in given:
                out[name] = factory()
        return out

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if args:
            if kw_only or len(args) > len(names):
                raise TypeError(f"{class_name}.__init__() takes {0 if kw_only else len(names)} positional "
                                f"arguments but {len(args)} were given")
            for name, value in zip(names, args, strict=False):
                if name in kwargs:
                    raise TypeError(f"{class_name}.__init__() got multiple values for argument {name!r}")
                kwargs[name] = value
        if kwargs.keys() != every:
            kwargs = complete(kwargs)
        for name in names:
            put(self, name, kwargs[name])
        if post_init:
            self.__post_init__()

    return __init__


def _repr(shown: tuple[str, ...]) -> Callable:
    def __repr__(self: object) -> str:
        return f"{type(self).__qualname__}({', '.join(f'{n}={getattr(self, n)!r}' for n in shown)})"
    return __repr__


def _eq(key: Callable) -> Callable:
    def __eq__(self: object, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return key(self) == key(other)
    return __eq__


def _hash(key: Callable) -> Callable:
    def __hash__(self: object) -> int:
        return hash(key(self))
    return __hash__


def _frozen_setattr(self: object, name: str, value: object) -> None:
    raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self: object, name: str) -> None:
    raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")


def _getstate(names: tuple[str, ...]) -> Callable:
    def __getstate__(self: object) -> tuple:
        return tuple(getattr(self, n) for n in names)
    return __getstate__


def _setstate(names: tuple[str, ...]) -> Callable:
    def __setstate__(self: object, state: tuple) -> None:
        for name, value in zip(names, state, strict=True):
            object.__setattr__(self, name, value)
    return __setstate__


class _LazySignature:
    """`cls.__signature__`, built on first use (help(), inspect.signature): most runs never ask for it."""

    def __init__(self, table: list[dataclasses.Field]) -> None:
        self._table, self._signature = table, None

    def __get__(self, obj: object, owner: type | None = None) -> Any:
        if self._signature is None:
            import inspect
            kind = inspect.Parameter.KEYWORD_ONLY if self._table and self._table[0].kw_only else \
                inspect.Parameter.POSITIONAL_OR_KEYWORD
            def default(f: dataclasses.Field) -> Any:
                if f.default is not MISSING:
                    return f.default
                return _Factory() if f.default_factory is not MISSING else inspect.Parameter.empty

            self._signature = inspect.Signature([inspect.Parameter(f.name, kind, annotation=f.type, default=default(f))
                                                 for f in self._table], return_annotation=None)
        return self._signature
