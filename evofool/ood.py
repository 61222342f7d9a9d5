"""Fooling images as an out-of-distribution benchmark (``evofool ood``).

The elites of runs (or an ``export-dataset`` folder) are the OOD set; the in-distribution set
is the MNIST test split (``mnist-test``: the IDX files of ``--data-dir`` or
``$EVOFOOL_MNIST_DIR``) or an ImageFolder (``DIR/CLASS/IMAGE``). Four standard detectors of
pytorch-ood (an optional extra) score both sets on one classifier, and OODMetrics gives AUROC,
FPR at 95% TPR and AUPR (OOD images are the positives; higher scores mean more OOD):

- MaxSoftmax (Hendrycks & Gimpel 2017) and EnergyBased (Liu et al. 2020), on the logits;
- ODIN (Liang et al. 2018) with pytorch-ood's defaults, temperature 1000 and a gradient step
  of eps 0.0014 on the [0, 1] image;
- Mahalanobis (Lee et al. 2018), fit on labelled in-distribution images: for mnist-test, up to
  ``fit_images`` MNIST training images (the folder's train-5k has 5,000); for a folder, a
  seeded random half of it (that half is then left out of every detector's in-dist set). Its
  features are LeNet's penultimate layer (the 500 ReLU units before fc2); other models use
  their logits (the row says so).

The classifier is a target built from its spec (:mod:`evofool.fitness.registry`), scoring the
whole image (one crop, fp32): the detectors see a module from [0, 1] images to logits, with
the target's resizing and normalization inside.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from evofool.dataset_export import (decode_image, is_dataset_folder, model_text, read_manifest,
                                    read_png, read_shared_file, run_elites,
                                    run_experiment_config)
from evofool.errors import EvofoolError, one_line
from evofool.files import csv_text, write_json, write_text
from evofool.readers import read_bytes
from evofool.run_data import read_run
from evofool.run_dirs import resolve_run_dir

DETECTORS = ("MaxSoftmax", "Energy", "ODIN", "Mahalanobis")
ODIN_TEMPERATURE, ODIN_EPS = 1000.0, 0.0014  # pytorch-ood's defaults
MNIST_TEST = "mnist-test"
MNIST_ENV = "EVOFOOL_MNIST_DIR"
FIT_IMAGES = 10_000
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")
MAX_FOLDER_IMAGES = 1_000_000
MAX_IMAGE_FILE_BYTES = 64 << 20
COLUMNS = ["detector", "auroc", "fpr_at_95_tpr", "aupr_in", "aupr_out", "ood_images",
           "in_dist_images", "model", "in_dist", "settings"]


def _pytorch_ood():
    """pytorch-ood's detector module and OODMetrics (an optional extra: one line without)."""
    try:
        from pytorch_ood import detector
        try:
            from pytorch_ood.metrics import OODMetrics
        except ImportError:  # before 0.2 it lived in utils
            from pytorch_ood.utils import OODMetrics
    except ImportError:
        raise EvofoolError("evofool ood needs pytorch-ood: pip install 'evofool[ood]' (or "
                           "pip install 'pytorch-ood>=0.4')") from None
    return detector, OODMetrics


@dataclass
class Images:
    """Images with labels (-1: OOD): each (H, W, C) uint8, or an image file read when used."""

    items: list = field(default_factory=list)
    labels: list[int] = field(default_factory=list)

    def subset(self, indices) -> "Images":
        return Images([self.items[i] for i in indices], [self.labels[i] for i in indices])


def _load(item) -> np.ndarray:
    if isinstance(item, np.ndarray):
        return item
    what = "an in-distribution image"
    return decode_image(read_bytes(item, MAX_IMAGE_FILE_BYTES, what), item, what)


def _batches(images: Images, size: int):
    """(float [0, 1] NCHW tensor, labels) batches; images of one shape per batch."""
    for start in range(0, len(images.items), size):
        groups: dict[tuple, tuple[list, list]] = {}
        for item, label in zip(images.items[start:start + size],
                               images.labels[start:start + size]):
            array = _load(item)
            group = groups.setdefault(array.shape, ([], []))
            group[0].append(array)
            group[1].append(label)
        for arrays, labels in groups.values():
            x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255.0
            yield x, torch.tensor(labels)


# --- the sets ----------------------------------------------------------------------------

