"""``evofool ablate RUN_DIR``: which parts of each elite does the classifier need?

The paper (Nguyen, Yosinski & Clune 2015, the repetition ablation of its CPPN ImageNet
images) removed some copies of a repeated motif by hand and saw the confidence drop. This
module does the same for every elite of a run, automatically:

* **Occlusion.** The elite is cut into a ``grid`` x ``grid`` grid of tiles (default 4 x 4;
  tiles differ by at most a pixel when the side is no multiple of ``grid``). Tiles are
  replaced, one more at a time, by the image's mean colour, until none is left; the target
  class's confidence after each step gives a curve of confidence against the fraction of the
  tiles kept. Two orders: ``orders`` random orders (seeded by ``seed``; the curve shown is
  their mean) and the greedy order, which at each step occludes the tile whose removal
  lowers the confidence most (all remaining candidates of a step are scored in one batch):
  the order that hurts most, step by step.
* **Repetition.** Every tile is scored *alone*: kept in its place on a background of the
  image's mean colour (every other tile occluded). The tile that scores highest is the
  image's most confident patch. It is cropped, scaled to ``1/n`` of the image's side and
  tiled ``n`` x ``n`` times over the image (copies cut at the right and bottom edges when
  the side is no multiple of ``n``), for ``n`` = 1 (the patch scaled up to the whole image)
  to ``max_copies``; at ``n = grid`` the copies have the patch's own size. The confidence
  against the number of copies ``n * n`` says whether more copies of the motif make the
  classifier more confident.

Summary per class: the elite's confidence on the model, the fraction of the tiles that must
be kept (greedy order, and the mean over the random orders) to keep at least half of it,
the confidence with every tile occluded (the mean colour alone), the best tile and its
confidence alone, and the confidence of 1 copy and of ``max_copies`` x ``max_copies``
copies. "Must be kept": occluding tiles in that order, the confidence first falls below half
of the elite's after some step; the fraction kept just before that step (1.0 when the first
tile already halves it, 0.0 when it never falls below half).

Images are the elites rendered from their genomes at the size evolution scored (what
archive.json's ``confidence`` is), and the model is the run's own target rebuilt from its
config.yaml, or another one (``--model SPEC[@WEIGHTS]``) that labels its classes like the
run. Everything is scored in batches through ``Target.scores``.

Writes ``ablation.json`` (every curve), ``ablation.csv`` (the summary, one row per class)
and ``ablation.png`` (a small plot per class) into ``RUN_DIR/ablation`` or ``--out``;
``evofool report`` shows the summary and the plot when ``RUN_DIR/ablation/ablation.json``
exists (:func:`read_summary`).
"""
from __future__ import annotations

import dataclasses
import io
import math
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from evofool.errors import EvofoolError
from evofool.files import csv_text, write_json, write_png, write_text
from evofool.montage import confidence_label
from evofool.readers import MAX_JSON_BYTES, is_int, is_number, read_json, type_name
from evofool.run_data import RunData, read_run
from evofool.schema import show

DEFAULT_GRID = 4
DEFAULT_MAX_COPIES = 6
DEFAULT_ORDERS = 3
MAX_GRID = 16            # greedy scores grid^2 (grid^2 + 1) / 2 images per elite
MAX_COPIES = 32
MAX_ORDERS = 100
KEEP = 0.5               # "keep at least half of the elite's confidence"
MAX_PLOTTED = 60         # classes drawn in ablation.png (all are in the JSON and CSV)
# Pixels per forward call: 16 ImageNet images (on a CPU, EfficientNet-Lite0 scores 16 images
# per pass faster than 64 or 128: docs/BENCHMARKS.md), thousands of MNIST digits.
_FLOATS_PER_BATCH = 16 * 3 * 224 * 224
FOLDER = "ablation"
JSON_NAME, CSV_NAME, PNG_NAME = "ablation.json", "ablation.csv", "ablation.png"

