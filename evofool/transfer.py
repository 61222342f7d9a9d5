"""Do fooling images transfer? Score a run's elites with other classifiers.

``rescore_run`` gives, per class, the elite's confidence on the model it was evolved for and
on another model (and that model's top-1 class); ``transfer_matrix`` does this for several
runs and models and summarises each pair by the mean confidence of the elites in their own
class and the fraction still above a threshold: the paper's question of whether images that
fool one network fool another (sec. 3.3, two LeNets trained from different seeds).
"""
from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np

from evofool.errors import EvofoolError
from evofool.files import csv_text, write_json, write_png, write_text
from evofool.fitness.registry import ModelSpec, build_target, resolve_device
from evofool.run_data import RunData, read_run


def _load(spec: ModelSpec, device: str):
    return build_target(spec.spec, resolve_device(device, "--device"), spec.weights_path)


def _elite_scores(run: RunData, target) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(filled cells, their class ids, the target's scores of their elites over all of its
    classes (n, target classes)). The target must use the run's labels for those classes."""
    ids = np.array(run.archive.class_ids)
    if ids.max() >= target.num_classes or any(
            target.class_names[i] != name for i, name in zip(ids, run.archive.class_names)):
        raise EvofoolError(f"model '{target.name}' does not label its outputs like run "
                           f"'{run.run_dir}' ({target.num_classes} classes, e.g. class "
                           f"{ids[0]} is '{target.class_names[min(ids[0], target.num_classes - 1)]}'"
                           f" vs '{run.archive.class_names[0]}')")
    cells = np.flatnonzero(run.archive.filled)
    chunks = [target.scores(run.genome_type.render(run.archive.genomes[cells[i:i + 256]]))
              for i in range(0, len(cells), 256)]
    scores = np.concatenate(chunks) if chunks else np.zeros((0, target.num_classes))
    return cells, ids[cells], scores


def rescore_run(run_dir: str | Path, model: ModelSpec, device: str = "auto") -> list[dict]:
    """Per filled class: confidence on the source model and on ``model``, and its top-1."""
    run = read_run(run_dir)
    target = _load(model, device)
    cells, class_ids, scores = _elite_scores(run, target)
    rows = []
    for cell, class_id, row in zip(cells, class_ids, scores):
        top1 = int(row.argmax())
        rows.append({"class": int(class_id), "name": run.archive.class_names[cell],
                     "source_confidence": float(run.archive.confidence[cell]),
                     "target_confidence": float(row[class_id]),
                     "target_top1": top1, "target_top1_name": target.class_names[top1],
                     "target_top1_confidence": float(row[top1])})
    return rows


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")


def write_rescore(run_dir: str | Path, model: ModelSpec, out: str | Path | None = None,
                  device: str = "auto") -> tuple[Path, Path, list[dict]]:
    rows = rescore_run(run_dir, model, device)
    out = Path(out) if out else Path(run_dir) / f"rescore_{_slug(model.label)}"
    try:
        csv_path, json_path = out.with_suffix(".csv"), out.with_suffix(".json")
        out.parent.mkdir(parents=True, exist_ok=True)
        write_text(csv_path, csv_text(rows, None if rows else ["class"]))
        write_json(json_path, {"run": str(run_dir), "model": model.label, "classes": rows})
    except (OSError, ValueError) as exc:  # ValueError: no file name, a NUL byte
        reason = getattr(exc, "strerror", None) or " ".join(str(exc).split())[:200]
        raise EvofoolError(f"rescore --out '{out}': cannot write the .csv and .json there: "
                           f"{reason}") from None
    return csv_path, json_path, rows


def transfer_matrix(run_dirs: list[str | Path], models: list[ModelSpec], threshold: float = 0.99,
                    device: str = "auto") -> dict:
    """For every (run, model), over the run's elites, each scored in its own class:
    ``mean_confidence``; ``fraction_fooled``, the fraction at or above ``threshold``;
    ``fraction_half``, the fraction at or above 50%; and ``top1_agreement``, the fraction the
    model puts in the elite's own class (its top-1 is the class the elite was evolved for).
    An empty run counts 0 everywhere."""
    runs = [read_run(path) for path in run_dirs]
    targets = [_load(model, device) for model in models]
    figures = {key: np.zeros((len(runs), len(models)))
               for key in ("mean_confidence", "fraction_fooled", "fraction_half",
                           "top1_agreement")}
    for i, run in enumerate(runs):
        for j, target in enumerate(targets):
            cells, class_ids, scores = _elite_scores(run, target)
            if not len(cells):
                continue
            own = scores[np.arange(len(cells)), class_ids]
            figures["mean_confidence"][i, j] = own.mean()
            figures["fraction_fooled"][i, j] = (own >= threshold).mean()
            figures["fraction_half"][i, j] = (own >= 0.5).mean()
            figures["top1_agreement"][i, j] = (scores.argmax(axis=1) == class_ids).mean()
    return {"runs": [str(r.run_dir) for r in runs], "models": [m.label for m in models],
            "threshold": threshold, **{key: value.tolist() for key, value in figures.items()}}


def write_transfer(matrix: dict, out: str | Path) -> list[Path]:
    """CSV (one row per run x model), JSON and a heatmap PNG into folder ``out``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EvofoolError(f"cannot create output folder '{out}': {exc.strerror}") from None
    rows = [{"run": run, "model": model,
             "mean_confidence": matrix["mean_confidence"][i][j],
             f"fraction_at_or_above_{matrix['threshold']:g}": matrix["fraction_fooled"][i][j],
             "fraction_at_or_above_0.5": matrix["fraction_half"][i][j],
             "top1_agreement": matrix["top1_agreement"][i][j]}
            for i, run in enumerate(matrix["runs"]) for j, model in enumerate(matrix["models"])]
    write_text(out / "transfer.csv", csv_text(rows))
    write_json(out / "transfer.json", matrix)

    mean = np.array(matrix["mean_confidence"])
    fooled = np.array(matrix["fraction_fooled"])
    agree = np.array(matrix["top1_agreement"])
    figure, axis = plt.subplots(figsize=(2.2 + 1.8 * mean.shape[1], 1.2 + 0.8 * mean.shape[0]))
    image = axis.imshow(mean, vmin=0, vmax=1, cmap="viridis")
    axis.set_xticks(range(mean.shape[1]), [Path(m).name for m in matrix["models"]],
                    rotation=20, ha="right", fontsize=8)
    axis.set_yticks(range(mean.shape[0]), [Path(r).name for r in matrix["runs"]], fontsize=8)
    for i in range(mean.shape[0]):
        for j in range(mean.shape[1]):
            axis.text(j, i, f"{mean[i, j]:.3f}\n{fooled[i, j]:.0%} >= {matrix['threshold']:g}"
                            f"\ntop-1 {agree[i, j]:.0%}",
                      ha="center", va="center", fontsize=7,
                      color="white" if mean[i, j] < 0.6 else "black")
    axis.set_xlabel("scored by model")
    axis.set_ylabel("elites of run")
    figure.colorbar(image, ax=axis, label="mean confidence in own class")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    write_png(out / "transfer.png", Image.open(buffer))
    return [out / "transfer.csv", out / "transfer.json", out / "transfer.png"]
