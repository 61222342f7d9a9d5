"""Batched fitness: render a chunk of candidates and score it with the target in one call.

A :class:`ChunkEvaluator` is what a run registers as the DEAP toolbox's ``evaluate``; the
algorithm splits each generation into chunks of ``runtime.batch_size`` and scores them with
``toolbox.map(toolbox.evaluate, chunks)``, so a parallel or remote ``map`` sees whole chunks,
never single images.
"""
from __future__ import annotations

import numpy as np

from evofool.fitness.target import Target
from evofool.genomes.base import GenomeType


class ChunkEvaluator:
    """Callable ``candidates -> scores (N, classes)``: render, then ``Target.scores``
    (``all_classes``: a column for every model output, not only ``model.classes``)."""

    def __init__(self, genome_type: GenomeType, target: Target, all_classes: bool = False) -> None:
        self.genome_type = genome_type
        self.target = target
        self.all_classes = all_classes

    def __call__(self, candidates: np.ndarray) -> np.ndarray:
        images = self.genome_type.render(candidates)
        if self.all_classes:
            return self.target.scores(images, all_classes=True)
        return self.target.scores(images)
