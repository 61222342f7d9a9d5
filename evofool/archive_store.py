"""The archive on disk: ``archive.json`` (per-class table and how to rebuild the genomes),
``elites.npz`` (the genomes, no pickle), one PNG per class, and a labelled montage.

A saved archive is self-contained: ``evofool archive show/export`` work on a copy of the
folder on another machine, without the run's checkpoint or its model.

Archives are shared, so :func:`load_archive` treats one as untrusted: archive.json is read
within a size limit and every field a reader uses is checked (type, range, agreement with
elites.npz), elites.npz's array headers are checked before an array is allocated, at most
:data:`MAX_CLASSES` classes and genome images of at most :data:`MAX_GENOME_SIDE` pixels a
side are accepted (renders: :data:`MAX_IMAGE_SIDE` a side, :data:`MAX_IMAGE_PIXELS` in all),
and files are found by the names this module builds (:func:`png_name`), never by a path
written in the archive. Each problem is a one-line EvofoolError naming the file, the field
and what was expected.
"""
from __future__ import annotations

import io
import math
import re
import zipfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from evofool.errors import EvofoolError, one_line
from evofool.files import write_json, write_npz, write_png
from evofool.genomes.base import GenomeType
from evofool.genomes.registry import get_genome_type
from evofool.montage import confidence_label, make_montage, to_uint8
from evofool.readers import (MAX_JSON_BYTES, ArrayHeader, is_int, is_number, read_json,
                             read_npz, shown, type_name)
from evofool.run_dirs import resolve_run_dir
from evofool.schema import MAX_CLASS_ID, MAX_CLASSES  # an experiment's limits, also here
from evofool.schema import MAX_IMAGE_SIDE as MAX_GENOME_SIDE
from evofool.schema import from_dict
from evofool.search.archive import MILESTONES, Archive

FORMAT_VERSION = 1
ARCHIVE_JSON = "archive.json"
ELITES_NPZ = "elites.npz"
MONTAGE_PNG = "montage.png"
# Where and how to render once sat among the CPPN genome's keys (evofool 0.1 archives carry
# them); they are runtime choices, so a reader drops them and renders on the CPU.
RUNTIME_KEYS_SAVED_BEFORE = ("render_device", "batching")
#: Limits on what an archive or genome file may ask for (a stranger's file must not exhaust
#: memory): classes per archive (MAX_CLASSES, ids below MAX_CLASS_ID, as in an experiment;
#: each class has a row of probabilities over all classes, so the npz size limit of
#: evofool.readers caps a full archive lower still); the genome's own image size, as an
#: experiment's (MAX_GENOME_SIDE, from evofool.schema); and any render (``evofool render
#: --size``): sides and pixels per image.
MAX_IMAGE_SIDE = 16_384
MAX_IMAGE_PIXELS = 1 << 26  # 67,108,864 pixels: 8192 x 8192, per image
_PIXELS_PER_BATCH = 1 << 22  # render archives in batches of about this many pixels
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0 and C1 control characters


def png_name(cls: int, name: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_")[:40]
    return f"class_{cls:04d}_{safe}.png" if safe else f"class_{cls:04d}.png"


def render_elites(archive: Archive, genome_type: GenomeType) -> list[np.ndarray | None]:
    """Each class's elite as an (H, W, C) uint8 image (what its PNG holds), None if empty."""
    images: list[np.ndarray | None] = [None] * len(archive)
    cells = np.flatnonzero(archive.filled)
    pixels = int(genome_type.size[0]) * int(genome_type.size[1])
    batch = max(1, min(256, _PIXELS_PER_BATCH // max(pixels, 1)))
    for start in range(0, len(cells), batch):
        chunk = cells[start:start + batch]
        for cell, image in zip(chunk, to_uint8(genome_type.render(archive.genomes[chunk]))):
            images[cell] = image
    return images


def png_round_trip(image: np.ndarray) -> np.ndarray:
    """Encode and decode as PNG in memory: exactly the pixels a shared file carries."""
    buffer = io.BytesIO()
    Image.fromarray(image if image.shape[-1] == 3 else image[..., 0]).save(buffer, format="PNG")
    decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())))
    return decoded if decoded.ndim == 3 else decoded[..., None]


