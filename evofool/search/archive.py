"""The MAP-Elites archive of the paper: one cell per class, each holding that class's champion.

Data are kept as arrays, one per field (as pyribs does), so updating from a scored batch is a
handful of vectorized operations: for scores ``P`` of shape (batch, classes) the column-wise
argmax names the child that could take each cell, and a child may take many cells at once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

THRESHOLDS = (0.5, 0.9, 0.99, 0.9999)
NOT_ADDED, IMPROVED, NEW = 0, 1, 2  # per-candidate add status (pyribs' values)


MILESTONES = (0.5, 0.9, 0.99, 0.9999)  # confidences whose first arrival each cell records


@dataclass(frozen=True)
class Objective:
    """What makes a cell's image better when it is not simply confidence: among images at or
    above ``threshold`` confidence the smallest ``measure`` (a distortion) wins; below it,
    the higher confidence, as always; any image at or above it beats every image below."""

    measure: str
    threshold: float

    def rank(self, confidence: np.ndarray, measure: np.ndarray) -> np.ndarray:
        """A number per image that orders them as above (larger is better)."""
        measure = np.maximum(np.asarray(measure, dtype=np.float64), 0.0)
        return np.where(confidence >= self.threshold, 3.0 - measure / (1.0 + measure),
                        confidence)


@dataclass
class AddResult:
    """What :meth:`Archive.add` did with a scored batch."""

    status: np.ndarray   # per candidate: NEW if it filled an empty cell, IMPROVED if it beat a
                         # champion (and filled none), NOT_ADDED otherwise
    cells: int           # cells that changed hands
    nonfinite: int       # candidates whose scores held NaN or inf (never added)
    measures: dict[str, np.ndarray] | None = None  # the batch's measures, when the archive
                                                    # records some (distortions)


@dataclass
class ArchiveRow:
    """One class's entry, for tables and JSON."""

    cls: int                     # the cell (position in the archive)
    class_id: int                # the model output it scores (= cls unless model.classes)
    name: str
    confidence: float | None
    generation: int | None
    evaluations: int | None
    top1: int | None             # class id of the elite's most confident scored class
    measures: dict[str, float] | None = None  # the elite's measures (distortions), if kept