#: The summary's columns (ablation.csv, the printed table, the report): key -> heading.
SUMMARY_COLUMNS = {
    "class": "class", "name": "name", "confidence": "conf.",
    "kept_for_half_greedy": "kept50 greedy", "kept_for_half_random": "kept50 random",
    "confidence_all_occluded": "all occl.", "best_tile": "tile",
    "confidence_tile_alone": "alone", "confidence_1_copy": "1 copy",
    "copies_max": "copies", "confidence_max_copies": "max copies",
}
#: What the headings mean (the report's legend, README).
LEGEND = ("conf.: the elite's confidence in its class; kept50: the fraction of the grid's "
          "tiles that must be kept (occluding tiles greedily, or in random orders: their "
          "mean) to keep at least half of it; all occl.: every tile in the mean colour; tile "
          "(row,column) and alone: the most confident tile, alone on the mean colour; 1 copy "
          "/ max copies: that tile scaled and tiled once / copies times over the image")

Scorer = Callable[[torch.Tensor], np.ndarray]


# --- options ---------------------------------------------------------------------------------

def check_options(grid, max_copies, orders, seed, size: tuple[int, int]) -> None:
    """One-line EvofoolError for an option out of range; ``size``: the images' (H, W), whose
    smaller side bounds the grid and the copies (a tile or a copy of at least one pixel)."""
    def check(value, option: str, low: int, high: int, why: str = "") -> None:
        if not is_int(value) or not low <= value <= high:
            raise EvofoolError(f"{option} {show(value)} is invalid: expected an integer from "
                               f"{low} to {high}{why}")

    pixels = f" (the images are {size[0]} x {size[1]} pixels)"
    check(grid, "--grid", 2, min(MAX_GRID, *size), pixels if min(size) < MAX_GRID else "")
    check(max_copies, "--max-copies", 1, min(MAX_COPIES, *size),
          pixels if min(size) < MAX_COPIES else "")
    check(orders, "--orders", 1, MAX_ORDERS)
    check(seed, "--seed", 0, 2**32 - 1)


# --- the ablation of one image ---------------------------------------------------------------

def tile_masks(height: int, width: int, grid: int) -> torch.Tensor:
    """(grid * grid, H, W) booleans, tile ``row * grid + column`` True on its pixels."""
    rows = np.linspace(0, height, grid + 1).round().astype(int)
    columns = np.linspace(0, width, grid + 1).round().astype(int)
    masks = torch.zeros((grid * grid, height, width), dtype=torch.bool)
    for r in range(grid):
        for c in range(grid):
            masks[r * grid + c, rows[r]:rows[r + 1], columns[c]:columns[c + 1]] = True
    return masks


def occlude(image: torch.Tensor, masks: torch.Tensor, occluded: np.ndarray) -> torch.Tensor:
    """``image`` (1, C, H, W) once per row of ``occluded`` (B, tiles) booleans: with those
    rows' tiles in the image's mean colour. (B, C, H, W)."""
    chosen = torch.as_tensor(occluded, dtype=torch.float32)
    pixels = (chosen @ masks.flatten(1).float()).view(len(chosen), 1, *masks.shape[1:]) > 0
    fill = image.mean(dim=(2, 3), keepdim=True)
    return torch.where(pixels, fill, image)


def copies(patch: torch.Tensor, n: int, size: tuple[int, int]) -> torch.Tensor:
    """``patch`` (1, C, h, w) scaled to 1/n of ``size`` and tiled n x n times over it."""
    cell = (math.ceil(size[0] / n), math.ceil(size[1] / n))
    small = F.interpolate(patch, size=cell, mode="bilinear", align_corners=False,
                          antialias=True)
    return small.repeat(1, 1, n, n)[..., :size[0], :size[1]]


def kept_for_half(confidences: list[float], tiles: int) -> float:
    """The fraction of the tiles kept just before the confidence first falls below half of
    the first (unablated) value: 1.0 if the first step does it, 0.0 if none does."""
    below = [s for s, value in enumerate(confidences) if value < KEEP * confidences[0]]
    return 1.0 - (below[0] - 1) / tiles if below else 0.0


