"""Fooling sets as datasets: the elites of runs as an ImageFolder (``evofool export-dataset``).

``OUT/<class folder>/<run>.png`` per elite, plus ``OUT/manifest.csv`` and
``OUT/manifest.json`` (one row per image: class, confidence, source model, genome,
algorithm, seed, run, generation, evaluations). A class folder is ``CLASSID_NAME`` with the id
zero-padded (``0003_3``), so torchvision's ``ImageFolder`` sorts the folders in class-id order
(its label is the folder's position: the class id when every class is present).

Each PNG is a byte copy of the archive's PNG: exactly the pixels the archive's
``png_confidence`` was scored on. Runs are read through :func:`evofool.run_data.read_run`, so a
broken or hostile run directory gives the readers' one-line errors; the PNGs are read as
untrusted too (regular files, size-limited, decoded and checked against the archive's image
size). The dataset is written into a temporary folder beside ``OUT`` and renamed into place,
so ``OUT`` never holds half a dataset.
"""
from __future__ import annotations

import io
import os
import re
import secrets
import shutil
import stat
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from evofool.archive_store import MAX_IMAGE_PIXELS
from evofool.errors import EvofoolError, one_line
from evofool.files import csv_text, write_json, write_text
from evofool.readers import MAX_JSON_BYTES, is_number, read_bytes, read_json, shown, type_name
from evofool.report import MAX_PNG_BYTES, PNG_SIGNATURE  # an elite's PNG, as the report
from evofool.run_data import RunData, check_archive_inside, read_run
from evofool.run_dirs import CONFIG_NAME

MANIFEST_JSON = "manifest.json"
MANIFEST_CSV = "manifest.csv"
FORMAT = "evofool-dataset"  # manifest.json's "format": what --force may replace
FORMAT_VERSION = 1
COLUMNS = ["file", "class_id", "class_name", "confidence", "confidence_of", "model", "genome",
           "algorithm", "seed", "experiment", "run", "generation", "evaluations"]


def _safe(text: str, limit: int = 40) -> str:
    """``text`` as a file-name part: letters, digits, ``_``, ``-`` (as archive PNG names)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_")[:limit]


def run_experiment_config(run: RunData):
    """The run's config.yaml as a validated Experiment (a code model or genome named there
    needs trust, as for every reader of the run)."""
    from evofool.config import validate_experiment
    return validate_experiment(run.config, str(run.run_dir / CONFIG_NAME), "run",
                               artifact=True)


def model_text(model) -> str:
    """A run's ``model`` section as one spec: ``SPEC`` or ``SPEC@WEIGHTS_FILE`` (what
    ``--model`` takes), or an ensemble's members joined by `` + ``."""
    if isinstance(model.spec, list):
        return " + ".join(model.spec)
    return model.spec if not model.weights_path else f"{model.spec}@{model.weights_path}"


def decode_image(data: bytes, path: Path, what: str, png: bool = False) -> np.ndarray:
    """The pixels of an image file's ``data`` as (H, W, C) uint8, C = 1 (gray) or 3 (RGB),
    checked: decodable (a PNG if ``png``), at most MAX_IMAGE_PIXELS; one-line EvofoolError
    naming ``path`` and ``what`` was expected otherwise."""
    if png and not data.startswith(PNG_SIGNATURE):
        raise EvofoolError(f"'{path}' is not a PNG image, expected {what}")
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise ValueError(f"{height} x {width} pixels is too large")
            mode = "L" if image.mode in ("1", "L", "LA", "I", "I;16", "F") else "RGB"
            array = np.asarray(image.convert(mode))
    except UnidentifiedImageError:
        raise EvofoolError(f"'{path}' is not an image file that Pillow reads, expected "
                           f"{what}") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise EvofoolError(f"'{path}' is not a readable image ({one_line(exc)}); expected "
                           f"{what}") from None
    return array[..., None] if array.ndim == 2 else array


