"""CMA-ES per cell, as CMA-ME's optimizing emitters (Fontaine et al., GECCO 2020): DEAP's
``cma.Strategy`` (Hansen's CMA-ES with full covariance) over a genome's parameters, started
at the cell's elite. Use it where the parameters are few: a CPPN's link weights (its
topology stays the elite's), or a direct genome drawn small (``genome.size: 16``: 768
numbers in colour, scaled up to the model's input as it scores them).

DEAP's ``Strategy.generate`` draws from NumPy's global generator; here the samples come from
the run's own stream (the same formula, ``centroid + sigma * z @ BD.T``), so a run repeats
exactly, and the strategy's whole state is a handful of arrays in the checkpoint.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from deap import cma

from evofool.schema import MAX_POPULATION, positive
from evofool.search.emitters.base import CellEmitter, CellParams

# A full covariance matrix is n^2 numbers per cell and its eigendecomposition, every
# generation, O(n^3): NumPy took 5.4 s for n = 768 on this project's 2-core machine (other
# jobs running); a direct genome of thousands of pixels is the es emitter's.
MAX_DIMENSIONS = 1024


@dataclass
class CmaEsParams(CellParams):
    sigma: float = field(default=0.1, metadata=positive(
        "a positive number: the first step size, in the parameters' units (pixels in "
        "[0, 1], CPPN weights)"))
    population: int | None = field(default=None, metadata=positive(
        "a positive integer >= 2 (samples per cell per generation) or null (4 + 3 ln n, "
        "DEAP's default)", at_most=MAX_POPULATION))

    def __post_init__(self) -> None:
        if self.population is not None and self.population < 2:
            raise ValueError(f"population = {self.population}: CMA-ES needs at least 2 "
                             "samples per generation")


class _Ranked(np.ndarray):
    """A sample as ``Strategy.update`` wants it: an array with a ``fitness`` to sort by."""


class CmaEsEmitter(CellEmitter):
    name = "cma"
    Params = CmaEsParams

    def __init__(self, params, search) -> None:
        super().__init__(params, search)
        # the size of the search space, from a throwaway genome (the run's streams untouched)
        genome_type = search.genome_type
        probe = genome_type.random(1, np.random.default_rng(0))
        self._check_dimensions(genome_type.parameters(probe).size)

    @staticmethod
    def _check_dimensions(n: int) -> None:
        if n > MAX_DIMENSIONS:
            raise ValueError(f"emitter cma: the genome has {n:,} parameters; full-covariance "
                             f"CMA-ES takes at most {MAX_DIMENSIONS:,} (draw direct genomes "
                             "smaller with genome.size, or use the es emitter)")

    def _strategy(self, state: dict[str, np.ndarray]) -> cma.Strategy:
        n = state["centre"].size
        lambda_ = self.params.population or int(4 + 3 * np.log(n))
        # cmatrix: a 1 x 1 stand-in, so that the constructor does not decompose the n x n
        # matrix that the saved B and diagD already decompose (C, B, diagD are set below)
        strategy = cma.Strategy(centroid=state["centroid"], sigma=float(state["sigma"]),
                                lambda_=lambda_, cmatrix=np.eye(1))
        strategy.C, strategy.pc, strategy.ps = state["C"], state["pc"], state["ps"]
        strategy.B, strategy.diagD = state["B"], state["diagD"]
        strategy.BD = strategy.B * strategy.diagD
        strategy.update_count = int(state["updates"])
        return strategy

    def start(self, centre: np.ndarray) -> dict[str, np.ndarray]:
        n = centre.size
        self._check_dimensions(n)
        return {"centre": centre, "centroid": centre.copy(), "sigma": np.array(self.params.sigma),
                "pc": np.zeros(n), "ps": np.zeros(n), "C": np.eye(n), "B": np.eye(n),
                "diagD": np.ones(n), "updates": np.array(0)}

    def sample(self, state: dict[str, np.ndarray], rng: np.random.Generator) -> np.ndarray:
        n = state["centre"].size
        lambda_ = self.params.population or int(4 + 3 * np.log(n))
        z = rng.standard_normal((lambda_, n))
        return state["centroid"] + float(state["sigma"]) * z @ (state["B"] * state["diagD"]).T

    def update(self, state: dict[str, np.ndarray], samples: np.ndarray,
               fitness: np.ndarray, project) -> None:
        strategy = self._strategy(state)
        population = []
        for row, value in zip(samples, fitness):
            ranked = row.view(_Ranked)
            ranked.fitness = float(value)
            population.append(ranked)
        strategy.update(population)
        state.update(centroid=np.asarray(strategy.centroid, dtype=np.float64),
                     sigma=np.array(float(strategy.sigma)), pc=strategy.pc, ps=strategy.ps,
                     C=strategy.C, B=strategy.B, diagD=strategy.diagD,
                     updates=np.array(strategy.update_count))
