"""Bounded readers for artifacts that may come from strangers.

Run directories, archives and genome files are shared between people, so every reader
treats them as untrusted: a file is read only if it is a regular file (not a directory, a
FIFO or a device) below a size limit, JSON and YAML parse errors (including nesting too deep
for the parser) are one-line EvofoolErrors naming the file, and an npz file's array headers
are checked (shapes, dtypes, total size) before any array is allocated.
"""
from __future__ import annotations

import json
import math
import os
import stat
import zipfile
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from evofool.bounded_yaml import load_yaml
from evofool.errors import EvofoolError, one_line
from evofool.schema import show as shown

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30
MAX_JSON_BYTES = 256 * MIB        # archive.json (1,000 ImageNet classes: about 1 MB)
MAX_GENOME_FILE_BYTES = 64 * MIB  # one genome JSON file
MAX_SMALL_FILE_BYTES = 4 * MIB    # config.yaml, run.json
MAX_LOG_BYTES = 4 * GIB           # log.jsonl (read line by line)
MAX_LOG_LINE_BYTES = 64 * MIB     # one log line (100,000 classes: about 5 MB)
MAX_NPZ_BYTES = 4 * GIB           # all arrays of one npz file, uncompressed
MAX_NPZ_MEMBERS = 10_000          # arrays in one npz file
MAX_NESTING = 64                  # containers within containers in a YAML config


def is_int(value: Any) -> bool:
    """An integer as JSON gives it (``true`` is not one)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def type_name(value: Any) -> str:
    """A JSON reader's name for the type of ``value``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"the number {shown(value, 24)}"
    if isinstance(value, str):
        return f"the string {shown(value, 40)}"
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value):,}"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _size_text(count: int) -> str:
    for unit, size in (("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if count >= size:
            return f"{count / size:g} {unit}"
    return f"{count} bytes"


def regular_file(path: str | os.PathLike, what: str, max_bytes: int | None = None) -> int:
    """Size of ``path`` in bytes after checking that it is a regular file (symbolic links
    followed) of at most ``max_bytes``; else a one-line EvofoolError saying it should be
    ``what``. Checked before opening, so a FIFO never blocks a reader."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise EvofoolError(f"'{path}' does not exist (expected {what})") from None
    except OSError as exc:
        raise EvofoolError(f"'{path}': cannot read ({exc.strerror or exc}); expected "
                           f"{what}") from None
    if stat.S_ISDIR(info.st_mode):
        raise EvofoolError(f"'{path}' is a directory, expected {what}")
    if not stat.S_ISREG(info.st_mode):
        raise EvofoolError(f"'{path}' is not a regular file, expected {what}")
    if max_bytes is not None and info.st_size > max_bytes:
        raise EvofoolError(f"'{path}' holds {info.st_size:,} bytes, more than the "
                           f"{_size_text(max_bytes)} that {what} may have")
    return info.st_size


def read_bytes(path: str | os.PathLike, max_bytes: int, what: str = "a file") -> bytes:
    """The whole file, at most ``max_bytes`` (checked before reading, and while reading in
    case it grows); one-line EvofoolErrors."""
    regular_file(path, what, max_bytes)
    try:
        with open(path, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise EvofoolError(f"'{path}': cannot read ({exc.strerror or exc}); expected "
                           f"{what}") from None
    if len(data) > max_bytes:
        raise EvofoolError(f"'{path}' holds more than the {_size_text(max_bytes)} that {what} "
                           "may have")
    return data


def decode_utf8(data: bytes, where: str, what: str) -> str:
    """``data`` as UTF-8 text; ``where`` names it in the message (e.g. "'log.jsonl' line 3")."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EvofoolError(f"{where} is corrupted: not UTF-8 text (byte {exc.start}); "
                           f"expected {what}") from None


def read_text(path: str | os.PathLike, max_bytes: int, what: str = "a text file") -> str:
    return decode_utf8(read_bytes(path, max_bytes, what), f"'{path}'", what)


def parse_json(text: str | bytes, where: str, what: str = "JSON") -> Any:
    """``json.loads`` with one-line EvofoolErrors naming ``where``: malformed JSON, nesting
    too deep for the parser, numbers too long to convert. (NaN and Infinity are read, as
    Python writes them; readers check the values they use.)"""
    try:
        return json.loads(text)
    except RecursionError:
        raise EvofoolError(f"{where} is corrupted: JSON nested too deeply; expected "
                           f"{what}") from None
    except json.JSONDecodeError as exc:
        raise EvofoolError(f"{where} is corrupted: malformed JSON ({exc.msg} at line "
                           f"{exc.lineno}, column {exc.colno}); expected {what}") from None
    except (ValueError, UnicodeDecodeError) as exc:  # e.g. an integer of 5,000 digits
        message = one_line(exc)
        raise EvofoolError(f"{where} is corrupted: {message}; expected {what}") from None


def read_json(path: str | os.PathLike, max_bytes: int = MAX_JSON_BYTES,
              what: str = "a JSON file") -> Any:
    """The JSON value in ``path`` (a regular UTF-8 file of at most ``max_bytes``); any problem
    is a one-line EvofoolError naming the file and ``what`` was expected."""
    return parse_json(read_text(path, max_bytes, what), f"'{path}'", what)


def nesting_depth(value: Any, limit: int = MAX_NESTING) -> int:
    """How deeply lists and dicts nest in ``value`` (0 for a scalar), counted without
    recursion and stopping past ``limit``; shared containers (YAML aliases) are visited once."""
    deepest, seen = 0, set()
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if not isinstance(item, (list, tuple, dict)) or id(item) in seen:
            continue
        seen.add(id(item))
        deepest = max(deepest, depth)
        if deepest > limit:
            break
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children)
    return deepest


