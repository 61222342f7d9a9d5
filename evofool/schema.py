"""Validate plain YAML data against dataclasses, with one-line errors that name the key.

A dataclass field's type hint is the schema: ``int``, ``float``, ``bool``, ``str``,
``Literal[...]``, ``X | None`` and ``list[X]`` are understood. Fields with a ``help``
metadata entry are documented by ``evofool config --help``-style listings.

Files and values may come from a stranger, so everything here is bounded:
:func:`load_yaml` refuses documents that are too large, too deep, expand too far through
aliases, repeat a key or hold absurd integers; integers must fit in 64 bits and floats must
be finite (unless a field's metadata says ``"finite": False``); every value shown in a
message goes through :func:`show` (at most ~80 characters). A ``Params`` dataclass may
check fields against each other in ``__post_init__`` by raising ``ValueError``:
:func:`from_dict` reports that as one line naming the section.
"""
from __future__ import annotations

import dataclasses
import math
import reprlib
import types
import typing
from typing import Any, Literal, Union

from evofool.errors import EvofoolError, one_line

# --- limits (experiments/README.md, "Limits"): every shipped experiment is far inside them ---
MAX_IMAGE_SIDE = 1024              # pixels: genome sizes, a custom model's input size
MAX_POPULATION = 1_000_000         # population, offspring, init_size, tournament size
MAX_BATCH_SIZE = 100_000           # images per forward pass
MAX_CLASSES = 100_000              # entries of model.classes / algorithm.target_classes
MAX_CLASS_ID = 1_000_000           # class ids are model outputs below this
MAX_SEED = 2 ** 63 - 1             # NumPy's SeedSequence and torch.manual_seed take it
MAX_THREADS = 1024
MAX_ETA = 1e6                      # polynomial mutation / SBX distribution indices
MAX_WEIGHT_LIMIT = 1e6             # CPPN weights lie in [-limit, limit]
MAX_PATH_CHARS = 4096              # model specs, weights files, output folders
MAX_DESCRIPTION_CHARS = 2000       # an experiment's description
SHOWN_CHARS = 80                   # a value in a message is cut to this many characters
INT64 = 2 ** 63


