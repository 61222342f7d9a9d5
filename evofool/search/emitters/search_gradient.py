"""A search-gradient evolution strategy per cell (natural evolution strategies, Wierstra et
al., JMLR 2014; with antithetic pairs and sign steps as Ilyas et al. use it against
ImageNet classifiers, ICML 2018): around its centre x the emitter scores ``pairs`` mirrored
samples x +- sigma u (u ~ N(0, I)), estimates the gradient of the cell's log confidence from
their differences, and moves every number of x by ``step`` along that estimate's sign,
staying within the genome's range. Only confidences are used, never the model's gradient: a black-box search that,
unlike CMA-ES, costs no n x n matrix, so it suits direct genomes of thousands of pixels.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from evofool.schema import MAX_POPULATION, positive
from evofool.search.emitters.base import CellEmitter, CellParams


@dataclass
class SearchGradientParams(CellParams):
    pairs: int = field(default=16, metadata=positive(
        "a positive integer (mirrored sample pairs per cell per generation)",
        at_most=MAX_POPULATION))
    sigma: float = field(default=0.05, metadata=positive(
        "a positive number: the sampling spread, in the parameters' units"))
    step: float = field(default=0.03, metadata=positive(
        "a positive number: how far each parameter moves per generation"))


class SearchGradientEmitter(CellEmitter):
    name = "es"
    Params = SearchGradientParams

    def start(self, centre: np.ndarray) -> dict[str, np.ndarray]:
        return {"centre": centre}

    def sample(self, state: dict[str, np.ndarray], rng: np.random.Generator) -> np.ndarray:
        u = rng.standard_normal((self.params.pairs, state["centre"].size))
        spread = self.params.sigma * u
        return np.concatenate([state["centre"] + spread, state["centre"] - spread])

    def update(self, state: dict[str, np.ndarray], samples: np.ndarray,
               fitness: np.ndarray, project) -> None:
        pairs = len(samples) // 2
        # a sample that scored nothing finite (or 0) says only "worse": rank it lowest
        usable = np.isfinite(fitness)
        floor = fitness[usable].min() - 1.0 if usable.any() else 0.0
        fitness = np.where(usable, fitness, floor)
        # u from the repaired samples (clipping changes them at the range's edges)
        u = (samples[:pairs] - samples[pairs:]) / 2.0
        gradient = ((fitness[:pairs] - fitness[pairs:])[:, None] * u).sum(axis=0)
        state["centre"] = project(state["centre"] + self.params.step * np.sign(gradient))