def rescore_pngs(images: list[np.ndarray | None], archive: Archive, target) -> list[float | None]:
    """The confidence each class's saved 8-bit PNG gets from ``target`` (the float image that
    evolution scored can differ: quantization may cost a fooling image its confidence); None
    for an empty cell, and where the model scored the PNG NaN or infinite (archive.json
    stays valid JSON)."""
    result: list[float | None] = [None] * len(archive)
    cells = [c for c, image in enumerate(images) if image is not None]
    for start in range(0, len(cells), 256):
        chunk = cells[start:start + 256]
        batch = np.stack([png_round_trip(images[c]) for c in chunk])
        tensor = torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 255.0
        scores = target.scores(tensor)
        for row, cell in enumerate(chunk):
            value = float(scores[row, cell])
            result[cell] = value if math.isfinite(value) else None
    return result


def montage_labels(archive: Archive, confidences: list[float | None] | None = None) -> list[str]:
    confidences = confidences or [r.confidence for r in archive.rows()]
    labels = []
    for row, confidence in zip(archive.rows(), confidences):
        name = row.name if row.name == str(row.class_id) else f"{row.class_id} {row.name[:14]}"
        labels.append(f"{name}\n{confidence_label(confidence)}")
    return labels


def save_archive(directory: Path, archive: Archive, genome_type: GenomeType, meta: dict,
                 target=None) -> dict:
    """Write the archive folder; with ``target``, re-score each PNG and record both
    confidences. Returns the archive.json content."""
    directory.mkdir(parents=True, exist_ok=True)
    images = render_elites(archive, genome_type)
    png_confidences = rescore_pngs(images, archive, target) if target is not None else None
    classes = class_entries(archive, png_confidences)
    for entry, notes in zip(classes, meta.get("class_notes") or ()):
        entry.update(notes)  # what the algorithm records per class (gradient ascent's steps)
    content = {
        "format_version": FORMAT_VERSION,
        "genome": dict(meta["genome"]),  # type + params: enough to rebuild the genome type
        "image": {"channels": genome_type.channels, "size": list(genome_type.size)},
        "model": meta.get("model"), "class_names": archive.class_names,
        "class_ids": archive.class_ids,  # the model output of each cell
        "generation": meta.get("generation"), "evaluations": meta.get("evaluations"),
        "summary": archive.summary(), "classes": classes,
    }
    write_npz(directory / ELITES_NPZ, archive.to_arrays(genome_type.pack))
    for entry, image in zip(classes, images):
        if image is not None:
            write_png(directory / entry["png"], Image.fromarray(
                image if image.shape[-1] == 3 else image[..., 0]))
    write_png(directory / MONTAGE_PNG, make_montage(images, montage_labels(archive)))
    write_json(directory / ARCHIVE_JSON, content)
    return content


def class_entries(archive: Archive, png_confidences: list[float | None] | None) -> list[dict]:
    """archive.json's ``classes`` rows (what :func:`save_archive` writes and
    :func:`load_archive` returns): each row of ``archive`` with its cell as ``class``, the
    name of its PNG (None for an empty cell) and, if given, its PNG's confidence (None where
    not finite)."""
    classes = []
    for row in archive.rows():
        entry = asdict(row)
        entry["class"] = entry.pop("cls")
        entry["png"] = png_name(row.class_id, row.name) if archive.filled[row.cls] else None
        entry["evaluations_to"] = archive.evaluations_to(row.cls)  # query accounting
        measures = entry.pop("measures")
        if archive.measures:  # a perturbation's distortion from its start image
            entry["measures"] = measures
        if png_confidences is not None:
            value = png_confidences[row.cls]
            entry["png_confidence"] = (float(value) if value is not None
                                       and math.isfinite(value) else None)
        classes.append(entry)
    return classes


def find_archive_dir(path: str | Path) -> Path:
    """Accept a run directory (or ``runs/NAME``, ``latest``: :mod:`evofool.run_dirs`), an
    archive folder or its archive.json."""
    path = resolve_run_dir(path)
    if not path.exists():
        raise EvofoolError(f"'{path}' does not exist")
    if path.is_file() and path.name == ARCHIVE_JSON:
        path = path.parent
    for candidate in (path, path / "archive"):
        if (candidate / ARCHIVE_JSON).is_file():
            return candidate
    raise EvofoolError(f"'{path}' holds no {ARCHIVE_JSON} (give a run directory or its "
                       "archive/ folder; an unfinished run writes it when it stops)")