def read_yaml(path: str | os.PathLike, max_bytes: int = MAX_SMALL_FILE_BYTES,
              what: str = "a YAML mapping") -> Any:
    """The YAML value in ``path``, from a regular UTF-8 file of at most ``max_bytes``, parsed
    by :func:`evofool.bounded_yaml.load_yaml` (safe loader; bounded depth, alias expansion and
    integer length; duplicate keys refused), nested at most :data:`MAX_NESTING` deep;
    one-line EvofoolErrors naming the file."""
    text = read_text(path, max_bytes, what)
    try:
        data = load_yaml(text, f"'{path}'")
    except RecursionError:
        raise EvofoolError(f"'{path}' is corrupted: YAML nested too deeply; expected "
                           f"{what}") from None
    except EvofoolError as exc:
        raise EvofoolError(f"{exc}; expected {what}") from None
    if nesting_depth(data) > MAX_NESTING:
        raise EvofoolError(f"'{path}' nests lists and mappings more than {MAX_NESTING} deep; "
                           f"expected {what}")
    return data


@dataclass(frozen=True)
class ArrayHeader:
    """What an npz member's .npy header declares, read before the array is."""

    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def _npz_member_count(handle) -> int | None:
    """Entries in the zip's central directory, from its end record, before ``zipfile``
    parses the directory (None where the private helper is unavailable)."""
    end_record = getattr(zipfile, "_EndRecData", None)
    total = getattr(zipfile, "_ECD_ENTRIES_TOTAL", None)
    if end_record is None or total is None:
        return None
    record = end_record(handle)
    handle.seek(0)
    return None if record is None else int(record[total])


def npz_headers(path: str | os.PathLike, max_bytes: int = MAX_NPZ_BYTES,
                what: str = "an npz file") -> dict[str, ArrayHeader]:
    """The arrays an npz file declares (name -> shape and dtype), without reading them;
    EvofoolError if it is no npz of plain arrays (pickled objects, other members) or if its
    arrays hold more than ``max_bytes`` in all."""
    regular_file(path, what, max_bytes)
    headers: dict[str, ArrayHeader] = {}
    try:
        with open(path, "rb") as handle:
            count = _npz_member_count(handle)
            if count is not None and count > MAX_NPZ_MEMBERS:
                raise ValueError(f"{count:,} members, more than {MAX_NPZ_MEMBERS:,}")
            with zipfile.ZipFile(handle) as archive:
                members = archive.infolist()
                if len(members) > MAX_NPZ_MEMBERS:
                    raise ValueError(f"{len(members):,} members, more than {MAX_NPZ_MEMBERS:,}")
                total = 0
                for member in members:
                    if not member.filename.endswith(".npy") or member.is_dir():
                        raise ValueError(f"member {shown(member.filename)} is not a .npy array")
                    name = member.filename[:-len(".npy")]
                    if name in headers:
                        raise ValueError(f"array {shown(name)} appears twice")
                    with archive.open(member) as stream:
                        version = np.lib.format.read_magic(stream)
                        if version == (1, 0):
                            shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
                        elif version == (2, 0):
                            shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
                        else:
                            raise ValueError(f"array {shown(name)} has .npy version {version}")
                    if dtype.hasobject:
                        raise ValueError(f"array {shown(name)} holds Python objects (pickle)")
                    header = ArrayHeader(tuple(int(side) for side in shape), dtype)
                    total += header.nbytes
                    if total > max_bytes:
                        raise ValueError(f"its arrays would hold more than "
                                         f"{_size_text(max_bytes)} (array {shown(name)} of "
                                         f"shape {header.shape}, {header.dtype})")
                    headers[name] = header
    except EvofoolError:
        raise
    except (OSError, ValueError, KeyError, EOFError, TypeError, SyntaxError, OverflowError,
            NotImplementedError, RuntimeError, zipfile.BadZipFile) as exc:
        message = one_line(exc)
        raise EvofoolError(f"'{path}' is corrupted or not {what} ({type(exc).__name__}: "
                           f"{message})") from None
    return headers


def read_npz(path: str | os.PathLike, max_bytes: int | None = None,
             check: Callable[[dict[str, "ArrayHeader"]], None] | None = None,
             what: str = "an npz file") -> dict[str, np.ndarray]:
    """All arrays of an npz file, refusing pickled objects. The array headers are read first
    (:func:`npz_headers`): at most ``max_bytes`` (default :data:`MAX_NPZ_BYTES`) in all, and
    ``check(headers)`` may refuse shapes or dtypes (raising EvofoolError) before anything is
    allocated. The file is opened here so that it is closed even when a corrupt archive
    makes ``np.load`` fail half-way (OSError, ValueError, EOFError... reach the caller)."""
    headers = npz_headers(path, MAX_NPZ_BYTES if max_bytes is None else max_bytes, what)
    if check is not None:
        check(headers)
    with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as npz:
        return {key: npz[key] for key in headers}
