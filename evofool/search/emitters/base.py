"""Emitters: the parts of a MAP-Elites generation that propose candidates (CMA-ME's word).

Each generation every emitter of ``algorithm.emitters`` asks for a batch; the batches are
scored together, every candidate is offered to every cell of the archive, and each emitter
is told how its own candidates scored. An emitter is one file: a subclass of
:class:`Emitter` with a ``name`` and a ``Params`` dataclass (the YAML keys of its entry),
registered as a built-in, through the ``evofool.emitters`` entry-point group, or written as
``package.module:Class``.

Emitters draw their random numbers from the search's streams (``search.rng``, Python's
``random``), which the search rewinds before each ``ask`` and saves after each ``tell``,
so a run with any mix of emitters repeats exactly, also after a resume: an emitter's own
state goes into the checkpoint through :meth:`Emitter.state` (JSON-able numbers and arrays).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from evofool.genomes.base import NoParams
from evofool.plugins import PluginRegistry
from evofool.schema import MAX_POPULATION, positive
from evofool.search.archive import AddResult
from evofool.search.base import arrays_under

if TYPE_CHECKING:
    from evofool.search.map_elites import MapElites


class Emitter(ABC):
    """Proposes candidates for a :class:`~evofool.search.map_elites.MapElites` search.

    Args:
        params: an instance of ``Params``.
        search: the search it belongs to (its ``archive``, ``toolbox``, ``rng``,
            ``genome_type``, ``generation``).
    """

    name = ""
    Params: type = NoParams

    def __init__(self, params, search: "MapElites") -> None:
        self.params, self.search = params, search

    @abstractmethod
    def ask(self, limit: int) -> np.ndarray | None:
        """At most ``limit`` candidates for the next generation, or None for none. Called
        only once the archive holds an elite; may change nothing but the search's random
        streams (the same batch comes back until it is told)."""

    def tell(self, candidates: np.ndarray, scores: np.ndarray, added: AddResult) -> None:
        """How this emitter's candidates scored ((N, classes) confidences of the archive's
        cells) and what the archive did with them."""

    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """JSON-able numbers and arrays that restore this emitter exactly."""
        return {}, {}

    def load_state(self, info: dict, arrays: dict[str, np.ndarray]) -> None:
        """Inverse of :meth:`state` (ValueError/KeyError on bad data)."""

    def log_fields(self) -> dict:
        """Per-generation log figures (JSON-able), prefixed with the emitter's position."""
        return {}


EMITTERS = PluginRegistry("emitter", Emitter, "evofool.emitters", {
    "mutation": "evofool.search.emitters.mutation:MutationEmitter",
    "cma": "evofool.search.emitters.cma_es:CmaEsEmitter",
    "es": "evofool.search.emitters.search_gradient:SearchGradientEmitter",
})
register_emitter = EMITTERS.register
get_emitter = EMITTERS.get


# --- emitters that optimize one cell at a time over a genome's parameters -------------------
@dataclass
class CellParams:
    """Keys every per-cell optimizer shares."""

    cells: int | None = field(default=None, metadata=positive(
        "a positive integer (cells optimized per generation, in turn) or null (all)",
        at_most=MAX_POPULATION))
    restart_after: int = field(default=20, metadata=positive(
        "a positive integer: generations of a cell's optimizer without improving its cell, "
        "after which it restarts from the cell's elite", at_most=MAX_POPULATION))