def read_shared_file(path: Path, what: str, max_bytes: int = MAX_PNG_BYTES) -> bytes:
    """A file of a shared artifact: a regular file, not a symbolic link (which could lead to
    a file elsewhere on this machine), within ``max_bytes``."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            raise EvofoolError(f"'{path}' is a symbolic link or not a regular file, expected "
                               f"{what}")
    except OSError:
        pass  # missing or unreadable: read_bytes says so
    return read_bytes(path, max_bytes, what)


def read_png(path: Path, what: str, size: tuple[int, int]) -> bytes:
    """The bytes of a PNG file of a run, checked: a regular file (no link) within
    MAX_PNG_BYTES that decodes as a PNG of ``size`` = (height, width)."""
    data = read_shared_file(path, what)
    height, width = decode_image(data, path, what, png=True).shape[:2]
    if (height, width) != tuple(size):
        raise EvofoolError(f"'{path}' is {height} x {width} pixels, expected {what} of "
                           f"{size[0]} x {size[1]} (the archive's image size)")
    return data


def run_elites(run: RunData, threshold: float | None = None) -> list[dict]:
    """The filled cells of ``run`` (those at or above ``threshold``): per elite its archive
    row (``class_id``, ``name``, ``confidence``: its PNG's confidence when the archive has it,
    else the genome's; ``confidence_of``: ``png`` or ``genome``; ``generation``,
    ``evaluations``) and ``png``, the path of its archive PNG (named by the archive's own
    rule, never by a path the archive holds)."""
    check_archive_inside(run)
    elites = []
    for row in run.archive_json["classes"]:
        if row["png"] is None:  # an empty cell
            continue
        png = row.get("png_confidence")
        confidence, of = (png, "png") if png is not None else (row["confidence"], "genome")
        if threshold is not None and confidence < threshold:
            continue
        elites.append({"class_id": row["class_id"], "name": row["name"],
                       "confidence": confidence, "confidence_of": of,
                       "generation": row["generation"], "evaluations": row["evaluations"],
                       "png": run.archive_dir / row["png"]})
    return elites


def check_threshold(threshold) -> float | None:
    if threshold is None:
        return None
    if not (is_number(threshold) and 0.0 <= threshold <= 1.0):  # NaN fails too
        raise EvofoolError(f"threshold {shown(threshold)} is invalid: expected a confidence "
                           "in [0, 1], e.g. 0.99")
    return float(threshold)


def _rows(runs: list[RunData], threshold: float | None) -> tuple[list[dict], list[bytes]]:
    """Manifest rows and the PNG bytes of each, in run then class order."""
    names: dict[int, tuple[str, Path]] = {}  # class id -> (name, first run naming it)
    rows, pngs = [], []
    elites = [run_elites(run, threshold) for run in runs]
    width = max([4] + [len(str(e["class_id"])) for found in elites for e in found])
    for index, (run, found) in enumerate(zip(runs, elites)):
        experiment = run_experiment_config(run)
        size = tuple(int(side) for side in run.genome_type.size)
        stem = f"{index:03d}_{_safe(experiment.name)}_{_safe(run.run_dir.name)}"
        for elite in found:
            class_id, name = elite["class_id"], elite["name"]
            first = names.setdefault(class_id, (name, run.run_dir))
            if first[0] != name:
                raise EvofoolError(f"class {class_id} is '{first[0]}' in run '{first[1]}' but "
                                   f"'{name}' in run '{run.run_dir}': export runs that label "
                                   "their classes alike (the same model's outputs)")
            folder = f"{class_id:0{width}d}_{_safe(name)}".rstrip("_")
            pngs.append(read_png(elite["png"], "an elite's PNG (archive/class_*.png)", size))
            rows.append({"file": f"{folder}/{stem}.png", "class_id": class_id,
                         "class_name": name, "confidence": elite["confidence"],
                         "confidence_of": elite["confidence_of"],
                         "model": model_text(experiment.model),
                         "genome": experiment.genome_type,
                         "algorithm": experiment.algorithm_type, "seed": experiment.seed,
                         "experiment": experiment.name, "run": str(run.run_dir),
                         "generation": elite["generation"],
                         "evaluations": elite["evaluations"]})
    return rows, pngs


def _check_out(out: Path, force: bool) -> bool:
    """Whether ``out`` exists (as an empty folder, or an earlier export that ``force``
    replaces); a one-line EvofoolError for anything else."""
    if not out.exists() and not out.is_symlink():
        return False
    if out.is_symlink() or not out.is_dir():
        raise EvofoolError(f"--out '{out}' exists and is not a folder: give a new folder")
    try:
        empty = not any(out.iterdir())
    except OSError as exc:
        raise EvofoolError(f"--out '{out}': cannot read ({exc.strerror or exc})") from None
    if empty:
        return True
    if not force:
        raise EvofoolError(f"--out '{out}' already exists and is not empty: give a new "
                           "folder, or --force to replace a dataset export-dataset wrote")
    manifest = out / MANIFEST_JSON
    content = read_json(manifest, MAX_JSON_BYTES, "an export-dataset manifest") \
        if manifest.is_file() else None
    if not (isinstance(content, dict) and content.get("format") == FORMAT):
        raise EvofoolError(f"--force replaces only a folder that export-dataset wrote, and "
                           f"'{out}' has no export-dataset {MANIFEST_JSON}: give a new folder")
    return True


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def export_dataset(run_dirs: list[str | Path], out: str | Path, threshold: float | None = None,
                   force: bool = False) -> list[dict]:
    """Write the elites of ``run_dirs`` as an ImageFolder dataset into ``out`` (module
    docstring); ``threshold``: only elites whose confidence is at least this (default: every
    filled cell); ``force``: replace an earlier export in ``out``. Returns the manifest rows."""
    threshold = check_threshold(threshold)
    if not run_dirs:
        raise EvofoolError("export-dataset: give at least one run directory")
    runs = [read_run(path) for path in run_dirs]
    seen: dict[Path, str] = {}
    for given, run in zip(run_dirs, runs):
        key = run.run_dir.resolve()
        if key in seen:
            raise EvofoolError(f"run '{given}' is given twice (also as '{seen[key]}'): each "
                               "elite would be in the dataset twice")
        seen[key] = str(given)
    rows, pngs = _rows(runs, threshold)
    if not rows:
        best = max((e["confidence"] for run in runs for e in run_elites(run)), default=None)
        best_text = "no elite at all" if best is None else f"the best is {best:.6g}"
        raise EvofoolError(f"no elite of the runs reaches --threshold {threshold:g} "
                           f"({best_text}): nothing to export")

    out = Path(out)
    replace = _check_out(out, force)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        temporary = out.parent / f".{out.name}.{secrets.token_hex(4)}.tmp"
        temporary.mkdir()
    except (OSError, ValueError) as exc:
        raise EvofoolError(f"--out '{out}': cannot create a folder there "
                           f"({getattr(exc, 'strerror', None) or one_line(exc)})") from None
    try:
        for row, data in zip(rows, pngs):
            (temporary / row["file"]).parent.mkdir(exist_ok=True)
            _write_file(temporary / row["file"], data)
        write_text(temporary / MANIFEST_CSV, csv_text(rows, COLUMNS))
        write_json(temporary / MANIFEST_JSON, {
            "format": FORMAT, "format_version": FORMAT_VERSION, "threshold": threshold,
            "runs": [str(run.run_dir) for run in runs],
            "classes": sorted({row["class_id"] for row in rows}), "images": rows})
        if replace:  # the old folder goes aside first: OUT is the old or the new, never half
            old = out.parent / f".{out.name}.{secrets.token_hex(4)}.tmp"
            os.rename(out, old)
            try:
                os.rename(temporary, out)
            except OSError:
                os.rename(old, out)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(temporary, out)
    except OSError as exc:
        raise EvofoolError(f"--out '{out}': cannot write the dataset "
                           f"({exc.strerror or exc})") from None
    finally:
        if temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)
    return rows


def read_manifest(folder: Path) -> list[dict]:
    """The image rows of an export-dataset folder's manifest.json, with the fields ``evofool
    ood`` uses checked (``file``, ``class_id``, ``model``); one-line EvofoolErrors."""
    path = folder / MANIFEST_JSON
    source = f"'{path}'"
    content = read_json(path, MAX_JSON_BYTES, "an export-dataset manifest")
    if not isinstance(content, dict) or content.get("format") != FORMAT:
        raise EvofoolError(f"{source} is not an export-dataset manifest (expected an object "
                           f"with format '{FORMAT}')")
    images = content.get("images")
    if not isinstance(images, list) or not images:
        raise EvofoolError(f"{source}: images is {type_name(images)}, expected a non-empty "
                           "list of image rows")
    for i, row in enumerate(images):
        where = f"{source}: images[{i}]"
        if not isinstance(row, dict):
            raise EvofoolError(f"{where} is {type_name(row)}, expected an object")
        file = row.get("file")
        if not (isinstance(file, str) and re.fullmatch(r"[A-Za-z0-9_-]+/[A-Za-z0-9_.-]+\.png",
                                                       file) and ".." not in file):
            raise EvofoolError(f"{where}.file is {type_name(file)}, expected CLASS_FOLDER/"
                               "NAME.png (letters, digits, '_', '-', '.')")
        for key, check, expected in (("class_id", lambda v: isinstance(v, int)
                                      and not isinstance(v, bool) and v >= 0, "a class id"),
                                     ("model", lambda v: isinstance(v, str) and 0 < len(v)
                                      <= 4096 and v.isprintable(), "a model spec")):
            if not check(row.get(key)):
                raise EvofoolError(f"{where}.{key} is {type_name(row.get(key))}, expected "
                                   f"{expected}")
    return images


def is_dataset_folder(path: Path) -> bool:
    """A folder export-dataset wrote (manifest.json, no config.yaml)."""
    return (path / MANIFEST_JSON).is_file() and not (path / CONFIG_NAME).exists()