def ablate_image(image: torch.Tensor, score: Scorer, grid: int = DEFAULT_GRID,
                 max_copies: int = DEFAULT_MAX_COPIES, orders: int = DEFAULT_ORDERS,
                 seed: int = 0) -> dict:
    """Occlusion (random and greedy orders) and repetition curves of one image (1, C, H, W)
    in [0, 1]; ``score`` maps a batch of images to the target class's confidence, one value
    per image. Curves are lists; index ``s`` of an occlusion curve is ``s`` tiles occluded,
    its fraction kept ``1 - s / grid**2``."""
    height, width = image.shape[-2:]
    masks = tile_masks(height, width, grid)
    tiles = grid * grid
    fraction_kept = [1.0 - s / tiles for s in range(tiles + 1)]

    rng = np.random.default_rng(seed)
    random_orders = [rng.permutation(tiles) for _ in range(orders)]
    steps = np.zeros((orders * (tiles + 1), tiles), dtype=bool)
    for i, order in enumerate(random_orders):
        for s in range(1, tiles + 1):
            steps[i * (tiles + 1) + s, order[:s]] = True
    random_curves = score(occlude(image, masks, steps)).reshape(orders, tiles + 1)
    confidence = float(random_curves[0, 0])

    occluded = np.zeros(tiles, dtype=bool)
    greedy_order, greedy_curve = [], [confidence]
    for _ in range(tiles):
        candidates = np.flatnonzero(~occluded)
        trial = np.repeat(occluded[None], len(candidates), axis=0)
        trial[np.arange(len(candidates)), candidates] = True
        values = score(occlude(image, masks, trial))
        best = int(np.argmin(values))  # ties: the first tile
        occluded[candidates[best]] = True
        greedy_order.append(int(candidates[best]))
        greedy_curve.append(float(values[best]))

    alone = score(occlude(image, masks, ~np.eye(tiles, dtype=bool)))
    tile = int(np.argmax(alone))
    rows, columns = masks[tile].any(dim=1), masks[tile].any(dim=0)
    patch = image[..., rows, :][..., columns]
    counts = list(range(1, max_copies + 1))
    repeated = score(torch.cat([copies(patch, n, (height, width)) for n in counts]))

    random_mean = random_curves.mean(axis=0)
    return {
        "confidence": confidence,
        "fraction_kept": fraction_kept,
        "random": {"orders": [o.tolist() for o in random_orders],
                   "confidence": random_curves.tolist(),
                   "mean_confidence": random_mean.tolist()},
        "greedy": {"order": greedy_order, "confidence": greedy_curve},
        "repetition": {"tile": tile, "tile_row": tile // grid, "tile_column": tile % grid,
                       "tile_alone_confidence": alone.tolist(),
                       "copies_per_side": counts, "copies": [n * n for n in counts],
                       "confidence": repeated.tolist()},
        "summary": {
            "confidence": confidence,
            "kept_for_half_greedy": kept_for_half(greedy_curve, tiles),
            "kept_for_half_random": float(np.mean([kept_for_half(list(curve), tiles)
                                                   for curve in random_curves])),
            "confidence_all_occluded": greedy_curve[-1],
            "best_tile": f"{tile // grid},{tile % grid}",
            "confidence_tile_alone": float(alone[tile]),
            "confidence_1_copy": float(repeated[0]),
            "copies_max": max_copies * max_copies,
            "confidence_max_copies": float(repeated[-1]),
        },
    }