def read_sources(sources: list[str | Path]) -> tuple[Images, list[tuple[str, str, str]]]:
    """The OOD images of run directories and export-dataset folders, and per source (source,
    its model spec, where that was read)."""
    if not sources:
        raise EvofoolError("ood: give at least one run directory or export-dataset folder")
    images, models = Images(), []
    for source in sources:
        path = resolve_run_dir(source)
        if path.is_dir() and is_dataset_folder(path):
            rows = read_manifest(path)
            for row in rows:
                what, file = f"an image of the dataset '{path}'", path / row["file"]
                data = read_shared_file(file, what, MAX_IMAGE_FILE_BYTES)
                images.items.append(decode_image(data, file, what, png=True))
            for spec in sorted({row["model"] for row in rows}):
                models.append((str(source), spec, str(path / "manifest.json")))
        else:
            run = read_run(path)
            spec = model_text(run_experiment_config(run).model)
            size = tuple(int(side) for side in run.genome_type.size)
            for elite in run_elites(run):
                what = "an elite's PNG (archive/class_*.png)"
                data = read_png(elite["png"], what, size)
                images.items.append(decode_image(data, elite["png"], what, png=True))
            models.append((str(source), spec, ""))
    images.labels = [-1] * len(images.items)
    if not images.items:
        raise EvofoolError(f"the sources hold no elites ({', '.join(map(str, sources))}): "
                           "nothing to score")
    return images, models


def image_folder(folder: Path, option: str = "--in-dist") -> Images:
    """An ImageFolder (``DIR/CLASS/.../IMAGE``, classes in sorted order), read lazily."""
    if not folder.is_dir():
        raise EvofoolError(f"{option} '{folder}' is neither '{MNIST_TEST}' nor a folder of "
                           "images (DIR/CLASS/IMAGE.png, as torchvision's ImageFolder)")
    try:
        classes = sorted(entry.name for entry in os.scandir(folder)
                         if entry.is_dir() and not entry.name.startswith("."))
        images = Images()
        for label, name in enumerate(classes):
            for root, dirs, files in os.walk(folder / name):  # no symlinked folders: no loops
                dirs.sort()
                for file in sorted(files):
                    if Path(file).suffix.lower() in IMAGE_SUFFIXES and not file.startswith("."):
                        images.items.append(Path(root) / file)
                        images.labels.append(label)
                if len(images.items) > MAX_FOLDER_IMAGES:
                    raise EvofoolError(f"{option} '{folder}' holds more than "
                                       f"{MAX_FOLDER_IMAGES:,} images")
    except OSError as exc:
        raise EvofoolError(f"{option} '{folder}': cannot read ({exc.strerror or exc})") from None
    if not images.items:
        raise EvofoolError(f"{option} '{folder}' holds no images in class folders (expected "
                           f"DIR/CLASS/IMAGE with a suffix of {', '.join(IMAGE_SUFFIXES)})")
    return images


def mnist_folder(data_dir: str | Path | None) -> tuple[Path, str]:
    """The MNIST IDX folder from ``data_dir`` or $EVOFOOL_MNIST_DIR, and the option it came
    from (for messages)."""
    if data_dir is not None:
        return Path(data_dir), "--data-dir"
    if os.environ.get(MNIST_ENV):
        return Path(os.environ[MNIST_ENV]), MNIST_ENV
    raise EvofoolError(f"--in-dist {MNIST_TEST} needs the MNIST IDX files: give --data-dir "
                       f"DIR or set {MNIST_ENV} to a folder with t10k-images-idx3-ubyte.gz, "
                       "t10k-labels-idx1-ubyte.gz and train[-5k]-*-ubyte.gz (docs/LENET.md, "
                       "'Training data')")


