"""Where runs live. Each new run gets its own directory, ``runs/NAME/YYYY-MM-DD_HH-MM-SS``,
and ``runs/NAME/latest`` points at the newest one (as Hydra and experiment trackers do), so
running an experiment again, or with other overrides, never collides with an earlier run.
``output_dir=`` in an experiment still forces one exact path.

Every command that opens a run accepts ``runs/NAME`` (meaning its latest run),
``runs/NAME/latest``, or ``latest`` (the newest run under ``runs/``).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from evofool.errors import EvofoolError
from evofool.files import write_text

RUNS_ROOT = Path("runs")
LATEST = "latest"
CONFIG_NAME = "config.yaml"
_STAMP = "%Y-%m-%d_%H-%M-%S"


def new_run_dir(name: str, root: Path = RUNS_ROOT, prefix: str = "") -> Path:
    """Create and return ``root/name/PREFIXSTAMP`` (``..._1``, ... when two start in the
    same second: ``mkdir`` claims a name atomically, so concurrent runs never share one)."""
    stamp = prefix + time.strftime(_STAMP)
    for suffix in range(1000):
        run_dir = root / name / (stamp if suffix == 0 else f"{stamp}_{suffix}")
        try:
            run_dir.mkdir(parents=True)
        except FileExistsError:
            continue
        except OSError as exc:
            raise EvofoolError(f"cannot create run directory '{run_dir}': "
                               f"{exc.strerror or exc}") from None
        return run_dir
    raise EvofoolError(f"'{root / name}' already has 1,000 runs started at {stamp}")


def point_latest(run_dir: Path) -> None:
    """Make ``run_dir.parent/latest`` name ``run_dir`` (replaced atomically: a reader sees
    the old or the new run, never a missing link)."""
    link = run_dir.parent / LATEST
    temporary = run_dir.parent / f".{LATEST}.{os.getpid()}.tmp"
    try:
        temporary.unlink(missing_ok=True)
        os.symlink(run_dir.name, temporary, target_is_directory=True)
        os.replace(temporary, link)
    except OSError:  # no symbolic links here (e.g. Windows without developer mode)
        temporary.unlink(missing_ok=True)
        if not link.is_symlink():
            write_text(link, run_dir.name + "\n")


def _latest_of(parent: Path) -> Path | None:
    """The run ``parent/latest`` names, as ``parent/STAMP`` (a readable path to print)."""
    link = parent / LATEST
    try:
        target = os.readlink(link) if link.is_symlink() else (
            link.read_text(encoding="utf-8", errors="replace")[:200].strip()
            if link.is_file() else None)
    except OSError:
        return None
    if not target or Path(target).name != target or target in (".", ".."):
        return None  # only a sibling folder, never a path elsewhere
    return parent / target


def _newest_run(root: Path) -> Path:
    runs = [run for parent in (sorted(root.iterdir()) if root.is_dir() else [])
            if (run := _latest_of(parent)) is not None and (run / CONFIG_NAME).is_file()]
    if not runs:
        raise EvofoolError(f"no run under '{root}' to take as 'latest' (start one with "
                           "'evofool run EXPERIMENT')")
    return max(runs, key=lambda run: run.name)  # stamps sort in time order


def resolve_run_dir(path: str | Path) -> Path:
    """The run directory ``path`` means: itself, the latest run of ``runs/NAME``, or, for
    ``latest``, the newest run under ``runs/``. Unknown paths come back unchanged (the
    caller's reader says what is wrong with them)."""
    path = Path(path)
    if str(path) == LATEST and not path.exists():
        return _newest_run(RUNS_ROOT)
    if path.is_symlink() and path.name == LATEST:
        return _latest_of(path.parent) or path
    if path.is_file() and path.name == LATEST:
        return _latest_of(path.parent) or path
    if path.is_dir() and not (path / CONFIG_NAME).exists():
        latest = _latest_of(path)
        if latest is not None:
            return latest
    return path