class _ShortRepr(reprlib.Repr):
    """``repr`` that does bounded work, whatever the value (billion-laughs lists, 5000-digit
    integers that ``repr`` refuses)."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = 3
        self.maxlist = self.maxtuple = self.maxset = self.maxfrozenset = self.maxdeque = 8
        self.maxdict = 4
        self.maxstring = self.maxother = SHOWN_CHARS
        self.maxlong = SHOWN_CHARS

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 256:
            return f"<an integer of about {int(x.bit_length() * math.log10(2)) + 1} digits>"
        return super().repr_int(x, level)

    def repr_instance(self, x: Any, level: int) -> str:
        if isinstance(x, (bytes, bytearray)) and len(x) > SHOWN_CHARS:
            x = x[:SHOWN_CHARS]
        try:
            return super().repr_instance(x, level)
        except Exception:  # noqa: BLE001 - a value whose repr fails is still shown
            return f"<{type(x).__name__}>"


_SHORT_REPR = _ShortRepr()


def show(value: Any, limit: int = SHOWN_CHARS) -> str:
    """The repr of ``value`` for a one-line message: bounded work, at most ``limit`` chars."""
    text = _SHORT_REPR.repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _key_text(prefix: str, key: Any) -> str:
    """A key as a message shows it: ``'genome.sigma'``, or a cut repr for odd keys."""
    text = key if isinstance(key, str) else show(key)
    if text.isprintable() and len(text) <= SHOWN_CHARS:
        return f"'{prefix}{text}'"
    return f"{prefix}{show(key)}"


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
        raise EvofoolError(f"{source}: {where} = {show(value)} is invalid: "
                           f"expected {_describe(hint)}")

    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        for arg in typing.get_args(hint):
            try:
                return _convert(value, arg, where, source)
            except EvofoolError:
                continue
        fail()
    if origin is Literal:
        # the same type as the allowed value: 10.0 is not the integer 10, True is not 1
        if any(value == v and type(value) is type(v) for v in typing.get_args(hint)):
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
            try:
                return float(value)
            except OverflowError:  # an integer beyond any float: reported as not finite
                return math.inf if value > 0 else -math.inf
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


def _out_of_bounds(value: Any, finite: bool) -> str | None:
    """Why a converted value is unusable whatever the field (an integer beyond 64 bits, a
    float that is inf or NaN unless ``finite`` is False), or None."""
    items = value if isinstance(value, list) else [value]
    for item in items:
        if isinstance(item, bool):
            continue
        if isinstance(item, int) and not -INT64 <= item < INT64:
            return "too large (integers must fit in 64 bits)"
        if finite and isinstance(item, float) and not math.isfinite(item):
            return "not a finite number"
    return None


def _numeric_text_hint(value: Any, words: str) -> str:
    """PyYAML reads ``1e9`` and ``1.0e9`` as text (YAML 1.1 floats need a dot and a signed
    exponent): say so when a number was expected."""
    if not isinstance(value, str) or len(value) > 40 or not any(
            word in words for word in ("integer", "number", "size")):
        return ""
    try:
        number = float(value.replace("_", ""))
    except ValueError:
        return ""
    if not math.isfinite(number):
        return ""
    if number.is_integer() and abs(number) < 1e16:
        written = str(int(number))
    else:
        mantissa, exponent = f"{number:e}".split("e")
        written = f"{float(mantissa)!r}e{exponent}"
    return f" (YAML reads {value!r} as text; write {written})"


def from_dict(cls: type, data: dict, where: str = "", source: str = "config") -> Any:
    """Build dataclass ``cls`` from ``data``; reject unknown keys and wrong types.

    ``where`` is the dotted path of ``data`` inside the file (for messages), ``source``
    the file name. Each field may declare ``metadata={"check": (predicate, "what is valid")}``
    (the words should state any upper limit), and ``"finite": False`` to accept inf/NaN.
    ``cls.__post_init__`` may raise ValueError for a combination of fields: that becomes a
    one-line EvofoolError naming ``where`` (the section).
    """
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    prefix = f"{where}." if where else ""
    for key in data:
        if key not in fields:
            allowed = ", ".join(sorted(fields))
            raise EvofoolError(f"{source}: unknown key {_key_text(prefix, key)} "
                               f"(allowed here: {allowed})")
    values = {}
    for name, field in fields.items():
        if name not in data:
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                raise EvofoolError(f"{source}: missing required key '{prefix}{name}'")
            continue
        check = field.metadata.get("check")
        words = check[1] if check is not None else _describe(hints[name])
        try:
            value = _convert(data[name], hints[name], prefix + name, source)
        except EvofoolError:
            if check is None:
                raise
            value, valid = None, False  # a wrong type: described by the field's own words
        else:
            problem = _out_of_bounds(value, field.metadata.get("finite", True))
            if problem is not None:
                raise EvofoolError(f"{source}: {prefix}{name} = {show(data[name])} is invalid: "
                                   f"{problem}; expected {words}")
            try:
                valid = value is None or check is None or bool(check[0](value))
            except (TypeError, ValueError, OverflowError):
                valid = False
        if not valid:
            raise EvofoolError(f"{source}: {prefix}{name} = {show(data[name])} is invalid: "
                               f"expected {words}{_numeric_text_hint(data[name], words)}")
        values[name] = value
    try:
        return cls(**values)
    except ValueError as exc:  # a check across fields (__post_init__)
        section = where or "top level"
        raise EvofoolError(f"{source}: {section}: {one_line(exc)}") from None


def to_dict(obj: Any) -> Any:
    """The plain-data (YAML-ready) form of a dataclass tree."""
    return dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else obj


def _limit(what: str, at_most) -> str:
    if at_most is None:
        return what
    if isinstance(at_most, float) and at_most.is_integer():
        at_most = int(at_most)
    return f"{what}, at most {at_most:,}"


def positive(what: str = "a positive integer", at_most: int | float | None = None):
    """``check`` metadata: ``0 < v`` (``<= at_most``; the words then state the limit)."""
    high = math.inf if at_most is None else at_most
    return {"check": (lambda v: 0 < v <= high, _limit(what, at_most))}


def non_negative(what: str = "a number >= 0", at_most: int | float | None = None):
    """``check`` metadata: ``0 <= v`` (``<= at_most``; the words then state the limit)."""
    high = math.inf if at_most is None else at_most
    return {"check": (lambda v: 0 <= v <= high, _limit(what, at_most))}


def probability(what: str = "a number in [0, 1]"):
    return {"check": (lambda v: 0.0 <= v <= 1.0, what)}


def class_id_list(value: list[int]) -> bool:
    """A non-empty list of at most MAX_CLASSES distinct class ids in [0, MAX_CLASS_ID)."""
    return (0 < len(value) <= MAX_CLASSES and len(set(value)) == len(value)
            and 0 <= min(value) and max(value) < MAX_CLASS_ID)


CLASS_ID_LIST_WORDS = (f"a non-empty list of at most {MAX_CLASSES:,} distinct class ids "
                       f"(model outputs) from 0 to {MAX_CLASS_ID - 1:,}")
