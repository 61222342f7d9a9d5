"""The paper's emitter: parents drawn uniformly from the filled cells, crossed (when the
genome type supports it) and mutated (paper.md 4.1). MAP-Elites without ``emitters`` runs
just this one, with ``offspring`` children."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from evofool.schema import MAX_POPULATION, positive
from evofool.search.emitters.base import Emitter


@dataclass
class MutationParams:
    batch: int = field(default=100, metadata=positive(
        "a positive integer (children per generation)", at_most=MAX_POPULATION))


class MutationEmitter(Emitter):
    name = "mutation"
    Params = MutationParams

    def ask(self, limit: int) -> np.ndarray | None:
        n = min(self.params.batch, limit)
        if n <= 0:
            return None
        search = self.search
        return search.make_offspring(search.toolbox.select(n + n % 2), n)
