"""MAP-Elites as the paper runs it: one cell per class, every child offered to every cell.

Per generation (paper.md 4.1): draw parents uniformly from the filled cells (an elite that
holds k cells is drawn k times as often), pair them, cross (direct encoding with SBX only)
and mutate, score the whole batch in one call, and let each child take every cell whose
champion it beats.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from evofool.search import GenerationReport, SearchAlgorithm
from evofool.schema import positive


@dataclass
class MapElitesParams:
    init_size: int = field(default=200, metadata=positive())
    offspring: int = field(default=200, metadata=positive(
        "a positive integer (children per generation; the paper's pop::size)"))


class MapElites(SearchAlgorithm):
    name = "map_elites"
    Params = MapElitesParams

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.toolbox.register("select", self.archive_parents)

    def archive_parents(self, n: int) -> np.ndarray:
        return self.archive.sample_parents(n, self.rng)

    def _evaluate_and_offer(self, population: np.ndarray) -> GenerationReport:
        scores = self.toolbox.evaluate(population)
        replaced = self.archive.update(population, scores, self.generation, self.evaluations)
        self.evaluations += len(population)
        return GenerationReport(self.generation, self.evaluations, scores, replaced)

    def start(self) -> GenerationReport:
        n = self.batch_limit(self.params.init_size)
        return self._evaluate_and_offer(self.toolbox.population(n))

    def step(self) -> GenerationReport:
        n = self.batch_limit(self.params.offspring)
        parents = self.toolbox.select(n + n % 2)
        children = self.make_offspring(parents, n)
        self.generation += 1
        return self._evaluate_and_offer(children)

    def finished(self) -> bool:
        budget = self.budget
        if budget.generations is not None and self.generation >= budget.generations:
            return True
        if budget.evaluations is not None and self.evaluations >= budget.evaluations:
            return True
        return (budget.stop_confidence is not None
                and self.archive.coverage(budget.stop_confidence) == len(self.archive))
