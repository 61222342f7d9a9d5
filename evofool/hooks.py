"""Subscribers to loop events: the progress bar and the per-generation JSON-lines log.

The runner calls ``on_generation(algorithm, report, wall_time)`` after every generation and
``close()`` at the end; new reporters (TensorBoard, say) are one more class like these.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from evofool.files import write_text
from evofool.run_data import log_prefix
from evofool.search.archive import IMPROVED, NEW
from evofool.search.base import GenerationReport, SearchAlgorithm


def generation_record(algorithm: SearchAlgorithm, report: GenerationReport,
                      wall_time: float) -> dict:
    """One log line: the run-wide ``step`` (never resets; resume trims the log by it), the
    algorithm's ``generation`` (and ``target_class`` for one-class searches), per-class best
    (elite) and median (this batch) confidence, coverage, and how many candidates scored
    NaN/inf (``nonfinite``: never added to the archive)."""
    archive = algorithm.archive
    added = report.added
    record = {"step": report.step, "generation": report.generation}
    if report.target_class is not None:
        record["target_class"] = report.target_class
    finite = np.isfinite(report.scores).all(axis=1)
    return {
        **record, "evaluations": report.evaluations, **algorithm.log_fields(),
        "wall_time": round(wall_time, 4), "replaced": added.cells,
        "new": int((added.status == NEW).sum()), "improved": int((added.status == IMPROVED).sum()),
        "nonfinite": added.nonfinite,
        **archive.summary(),
        "best": [float(c) if f else None for c, f in zip(archive.confidence, archive.filled)],
        "batch_median": (np.median(report.scores[finite], axis=0).tolist() if finite.any()
                         else [None] * len(archive)),
    }


class JsonLinesLog:
    """Appends one JSON object per generation to ``log.jsonl`` (flushed each line, so a
    killed run keeps every complete line; resume trims lines past the checkpoint)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle = open(path, "a", encoding="utf-8")

    @staticmethod
    def truncate(path: Path, steps: int) -> None:
        """Keep only the complete lines of the first ``steps`` steps (used when resuming: a
        killed run may have logged generations past its last checkpoint)."""
        if path.exists() or path.is_symlink():
            write_text(path, "".join(line + "\n" for line in log_prefix(path, steps)))

    def on_generation(self, algorithm, report, wall_time: float) -> None:
        self.handle.write(json.dumps(generation_record(algorithm, report, wall_time)) + "\n")
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()


class ProgressBar:
    """tqdm bar over generations: evaluations/s, classes above 99%, median best confidence."""

    def __init__(self, total: int | None, initial: int, enabled: bool) -> None:
        self.bar = tqdm(total=total, initial=initial, unit="gen", disable=not enabled,
                        dynamic_ncols=True, desc="evolving")
        self.nonfinite = 0
        self.last_time = 0.0
        self.last_evaluations = 0

    def on_generation(self, algorithm, report, wall_time: float) -> None:
        archive = algorithm.archive
        self.nonfinite += report.added.nonfinite
        elapsed = wall_time - self.last_time
        if elapsed > 0.5 or algorithm.finished():
            rate = (report.evaluations - self.last_evaluations) / max(elapsed, 1e-9)
            nan = f" NaN/inf scores: {self.nonfinite:,}" if self.nonfinite else ""
            self.bar.set_postfix_str(
                f"evals/s={rate:,.0f} >=99%: {archive.coverage(0.99)}/{len(archive)} "
                f"median={np.median(archive.confidence):.4f} min={archive.confidence.min():.4f}"
                + nan, refresh=False)
            self.last_time, self.last_evaluations = wall_time, report.evaluations
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


class NonFiniteWarning:
    """One line on stderr the first time a whole generation scores NaN or inf: nothing of it
    can enter the archive, and it usually means a broken model or fp16/bf16 overflow."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.warned = False

    def on_generation(self, algorithm, report, wall_time: float) -> None:
        count = len(report.scores)
        if not self.warned and count and report.added.nonfinite == count:
            self.warned = True
            tqdm.write(f"evofool: warning: every one of the {count} candidates of step "
                       f"{report.step} scored NaN or inf on model '{self.model}' (none can "
                       "enter the archive); check the model, or model.precision: fp32",
                       file=sys.stderr)

    def close(self) -> None:
        pass


class TensorBoardLog:
    """Per-generation scalars for TensorBoard (``log.tensorboard: true``; needs the optional
    ``tensorboard`` package): coverage, median/min elite confidence, each class's best."""

    def __init__(self, directory: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            from evofool.errors import EvofoolError
            raise EvofoolError("log.tensorboard = true needs the tensorboard package "
                               "(pip install 'evofool[tensorboard]')") from None
        self.writer = SummaryWriter(log_dir=str(directory))

    def on_generation(self, algorithm, report, wall_time: float) -> None:
        record = generation_record(algorithm, report, wall_time)
        step = record["evaluations"]
        for key in ("median", "min", "mean", "filled", "above_0.5", "above_0.9", "above_0.99",
                    "above_0.9999"):
            self.writer.add_scalar(f"archive/{key}", record[key], step)
        for name, best in zip(algorithm.archive.class_names, record["best"]):
            if best is not None:
                self.writer.add_scalar(f"best/{name}", best, step)

    def close(self) -> None:
        self.writer.close()