def in_dist_sets(in_dist: str, data_dir, fit_images: int, seed: int
                 ) -> tuple[Images, Images, str]:
    """(in-distribution test images, Mahalanobis fit images, what the fit set is)."""
    rng = np.random.default_rng(seed)
    if in_dist == MNIST_TEST:
        from evofool.fitness.mnist_data import load_idx_mnist
        folder, option = mnist_folder(data_dir)
        try:
            data = load_idx_mnist(folder)
        except ValueError as exc:
            raise EvofoolError(f"{option}: {' '.join(str(exc).split())}") from None
        test = Images(list(data["test_images"][..., None]),
                      [int(v) for v in data["test_labels"]])
        train = data["train_images"]
        chosen = np.sort(rng.choice(len(train), min(fit_images, len(train)), replace=False))
        fit = Images(list(train[chosen][..., None]),
                     [int(v) for v in data["train_labels"][chosen]])
        return test, fit, f"{len(fit.items):,} MNIST training images ({data['train_source']})"
    images = image_folder(Path(in_dist))
    if len(images.items) < 4:
        raise EvofoolError(f"--in-dist '{in_dist}' holds {len(images.items)} images, expected "
                           "at least 4 (half fit Mahalanobis, half are scored)")
    order = rng.permutation(len(images.items))
    half = min(len(order) // 2, fit_images)
    fit, test = images.subset(np.sort(order[:half])), images.subset(np.sort(order[half:]))
    return test, fit, f"{half:,} images of the folder, left out of its scored images"


# --- the model ---------------------------------------------------------------------------

class Logits(nn.Module):
    """[0, 1] NCHW images -> the target's logits (its resizing and normalization inside)."""

    features = "the logits (no penultimate layer known for this model)"

    def __init__(self, target) -> None:
        super().__init__()
        self.target = target
        self.model = target.model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.target.prepare(x)).float()

    def with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, Mahalanobis features) of one forward pass."""
        logits = self(x)
        return logits, logits


class LeNetLogits(Logits):
    """LeNet's logits, and as features its penultimate layer: the input of fc2."""

    features = "LeNet's penultimate layer (the 500 ReLU units of fc1)"

    def with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        captured = []
        hook = self.model.fc2.register_forward_pre_hook(lambda _, args: captured.append(args[0]))
        try:
            logits = self(x)
        finally:
            hook.remove()
        return logits, captured[0].float()


def _model_spec(model, models: list[tuple[str, str, str]]):
    """The ModelSpec to score with: ``model``, else the one model every source names."""
    from evofool.fitness.registry import ModelSpec, check_spec_from_artifact
    if model is not None:
        return model if isinstance(model, ModelSpec) else ModelSpec.parse(model)
    named = sorted({spec for _, spec, _ in models})
    if len(named) != 1:
        listed = "; ".join(f"{source}: {spec}" for source, spec, _ in models)
        raise EvofoolError(f"the sources were evolved against different models ({listed}): "
                           "give --model SPEC to score them all on one")
    if " + " in named[0]:
        raise EvofoolError(f"the sources were evolved against an ensemble ({named[0]}): give "
                           "--model SPEC, one of its members")
    spec = ModelSpec.parse(named[0])
    for _, _, manifest in models:
        if manifest:  # a run's config.yaml was checked when it was read
            check_spec_from_artifact(spec.spec, manifest)
    return spec


def logits_module(target) -> Logits:
    from evofool.fitness.lenet import LeNet
    return LeNetLogits(target) if isinstance(target.model, LeNet) else Logits(target)


# --- scoring -----------------------------------------------------------------------------

def _scores(images: Images, detectors: dict, logits: Logits,
            batch_size: int) -> dict[str, torch.Tensor]:
    scores: dict[str, list] = {name: [] for name in DETECTORS}
    for x, _ in _batches(images, batch_size):
        with torch.no_grad():
            z, features = logits.with_features(x)
            # float64, as Target.scores: in float32 every confidence above 1 - 6e-8 is 1.0,
            # and fooling images and digits would tie at the top
            scores["MaxSoftmax"].append(detectors["MaxSoftmax"].predict_logits(z.double()))
            scores["Energy"].append(detectors["Energy"].predict_logits(z.double()))
            scores["Mahalanobis"].append(detectors["Mahalanobis"].predict_features(features))
        scores["ODIN"].append(detectors["ODIN"].predict(x).detach())  # a gradient step inside
    return {name: torch.cat(values).cpu().double() for name, values in scores.items()}


