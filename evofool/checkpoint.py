"""Checkpoints: one npz file (no pickle) with the loop's arrays and a JSON state entry,
replaced atomically, so a run killed at any moment resumes from the last complete one.

A checkpoint may come with a stranger's run directory: :func:`load_checkpoint` checks the
array headers before reading them (size, no pickle, an archive of consistent shapes) and the
type and range of every field of the state that resuming uses (counters, random states);
each problem is a one-line EvofoolError naming the file, the field and what was expected.
"""
from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from evofool.errors import EvofoolError, one_line
from evofool.files import remove_temporaries, write_npz
from evofool.readers import ArrayHeader, is_int, parse_json, read_npz, type_name

FORMAT_VERSION = 2  # 2: counters of whole tells (ask/tell engine)
CHECKPOINT_NAME = "checkpoint.npz"
MAX_STATE_CHARS = 16 << 20  # the JSON state entry (a GA's state is a few kB)
_U32, _U64, _U128 = 1 << 32, 1 << 64, 1 << 128


def save_checkpoint(path: Path, info: dict, arrays: dict[str, np.ndarray]) -> None:
    state = json.dumps({"format_version": FORMAT_VERSION, **info})
    write_npz(path, {"state": np.array(state), **arrays}, compress=False)  # written often: fast


def remove_stale_temporaries(run_dir: Path) -> list[Path]:
    """Delete the temporary files that atomic writes cut short by a kill -9 left behind
    (``.NAME.XXXXXXXX.tmp``: checkpoint, log, run.json, config.yaml in the run directory;
    archive.json, elites.npz and PNGs in its ``archive/`` folder); returns them. Readers
    never look at these files. Only call it while no process writes into ``run_dir`` (a
    running writer's temporary looks the same). A symbolic link in their place is removed
    as a link; an ``archive`` that is a link (to a folder elsewhere) is left alone."""
    run_dir = Path(run_dir).resolve()  # the folder the user named, even through a link
    return remove_temporaries(run_dir) + remove_temporaries(run_dir / "archive")


def _is_int(value: Any, low: int = 0, high: int | None = None) -> bool:
    """An integer in [low, high) (``high`` None: no upper end)."""
    return is_int(value) and value >= low and (high is None or value < high)


def _check_header(headers: dict[str, ArrayHeader], path: Path) -> None:
    """Before any array is read: a small unicode state entry, and archive arrays (if any) of
    one consistent class count (filled, confidence, generation, evaluations: (n,);
    probabilities (n, n))."""
    from evofool.archive_store import check_archive_headers  # imports torch: only when asked
    state = headers.get("state")
    if state is None:
        raise EvofoolError(f"checkpoint '{path}' is corrupted or not an evofool checkpoint "
                           "(no 'state' entry)")
    if state.shape != () or state.dtype.kind != "U" or state.dtype.itemsize > 4 * MAX_STATE_CHARS:
        raise EvofoolError(f"checkpoint '{path}': array 'state' has shape {state.shape} and "
                           f"dtype {state.dtype}, expected one JSON text of at most "
                           f"{MAX_STATE_CHARS:,} characters")
    if any(name.startswith("archive.") for name in headers):
        check_archive_headers(headers, None, f"checkpoint '{path}'", prefix="archive.")


def _check_random_states(info: dict, where: str) -> None:
    """The random states as ``numpy.random.PCG64`` and Python's ``random`` save them; a bad
    one would otherwise raise OverflowError (or be taken silently) when it is restored."""
    rng = info.get("numpy_rng")
    state = rng.get("state") if isinstance(rng, dict) else None
    if not (isinstance(rng, dict) and rng.get("bit_generator") == "PCG64"
            and isinstance(state, dict) and set(state) == {"state", "inc"}
            and all(_is_int(state[k], 0, _U128) for k in ("state", "inc"))
            and _is_int(rng.get("has_uint32"), 0, 2) and _is_int(rng.get("uinteger"), 0, _U64)):
        raise EvofoolError(f"{where}: numpy_rng is {type_name(rng)}, expected a PCG64 state "
                           "(bit_generator 'PCG64', state and inc below 2^128, has_uint32 0 "
                           "or 1, uinteger below 2^64)")
    python = info.get("python_random")
    if not (isinstance(python, list) and len(python) == 3 and python[0] == 3
            and _is_int(python[0]) and isinstance(python[1], list) and len(python[1]) == 625
            and all(_is_int(v, 0, _U32) for v in python[1][:624])
            and _is_int(python[1][624], 0, 625)
            and (python[2] is None or (isinstance(python[2], float)
                                       and math.isfinite(python[2])))):
        raise EvofoolError(f"{where}: python_random is {type_name(python)}, expected Python's "
                           "random.getstate() as a list [3, [625 integers], null or a number]")


#: Counters of the state and what they must be; those of one algorithm only (the GA's)
#: are checked where present.
_COUNTERS = {"steps": True, "evaluations": True, "target_index": False, "class_steps": False,
             "class_evaluations": False}


def check_state(info: Any, path: Path) -> dict:
    """The JSON state of a checkpoint, every field that resuming uses checked."""
    where = f"checkpoint '{path}'"
    if not isinstance(info, dict):
        raise EvofoolError(f"{where}: the state is {type_name(info)}, expected a JSON object")
    if info.get("format_version") != FORMAT_VERSION or isinstance(info.get("format_version"),
                                                                  bool):
        raise EvofoolError(f"checkpoint '{path}' has format version "
                           f"{info.get('format_version')!r}, expected {FORMAT_VERSION} (written "
                           "by another evofool version: start the run again)")
    for key, required in _COUNTERS.items():
        if key in info or required:
            value = info.get(key)
            if not _is_int(value, 0, 1 << 62):
                raise EvofoolError(f"{where}: {key} is {type_name(value)}, expected an "
                                   "integer >= 0")
    if "has_population" in info and not isinstance(info["has_population"], bool):
        raise EvofoolError(f"{where}: has_population is {type_name(info['has_population'])}, "
                           "expected true or false")
    wall_time = info.get("wall_time", 0.0)
    if not (isinstance(wall_time, (int, float)) and not isinstance(wall_time, bool)
            and math.isfinite(wall_time) and wall_time >= 0):
        raise EvofoolError(f"{where}: wall_time is {type_name(wall_time)}, expected a number "
                           "of seconds >= 0")
    _check_random_states(info, where)
    return info


def load_checkpoint(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(state info, arrays); a missing, truncated, foreign or malformed file is a one-line
    EvofoolError naming the file and what was expected."""
    if not path.exists() and not path.is_symlink():
        raise EvofoolError(f"no checkpoint at '{path}' (is this a run directory?)")
    try:
        arrays = read_npz(path, what="an evofool checkpoint",
                          check=lambda headers: _check_header(headers, path))
        state = str(arrays.pop("state"))
    except EvofoolError:
        raise
    except (OSError, ValueError, KeyError, EOFError, TypeError, OverflowError,
            zipfile.BadZipFile) as exc:
        message = one_line(exc)
        raise EvofoolError(f"checkpoint '{path}' is corrupted or not an evofool checkpoint "
                           f"({type(exc).__name__}: {message})") from None
    info = parse_json(state, f"checkpoint '{path}' (its state entry)", "the run's state")
    return check_state(info, path), arrays
