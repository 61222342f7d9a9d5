"""A search-gradient evolution strategy per cell (natural evolution strategies, Wierstra et
al., JMLR 2014; with antithetic pairs and sign steps as Ilyas et al. use it against
ImageNet classifiers, ICML 2018): around its centre x the emitter scores ``pairs`` mirrored
samples x +- sigma u (u ~ N(0, I)) and x itself, estimates the gradient of the cell's log
confidence from the pairs' differences (averaged with the last direction by ``momentum``),
and moves every number of x by the step along that direction's sign, staying within the
genome's range; the step shrinks by ``step_decay`` when x has not improved for ``patience``
generations. Only confidences are used, never the model's gradient: a black-box search
that, unlike CMA-ES, keeps no n x n matrix, so it suits genomes of thousands of numbers.
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
    step_decay: float = field(default=0.5, metadata={"check": (
        lambda v: 0 < v <= 1, "a number in (0, 1]: the step is multiplied by it when the "
                              "centre has not beaten its best score for `patience` "
                              "generations (1: a fixed step)")})
    patience: int = field(default=5, metadata=positive(
        "a positive integer (generations without a better centre before the step decays)",
        at_most=MAX_POPULATION))
    min_step: float = field(default=1 / 255, metadata=positive(
        "a positive number: the smallest step step_decay leads to"))
    shrink_sigma: bool = False  # the spread shrinks with the step (a finer look near the top)
    momentum: float = field(default=0.5, metadata={"check": (
        lambda v: 0 <= v < 1, "a number in [0, 1): the share of the last direction kept "
                              "(0: each generation's estimate alone)")})


class SearchGradientEmitter(CellEmitter):
    name = "es"
    Params = SearchGradientParams

    def start(self, centre: np.ndarray) -> dict[str, np.ndarray]:
        return {"centre": centre, "direction": np.zeros_like(centre),
                "step": np.array(self.params.step), "top": np.array(-np.inf),
                "waited": np.array(0)}

    def sample(self, state: dict[str, np.ndarray], rng: np.random.Generator) -> np.ndarray:
        """The mirrored pairs, then the centre itself: where the strategy stands is usually
        its best image, and one more evaluation lets the archive keep it."""
        centre = state["centre"]
        sigma = self.params.sigma
        if self.params.shrink_sigma:
            sigma *= float(state["step"]) / self.params.step
        spread = sigma * rng.standard_normal((self.params.pairs, centre.size))
        return np.concatenate([centre + spread, centre - spread, centre[None]])

    def update(self, state: dict[str, np.ndarray], samples: np.ndarray,
               fitness: np.ndarray, project) -> None:
        pairs = self.params.pairs
        # a sample that scored nothing finite (or 0) says only "worse": rank it lowest
        usable = np.isfinite(fitness)
        floor = fitness[usable].min() - 1.0 if usable.any() else 0.0
        fitness = np.where(usable, fitness, floor)
        # u from the repaired samples (clipping changes them at the range's edges)
        u = (samples[:pairs] - samples[pairs:2 * pairs]) / 2.0
        gradient = ((fitness[:pairs] - fitness[pairs:2 * pairs])[:, None] * u).sum(axis=0)
        norm = np.linalg.norm(gradient)
        if norm > 0:
            state["direction"] = (self.params.momentum * state["direction"]
                                  + (1 - self.params.momentum) * gradient / norm)
        # the centre's own score tells a plateau (as Ilyas et al. decay their step): no
        # better centre for `patience` generations, smaller moves
        here = fitness[2 * pairs] if len(fitness) > 2 * pairs else -np.inf
        if here > state["top"]:
            state["top"], state["waited"] = np.array(here), np.array(0)
        else:
            state["waited"] = np.array(int(state["waited"]) + 1)
        if int(state["waited"]) >= self.params.patience:
            state["step"] = np.array(max(self.params.min_step,
                                         float(state["step"]) * self.params.step_decay))
            state["waited"] = np.array(0)
        state["centre"] = project(state["centre"] + float(state["step"])
                                  * np.sign(state["direction"]))
