"""``evofool retrain``: retraining with the fooling images as an extra class (paper sec. 5).

Iteration k = 1, 2, ..., ``retrain.iterations``:

1. **Train DNN_k**: LeNet with the recipe of :mod:`evofool.fitness.lenet_training` (docs/LENET.md)
   on the MNIST training split of ``--data-dir``; for k > 1 also on the fooling images of
   iterations 1..k-1 (all of them, less each iteration's held-out share) as class 10,
   "fooling", so DNN_2, DNN_3, ... have 11 outputs. DNN_1 is trained here too, with the same
   recipe (not the shipped weights), so that the networks differ only by the fooling class.
2. **Measure DNN_k**: accuracy on the held-out real digits (the split of
   :func:`~evofool.fitness.lenet_training.load_mnist`; a digit put in the fooling class is an
   error), the share of held-out digits it calls "fooling", and its recall: the share of the
   earlier iterations' fooling images it puts in the fooling class, separately for those it
   was trained on and for the held-out ones (``retrain.holdout``).
3. **Evolve against DNN_k**: the experiment itself, through :func:`evofool.runner.run_experiment`
   (``retrain.runs`` runs, each with its own seed, each a run directory), with the network's
   weights as ``model.weights_path``; against an 11-output network the fitness is the
   confidence of the 10 digits only (``model.classes: [0..9]``; the softmax stays over all 11
   outputs), as in the paper.
4. **Gather fooling images**: a MAP-Elites archive keeps one elite per digit, but the paper
   added about one class's worth of images per iteration. A hook (:class:`FoolingCollector`)
   sees every scored candidate: each distinct image (8-bit, as trained on) whose most
   confident digit reaches ``retrain.threshold`` is a fooling image of that digit, and a
   uniform sample of them is kept per digit (reservoir sampling, so early and late
   generations are both represented). At the end of the iteration at most
   ``retrain.images_per_iteration`` are kept, shared out equally over the runs and over the
   digits (a digit with fewer images leaves its share to the others); ``retrain.holdout`` of
   them are kept out of training. The hook also records the evaluation at which each digit
   first reached 99% and 99.99% (how fast) and its best confidence (how far).

The output folder (``--out``, else the experiment's ``output_dir``, else a new
``runs/NAME/STAMP``) holds ``retrain.yaml`` (the resolved experiment), ``iter_001/`` ...
(``lenet.safetensors`` and its ``.json`` metrics, ``run_0/`` ... the evolution run directories,
``fooling.npz`` and ``fooling.png``, and ``iteration.json``, the iteration's row, written last),
and, rewritten after every iteration, ``retrain.json``, ``retrain.csv``, ``retrain.png`` and
``report.html`` (:mod:`evofool.retrain_report`).

Resume: an iteration is the unit. Run the same command with ``--out`` naming the folder: the
iterations whose ``iteration.json`` exists are kept, a half-done one is deleted and redone.
The folder's experiment must be the same (only ``retrain.iterations``, ``runtime``, ``log``,
``evaluation`` and ``description`` may change: more iterations extend a finished retrain).

Seeds: iteration k draws from ``numpy.random.SeedSequence(seed, spawn_key=(k,))`` a seed for
the trainer, one for the sampling of images and one per evolution run, so one ``seed`` makes a
CPU retrain repeat exactly, whether or not it was interrupted.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import re
import shutil
import signal
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import yaml

from evofool.config import Experiment, RetrainConfig
from evofool.cpu_threads import default_threads
from evofool.errors import EvofoolError
from evofool.files import csv_text, write_json, write_npz, write_png, write_text
from evofool.readers import read_json, read_npz, read_yaml
from evofool.retrain_report import percent
from evofool.run_dirs import new_run_dir, point_latest
from evofool.run_lock import RunDirLock
from evofool.schema import show
from evofool.stops import RunStopped

DIGITS = 10
FOOLING = 10                       # the label of the fooling class (LeNet's 11th output)
REACH = (0.99, 0.9999)             # "how fast": evaluations until a digit first reaches these
CONFIG_FILE = "retrain.yaml"
SUMMARY_JSON, SUMMARY_CSV = "retrain.json", "retrain.csv"
ITERATION_JSON = "iteration.json"  # an iteration's row: written last, marks it complete
WEIGHTS = "lenet.safetensors"
FOOLING_NPZ, FOOLING_PNG = "fooling.npz", "fooling.png"
IMAGE_SHAPE = (28, 28)
# What a rerun in the same folder may change: how to compute and what to show, and how far.
CHANGEABLE = ("runtime", "log", "evaluation", "description", "output_dir")

Echo = Callable[[str], None]


def iteration_dir(out: Path, k: int) -> Path:
    return out / f"iter_{k:03d}"


# --- gathering fooling images during a run -------------------------------------------------

class FoolingCollector:
    """A run hook (``run_experiment(experiment, hooks=(collector,))``): every scored candidate
    whose most confident scored class reaches ``threshold`` is a fooling image of that class;
    per class, a uniform sample of at most ``capacity`` distinct ones (8-bit images, reservoir
    sampling with ``rng``). Also: per class the best confidence seen and the evaluation at
    which each of :data:`REACH` was first reached (-1: not reached)."""

    def __init__(self, classes: int, capacity: int, threshold: float,
                 rng: np.random.Generator) -> None:
        self.capacity = capacity
        self.threshold = threshold
        self.rng = rng
        self.seen: set[bytes] = set()
        self.distinct = np.zeros(classes, dtype=np.int64)   # distinct fooling images per class
        self.kept: list[list[tuple[np.ndarray, float, int]]] = [[] for _ in range(classes)]
        self.best = np.zeros(classes)
        self.first = np.full((len(REACH), classes), -1, dtype=np.int64)
        self.evaluations = 0

    def on_generation(self, algorithm, report, wall_time: float) -> None:
        scores = np.asarray(report.scores, dtype=np.float64)
        before, self.evaluations = self.evaluations, int(report.evaluations)
        if not len(scores):
            return
        cost = (self.evaluations - before) / len(scores)  # evaluations per candidate
        usable = np.where(np.isfinite(scores).all(axis=1, keepdims=True), scores, -np.inf)
        self.best = np.maximum(self.best, usable.max(axis=0))
        for row, level in enumerate(REACH):
            hit = usable >= level
            for cls in np.flatnonzero((self.first[row] < 0) & hit.any(axis=0)):
                self.first[row, cls] = before + round((int(hit[:, cls].argmax()) + 1) * cost)
        top = usable.argmax(axis=1)
        chosen = np.flatnonzero(usable[np.arange(len(usable)), top] >= self.threshold)
        if not len(chosen) or report.candidates is None:
            return
        from evofool.montage import to_uint8
        images = to_uint8(algorithm.genome_type.render(report.candidates[chosen]))
        if images.shape[1:] != (*IMAGE_SHAPE, 1):
            raise EvofoolError(f"retrain needs 28 x 28 gray genome images (genome.size null "
                               f"or 28, genome.channels null or 1), got "
                               f"{images.shape[1]} x {images.shape[2]} x {images.shape[3]}")
        for index, image in zip(chosen, images[..., 0]):
            digest = hashlib.blake2b(image.tobytes(), digest_size=16).digest()
            if digest in self.seen:
                continue
            self.seen.add(digest)
            cls = int(top[index])
            self.distinct[cls] += 1
            item = (image, float(scores[index, cls]),
                    before + round((int(index) + 1) * cost))
            kept = self.kept[cls]
            if len(kept) < self.capacity:
                kept.append(item)
            else:  # reservoir sampling: the n-th image stays with chance capacity / n
                slot = int(self.rng.integers(self.distinct[cls]))
                if slot < self.capacity:
                    kept[slot] = item

    def close(self) -> None:
        pass


def share(quota: int, available: list[int]) -> list[int]:
    """``quota`` split as equally as possible over classes with ``available`` items each: a
    class with fewer leaves the rest of its share to the others."""
    take = [0] * len(available)
    remaining = quota
    order = sorted(range(len(available)), key=lambda c: (available[c], c))
    for position, cls in enumerate(order):
        take[cls] = min(available[cls], remaining // (len(order) - position))
        remaining -= take[cls]
    return take


def select_images(collectors: list[FoolingCollector], quota: int, holdout: float,
                  rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The iteration's fooling images: ``quota`` shared equally over the runs, each run's
    share over the digits (:func:`share`), a uniform sample of each digit's reservoir; a
    random ``holdout`` share of them is marked ``train = False``. Arrays for fooling.npz."""
    images, labels, confidence, runs, evaluation = [], [], [], [], []
    per_run = [quota // len(collectors) + (r < quota % len(collectors))
               for r in range(len(collectors))]
    for run, (collector, run_quota) in enumerate(zip(collectors, per_run)):
        takes = share(run_quota, [len(kept) for kept in collector.kept])
        for cls, (kept, take) in enumerate(zip(collector.kept, takes)):
            if take == 0:
                continue
            picked = np.sort(rng.choice(len(kept), size=take, replace=False))
            for item in sorted((kept[i] for i in picked), key=lambda item: item[2]):
                images.append(item[0])
                labels.append(cls)
                confidence.append(item[1])
                runs.append(run)
                evaluation.append(item[2])
    count = len(images)
    train = np.ones(count, dtype=bool)
    train[rng.permutation(count)[:int(round(holdout * count))]] = False
    pictures = np.stack(images) if images else np.zeros((0, *IMAGE_SHAPE))
    return {"images": pictures.astype(np.uint8), "label": np.array(labels, dtype=np.int64),
            "confidence": np.array(confidence), "run": np.array(runs, dtype=np.int64),
            "evaluation": np.array(evaluation, dtype=np.int64), "train": train}