def check_image_size(height: int, width: int, what: str,
                     max_side: int = MAX_IMAGE_SIDE) -> None:
    """EvofoolError unless ``height`` x ``width`` is a size the readers will draw: sides of
    1..``max_side`` pixels and at most MAX_IMAGE_PIXELS pixels."""
    for side in (height, width):
        if not 1 <= side <= max_side:
            raise EvofoolError(f"{what} {height} x {width} is invalid: expected sides of 1 to "
                               f"{max_side:,} pixels")
    if height * width > MAX_IMAGE_PIXELS:
        raise EvofoolError(f"{what} {height} x {width} is too large: expected at most "
                           f"{MAX_IMAGE_PIXELS:,} pixels (8192 x 8192)")


def genome_type_from_json(genome: Any, image: Any, source: str) -> GenomeType:
    """Rebuild a genome type from the ``genome`` (type + params) and ``image`` (channels,
    size) entries that archive.json and genome JSON files carry; every problem is a one-line
    EvofoolError naming ``source``, the field and what was expected (an unknown type, a
    module path without trust, bad params, an image too large)."""
    def bad(field: str, value: Any, expected: str) -> EvofoolError:
        return EvofoolError(f"{source}: {field} is {type_name(value)}, expected {expected}")

    if not isinstance(genome, dict):
        raise bad("genome", genome, "an object with the genome type and its parameters")
    for key in genome:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", key):
            raise EvofoolError(f"{source}: genome has the key {shown(key)}, expected "
                               "parameter names")
    if not isinstance(genome.get("type"), str) or not genome["type"]:
        raise bad("genome.type", genome.get("type"), "the name of a genome type")
    if not isinstance(image, dict):
        raise bad("image", image, "an object with 'channels' and 'size'")
    channels, size = image.get("channels"), image.get("size")
    if not is_int(channels) or channels not in (1, 3):
        raise bad("image.channels", channels, "1 or 3")
    if not (isinstance(size, list) and len(size) == 2 and all(map(is_int, size))):
        raise bad("image.size", size, "[height, width] in pixels")
    check_image_size(size[0], size[1], f"{source}: image.size", MAX_GENOME_SIDE)
    meta = {k: v for k, v in genome.items() if k not in RUNTIME_KEYS_SAVED_BEFORE}
    genome_cls = get_genome_type(meta.pop("type"), source)
    params = from_dict(genome_cls.Params, meta, "genome", source)
    try:
        genome_type = genome_cls(params, channels, (size[0], size[1]))
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        text = one_line(exc)
        raise EvofoolError(f"{source}: genome: {text}") from None
    drawn = tuple(genome_type.size)
    if not (len(drawn) == 2 and all(isinstance(s, (int, np.integer)) for s in drawn)):
        raise EvofoolError(f"{source}: genome: image size {shown(drawn)}, expected two "
                           "integers")
    check_image_size(int(drawn[0]), int(drawn[1]), f"{source}: genome: image size",
                     MAX_GENOME_SIDE)
    if genome_type.channels not in (1, 3):
        raise EvofoolError(f"{source}: genome: {shown(genome_type.channels)} channels, "
                           "expected 1 or 3")
    return genome_type


def _check_name(name: Any, field: str, source: str) -> str:
    if not isinstance(name, str):
        raise EvofoolError(f"{source}: {field} is {type_name(name)}, expected a string")
    if len(name) > 1000 or _CONTROL.search(name):
        raise EvofoolError(f"{source}: {field} is {shown(name)}, expected a name of at most "
                           "1,000 printable characters")
    return name