class Archive:
    """Per-class elites: confidence (softmax probability of that class), genome, the
    probability vector over the scored classes, and the generation and evaluation count at
    which each was found.

    Cell ``i`` belongs to model output ``class_ids[i]`` named ``class_names[i]``; the ids are
    0..n-1 unless the experiment scores a subset of the model's classes (``model.classes``).

    ``measure``: ``candidates -> {name: (N,) values}`` for genome types whose images have
    measures worth keeping per cell (a perturbation's distortion), named ``measure_names``;
    ``objective``: how those measures decide which image keeps a cell (default: the most
    confident one).
    """

    def __init__(self, class_names: list[str], class_ids: list[int] | None = None,
                 measure: Callable[[np.ndarray], dict[str, np.ndarray]] | None = None,
                 measure_names: tuple[str, ...] = (),
                 objective: Objective | None = None) -> None:
        n = len(class_names)
        self.class_names = list(class_names)
        self.class_ids = list(range(n)) if class_ids is None else [int(c) for c in class_ids]
        if len(self.class_ids) != n:
            raise ValueError(f"{len(self.class_ids)} class ids for {n} class names")
        self.filled = np.zeros(n, dtype=bool)
        self.confidence = np.zeros(n, dtype=np.float64)
        self.probabilities = np.zeros((n, n), dtype=np.float64)
        self.generation = np.full(n, -1, dtype=np.int64)
        self.evaluations = np.full(n, -1, dtype=np.int64)
        # query accounting: the evaluation at which each cell's elite first reached each of
        # MILESTONES (-1: not yet), as black-box attacks are judged (success vs queries)
        self.reached = np.full((n, len(MILESTONES)), -1, dtype=np.int64)
        self.genomes: np.ndarray | None = None  # population array, one slot per class
        self.measure, self.objective = measure, objective
        self.measures = {name: np.full(n, np.nan) for name in measure_names}
        if objective is not None and objective.measure not in self.measures:
            raise ValueError(f"the objective's measure '{objective.measure}' is not one of "
                             f"the archive's ({', '.join(measure_names) or 'none'})")

    def __len__(self) -> int:
        return len(self.class_names)

    def add(self, candidates: np.ndarray, scores: np.ndarray, generation: int,
            evaluations_before: int, classes: np.ndarray | None = None,
            cost: int = 1) -> AddResult:
        """Offer every scored candidate to every cell (or only to ``classes``), as pyribs'
        ``add`` does, and say per candidate what happened.

        A candidate replaces a champion when its confidence is strictly higher, as in the
        paper's code; among candidates tied for a cell the earliest wins, as offering them
        one by one would. A row of ``scores`` holding NaN or inf is not a probability vector
        (fp16/bf16 overflow, a broken model): it counts as the lowest score and takes no cell.
        ``cost``: evaluations each candidate took (an elite's ``evaluations`` counts up to
        and including it).
        """
        scores = np.asarray(scores)
        if scores.ndim != 2 or scores.shape != (len(candidates), len(self)):
            raise ValueError(f"scores of shape {scores.shape} for {len(candidates)} candidates "
                             f"and {len(self)} classes")
        if self.genomes is None:  # empty cells: zeros, or None for object (graph) genomes
            self.genomes = np.zeros((len(self), *candidates.shape[1:]), dtype=candidates.dtype) \
                if candidates.dtype != object else np.full(len(self), None, dtype=object)
        finite = np.isfinite(scores).all(axis=1)
        columns = np.arange(len(self)) if classes is None else np.asarray(classes)
        usable = scores[:, columns] if finite.all() else \
            np.where(finite[:, None], scores[:, columns], -np.inf)
        self._note_milestones(usable, columns, evaluations_before, cost)
        measures = self.measure(candidates) if self.measure is not None else None
        ranked, held = usable, self.confidence[columns]
        if self.objective is not None:
            values = measures[self.objective.measure]
            ranked = np.where(np.isfinite(usable), self.objective.rank(usable, values[:, None]),
                              -np.inf)
            held = self.objective.rank(held, self.measures[self.objective.measure][columns])
        winners = ranked.argmax(axis=0)
        best = ranked[winners, np.arange(len(columns))]
        better = np.isfinite(best) & (~self.filled[columns] | (best > held))
        cells, winners = columns[better], winners[better]
        status = np.zeros(len(candidates), dtype=np.int8)
        if len(cells):
            np.maximum.at(status, winners, np.where(self.filled[cells], IMPROVED, NEW))
            self.filled[cells] = True
            self.confidence[cells] = scores[winners, cells]
            self.probabilities[cells] = scores[winners]
            self.genomes[cells] = candidates[winners]
            self.generation[cells] = generation
            self.evaluations[cells] = evaluations_before + (winners + 1) * cost
            for name, values in (measures or {}).items():
                self.measures[name][cells] = values[winners]
        return AddResult(status, len(cells), int(len(candidates) - finite.sum()), measures)

    def fitness(self, confidence: np.ndarray, measures: dict[str, np.ndarray] | None) -> np.ndarray:
        """What a one-class search should maximize so that it agrees with the cell: the
        confidence, or the objective's rank of it and the batch's ``measures``."""
        if self.objective is None:
            return confidence
        return self.objective.rank(confidence, measures[self.objective.measure])

    def _note_milestones(self, usable: np.ndarray, columns: np.ndarray,
                         evaluations_before: int, cost: int) -> None:
        """For each offered cell and milestone not reached yet: the evaluation of the first
        candidate of this batch at or above it."""
        for j, level in enumerate(MILESTONES):
            open_cells = self.reached[columns, j] < 0
            if not open_cells.any():
                continue
            hits = usable[:, open_cells] >= level
            found = hits.any(axis=0)
            cells = columns[open_cells][found]
            self.reached[cells, j] = evaluations_before + (hits[:, found].argmax(axis=0) + 1) * cost

    def evaluations_to(self, cls: int) -> dict[str, int | None]:
        """Cell ``cls``'s evaluations until its elite first reached each milestone."""
        return {f"{level:g}": (int(n) if n >= 0 else None)
                for level, n in zip(MILESTONES, self.reached[cls])}

    def sample_parents(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` parents drawn uniformly, with replacement, from the filled cells; an elite that
        holds several cells is drawn in proportion to them (the paper's selection)."""
        cells = np.flatnonzero(self.filled)
        return self.genomes[cells[rng.integers(len(cells), size=n)]]

    def coverage(self, threshold: float) -> int:
        """How many classes have an elite at or above ``threshold`` confidence."""
        return int(np.sum(self.filled & (self.confidence >= threshold)))

    def summary(self) -> dict:
        """Headline figures: classes filled, median/mean/min/max elite confidence, and how many
        classes are at or above each threshold."""
        conf = np.where(self.filled, self.confidence, 0.0)
        out = {"filled": int(self.filled.sum()), "classes": len(self),
               "median": float(np.median(conf)), "mean": float(conf.mean()),
               "min": float(conf.min()), "max": float(conf.max())}
        out.update({f"above_{t:g}": self.coverage(t) for t in THRESHOLDS})
        return out

    def rows(self) -> list[ArchiveRow]:
        rows = []
        for c, name in enumerate(self.class_names):
            filled = bool(self.filled[c])
            rows.append(ArchiveRow(
                cls=c, class_id=self.class_ids[c], name=name,
                confidence=float(self.confidence[c]) if filled else None,
                generation=int(self.generation[c]) if filled else None,
                evaluations=int(self.evaluations[c]) if filled else None,
                top1=self.class_ids[int(self.probabilities[c].argmax())] if filled else None,
                measures={name: float(values[c]) for name, values in self.measures.items()}
                if filled and self.measures else None))
        return rows

    # --- plain-array form, for npz files (no pickle) -------------------------------------
    def to_arrays(self, pack) -> dict[str, np.ndarray]:
        """Fields as arrays; ``pack`` is the genome type's pack function for the elites."""
        arrays = {"filled": self.filled, "confidence": self.confidence,
                  "probabilities": self.probabilities, "generation": self.generation,
                  "evaluations": self.evaluations, "reached": self.reached}
        arrays.update({f"measure.{name}": values for name, values in self.measures.items()})
        if self.genomes is not None and self.filled.any():
            cells = np.flatnonzero(self.filled)
            arrays.update({f"genome.{k}": v for k, v in pack(self.genomes[cells]).items()})
        return arrays

    @classmethod
    def from_arrays(cls, class_names: list[str], arrays, unpack,
                    class_ids: list[int] | None = None) -> "Archive":
        """Rebuild from :meth:`to_arrays` output; raises ValueError on inconsistent data."""
        archive = cls(class_names, class_ids)
        n = len(class_names)
        for name, shape in (("filled", (n,)), ("confidence", (n,)), ("probabilities", (n, n)),
                            ("generation", (n,)), ("evaluations", (n,))):
            if name not in arrays:
                raise ValueError(f"missing array '{name}'")
            value = np.asarray(arrays[name])
            if value.shape != shape:
                raise ValueError(f"array '{name}' has shape {value.shape}, expected {shape}")
            setattr(archive, name, value.astype(getattr(archive, name).dtype))
        if "reached" in arrays:  # archives written before query accounting lack it
            reached = np.asarray(arrays["reached"])
            if reached.shape != archive.reached.shape or reached.dtype.kind not in "iu":
                raise ValueError(f"array 'reached' has shape {reached.shape} ({reached.dtype}), "
                                 f"expected integers {archive.reached.shape}")
            archive.reached = reached.astype(np.int64)
        for key in arrays:  # per-cell measures (a perturbation's distortions), if kept
            if key.startswith("measure."):
                values = np.asarray(arrays[key])
                if values.shape != (n,) or values.dtype.kind not in "fiu":
                    raise ValueError(f"array '{key}' has shape {values.shape} ({values.dtype}), "
                                     f"expected {n} numbers")
                archive.measures[key[len("measure."):]] = values.astype(np.float64)
        genome_arrays = {k[len("genome."):]: np.asarray(arrays[k])
                         for k in arrays if k.startswith("genome.")}
        cells = np.flatnonzero(archive.filled)
        if len(cells):
            elites = unpack(genome_arrays)
            if len(elites) != len(cells):
                raise ValueError(f"{len(elites)} genomes for {len(cells)} filled cells")
            archive.genomes = np.zeros((n, *elites.shape[1:]), dtype=elites.dtype) \
                if elites.dtype != object else np.full(n, None, dtype=object)
            archive.genomes[cells] = elites
        return archive
