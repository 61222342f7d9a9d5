"""Atomic file writes: a reader (or a crash) never sees a half-written artifact. Reading
artifacts back, bounded and checked: :mod:`evofool.readers`."""
from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    The rename is atomic on POSIX, so the old file stays intact until the new one is complete.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual mode
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _finite_or_none(data: Any) -> Any:
    """``data`` with NaN and infinite floats as None: JSON has no NaN (Python would write a
    bare ``NaN`` that other readers reject)."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: _finite_or_none(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite_or_none(value) for value in data]
    return data


def csv_text(rows: list[dict], columns: list[str] | None = None) -> str:
    """``rows`` as CSV text with a header: ``columns`` (default: the first row's keys); a
    missing or None value is an empty field."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns if columns is not None else
                            list(rows[0]) if rows else [])
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Atomically, as strict JSON (non-finite numbers become null)."""
    text = json.dumps(_finite_or_none(data), indent=2, sort_keys=False, allow_nan=False)
    write_text(path, text + "\n")


def write_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray],
              compress: bool = True) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            (np.savez_compressed if compress else np.savez)(handle, **arrays)


def write_png(path: str | os.PathLike, image) -> None:
    """Save a PIL image as PNG atomically."""
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


#: The names :func:`atomic_path` gives its temporary files: ``.NAME.XXXXXXXX.tmp``.
_TEMPORARY = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")


def is_temporary_name(name: str) -> bool:
    """Whether ``name`` is that of an :func:`atomic_path` temporary (left by a killed write)."""
    return bool(_TEMPORARY.match(name))


def remove_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporaries that killed atomic writes left in ``folder`` (not below it);
    returns them. Only regular files and symbolic links named as :func:`atomic_path` names
    its temporaries are removed (a link itself, never what it points to); a ``folder`` that
    is a symbolic link or no directory is left alone."""
    folder = Path(folder)
    removed = []
    if folder.is_symlink() or not folder.is_dir():
        return removed
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not is_temporary_name(entry.name):
            continue
        try:
            if entry.is_symlink() or entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            continue
    return removed