def score_ood(sources: list[str | Path], model=None, in_dist: str = MNIST_TEST,
              data_dir: str | Path | None = None, device: str = "auto",
              fit_images: int = FIT_IMAGES, batch_size: int = 256, seed: int = 0) -> dict:
    """Score the four detectors on the fooling images of ``sources`` (OOD) against
    ``in_dist`` (module docstring). ``model``: ``"SPEC"``, ``"SPEC@WEIGHTS_FILE"`` or a
    ModelSpec (default: the model every source was evolved against). Returns
    ``{"sources", "model", "in_dist", "fit", "features", "rows"}``, one row per detector."""
    from evofool.fitness.registry import build_target, resolve_device
    detector, OODMetrics = _pytorch_ood()
    for value, name, low in ((fit_images, "fit_images", 2), (batch_size, "batch_size", 1)):
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= low):
            raise EvofoolError(f"{name} {value!r} is invalid: expected an integer >= {low}")
    ood_images, models = read_sources(sources)
    spec = _model_spec(model, models)
    torch_device = resolve_device(device, "--device")
    test, fit, fit_text = in_dist_sets(in_dist, data_dir, fit_images, seed)
    target = build_target(spec.spec, torch_device, spec.weights_path)
    logits = logits_module(target)

    detectors = {"MaxSoftmax": detector.MaxSoftmax(logits),
                 "Energy": detector.EnergyBased(logits),
                 "ODIN": detector.ODIN(logits, eps=ODIN_EPS, temperature=ODIN_TEMPERATURE),
                 "Mahalanobis": detector.Mahalanobis(None)}  # fit and fed below
    fitted, labels = [], []
    with torch.no_grad():
        for x, y in _batches(fit, batch_size):
            fitted.append(logits.with_features(x)[1])
            labels.append(y)
    # contiguous labels 0..K-1, as Mahalanobis.fit_features requires (a folder may lack some)
    classes = torch.unique(torch.cat(labels), return_inverse=True)[1]
    detectors["Mahalanobis"].fit_features(torch.cat(fitted), classes.to(torch_device))

    ood_scores = _scores(ood_images, detectors, logits, batch_size)
    id_scores = _scores(test, detectors, logits, batch_size)
    settings = {"MaxSoftmax": "softmax temperature 1",
                "Energy": "temperature 1",
                "ODIN": f"temperature {ODIN_TEMPERATURE:g}, eps {ODIN_EPS:g} (pytorch-ood's "
                        "defaults)",
                "Mahalanobis": f"features: {logits.features}; fit on {fit_text}"}
    labels = torch.cat([torch.full((len(ood_images.items),), -1),
                        torch.zeros(len(test.items), dtype=torch.long)])
    rows = []
    for name in DETECTORS:
        scores = torch.cat([ood_scores[name], id_scores[name]])
        if not torch.isfinite(scores).all():
            raise EvofoolError(f"detector {name} gave NaN or infinite scores on {spec.label}: "
                               "no figure for it")
        try:
            metrics = OODMetrics().update(scores, labels).compute()
        except ValueError as exc:
            raise EvofoolError(f"detector {name}: {one_line(exc)}") from None
        rows.append({"detector": name, "auroc": metrics["AUROC"],
                     "fpr_at_95_tpr": metrics["FPR95TPR"], "aupr_in": metrics["AUPR-IN"],
                     "aupr_out": metrics["AUPR-OUT"], "ood_images": len(ood_images.items),
                     "in_dist_images": len(test.items), "model": spec.label,
                     "in_dist": in_dist, "settings": settings[name]})
    return {"sources": [str(s) for s in sources], "model": spec.label, "in_dist": in_dist,
            "fit": fit_text, "features": logits.features, "rows": rows}


def write_ood(result: dict, out: str | Path) -> list[Path]:
    """ood.json (the whole result) and ood.csv (one row per detector) into folder ``out``."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "ood.json", result)
        write_text(out / "ood.csv", csv_text(result["rows"], COLUMNS))
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        reason = getattr(exc, "strerror", None) or one_line(exc)
        raise EvofoolError(f"--out '{out}': cannot write ood.json and ood.csv there: "
                           f"{reason}") from None
    return [out / "ood.json", out / "ood.csv"]


def format_table(rows: list[dict]) -> str:
    lines = [f"{'detector':<12} {'AUROC':>7} {'FPR@95TPR':>10} {'AUPR-IN':>8} {'AUPR-OUT':>9} "
             f"{'OOD':>6} {'in-dist':>8}"]
    for row in rows:
        lines.append(f"{row['detector']:<12} {row['auroc']:>7.4f} {row['fpr_at_95_tpr']:>10.4f} "
                     f"{row['aupr_in']:>8.4f} {row['aupr_out']:>9.4f} {row['ood_images']:>6,} "
                     f"{row['in_dist_images']:>8,}")
    return "\n".join(lines)