def _check_classes(content: dict, source: str) -> tuple[list[str], list[int]]:
    """archive.json's ``class_names`` and ``class_ids``, checked (count, types, ranges)."""
    names = content.get("class_names")
    if not isinstance(names, list) or not names:
        raise EvofoolError(f"{source}: class_names is {type_name(names)}, expected a "
                           "non-empty list of class names")
    if len(names) > MAX_CLASSES:
        raise EvofoolError(f"{source}: class_names has {len(names):,} entries, expected at "
                           f"most {MAX_CLASSES:,} classes")
    for i, name in enumerate(names):
        _check_name(name, f"class_names[{i}]", source)
    ids = content.get("class_ids", None)
    if ids is None:  # older archives: the cells are the model outputs 0..n-1
        return names, list(range(len(names)))
    if not isinstance(ids, list) or len(ids) != len(names):
        raise EvofoolError(f"{source}: class_ids is {type_name(ids)}, expected a list of "
                           f"{len(names):,} class ids (one per class name)")
    for i, class_id in enumerate(ids):
        if not is_int(class_id) or not 0 <= class_id < MAX_CLASS_ID:
            raise EvofoolError(f"{source}: class_ids[{i}] is {type_name(class_id)}, expected "
                               f"a class id (an integer >= 0, below {MAX_CLASS_ID:,})")
    if len(set(ids)) != len(ids):
        raise EvofoolError(f"{source}: class_ids holds a class id twice, expected distinct "
                           "ids")
    return names, ids


#: The per-class arrays of an archive in npz form, and the dtype kinds each may have.
ARCHIVE_ARRAYS = {"filled": "b", "confidence": "f", "probabilities": "f", "generation": "iu",
                  "evaluations": "iu"}


def check_archive_headers(headers: dict[str, ArrayHeader], classes: int | None, source: str,
                          prefix: str = "") -> int:
    """Check, before they are read, the headers of an archive's arrays (named ``prefix`` +
    filled, confidence, ... as :meth:`Archive.to_arrays` writes them) against ``classes``
    cells (None: whatever count they agree on, at most MAX_CLASSES); returns the count."""
    n = classes
    for name, kinds in ARCHIVE_ARRAYS.items():
        header = headers.get(prefix + name)
        if header is None:
            raise EvofoolError(f"{source}: missing array '{prefix}{name}'")
        if header.dtype.kind not in kinds:
            raise EvofoolError(f"{source}: array '{prefix}{name}' has dtype {header.dtype}, "
                               f"expected {'booleans' if kinds == 'b' else 'numbers'}")
        if n is None:
            n = header.shape[0] if header.shape else 0
            if not 1 <= n <= MAX_CLASSES:
                raise EvofoolError(f"{source}: array '{prefix}{name}' has {n:,} cells, "
                                   f"expected 1 to {MAX_CLASSES:,}")
        expected = (n, n) if name == "probabilities" else (n,)
        if header.shape != expected:
            raise EvofoolError(f"{source}: array '{prefix}{name}' has shape {header.shape}, "
                               f"expected {expected}")
    reached = headers.get(prefix + "reached")  # optional: older archives lack it
    if reached is not None and (reached.dtype.kind not in "iu"
                                or reached.shape != (n, len(MILESTONES))):
        raise EvofoolError(f"{source}: array '{prefix}reached' has shape {reached.shape} "
                           f"({reached.dtype}), expected integers {(n, len(MILESTONES))}")
    measures = [name for name in headers if name.startswith(prefix + "measure.")]
    if len(measures) > 16:
        raise EvofoolError(f"{source}: {len(measures)} 'measure.*' arrays, expected at most 16")
    for name in measures:  # per-cell measures (a perturbation's distortions)
        header = headers[name]
        if header.dtype.kind not in "fiu" or header.shape != (n,):
            raise EvofoolError(f"{source}: array '{name}' has shape {header.shape} "
                               f"({header.dtype}), expected {n} numbers")
    return n


def check_archive_values(archive: Archive, source: str) -> None:
    """What the readers assume of a loaded archive's filled cells: finite confidences and
    probabilities, found at a generation >= 0 after >= 1 evaluations."""
    cells = np.flatnonzero(archive.filled)
    if not np.all(np.isfinite(archive.confidence[cells])):
        raise EvofoolError(f"{source}: array 'confidence' holds NaN or infinity for a filled "
                           "class, expected finite confidences")
    if not np.all(np.isfinite(archive.probabilities[cells])):
        raise EvofoolError(f"{source}: array 'probabilities' holds NaN or infinity for a "
                           "filled class, expected finite probabilities")
    if np.any(archive.reached < -1):
        raise EvofoolError(f"{source}: array 'reached' holds counts below -1, expected "
                           "evaluation counts or -1 (not reached)")
    if np.any(archive.generation[cells] < 0) or np.any(archive.evaluations[cells] < 1):
        raise EvofoolError(f"{source}: arrays 'generation'/'evaluations' hold negative counts "
                           "for a filled class, expected counts >= 0")