# --- checks, data, folders ---------------------------------------------------------------

def check_experiment(experiment: Experiment) -> RetrainConfig:
    """The retrain settings; one-line EvofoolError for an experiment retrain cannot run."""
    where = f"experiment '{experiment.name}'"
    if experiment.model.spec != "lenet-mnist":
        raise EvofoolError(f"{where}: retrain needs model.spec lenet-mnist, not "
                           f"{experiment.model.spec!r}: only MNIST (LeNet) retraining is "
                           "implemented (README, 'Retraining with a fooling class')")
    for key in ("weights_path", "classes"):
        if getattr(experiment.model, key) is not None:
            raise EvofoolError(f"{where}: retrain sets model.{key} itself (the network of each "
                               f"iteration, its 10 digits); leave model.{key} null")
    size, channels = getattr(experiment.genome, "size", None), getattr(experiment.genome,
                                                                        "channels", None)
    if size not in (None, 28) or channels not in (None, 1):
        raise EvofoolError(f"{where}: retrain needs 28 x 28 gray images to train on: "
                           f"genome.size null or 28 (not {size}), genome.channels null or 1 "
                           f"(not {channels})")
    return experiment.retrain if experiment.retrain is not None else RetrainConfig()


def load_data(data_dir: str | os.PathLike | None) -> dict:
    """The MNIST split from ``--data-dir`` (one-line EvofoolError otherwise)."""
    from evofool.fitness.lenet_training import load_mnist
    if data_dir is None:
        raise EvofoolError("retrain needs --data-dir: a folder of MNIST IDX .gz files "
                           "(docs/LENET.md, 'Training data')")
    folder = Path(data_dir)
    try:
        return load_mnist(folder)
    except ValueError as exc:
        message = " ".join(str(exc).split())
        if folder.is_dir() and any(p.is_dir() for p in folder.iterdir()):
            message += ("; it looks like an image folder: only MNIST (LeNet) retraining is "
                        "implemented, not ImageNet-style (README, 'Retraining with a fooling "
                        "class')")
        raise EvofoolError(f"--data-dir: {message}") from None


