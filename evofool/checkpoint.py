"""Checkpoints: one npz file (no pickle) with the loop's arrays and a JSON state entry,
replaced atomically, so a run killed at any moment resumes from the last complete one."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from evofool.errors import EvofoolError
from evofool.files import read_npz, write_npz

FORMAT_VERSION = 2  # 2: counters of whole tells (ask/tell engine)
CHECKPOINT_NAME = "checkpoint.npz"


def save_checkpoint(path: Path, info: dict, arrays: dict[str, np.ndarray]) -> None:
    state = json.dumps({"format_version": FORMAT_VERSION, **info})
    write_npz(path, {"state": np.array(state), **arrays}, compress=False)  # written often: fast


def remove_stale_temporaries(run_dir: Path) -> None:
    """Delete the temporary files of checkpoint writes that a kill -9 cut short."""
    for stale in run_dir.glob(f".{CHECKPOINT_NAME}.*.tmp"):
        stale.unlink(missing_ok=True)


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
                           f"expected {FORMAT_VERSION} (written by another evofool version: "
                           "start the run again)")
    return info, arrays
