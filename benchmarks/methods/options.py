"""Typed method options: each method declares a frozen dataclass, read from the suite's
``method_options`` entry with an error for an unknown key or a value of the wrong type."""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, fields
from numbers import Integral, Real
from typing import Any, TypeVar

from fewshot_kd.errors import FewShotKDError

T = TypeVar("T")


@dataclass(frozen=True)
class MethodOptions:
    """Base of every method's options (as is, a method that takes none)."""

    @classmethod
    def parse(cls: type[T], data: Mapping, method: str) -> T:
        """The options in ``data`` (a suite's ``method_options`` entry) for ``method``."""
        return parse_options(cls, data, method)


def parse_options(cls: type[T], data: Mapping, method: str, also: str = "", **fixed: Any) -> T:
    """``cls(**data, **fixed)``: every key of ``data`` must be a field of ``cls`` (those in
    ``fixed`` are not options) holding a value of the field's declared type. ``also`` names
    further known keys in the error (keys the caller took out of ``data`` first)."""
    what = f"{method} options"
    if not isinstance(data, Mapping):
        raise FewShotKDError(f"{what} must map option names to values, got {data!r}")
    known = sorted(f.name for f in fields(cls) if f.name not in fixed)
    unknown = sorted(set(data) - set(known))
    if unknown:
        known_text = " and ".join(part for part in (str(known) if known else "", also) if part) or "none"
        raise FewShotKDError(f"{what} has unknown keys {unknown}; known keys: {known_text}")
    hints = typing.get_type_hints(cls)
    for key, value in data.items():
        if not _is_a(value, hints[key]):
            raise FewShotKDError(f"{what}: {key} must be {_describe(hints[key])}, got {value!r}")
    return cls(**data, **fixed)


def _is_a(value: Any, hint: Any) -> bool:
    if hint is Any:
        return True
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(_is_a(value, arm) for arm in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, Integral) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, Real) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if hint is dict or typing.get_origin(hint) is dict:
        return isinstance(value, Mapping)
    raise TypeError(f"options of type {hint!r} are not supported")


def _describe(hint: Any) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_describe(arm) for arm in typing.get_args(hint))
    return {bool: "true or false", int: "a whole number", float: "a number", str: "a string",
            type(None): "null"}.get(hint, "a mapping")
