"""The archive on disk: ``archive.json`` (per-class table and how to rebuild the genomes),
``elites.npz`` (the genomes, no pickle), one PNG per class, and a labelled montage.

A saved archive is self-contained: ``evofool archive show/export`` work on a copy of the
folder on another machine, without the run's checkpoint or its model.
"""
from __future__ import annotations

import io
import json
import re
import zipfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from evofool.search.archive import Archive
from evofool.errors import EvofoolError
from evofool.files import read_npz, write_json, write_npz, write_png
from evofool.genomes.base import GenomeType
from evofool.genomes.registry import get_genome_type
from evofool.montage import confidence_label, make_montage, to_uint8
from evofool.schema import from_dict

FORMAT_VERSION = 1
ARCHIVE_JSON = "archive.json"
ELITES_NPZ = "elites.npz"
MONTAGE_PNG = "montage.png"
# Where and how to render once sat among the CPPN genome's keys (evofool 0.1 archives carry
# them); they are runtime choices, so a reader drops them and renders on the CPU.
RUNTIME_KEYS_SAVED_BEFORE = ("render_device", "batching")


def png_name(cls: int, name: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_")[:40]
    return f"class_{cls:04d}_{safe}.png" if safe else f"class_{cls:04d}.png"


def render_elites(archive: Archive, genome_type: GenomeType) -> list[np.ndarray | None]:
    """Each class's elite as an (H, W, C) uint8 image (what its PNG holds), None if empty."""
    images: list[np.ndarray | None] = [None] * len(archive)
    cells = np.flatnonzero(archive.filled)
    for start in range(0, len(cells), 256):
        chunk = cells[start:start + 256]
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
    evolution scored can differ: quantization may cost a fooling image its confidence)."""
    result: list[float | None] = [None] * len(archive)
    cells = [c for c, image in enumerate(images) if image is not None]
    for start in range(0, len(cells), 256):
        chunk = cells[start:start + 256]
        batch = np.stack([png_round_trip(images[c]) for c in chunk])
        tensor = torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 255.0
        scores = target.scores(tensor)
        for row, cell in enumerate(chunk):
            result[cell] = float(scores[row, cell])
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
    classes = []
    for row in archive.rows():
        entry = asdict(row)
        entry["class"] = entry.pop("cls")
        entry["png"] = png_name(row.class_id, row.name) if images[row.cls] is not None else None
        if png_confidences is not None:
            entry["png_confidence"] = png_confidences[row.cls]
        classes.append(entry)
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


def find_archive_dir(path: str | Path) -> Path:
    """Accept a run directory, an archive folder or its archive.json."""
    path = Path(path)
    if not path.exists():
        raise EvofoolError(f"'{path}' does not exist")
    if path.is_file() and path.name == ARCHIVE_JSON:
        path = path.parent
    for candidate in (path, path / "archive"):
        if (candidate / ARCHIVE_JSON).is_file():
            return candidate
    raise EvofoolError(f"'{path}' holds no {ARCHIVE_JSON} (give a run directory or its "
                       "archive/ folder; an unfinished run writes it when it stops)")


def genome_type_from_json(genome: dict, image: dict, source: str) -> GenomeType:
    """Rebuild a genome type from the ``genome`` (type + params) and ``image`` (channels,
    size) entries that archive.json and genome JSON files carry; raises ValueError/KeyError
    (or EvofoolError for an unknown type or bad params, naming ``source``)."""
    meta = {k: v for k, v in dict(genome).items() if k not in RUNTIME_KEYS_SAVED_BEFORE}
    genome_cls = get_genome_type(meta.pop("type"), source)
    params = from_dict(genome_cls.Params, meta, "genome", source)
    size = (int(image["size"][0]), int(image["size"][1]))
    if min(size) < 1:
        raise ValueError(f"image size {size} is not positive")
    return genome_cls(params, int(image["channels"]), size)


def load_archive(path: str | Path) -> tuple[Archive, GenomeType, dict]:
    """(archive, genome type, archive.json content) from a saved folder; one-line errors."""
    directory = find_archive_dir(path)
    json_path = directory / ARCHIVE_JSON
    try:
        content = json.loads(json_path.read_text(encoding="utf-8"))
        if content.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"format_version {content.get('format_version')!r}, "
                             f"expected {FORMAT_VERSION}")
        genome_type = genome_type_from_json(content["genome"], content["image"], str(json_path))
        class_names = [str(n) for n in content["class_names"]]
        class_ids = [int(c) for c in content.get("class_ids", range(len(class_names)))]
    except EvofoolError:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise EvofoolError(f"'{json_path}' is corrupted or not an evofool archive "
                           f"({type(exc).__name__}: {exc})") from None
    npz_path = directory / ELITES_NPZ
    try:
        arrays = read_npz(npz_path)
        archive = Archive.from_arrays(class_names, arrays, genome_type.unpack, class_ids)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise EvofoolError(f"'{npz_path}' is corrupted or does not match {ARCHIVE_JSON} "
                           f"({type(exc).__name__}: {exc})") from None
    return archive, genome_type, content


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
    for row, image in zip(archive.rows(), images):
        if image is not None:
            target = out / png_name(row.class_id, row.name)
            write_png(target, Image.fromarray(image if image.shape[-1] == 3 else image[..., 0]))
            if genomes:
                save_genome_json(target.with_suffix(".json"), genome_type,
                                 content["genome"]["type"], content["genome"],
                                 archive.genomes[row.cls])
            written.append(target)
    montage = out / MONTAGE_PNG
    write_png(montage, make_montage(images, montage_labels(archive)))
    return written + [montage]