class CellEmitter(Emitter):
    """One optimizer per archive cell, over the numbers a genome type exposes as its
    ``parameters`` (pixels, a CPPN's link weights, a perturbation): it starts from the cell's
    elite, samples candidates around its own centre, is ranked by the log confidence of
    that cell's class, and restarts from the cell's (perhaps newer) elite when it has not
    improved its cell for ``restart_after`` of its generations. Its candidates are offered
    to every cell, as CMA-ME's emitters' are. A cell whose elite has reached
    ``budget.stop_confidence`` gets no more samples: its share goes to the others.

    Subclasses write :meth:`start` (a fresh state from a parameter vector), :meth:`sample`
    and :meth:`update`, keeping each cell's state as a dict of NumPy arrays.
    """

    Params = CellParams

    def __init__(self, params, search: "MapElites") -> None:
        super().__init__(params, search)
        genome_type = search.genome_type
        if not genome_type.differentiable:
            raise ValueError(f"emitter '{self.name}' needs a genome type with parameters "
                             f"(direct, cppn, perturbation); '{genome_type.name}' has none")
        cells = len(search.archive)
        self.cell_state: list[dict[str, np.ndarray] | None] = [None] * cells
        self.templates: list[np.ndarray | None] = [None] * cells  # the genome each starts from
        self.stale = np.zeros(cells, dtype=np.int64)
        self.restarts = np.zeros(cells, dtype=np.int64)
        self.turn = 0                       # the next cell in line when not all ask at once
        # the batch asked, per cell: (cell, candidates, wanted, state, template)
        self._asked: list[tuple] = []

    # --- what subclasses write ------------------------------------------------------------
    @abstractmethod
    def start(self, centre: np.ndarray) -> dict[str, np.ndarray]:
        """A fresh optimizer state around the parameter vector ``centre``."""

    @abstractmethod
    def sample(self, state: dict[str, np.ndarray], rng: np.random.Generator) -> np.ndarray:
        """Parameter vectors (n, dimensions) to score; must not change ``state``."""

    @abstractmethod
    def update(self, state: dict[str, np.ndarray], samples: np.ndarray,
               fitness: np.ndarray, project) -> None:
        """Move ``state`` in place, given the (repaired) samples and their fitness (log
        confidence, -inf for none); ``project(vector)`` is the nearest vector within the
        genome's range."""

    # --- the cycle --------------------------------------------------------------------------
    def _cells_in_turn(self) -> list[int]:
        archive, stop = self.search.archive, self.search.budget.stop_confidence
        open_cells = archive.filled.copy()
        if stop is not None:  # a class at the run's goal needs no more samples
            open_cells &= archive.confidence < stop
        filled = np.flatnonzero(open_cells)
        if not len(filled):
            return []
        count = len(filled) if self.params.cells is None else min(self.params.cells,
                                                                   len(filled))
        start = int(np.searchsorted(filled, self.turn % len(self.search.archive)))
        return [int(filled[(start + k) % len(filled)]) for k in range(count)]

    def ask(self, limit: int) -> np.ndarray | None:
        archive, rng = self.search.archive, self.search.rng
        batches, self._asked = [], []
        for cell in self._cells_in_turn():
            state, template = self.cell_state[cell], self.templates[cell]
            if state is None:  # (re)start from the cell's elite; kept only if told
                template = archive.genomes[cell:cell + 1].copy()  # not a view: elites change
                state = self._fresh_state(template, archive.confidence[cell])
            samples = self.sample(state, rng)
            wanted = len(samples)
            samples = samples[:limit]  # the budget's last batch: scored, not learnt from
            if not len(samples):
                break
            limit -= len(samples)
            batches.append(self._genomes(template, samples))
            self._asked.append((cell, len(samples), wanted, state, template))
        return np.concatenate(batches) if batches else None

    def _fresh_state(self, template: np.ndarray, best: float) -> dict[str, np.ndarray]:
        """A new optimizer around the one-genome population ``template``, whose cell's best
        confidence so far is ``best``."""
        state = self.start(self.search.genome_type.parameters(template).reshape(-1)
                           .astype(np.float64))
        state["best"] = np.array(best)
        return state

    def _genomes(self, template: np.ndarray, vectors: np.ndarray) -> np.ndarray:
        """Copies of the one-genome population ``template`` with the parameter ``vectors``
        (n, dimensions), clipped to the genome's range by the genome type."""
        genome_type = self.search.genome_type
        shape = genome_type.parameters(template).shape[1:]
        return genome_type.with_parameters(np.repeat(template, len(vectors), axis=0),
                                           vectors.reshape(len(vectors), *shape)
                                           .astype(np.float32))

    def _project(self, template: np.ndarray, vector: np.ndarray) -> np.ndarray:
        inside = self._genomes(template, vector[None])
        parameters = self.search.genome_type.parameters(inside)
        return parameters.reshape(-1)[:vector.size].astype(np.float64)

    def tell(self, candidates: np.ndarray, scores: np.ndarray, added: AddResult) -> None:
        genome_type = self.search.genome_type
        offset = 0
        for cell, count, wanted, state, template in self._asked:
            chunk = candidates[offset:offset + count]
            confidence = scores[offset:offset + count, cell]
            offset += count
            if count < wanted:
                break  # cut short by the budget: the run ends here
            self.cell_state[cell], self.templates[cell] = state, template
            # the numbers actually scored (clipped to the genome's range) are what the
            # optimizer learns from: a repair, as bounded CMA-ES variants do
            repaired = genome_type.parameters(chunk).reshape(count, -1).astype(np.float64)
            with np.errstate(divide="ignore", invalid="ignore"):
                fitness = np.where(np.isfinite(confidence) & (confidence > 0),
                                   np.log(confidence), -np.inf)
            self.update(state, repaired[:, :state["centre"].size], fitness,
                        lambda vector: self._project(template, vector))
            best = float(np.max(np.where(np.isfinite(confidence), confidence, -np.inf)))
            if best > float(state["best"]):
                state["best"] = np.array(best)
                self.stale[cell] = 0
            else:
                self.stale[cell] += 1
            if self.stale[cell] >= self.params.restart_after:
                self.cell_state[cell] = self.templates[cell] = None
                self.stale[cell] = 0
                self.restarts[cell] += 1
        if self._asked:
            self.turn = self._asked[-1][0] + 1

    # --- checkpoints ------------------------------------------------------------------------
    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        arrays = {"stale": self.stale, "restarts": self.restarts}
        running = [c for c, s in enumerate(self.cell_state) if s is not None]
        for cell in running:
            arrays.update({f"cell{cell}.{k}": v for k, v in self.cell_state[cell].items()})
            arrays.update({f"cell{cell}.template.{k}": v for k, v in
                           self.search.genome_type.pack(self.templates[cell]).items()})
        return {"turn": self.turn, "running": running}, arrays

    def load_state(self, info: dict, arrays: dict[str, np.ndarray]) -> None:
        cells = len(self.cell_state)
        self.turn = int(info["turn"])
        self.stale = np.asarray(arrays["stale"], dtype=np.int64).reshape(cells)
        self.restarts = np.asarray(arrays["restarts"], dtype=np.int64).reshape(cells)
        self.cell_state, self.templates = [None] * cells, [None] * cells
        for cell in info["running"]:
            cell = int(cell)
            if not 0 <= cell < cells:
                raise ValueError(f"emitter state names cell {cell} of {cells}")
            saved = arrays_under(arrays, f"cell{cell}.")
            template = self.search.genome_type.unpack(arrays_under(saved, "template."))
            if len(template) != 1:
                raise ValueError(f"emitter state of cell {cell} has {len(template)} templates")
            state = {k: np.array(v) for k, v in saved.items() if not k.startswith("template.")}
            # what a fresh optimizer of this template holds: the same arrays, the same shapes
            fresh = self._fresh_state(template, 0.0)
            shapes = {k: np.shape(v) for k, v in state.items()}
            wanted = {k: np.shape(v) for k, v in fresh.items()}
            if shapes != wanted:
                raise ValueError(f"emitter state of cell {cell} holds {_shapes(shapes)}, "
                                 f"not {_shapes(wanted)}")
            self.templates[cell], self.cell_state[cell] = template, state

    def log_fields(self) -> dict:
        return {"restarts": int(self.restarts.sum())}


def _shapes(shapes: dict[str, tuple]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(shapes.items()))
