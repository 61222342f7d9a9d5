"""Re-render genomes at any size: from a saved archive or from a single genome JSON file.

The library behind ``evofool render SOURCE --size N --out X.png [--class K]``. A CPPN is a
picture at any resolution, so an elite evolved at 28 x 28 can be printed at 1024 x 1024.

A genome JSON file (written by :func:`save_genome_json`) holds everything needed to draw one
genome of any type without the run that made it::

    {"format_version": 2,
     "genome": {"type": "cppn", ...its params...},
     "image": {"channels": 1, "size": [28, 28]},
     "genome_data": {...GenomeType.to_json(genome)...}}

``genome_data`` is the type's own form: a CPPN's networkx node-link graph, and for other
types (direct pixels, plugins) their packed arrays as ``{"dtype", "shape", "data"}``.
Format 1 (CPPN graphs only, the graph under ``"graph"``) is still read.

Genome files and archives may come from strangers: a genome file is read only up to
:data:`~evofool.readers.MAX_GENOME_FILE_BYTES`, every field is checked, and renders are at
most :data:`MAX_RENDER_SIDE` pixels a side and :data:`MAX_RENDER_PIXELS` pixels per image
(``--size`` up to 8192).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from evofool.archive_store import (ARCHIVE_JSON, MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE,
                                   genome_type_from_json, load_archive, png_name)
from evofool.config import validate_experiment
from evofool.errors import EvofoolError, one_line
from evofool.files import write_json, write_png
from evofool.fitness.registry import resolve_device
from evofool.genomes.base import GenomeType
from evofool.montage import to_uint8
from evofool.readers import MAX_GENOME_FILE_BYTES, read_json, shown, type_name
from evofool.run_data import read_run
from evofool.run_dirs import resolve_run_dir
from evofool.search.archive import Archive

GENOME_FORMAT_VERSION = 2  # 1: CPPN graphs only, under "graph" (still read)
_PIXELS_PER_BATCH = 1 << 22  # render archives in batches of about this many pixels
MAX_RENDER_SIDE = MAX_IMAGE_SIDE      # pixels a side of one render
MAX_RENDER_PIXELS = MAX_IMAGE_PIXELS  # pixels of one render: 8192 x 8192


def save_genome_json(path: str | Path, genome_type: GenomeType, genome_type_name: str,
                     params_dict: dict, genome) -> Path:
    """Write one genome (``population[i]`` of ``genome_type``) as a genome JSON file,
    atomically; returns ``path``. ``genome_type_name`` and ``params_dict`` are the type's
    name and params as the run's ``genome:`` entry gives them (a plugin's name there may be
    a dotted path, not ``genome_type.name``); a ``type`` key in ``params_dict`` is ignored,
    so archive.json's ``genome`` entry can be passed as it is."""
    try:
        data = genome_type.to_json(genome)
        params = {k: v for k, v in dict(params_dict).items() if k != "type"}
        write_json(path, {"format_version": GENOME_FORMAT_VERSION,
                          "genome": {"type": genome_type_name, **params},
                          "image": {"channels": int(genome_type.channels),
                                    "size": [int(side) for side in genome_type.size]},
                          "genome_data": data})
    except OSError as exc:
        raise EvofoolError(f"cannot write '{path}': {exc.strerror or exc}") from None
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise EvofoolError(f"cannot save genome to '{path}': {_one_line(exc)}") from None
    return Path(path)


def load_genome_json(path: str | Path) -> tuple[GenomeType, np.ndarray]:
    """(genome type, a population of one genome) from a genome JSON file of format 2 or 1;
    any problem is an EvofoolError of one line that names the file."""
    path = Path(path)
    content = read_json(path, MAX_GENOME_FILE_BYTES, "a genome JSON file")
    source = f"'{path}'"
    if not isinstance(content, dict) or not ("genome_data" in content or "graph" in content):
        held = ("an object without 'genome_data'" if isinstance(content, dict)
                else type_name(content))
        raise EvofoolError(f"{source}: not a genome JSON file: it holds {held}, expected an "
                           "object with 'genome', 'image' and 'genome_data'")
    version = content.get("format_version")
    if version not in (1, GENOME_FORMAT_VERSION) or isinstance(version, bool):
        raise EvofoolError(f"{source}: format_version is {type_name(version)}, expected "
                           f"{GENOME_FORMAT_VERSION} (or 1: an older CPPN file)")
    key = "graph" if version == 1 else "genome_data"
    if key not in content:
        raise EvofoolError(f"{source}: a format {version} genome file needs a '{key}' entry")
    try:
        genome_type = genome_type_from_json(content.get("genome"), content.get("image"), source)
        if version == 1:  # a graph genome's node-link data, as its packed JSON text
            if not isinstance(content["graph"], dict):
                raise ValueError(f"graph is {type_name(content['graph'])}, expected an object")
            population = genome_type.unpack({"graphs": np.array([json.dumps(content["graph"])])})
        else:
            population = genome_type.from_json(content["genome_data"])
        if len(population) != 1:
            raise ValueError(f"it holds {len(population)} genomes, expected one")
    except EvofoolError as exc:
        message = str(exc)
        raise EvofoolError(message if str(path) in message else f"{source}: {message}") from None
    except RecursionError:
        raise EvofoolError(f"{source}: bad genome file (nested too deeply)") from None
    except (ValueError, KeyError, TypeError, AttributeError, IndexError, OverflowError) as exc:
        raise EvofoolError(f"{source}: bad genome file ({_one_line(exc)})") from None
    return genome_type, population


def _one_line(exc: Exception) -> str:
    """ValueErrors are ours and say what is wrong; others also need their type."""
    text = one_line(exc)
    return text if isinstance(exc, ValueError) else f"{type(exc).__name__}: {text}"