def _optional(row: dict, key: str, check, expected: str, field: str, required: bool = True):
    if key not in row:
        if required:
            raise EvofoolError(f"{field}.{key} is missing, expected {expected}")
        return None
    value = row[key]
    if value is not None and not check(value):
        raise EvofoolError(f"{field}.{key} is {type_name(value)}, expected {expected}")
    return value


def _check_rows(content: dict, archive: Archive, source: str) -> list[float | None] | None:
    """archive.json's ``classes`` rows checked against the arrays; returns their PNG
    confidences (None where absent or not finite), or None if no row records one."""
    rows = content.get("classes")
    n = len(archive)
    if not isinstance(rows, list) or len(rows) != n:
        raise EvofoolError(f"{source}: classes is {type_name(rows)}, expected a list of "
                           f"{n:,} class rows (one per class name)")
    png_confidences: list[float | None] = []
    any_png_confidence = False
    for i, row in enumerate(rows):
        field = f"{source}: classes[{i}]"
        if not isinstance(row, dict):
            raise EvofoolError(f"{field} is {type_name(row)}, expected an object")
        if row.get("class") != i or not is_int(row.get("class")):
            raise EvofoolError(f"{field}.class is {type_name(row.get('class'))}, expected {i}")
        class_id = row.get("class_id", archive.class_ids[i])
        if not is_int(class_id) or class_id != archive.class_ids[i]:
            raise EvofoolError(f"{field}.class_id is {type_name(class_id)}, expected "
                               f"{archive.class_ids[i]} (class_ids[{i}])")
        if row.get("name") != archive.class_names[i]:
            raise EvofoolError(f"{field}.name is {type_name(row.get('name'))}, expected "
                               f"{shown(archive.class_names[i])} (class_names[{i}])")
        confidence = _optional(row, "confidence", is_number, "a number or null", field)
        filled = bool(archive.filled[i])
        if (confidence is not None) != filled or (filled and not math.isfinite(confidence)):
            raise EvofoolError(f"{field}.confidence is {type_name(confidence)}, expected "
                               f"{'a finite number' if filled else 'null'}: the class is "
                               f"{'filled' if filled else 'empty'} in {ELITES_NPZ}")
        for key in ("generation", "evaluations"):
            _optional(row, key, lambda v: is_int(v) and v >= 0, "an integer >= 0 or null",
                      field)
        _optional(row, "top1", lambda v: is_int(v) and v >= 0, "a class id or null", field,
                  required=False)
        expected_png = png_name(archive.class_ids[i], archive.class_names[i])
        png = _optional(row, "png", lambda v: v == expected_png,
                        f"{expected_png!r} (files are named by class) or null", field,
                        required=False)
        if png is not None and not filled:
            raise EvofoolError(f"{field}.png is {type_name(png)}, expected null: the class is "
                               f"empty in {ELITES_NPZ}")
        value = _optional(row, "png_confidence", is_number, "a number or null", field,
                          required=False)
        any_png_confidence = any_png_confidence or "png_confidence" in row
        png_confidences.append(float(value) if value is not None and math.isfinite(value)
                               and filled else None)
    return png_confidences if any_png_confidence else None


