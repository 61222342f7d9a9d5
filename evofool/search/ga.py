"""A plain generational GA toward one target class, run for each target class in turn.

DEAP does the selection: the best ``elite`` individuals survive unchanged (``selBest``) and
the rest of the next population are children of tournament winners (``selTournament``);
crossover and mutation are the genome type's batched operators. The archive keeps each
target class's best image. Generation 0 of each class is a fresh random population.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from deap import tools

from evofool.schema import CLASS_ID_LIST_WORDS, MAX_POPULATION, class_id_list, positive
from evofool.search.archive import AddResult
from evofool.search.base import SearchAlgorithm, arrays_under


@dataclass
class GAParams:
    population: int = field(default=100, metadata={
        "check": (lambda v: 2 <= v <= MAX_POPULATION,
                  f"an integer from 2 to {MAX_POPULATION:,}")})
    elite: int = field(default=10, metadata={
        "check": (lambda v: v >= 0, "an integer >= 0 (smaller than population)")})
    tournament_size: int = field(default=3, metadata=positive(at_most=MAX_POPULATION))
    # class ids (model outputs) to run, in order; null: every scored class, in turn
    target_classes: list[int] | None = field(default=None, metadata={"check": (
        class_id_list, CLASS_ID_LIST_WORDS + ", or null (every scored class)")})

    def __post_init__(self) -> None:
        if self.elite >= self.population:
            raise ValueError(f"elite = {self.elite} must be smaller than population = "
                             f"{self.population} (elites are kept, the rest are children)")


class Ranked(NamedTuple):
    """What DEAP's selection operators look at: an individual's place in the population
    array and its fitness (``fit_attr="fitness"``; a NaN or inf score is stored as -inf)."""

    index: int
    fitness: float


class GeneticAlgorithm(SearchAlgorithm):
    name = "ga"
    Params = GAParams

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        classes = self.params.target_classes
        # target_classes are class ids (model outputs); the archive's cells are positions
        cell = {class_id: position for position, class_id in enumerate(self.archive.class_ids)}
        self.targets = list(range(len(self.archive))) if classes is None else \
            [cell[c] for c in classes]
        self.target_index = 0
        self.class_steps = 0          # tells for the current target class
        self.class_evaluations = 0
        self.population: np.ndarray | None = None  # None: the next ask starts a class
        self.fitness = np.zeros(0)
        self._survivors = np.zeros(0, dtype=np.int64)
        self.toolbox.register("select_elite", tools.selBest, fit_attr="fitness")
        self.toolbox.register("select", tools.selTournament,
                              tournsize=self.params.tournament_size, fit_attr="fitness")

    @property
    def target(self) -> int:
        return self.targets[self.target_index]

    @property
    def generation(self) -> int:
        return self.class_steps - 1

    @property
    def total_steps(self) -> int | None:
        gens = self.budget.generations
        return None if gens is None else (gens + 1) * len(self.targets)

    def budget_evaluations_used(self) -> int:
        return self.class_evaluations  # the evaluation budget is per target class

    def describe_batch(self) -> dict:
        return {"generation": self.class_steps,
                "target_class": self.archive.class_ids[self.target]}

    def _class_done(self) -> bool:
        return self.budget_spent(self.generation, self.class_evaluations, [self.target])

    def propose(self) -> np.ndarray:
        if self.population is None:
            self._survivors = np.zeros(0, dtype=np.int64)
            return self.toolbox.population(self.batch_limit(self.params.population))
        ranked = [Ranked(i, float(f)) for i, f in enumerate(self.fitness)]
        n_elite = min(self.params.elite, len(ranked) - 1)
        self._survivors = np.array([r.index for r in self.toolbox.select_elite(ranked, n_elite)],
                                   dtype=np.int64)
        n = self.batch_limit(len(ranked) - n_elite)
        winners = np.array([r.index for r in self.toolbox.select(ranked, n + n % 2)],
                           dtype=np.int64)
        return self.make_offspring(self.population[winners], n)

    def incorporate(self, candidates: np.ndarray, scores: np.ndarray) -> AddResult:
        added = self.archive.add(candidates, scores, self.class_steps, self.evaluations,
                                 classes=[self.target])
        fitness = np.where(np.isfinite(scores).all(axis=1),
                           self.archive.fitness(scores[:, self.target], added.measures), -np.inf)
        if self.population is None:
            self.population, self.fitness = candidates, fitness
        else:
            self.population = np.concatenate([self.population[self._survivors], candidates])
            self.fitness = np.concatenate([self.fitness[self._survivors], fitness])
        self.class_steps += 1
        self.class_evaluations += len(candidates)
        if self._class_done() and self.target_index < len(self.targets) - 1:
            self.target_index += 1  # the next class starts from a fresh population
            self.class_steps = self.class_evaluations = 0
            self.population, self.fitness = None, np.zeros(0)
        return added

    def finished(self) -> bool:
        return self.target_index == len(self.targets) - 1 and self._class_done()

    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        info, arrays = super().state()
        info.update(target_index=self.target_index, class_steps=self.class_steps,
                    class_evaluations=self.class_evaluations,
                    has_population=self.population is not None)
        if self.population is not None:
            arrays["fitness"] = self.fitness
            arrays.update({f"population.{k}": v
                           for k, v in self.genome_type.pack(self.population).items()})
        return info, arrays

    def load_state(self, info: dict, arrays: dict[str, np.ndarray]) -> None:
        super().load_state(info, arrays)
        self.target_index = int(info["target_index"])
        if not 0 <= self.target_index < len(self.targets):
            raise ValueError(f"target_index {self.target_index} for {len(self.targets)} targets")
        self.class_steps = int(info["class_steps"])
        self.class_evaluations = int(info["class_evaluations"])
        if info["has_population"]:
            self.fitness = np.asarray(arrays["fitness"], dtype=np.float64)
            self.population = self.genome_type.unpack(arrays_under(arrays, "population."))
        else:
            self.population, self.fitness = None, np.zeros(0)
