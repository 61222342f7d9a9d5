"""MAP-Elites as the paper runs it: one cell per class, every child offered to every cell.

Per generation (paper.md 4.1): draw parents uniformly from the filled cells (an elite that
holds k cells is drawn k times as often), pair them, cross (direct encoding with SBX only)
and mutate; the whole batch is scored, and each child takes every cell whose champion it
beats. Generation 0 is ``init_size`` random genomes (and so is any generation while the
archive is still empty: a model that scored everything NaN leaves nothing to vary).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from evofool.schema import MAX_POPULATION, positive
from evofool.search.archive import AddResult
from evofool.search.base import SearchAlgorithm


@dataclass
class MapElitesParams:
    init_size: int = field(default=200, metadata=positive(
        "a positive integer (random genomes of generation 0)", at_most=MAX_POPULATION))
    offspring: int = field(default=200, metadata=positive(
        "a positive integer (children per generation; the paper's pop::size)",
        at_most=MAX_POPULATION))


class MapElites(SearchAlgorithm):
    name = "map_elites"
    Params = MapElitesParams

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.toolbox.register("select", self.archive.sample_parents, rng=self.rng)

    def propose(self) -> np.ndarray:
        if not self.archive.filled.any():  # generation 0, or nothing scored finite so far
            return self.toolbox.population(self.batch_limit(self.params.init_size))
        n = self.batch_limit(self.params.offspring)
        return self.make_offspring(self.toolbox.select(n + n % 2), n)

    def incorporate(self, candidates: np.ndarray, scores: np.ndarray) -> AddResult:
        return self.archive.add(candidates, scores, self.steps, self.evaluations)

    def finished(self) -> bool:
        return self.budget_spent(self.generation, self.evaluations, slice(None))