def load_archive(path: str | Path) -> tuple[Archive, GenomeType, dict]:
    """(archive, genome type, archive.json content) from a saved folder; one-line errors.

    The content returned is checked and rebuilt from the arrays where they overlap: its
    ``classes`` rows are :func:`class_entries` of the archive (with archive.json's PNG
    confidences, None where not finite) and its ``summary`` is :meth:`Archive.summary`, so
    a reader can use every field without checking it again."""
    directory = find_archive_dir(path)
    json_path = directory / ARCHIVE_JSON
    source = f"'{json_path}'"
    content = read_json(json_path, MAX_JSON_BYTES, "an evofool archive (archive.json)")
    if not isinstance(content, dict):
        raise EvofoolError(f"{source} is corrupted or not an evofool archive: it holds "
                           f"{type_name(content)}, expected an object")
    if content.get("format_version") != FORMAT_VERSION or not is_int(
            content.get("format_version")):
        raise EvofoolError(f"{source} is corrupted or not an evofool archive: format_version "
                           f"is {type_name(content.get('format_version'))}, expected "
                           f"{FORMAT_VERSION}")
    class_names, class_ids = _check_classes(content, source)
    for key in ("generation", "evaluations"):
        value = content.get(key)
        if value is not None and not (is_int(value) and value >= 0):
            raise EvofoolError(f"{source}: {key} is {type_name(value)}, expected an integer "
                               ">= 0 or null")
    if content.get("model") is not None and not isinstance(content["model"], (dict, str)):
        raise EvofoolError(f"{source}: model is {type_name(content['model'])}, expected an "
                           "object or null")
    if not isinstance(content.get("summary", {}), dict):
        raise EvofoolError(f"{source}: summary is {type_name(content['summary'])}, expected "
                           "an object")
    genome_type = genome_type_from_json(content.get("genome"), content.get("image"), source)

    npz_path = directory / ELITES_NPZ
    npz_source = f"'{npz_path}'"
    try:
        arrays = read_npz(npz_path, what=f"an evofool archive's {ELITES_NPZ}", check=lambda
                          headers: check_archive_headers(headers, len(class_names), npz_source))
        archive = Archive.from_arrays(class_names, arrays, genome_type.unpack, class_ids)
    except EvofoolError:
        raise
    except (OSError, ValueError, KeyError, EOFError, TypeError, IndexError, AttributeError,
            OverflowError, RecursionError, zipfile.BadZipFile) as exc:
        message = one_line(exc)
        raise EvofoolError(f"{npz_source} is corrupted or does not match {ARCHIVE_JSON} "
                           f"({type(exc).__name__}: {message})") from None
    check_archive_values(archive, npz_source)
    png_confidences = _check_rows(content, archive, source)
    classes = class_entries(archive, png_confidences)
    for entry, row in zip(classes, content["classes"]):
        entry.update(_class_notes(row))
    content = dict(content, class_ids=list(archive.class_ids), classes=classes,
                   summary=archive.summary())
    return archive, genome_type, content


NOTE_KEYS = ("first_step", "evaluation_equivalents")  # gradient ascent's per-class milestones


def _class_notes(row) -> dict:
    """The algorithm's per-class notes of an archive.json row that are well formed (a few
    names, each an integer >= 0 or null); anything else is left out."""
    if not isinstance(row, dict):
        return {}
    notes = {}
    for key in NOTE_KEYS:
        value = row.get(key)
        if (isinstance(value, dict) and len(value) <= 16
                and all(isinstance(k, str) and len(k) <= 16 for k in value)
                and all(v is None or (is_int(v) and v >= 0) for v in value.values())):
            notes[key] = dict(value)
    return notes


def export_archive(path: str | Path, out: str | Path, genomes: bool = False) -> list[Path]:
    """Re-render every elite from its genome into ``out``: one PNG per class + montage; with
    ``genomes``, beside each PNG its genome as a genome JSON file (any genome type, through
    ``GenomeType.to_json``; ``evofool render`` draws it at any size). Returns the PNGs
    written, the montage last."""
    from evofool.render import save_genome_json  # render imports this module
    archive, genome_type, content = load_archive(path)
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EvofoolError(f"cannot create output folder '{out}': {exc.strerror}") from None
    images = render_elites(archive, genome_type)
    written = []
    try:
        for row, image in zip(archive.rows(), images):
            if image is not None:  # named by class here, never by a name from the archive
                target = out / png_name(row.class_id, row.name)
                write_png(target, Image.fromarray(image if image.shape[-1] == 3
                                                  else image[..., 0]))
                if genomes:
                    save_genome_json(target.with_suffix(".json"), genome_type,
                                     content["genome"]["type"], content["genome"],
                                     archive.genomes[row.cls])
                written.append(target)
        montage = out / MONTAGE_PNG
        write_png(montage, make_montage(images, montage_labels(archive)))
    except OSError as exc:
        raise EvofoolError(f"cannot write into '{out}': {exc.strerror or exc}") from None
    return written + [montage]
