"""Checkpoints: one npz file (no pickle) with the loop's arrays and a JSON state entry,
replaced atomically, so a run killed at any moment resumes from the last complete one."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from evofool.errors import EvofoolError
from evofool.files import read_npz, write_npz

FORMAT_VERSION = 1
CHECKPOINT_NAME = "checkpoint.npz"


def save_checkpoint(path: Path, info: dict, arrays: dict[str, np.ndarray]) -> None:
    state = json.dumps({"format_version": FORMAT_VERSION, **info})
    write_npz(path, {"state": np.array(state), **arrays}, compress=False)  # written often: fast


def load_checkpoint(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(state info, arrays); a missing, truncated or foreign file is a one-line EvofoolError."""
    if not path.is_file():
        raise EvofoolError(f"no checkpoint at '{path}' (is this a run directory?)")
    try:
        arrays = read_npz(path)
        info = json.loads(str(arrays.pop("state")))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise EvofoolError(f"checkpoint '{path}' is corrupted or not an evofool checkpoint "
                           f"({type(exc).__name__}: {exc})") from None
    if not isinstance(info, dict) or info.get("format_version") != FORMAT_VERSION:
        raise EvofoolError(f"checkpoint '{path}' has format version "
                           f"{info.get('format_version') if isinstance(info, dict) else None!r}, "
                           f"expected {FORMAT_VERSION}")
    return info, arrays