def _write_image(path: Path, image: np.ndarray) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_png(path, Image.fromarray(image if image.shape[-1] == 3 else image[..., 0]))
    except OSError as exc:
        raise EvofoolError(f"cannot write '{path}': {exc.strerror or exc}") from None


def check_render_size(size) -> None:
    """EvofoolError unless ``size`` (a side of a square render) is 1..8192 pixels (at most
    MAX_RENDER_SIDE a side and MAX_RENDER_PIXELS in all)."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise EvofoolError(f"size {shown(size)} is invalid: expected a positive number of "
                           "pixels")
    if size > MAX_RENDER_SIDE or size * size > MAX_RENDER_PIXELS:
        largest = min(MAX_RENDER_SIDE, int(MAX_RENDER_PIXELS ** 0.5))
        raise EvofoolError(f"size {size} is too large: expected at most {largest} pixels a "
                           f"side ({MAX_RENDER_PIXELS:,} pixels per image)")


def elite_cell(archive: Archive, cls: int) -> int:
    """The archive cell holding class id ``cls``'s elite (a class id is the model output: the
    cell's position unless the run scored a subset); one-line EvofoolError when there is
    none."""
    ids = archive.class_ids
    if isinstance(cls, bool) or not isinstance(cls, (int, np.integer)) or cls not in ids:
        listed = (f"0..{len(ids) - 1}" if ids == list(range(len(ids)))
                  else ", ".join(map(str, ids)))
        raise EvofoolError(f"class {shown(cls)} is out of range (the archive has classes "
                           f"{listed})")
    cell = ids.index(cls)
    if not archive.filled[cell]:
        filled = [str(ids[c]) for c in np.flatnonzero(archive.filled)]
        raise EvofoolError(f"class {cls} ({shown(archive.class_names[cell])}) has no elite "
                           f"(filled: {', '.join(filled) or 'none'})")
    return cell


def render_to_png(source: str | Path, out: str | Path, size: int,
                  cls: int | None = None) -> list[Path]:
    """Render genomes at ``size`` x ``size`` pixels into PNG files; returns the paths written.

    ``source`` is a genome JSON file (one PNG at ``out``), or an archive: a run directory,
    its ``archive/`` folder or that folder's ``archive.json``. For an archive, ``cls`` picks
    one class (one PNG at ``out``); without it every filled class is written into the folder
    ``out``, one PNG per class named as in the archive. Errors are one-line EvofoolErrors.
    """
    check_render_size(size)
    source, out = resolve_run_dir(source), Path(out)
    if not source.exists():
        raise EvofoolError(f"'{source}' does not exist")
    if not source.is_dir() and source.name != ARCHIVE_JSON:
        if cls is not None:
            raise EvofoolError(f"'{source}' is a single genome: --class applies to archives")
        genome_type, population = load_genome_json(source)
        image = to_uint8(genome_type.render(population, size=(size, size)))[0]
        _write_image(out, image)
        return [out]

    archive, genome_type, _ = load_archive(source.parent if source.is_file() else source)
    filled = np.flatnonzero(archive.filled)
    if cls is not None:
        cell = elite_cell(archive, cls)
        image = to_uint8(genome_type.render(archive.genomes[[cell]], size=(size, size)))[0]
        _write_image(out, image)
        return [out]
    if out.exists() and not out.is_dir():
        raise EvofoolError(f"'{out}' is a file: without --class the output is a folder, "
                           "one PNG per class")
    if out.suffix.lower() == ".png" and not out.exists():
        raise EvofoolError(f"--out '{out}' names a PNG, but without --class every class is "
                           "written, into a folder: add --class K, or give a folder name")
    written = []
    batch = max(1, _PIXELS_PER_BATCH // (size * size))
    for start in range(0, len(filled), batch):
        cells = filled[start:start + batch]
        images = to_uint8(genome_type.render(archive.genomes[cells], size=(size, size)))
        for cell, image in zip(cells, images):
            path = out / png_name(archive.class_ids[cell], archive.class_names[cell])
            _write_image(path, image)
            written.append(path)
    return written


def resolution_check(run_dir: str | Path, size: int = 1024, device: str = "auto") -> list[dict]:
    """Is a large render of each elite the picture that was scored? Per filled class of the
    run: the run's model's confidence in the elite rendered at the scored size, and in the
    elite rendered at ``size`` x ``size`` and averaged back down to the scored size (area
    average, as a person sees a large picture from afar), plus the mean absolute pixel
    difference of the two scored-size images (pixels in [0, 1]).

    For CPPNs on ``picbreeder`` coordinates both stay put; on the released code's raw pixel
    indices, elites with stripes finer than a pixel lose their class (experiments/README.md)."""
    check_render_size(size)
    run = read_run(run_dir)
    experiment = validate_experiment(run.config, str(Path(run_dir) / "config.yaml"), "run",
                                     artifact=True)
    target = experiment.model.build_target(resolve_device(device, "--device"))
    archive, genome_type = run.archive, run.genome_type
    cells = np.flatnonzero(archive.filled)
    rows = []
    for cell in cells:
        genome = archive.genomes[cell:cell + 1]
        scored = genome_type.render(genome)
        large = genome_type.render(genome, size=(size, size))
        down = F.adaptive_avg_pool2d(large, scored.shape[-2:])
        both = target.scores(torch.cat([scored, down]))
        rows.append({"class": int(archive.class_ids[cell]), "name": archive.class_names[cell],
                     "confidence": float(both[0, cell]), "large_confidence": float(both[1, cell]),
                     "mean_abs_pixel_difference": float((down - scored).abs().mean())})
    return rows