def _seeds(seed: int, k: int, runs: int) -> tuple[int, np.random.Generator, list[int]]:
    """Iteration k's trainer seed, image-sampling generator and evolution seeds."""
    trainer, sampler, *evolution = np.random.SeedSequence(seed, spawn_key=(k,)).spawn(2 + runs)

    def integer(sequence) -> int:  # [0, 2**63 - 1]: what torch and an experiment's seed take
        return int(sequence.generate_state(1, np.uint64)[0]) >> 1

    return integer(trainer), np.random.default_rng(sampler), [integer(s) for s in evolution]


def _comparable(config: dict) -> dict:
    data = {key: value for key, value in config.items() if key not in CHANGEABLE}
    data["retrain"] = {key: value for key, value in (data.get("retrain") or {}).items()
                       if key != "iterations"}
    return data


def _output_folder(experiment: Experiment, out: str | os.PathLike | None) -> tuple[Path, bool]:
    """The output folder and whether it is new (else it holds a retrain to continue)."""
    if out is None and not experiment.output_dir:
        folder = new_run_dir(experiment.name)
        point_latest(folder)
        return folder, True
    folder = Path(out if out is not None else experiment.output_dir)
    if folder.exists() and not folder.is_dir():
        raise EvofoolError(f"--out '{folder}' is a file, expected a folder")
    if (folder / CONFIG_FILE).is_file():
        return folder, False
    if folder.is_dir() and any(p.name != ".lock" for p in folder.iterdir()):
        raise EvofoolError(f"--out '{folder}' is not empty and holds no retrain (no "
                           f"{CONFIG_FILE}); give a new or empty folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EvofoolError(f"cannot create '{folder}': {exc.strerror or exc}") from None
    return folder, True


def _check_same_experiment(folder: Path, config: dict) -> None:
    saved = read_yaml(folder / CONFIG_FILE, what="a retrain's resolved experiment")
    if not isinstance(saved, dict):
        raise EvofoolError(f"'{folder / CONFIG_FILE}' is not a mapping; give another --out")
    old, new = _comparable(saved), _comparable(config)
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            raise EvofoolError(f"'{folder}' holds a retrain of another experiment ({key}: "
                               f"{show(old.get(key), 60)} there, {show(new.get(key), 60)} now); "
                               "give another --out, or the same experiment to continue it "
                               "(only retrain.iterations, runtime, log may change)")


def _completed(folder: Path) -> list[dict]:
    """The rows of the iterations done, in order (stops at the first one not done)."""
    rows = []
    while (path := iteration_dir(folder, len(rows) + 1) / ITERATION_JSON).is_file():
        row = read_json(path, what="an iteration's row")
        if not isinstance(row, dict) or row.get("iteration") != len(rows) + 1:
            raise EvofoolError(f"'{path}' is not iteration {len(rows) + 1}'s row; delete its "
                               "folder to redo the iteration")
        rows.append(row)
    return rows


def _remove_unfinished(folder: Path, done: int) -> None:
    """Delete the folders of iterations after ``done`` (a stopped iteration is redone)."""
    for path in sorted(folder.glob("iter_*")):
        match = re.fullmatch(r"iter_(\d{3,})", path.name)
        if match and int(match.group(1)) > done:
            if path.is_symlink() or not path.is_dir():
                path.unlink()
            else:
                shutil.rmtree(path)


def _fooling_images(folder: Path, k: int) -> dict[str, np.ndarray]:
    """Iterations 1..k-1's fooling images, concatenated (``images``, ``train``,
    ``iteration``)."""
    images, train, iteration = [], [], []
    for j in range(1, k):
        path = iteration_dir(folder, j) / FOOLING_NPZ
        arrays = read_npz(path, what="an iteration's fooling images")
        pictures, mask = arrays.get("images"), arrays.get("train")
        if (pictures is None or mask is None or pictures.dtype != np.uint8
                or pictures.shape[1:] != IMAGE_SHAPE or mask.shape != (len(pictures),)):
            raise EvofoolError(f"'{path}' does not hold 28 x 28 uint8 images and a train "
                               f"mask; delete '{path.parent}' and later iterations to redo them")
        images.append(pictures)
        train.append(mask.astype(bool))
        iteration.append(np.full(len(pictures), j))
    if not images:
        return {"images": np.zeros((0, *IMAGE_SHAPE), np.uint8), "train": np.zeros(0, bool),
                "iteration": np.zeros(0, np.int64)}
    return {"images": np.concatenate(images), "train": np.concatenate(train),
            "iteration": np.concatenate(iteration)}


# --- one iteration -------------------------------------------------------------------------

def _fraction(mask: np.ndarray) -> float | None:
    return float(mask.mean()) if len(mask) else None


def _median_evaluations(values: np.ndarray) -> int | None:
    """Median of evaluation counts where -1 (never reached) counts as infinite."""
    finite = np.where(values < 0, np.inf, values.astype(float))
    median = float(np.median(finite)) if len(finite) else math.inf
    return None if math.isinf(median) else int(round(median))


def _iteration_experiment(experiment: Experiment, k: int, run: int, seed: int,
                          weights: Path, outputs: int, run_dir: Path) -> Experiment:
    model = dataclasses.replace(experiment.model, weights_path=str(weights),
                                classes=list(range(DIGITS)) if outputs > DIGITS else None)
    return dataclasses.replace(experiment, name=f"{experiment.name}_iter{k:03d}_run{run}",
                               seed=seed, output_dir=str(run_dir), model=model, retrain=None)


def run_iteration(experiment: Experiment, settings: RetrainConfig, data: dict, folder: Path,
                  k: int, echo: Echo | None) -> dict:
    """Iteration ``k`` into ``iteration_dir(folder, k)`` (made afresh); returns its row."""
    from evofool.fitness.lenet_training import predict_lenet, train_lenet
    from evofool.report import write_report
    from evofool.runner import run_experiment

    started = time.perf_counter()
    here = iteration_dir(folder, k)
    here.mkdir(parents=True)
    trainer_seed, sampler, run_seeds = _seeds(experiment.seed, k, settings.runs)
    earlier = _fooling_images(folder, k)
    extra = earlier["images"][earlier["train"]]
    weights = here / WEIGHTS
    if echo:
        echo(f"iteration {k}: training DNN_{k} on {len(data['train_images']):,} digits"
             + (f" + {len(extra):,} fooling images" if len(extra) else "") + " ...")
    metrics = train_lenet(None, weights, seed=trainer_seed, epochs=settings.epochs,
                          progress=False, data=data, extra_images=extra,
                          extra_labels=np.full(len(extra), FOOLING),
                          command=f"evofool retrain (iteration {k})")
    outputs = DIGITS + 1 if len(extra) else DIGITS
    trained = time.perf_counter()

    predicted = predict_lenet(weights, data["held_out_images"])
    fooled = predict_lenet(weights, earlier["images"]) == FOOLING

    collectors, run_dirs = [], []
    quota = [settings.images_per_iteration // settings.runs
             + (r < settings.images_per_iteration % settings.runs) for r in range(settings.runs)]
    for run, seed in enumerate(run_seeds):
        run_dir = here / f"run_{run}"
        collector = FoolingCollector(DIGITS, max(quota[run], 1), settings.threshold,
                                     np.random.default_rng(np.random.SeedSequence(seed)))
        inner = _iteration_experiment(experiment, k, run, seed, weights, outputs, run_dir)
        if echo:
            echo(f"iteration {k}: evolving against DNN_{k}, run {run + 1}/{settings.runs} "
                 f"-> {run_dir}")
        run_experiment(inner, hooks=(collector,))
        write_report(run_dir)  # the run's own page (evofool report), linked from report.html
        collectors.append(collector)
        run_dirs.append(run_dir)
    evolved = time.perf_counter()

    chosen = select_images(collectors, settings.images_per_iteration, settings.holdout, sampler)
    write_npz(here / FOOLING_NPZ, chosen)
    _write_fooling_montage(here / FOOLING_PNG, chosen)

    best = np.max([c.best for c in collectors], axis=0)
    first = np.stack([c.first for c in collectors])               # (runs, levels, digits)
    reach = {level: [_median_evaluations(first[:, row, cls]) for cls in range(DIGITS)]
             for row, level in enumerate(REACH)}
    row = {
        "iteration": k, "outputs": outputs,
        "train_images": int(metrics["train_images"]), "fooling_train_images": int(len(extra)),
        "held_out_accuracy": float((predicted == data["held_out_labels"]).mean()),
        "held_out_images": int(len(predicted)),
        "real_as_fooling": float((predicted == FOOLING).mean()),
        "fooling_recall": _fraction(fooled[earlier["train"]]),
        "fooling_recall_held_out": _fraction(fooled[~earlier["train"]]),
        "earlier_fooling_images": int(len(fooled)),
        "runs": settings.runs,
        "evaluations": int(sum(c.evaluations for c in collectors)),
        "best": [float(b) for b in best],
        "median_best": float(np.median(best)), "min_best": float(best.min()),
        "digits_at_99": int((best >= 0.99).sum()), "digits_at_9999": int((best >= 0.9999).sum()),
        "evaluations_to_99": reach[0.99], "evaluations_to_9999": reach[0.9999],
        "median_evaluations_to_99": _median_evaluations(
            np.array([v if v is not None else -1 for v in reach[0.99]])),
        "median_evaluations_to_9999": _median_evaluations(
            np.array([v if v is not None else -1 for v in reach[0.9999]])),
        "fooling_candidates": int(sum(c.distinct.sum() for c in collectors)),
        "fooling_images": int(len(chosen["label"])),
        "fooling_held_out": int((~chosen["train"]).sum()),
        "fooling_per_digit": np.bincount(chosen["label"], minlength=DIGITS).tolist(),
        "weights": str(weights.relative_to(folder)),
        "run_dirs": [str(d.relative_to(folder)) for d in run_dirs],
        "trainer_seed": trainer_seed, "run_seeds": run_seeds,
        "train_seconds": round(trained - started, 1),
        "evolve_seconds": round(evolved - trained, 1),
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_json(here / ITERATION_JSON, row)  # last: the iteration is complete
    return row


def _write_fooling_montage(path: Path, chosen: dict) -> None:
    """Up to 10 of the iteration's fooling images per digit, labelled with digit and
    confidence."""
    from PIL import Image

    from evofool.montage import confidence_label, make_montage
    picks = [i for cls in range(DIGITS) for i in np.flatnonzero(chosen["label"] == cls)[:10]]
    if not picks:
        sheet = Image.new("RGB", (240, 40), "white")
    else:
        sheet = make_montage(chosen["images"][picks][..., None],
                             [f"{chosen['label'][i]}\n{confidence_label(chosen['confidence'][i])}"
                              for i in picks], tile=56)
    write_png(path, sheet)


# --- the table ---------------------------------------------------------------------------

TABLE_HEADER = (f"{'k':>3} {'outs':>4} {'fooling':>8} {'accuracy':>9} {'real->f':>8} "
                f"{'recall':>7} {'rec.ho':>7} {'>=99%':>6} {'>=99.99%':>8} {'median':>10} "
                f"{'min':>10} {'evals->99.99%':>13} {'kept':>6} {'s':>5}")


def table_line(row: dict) -> str:
    """One iteration as a line of the stdout table (:data:`TABLE_HEADER`)."""
    from evofool.montage import confidence_label
    to_9999 = row["median_evaluations_to_9999"]
    return (f"{row['iteration']:>3} {row['outputs']:>4} {row['fooling_train_images']:>8,} "
            f"{percent(row['held_out_accuracy']):>9} {percent(row['real_as_fooling']):>8} "
            f"{percent(row['fooling_recall'], 1):>7} "
            f"{percent(row['fooling_recall_held_out'], 1):>7} "
            f"{row['digits_at_99']:>3}/10 {row['digits_at_9999']:>5}/10 "
            f"{confidence_label(row['median_best'], 4):>10} "
            f"{confidence_label(row['min_best'], 4):>10} "
            f"{'not reached' if to_9999 is None else f'{to_9999:,}':>13} "
            f"{row['fooling_images']:>6,} {row['seconds']:>5.0f}")


CSV_COLUMNS = ("iteration", "outputs", "train_images", "fooling_train_images",
               "held_out_accuracy", "real_as_fooling", "fooling_recall",
               "fooling_recall_held_out", "earlier_fooling_images", "runs", "evaluations",
               "digits_at_99", "digits_at_9999", "median_best", "min_best",
               "median_evaluations_to_99", "median_evaluations_to_9999", "fooling_candidates",
               "fooling_images", "fooling_held_out", "train_seconds", "evolve_seconds",
               "seconds")


def _csv(rows: list[dict]) -> str:
    """The table, one column per digit for the per-digit lists."""
    flat = [{**{c: row[c] for c in CSV_COLUMNS},
             **{f"best_{d}": v for d, v in enumerate(row["best"])},
             **{f"evaluations_to_9999_{d}": v for d, v in enumerate(row["evaluations_to_9999"])}}
            for row in rows]
    columns = list(CSV_COLUMNS) + [f"best_{d}" for d in range(DIGITS)] + [
        f"evaluations_to_9999_{d}" for d in range(DIGITS)]
    return csv_text(flat, columns)


def write_summary(folder: Path, config: dict, rows: list[dict], finished: bool) -> dict:
    """retrain.json, retrain.csv, retrain.png and report.html, from the rows so far."""
    from evofool.retrain_report import write_page, write_plot
    summary = {"experiment": config, "iterations_planned": config["retrain"]["iterations"],
               "iterations_done": len(rows), "finished": finished,
               "threshold": config["retrain"]["threshold"], "rows": rows}
    write_json(folder / SUMMARY_JSON, summary)
    write_text(folder / SUMMARY_CSV, _csv(rows))
    if rows:
        write_plot(rows, folder / "retrain.png")
    write_page(folder, summary)
    return summary


# --- the whole loop ----------------------------------------------------------------------

def run_retrain(experiment: Experiment, data_dir: str | os.PathLike | None,
                out: str | os.PathLike | None = None, echo: Echo | None = print) -> dict:
    """``evofool retrain``: the iterations of the module docstring into the output folder
    (continuing the retrain it holds, if any); ``echo`` gets the table lines (None: quiet).
    Returns retrain.json's content plus ``out``, the folder."""
    settings = check_experiment(experiment)
    config = experiment.to_dict()
    config["retrain"] = dataclasses.asdict(settings)
    data = load_data(data_dir)  # before any folder is made: a bad --data-dir leaves nothing
    torch.set_num_threads(experiment.runtime.threads or default_threads())
    folder, new = _output_folder(experiment, out)
    try:
        lock = RunDirLock(folder).__enter__()
    except EvofoolError:
        raise EvofoolError(f"'{folder}' is in use by another evofool retrain (its PID is in "
                           f"'{folder / '.lock'}'); wait for it to end") from None
    try:
        if not new:
            _check_same_experiment(folder, config)
        write_text(folder / CONFIG_FILE, yaml.safe_dump(config, sort_keys=False))
        rows = _completed(folder)
        _remove_unfinished(folder, len(rows))
        if echo:
            echo(f"retrain: {folder} ({settings.iterations} iterations"
                 + (f"; {len(rows)} done, continuing" if rows else "") + ")")
            echo(TABLE_HEADER)
            for row in rows:
                echo(table_line(row))
        summary = write_summary(folder, config, rows, len(rows) >= settings.iterations)
        for k in range(len(rows) + 1, settings.iterations + 1):
            try:
                row = run_iteration(experiment, settings, data, folder, k,
                                    _status(echo, experiment))
            except RunStopped as stop:
                raise RunStopped(f"stopped in iteration {k}: {stop}".split("; continue")[0]
                                 + f"; run the same command with --out {folder} to continue "
                                 f"from iteration {k}", stop.exit_code - 128) from None
            except KeyboardInterrupt:
                raise RunStopped(f"interrupted in iteration {k}; run the same command with "
                                 f"--out {folder} to continue from iteration {k}",
                                 signal.SIGINT) from None
            rows.append(row)
            summary = write_summary(folder, config, rows, k == settings.iterations)
            if echo:
                echo(table_line(row))
    finally:
        lock.__exit__(None, None, None)
    return {**summary, "out": str(folder)}


def _status(echo: Echo | None, experiment: Experiment) -> Echo | None:
    """Progress lines on stderr when the experiment shows progress (the table is stdout)."""
    if echo is None or not experiment.log.progress:
        return None
    import sys

    def to_stderr(text: str) -> None:
        print(text, file=sys.stderr, flush=True)
    return to_stderr
