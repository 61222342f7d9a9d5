"""A search algorithm defined outside the package (the plugin tests import it by dotted path
and by entry point): random search, the baseline every fooling method should beat. One file,
as the README's "Add a search algorithm" shows."""
from dataclasses import dataclass, field

import numpy as np

from evofool.schema import positive
from evofool.search.archive import AddResult
from evofool.search.base import SearchAlgorithm


@dataclass
class RandomSearchParams:
    batch: int = field(default=50, metadata=positive())


class RandomSearch(SearchAlgorithm):
    """Every generation: ``batch`` new random genomes, offered to every cell."""

    name = "random_search"
    Params = RandomSearchParams

    def propose(self) -> np.ndarray:
        return self.toolbox.population(self.batch_limit(self.params.batch))

    def incorporate(self, candidates: np.ndarray, scores: np.ndarray) -> AddResult:
        return self.archive.add(candidates, scores, self.steps, self.evaluations)

    def finished(self) -> bool:
        return self.budget_spent(self.generation, self.evaluations, slice(None))
