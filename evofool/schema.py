"""Validate plain YAML data against dataclasses, with one-line errors that name the key.

A dataclass field's type hint is the schema: ``int``, ``float``, ``bool``, ``str``,
``Literal[...]``, ``X | None`` and ``list[X]`` are understood. Fields with a ``help``
metadata entry are documented by ``evofool config --help``-style listings.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal, Union

from evofool.errors import EvofoolError


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is Literal:
        return "one of " + ", ".join(repr(v) for v in typing.get_args(hint))
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(arg) for arg in typing.get_args(hint))
    if origin is list:
        return f"a list of {_describe(typing.get_args(hint)[0])}"
    if hint is type(None):
        return "null"
    if dataclasses.is_dataclass(hint):
        return "a mapping"
    return {int: "an integer", float: "a number", bool: "true/false", str: "a string"}.get(
        hint, getattr(hint, "__name__", str(hint)))


def _convert(value: Any, hint: Any, where: str, source: str) -> Any:
    def fail() -> typing.NoReturn:
        raise EvofoolError(f"{source}: {where} = {value!r} is invalid: expected {_describe(hint)}")

    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        for arg in typing.get_args(hint):
            try:
                return _convert(value, arg, where, source)
            except EvofoolError:
                continue
        fail()
    if origin is Literal:
        if value in typing.get_args(hint) and type(value) is not bool:
            return value
        fail()
    if origin is list:
        if not isinstance(value, list):
            fail()
        (item,) = typing.get_args(hint)
        return [_convert(v, item, f"{where}[{i}]", source) for i, v in enumerate(value)]
    if hint is type(None):
        if value is None:
            return None
        fail()
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            fail()
        return from_dict(hint, value, where, source)
    if hint is bool:
        if isinstance(value, bool):
            return value
        fail()
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        fail()
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        fail()
    if hint is str:
        if isinstance(value, str):
            return value
        fail()
    if hint is dict or origin is dict:
        if isinstance(value, dict):
            return value
        fail()
    raise TypeError(f"schema cannot check type {hint!r}")  # a programming error, not a user one


def from_dict(cls: type, data: dict, where: str = "", source: str = "config") -> Any:
    """Build dataclass ``cls`` from ``data``; reject unknown keys and wrong types.

    ``where`` is the dotted path of ``data`` inside the file (for messages), ``source``
    the file name. Each field may declare ``metadata={"check": (predicate, "what is valid")}``.
    """
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    prefix = f"{where}." if where else ""
    for key in data:
        if key not in fields:
            allowed = ", ".join(sorted(fields))
            raise EvofoolError(f"{source}: unknown key '{prefix}{key}' (allowed here: {allowed})")
    values = {}
    for name, field in fields.items():
        if name not in data:
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                raise EvofoolError(f"{source}: missing required key '{prefix}{name}'")
            continue
        check = field.metadata.get("check")
        try:
            value = _convert(data[name], hints[name], prefix + name, source)
            valid = value is None or check is None or bool(check[0](value))
        except EvofoolError:
            if check is None:
                raise
            valid = False  # a wrong type: described by the field's own words below
        if not valid:
            raise EvofoolError(f"{source}: {prefix}{name} = {data[name]!r} is invalid: "
                               f"expected {check[1]}")
        values[name] = value
    return cls(**values)


def to_dict(obj: Any) -> Any:
    """The plain-data (YAML-ready) form of a dataclass tree."""
    return dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else obj


def positive(what: str = "a positive integer"):
    return {"check": (lambda v: v > 0, what)}


def non_negative(what: str = "a number >= 0"):
    return {"check": (lambda v: v >= 0, what)}


def probability(what: str = "a number in [0, 1]"):
    return {"check": (lambda v: 0.0 <= v <= 1.0, what)}
