"""Batched fitness: render a population and score it with the target, never one image at a time."""
from __future__ import annotations

import numpy as np

from evofool.fitness.target import Target
from evofool.genomes.base import GenomeType


class BatchEvaluator:
    """Callable ``population -> scores (N, classes)``, rendering and scoring in chunks of at
    most ``batch_size`` images so that a large population never has to fit in memory at once.
    This is what the DEAP toolbox registers as ``evaluate`` (one call per generation)."""

    def __init__(self, genome_type: GenomeType, target: Target, batch_size: int) -> None:
        self.genome_type = genome_type
        self.target = target
        self.batch_size = batch_size

    def __call__(self, population: np.ndarray) -> np.ndarray:
        chunks = [self.target.scores(self.genome_type.render(population[i:i + self.batch_size]))
                  for i in range(0, len(population), self.batch_size)]
        return np.concatenate(chunks) if len(chunks) > 1 else chunks[0]