def class_scorer(target, column: int) -> Scorer:
    """``target``'s confidence in output ``column``, scored in batches that fit in memory."""
    def score(images: torch.Tensor) -> np.ndarray:
        per_image = max(1, images[0].numel())
        step = max(1, _FLOATS_PER_BATCH // per_image)
        return np.concatenate([target.scores(images[i:i + step])[:, column]
                               for i in range(0, len(images), step)])
    return score


# --- a run ---------------------------------------------------------------------------------

def _run_target(run: RunData, device: str):
    """The run's own target, rebuilt from its config.yaml (with the run's scoring options),
    scoring all of the model's outputs so that columns are class ids; and its label."""
    from evofool.config import validate_experiment
    from evofool.fitness.registry import resolve_device
    from evofool.transfer import ModelSpec
    experiment = validate_experiment(run.config, str(run.run_dir / "config.yaml"), "run",
                                     artifact=True)
    model = dataclasses.replace(experiment.model, classes=None)  # the softmax is the same
    label = ModelSpec(model.spec, model.weights_path).label
    return model.build_target(resolve_device(device, "--device")), label


def ablate_run(run_dir: str | Path, model=None, device: str = "auto",
               grid: int = DEFAULT_GRID, max_copies: int = DEFAULT_MAX_COPIES,
               orders: int = DEFAULT_ORDERS, seed: int = 0) -> dict:
    """Ablate every elite of a run (module docstring); returns what ablation.json holds.
    ``model``: ``"SPEC"`` or ``"SPEC@WEIGHTS_FILE"`` or a ModelSpec (default: the run's own
    model)."""
    from evofool.transfer import ModelSpec, _elite_scores, _load
    run = read_run(run_dir)
    size = tuple(int(side) for side in run.genome_type.size)
    check_options(grid, max_copies, orders, seed, size)
    if model is None:
        target, label = _run_target(run, device)
    else:
        spec = model if isinstance(model, ModelSpec) else ModelSpec.parse(model)
        target, label = _load(spec, device), spec.label
    # the filled cells, and a one-line error if the model does not label classes like the run
    cells, class_ids, _ = _elite_scores(run, target)
    classes = []
    for cell, class_id in zip(cells, class_ids):
        image = run.genome_type.render(run.archive.genomes[cell:cell + 1]).detach().cpu()
        result = ablate_image(image.float(), class_scorer(target, int(class_id)), grid,
                              max_copies, orders, seed)
        head = {"class": int(class_id), "name": run.archive.class_names[cell],
                "cell": int(cell), "archive_confidence": float(run.archive.confidence[cell])}
        result["summary"] = {"class": head["class"], "name": head["name"],
                             **result["summary"]}
        classes.append({**head, **result})
    return {"run": str(run.run_dir), "model": label,
            "own_model": model is None, "image_size": list(size), "grid": grid,
            "max_copies": max_copies, "orders": orders, "seed": seed, "keep": KEEP,
            "classes": classes}


def summary_rows(result: dict) -> list[dict]:
    """One row per class: :data:`SUMMARY_COLUMNS`."""
    return [dict(entry["summary"]) for entry in result["classes"]]


# --- output ----------------------------------------------------------------------------------

def _out_folder(run_dir: Path, out: str | Path | None) -> Path:
    """``out``, or ``RUN_DIR/ablation`` (which, in a run directory that may come from a
    stranger, must be a real folder or absent: never a link that leads the writes
    elsewhere); made if needed."""
    folder = Path(out) if out is not None else run_dir / FOLDER
    if out is None and (folder.is_symlink() or (folder.exists() and not folder.is_dir())):
        raise EvofoolError(f"'{folder}' is a symbolic link or a file, expected an ablation "
                           "folder (remove it, or give --out)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EvofoolError(f"cannot create output folder '{folder}': "
                           f"{exc.strerror or exc}") from None
    return folder


def plot(result: dict):
    """A small plot per class (at most :data:`MAX_PLOTTED`): occlusion curves (greedy and the
    random orders' mean) against the fraction kept, and confidence against the number of
    copies. A PIL image."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    classes = result["classes"][:MAX_PLOTTED]
    per_row = max(1, min(3, len(classes)))  # classes per row, two plots each
    rows = max(1, math.ceil(len(classes) / per_row))
    # inches, and margins in inches (tight_layout is slow on many axes)
    width, height = 4.6 * per_row, 2.0 * rows + 0.4
    figure, axes = plt.subplots(rows, 2 * per_row, figsize=(width, height), squeeze=False)
    figure.subplots_adjust(left=0.5 / width, right=1 - 0.1 / width, top=1 - 0.6 / height,
                           bottom=0.45 / height, wspace=0.3, hspace=0.75)
    for axis in axes.flat:
        axis.set_visible(False)
    for i, entry in enumerate(classes):
        row, column = divmod(i, per_row)
        left, right = axes[row, 2 * column], axes[row, 2 * column + 1]
        left.set_visible(True)
        right.set_visible(True)
        name = str(entry["name"])[:18].replace("$", r"\$")  # no mathtext
        kept = entry["fraction_kept"]
        left.plot(kept, entry["greedy"]["confidence"], color="tab:red", lw=1.2, label="greedy")
        left.plot(kept, entry["random"]["mean_confidence"], color="tab:blue", lw=1.2,
                  label="random")
        left.set_xlim(1.02, -0.02)
        left.set_title(f"{entry['class']} {name}" if name != str(entry["class"]) else name,
                       fontsize=8)
        left.set_xlabel("fraction kept", fontsize=7)
        repetition = entry["repetition"]
        right.plot(repetition["copies"], repetition["confidence"], "o-", color="tab:green",
                   lw=1.2, ms=3)
        right.set_xscale("log")
        right.set_xticks(repetition["copies"], [str(c) for c in repetition["copies"]])
        right.minorticks_off()
        right.set_xlabel("copies of the best tile", fontsize=7)
        left.axhline(KEEP * entry["confidence"], color="gray", lw=0.8, ls=":")
        for axis in (left, right):
            axis.set_ylim(-0.03, 1.03)
            axis.tick_params(labelsize=6)
            axis.grid(alpha=0.3)
        if i % per_row == 0:
            left.set_ylabel("confidence", fontsize=7)
        if i == 0:
            left.legend(fontsize=6, loc="best")
    more = len(result["classes"]) - len(classes)
    figure.suptitle(f"ablation on {result['model']}: grid {result['grid']} x {result['grid']}"
                    + (f" (first {len(classes)} classes; {more} more in ablation.json)"
                       if more else ""), fontsize=9, y=1 - 0.1 / height)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return Image.open(buffer)


def _csv_value(value):
    return f"{value:.6g}" if isinstance(value, float) else value


def write_ablation(result: dict, out: str | Path | None = None) -> list[Path]:
    """ablation.json, ablation.csv and ablation.png into ``out`` (default RUN_DIR/ablation)."""
    folder = _out_folder(Path(result["run"]), out)
    rows = [{key: _csv_value(row[key]) for key in SUMMARY_COLUMNS}
            for row in summary_rows(result)]
    paths = [folder / JSON_NAME, folder / CSV_NAME, folder / PNG_NAME]
    try:
        write_json(paths[0], result)
        write_text(paths[1], csv_text(rows, list(SUMMARY_COLUMNS)))
        write_png(paths[2], plot(result))
    except OSError as exc:
        raise EvofoolError(f"cannot write the ablation into '{folder}': "
                           f"{exc.strerror or exc}") from None
    return paths


def cell_text(key: str, value) -> str:
    """A summary value as the table shows it: confidences in percent, fractions as
    decimals."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if key.startswith("confidence"):
        return confidence_label(value, 2)  # rounded down: 99.996% is no 100.00%
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def format_table(rows: list[dict]) -> str:
    """The summary rows as a text table (names cut to 16 characters)."""
    table = [list(SUMMARY_COLUMNS.values())] + [
        [cell_text(key, row[key])[:16] for key in SUMMARY_COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(SUMMARY_COLUMNS))]
    return "\n".join("  ".join(text.ljust(w) if i == 1 else text.rjust(w)
                               for i, (text, w) in enumerate(zip(line, widths))).rstrip()
                     for line in table)


# --- reading back (the report) ---------------------------------------------------------------

def read_summary(path: str | Path) -> tuple[dict, list[dict]]:
    """ablation.json (from any run directory, so read as untrusted): its settings (``model``,
    ``grid``, ``max_copies``, ``orders``) and the summary rows, every field checked; a
    malformed file is a one-line EvofoolError naming the file and the field."""
    content = read_json(path, MAX_JSON_BYTES, "an ablation (evofool ablate's ablation.json)")
    where = f"'{path}'"
    if not isinstance(content, dict):
        raise EvofoolError(f"{where} holds {type_name(content)}, expected a JSON object")
    settings = {}
    for key, check, expected in (("model", lambda v: isinstance(v, str), "a model name"),
                                 ("grid", is_int, "an integer"),
                                 ("max_copies", is_int, "an integer"),
                                 ("orders", is_int, "an integer"),
                                 ("classes", lambda v: isinstance(v, list), "a list")):
        if not check(content.get(key)):
            raise EvofoolError(f"{where}: {key} is {type_name(content.get(key))}, expected "
                               f"{expected}")
        settings[key] = content[key]
    rows = []
    for i, entry in enumerate(settings.pop("classes")):
        summary = entry.get("summary") if isinstance(entry, dict) else None
        if not isinstance(summary, dict):
            raise EvofoolError(f"{where}: classes[{i}].summary is {type_name(summary)}, "
                               "expected an object")
        for key in SUMMARY_COLUMNS:
            value = summary.get(key)
            good = (isinstance(value, str) if key in ("name", "best_tile") else
                    is_int(value) if key in ("class", "copies_max") else
                    value is None or (is_number(value) and math.isfinite(value)))
            if not good:
                raise EvofoolError(f"{where}: classes[{i}].summary.{key} is "
                                   f"{type_name(value)}, expected "
                                   f"{'text' if key in ('name', 'best_tile') else 'a number'}")
        rows.append({key: summary[key] for key in SUMMARY_COLUMNS})
    return settings, rows
