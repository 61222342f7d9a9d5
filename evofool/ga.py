"""A plain generational GA toward one target class, run for each target class in turn.

DEAP does the selection: the best ``elite`` individuals survive unchanged (``selBest``) and
the rest of the next population are children of tournament winners (``selTournament``);
crossover and mutation are the genome type's batched operators, and each generation's
children are scored in one call. The archive keeps each target class's best image.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from deap import base, creator, tools

from evofool.search import GenerationReport, SearchAlgorithm
from evofool.schema import positive

if not hasattr(creator, "FoolingFitness"):
    creator.create("FoolingFitness", base.Fitness, weights=(1.0,))
    # An individual is its index in the population array (the genomes stay in one array).
    creator.create("Candidate", int, fitness=creator.FoolingFitness)


@dataclass
class GAParams:
    population: int = field(default=100, metadata={
        "check": (lambda v: v >= 2, "an integer >= 2")})
    elite: int = field(default=10, metadata={
        "check": (lambda v: v >= 0, "an integer >= 0 (smaller than population)")})
    tournament_size: int = field(default=3, metadata=positive())
    target_classes: list[int] | None = None  # class ids; null: every scored class, in turn


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
        self.class_evaluations = 0
        self.population: np.ndarray | None = None
        self.fitness = np.zeros(0)
        self.toolbox.register("select_elite", tools.selBest)
        self.toolbox.register("select", tools.selTournament, tournsize=self.params.tournament_size)

    @property
    def target(self) -> int:
        return self.targets[self.target_index]

    @property
    def total_generations(self) -> int | None:
        gens = self.budget.generations
        return None if gens is None else gens * len(self.targets)

    def budget_evaluations_used(self) -> int:
        return self.class_evaluations  # the evaluation budget is per target class

    def _class_done(self) -> bool:
        budget = self.budget
        return ((budget.generations is not None and self.generation >= budget.generations)
                or (budget.evaluations is not None
                    and self.class_evaluations >= budget.evaluations)
                or (budget.stop_confidence is not None
                    and self.archive.confidence[self.target] >= budget.stop_confidence))

    def _score(self, children: np.ndarray) -> GenerationReport:
        scores = self.toolbox.evaluate(children)
        replaced = self.archive.update(children, scores, self.generation, self.evaluations,
                                       classes=[self.target])
        self.evaluations += len(children)
        self.class_evaluations += len(children)
        return GenerationReport(self.generation, self.evaluations, scores, replaced)

    def start(self) -> GenerationReport:
        self.generation = 0
        self.class_evaluations = 0
        self.population = self.toolbox.population(self.batch_limit(self.params.population))
        report = self._score(self.population)
        self.fitness = report.scores[:, self.target]
        return report

    def step(self) -> GenerationReport:
        if self._class_done():  # move on to the next target class with a fresh population
            self.target_index += 1
            return self.start()
        candidates = [creator.Candidate(i) for i in range(len(self.population))]
        for candidate, value in zip(candidates, self.fitness):
            candidate.fitness.values = (float(value),)
        n_elite = min(self.params.elite, len(candidates) - 1)
        elite = np.array(self.toolbox.select_elite(candidates, n_elite), dtype=np.int64)
        n = self.batch_limit(len(candidates) - n_elite)
        winners = np.array(self.toolbox.select(candidates, n + n % 2), dtype=np.int64)
        children = self.make_offspring(self.population[winners], n)
        self.generation += 1
        report = self._score(children)
        self.population = np.concatenate([self.population[elite], children])
        self.fitness = np.concatenate([self.fitness[elite], report.scores[:, self.target]])
        return report

    def finished(self) -> bool:
        return self.target_index == len(self.targets) - 1 and self._class_done()

    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        info, arrays = super().state()
        info.update(target_index=self.target_index, class_evaluations=self.class_evaluations)
        arrays["fitness"] = self.fitness
        arrays.update({f"population.{k}": v
                       for k, v in self.genome_type.pack(self.population).items()})
        return info, arrays

    def load_state(self, info: dict, arrays: dict[str, np.ndarray]) -> None:
        super().load_state(info, arrays)
        self.target_index = int(info["target_index"])
        self.class_evaluations = int(info["class_evaluations"])
        self.fitness = np.asarray(arrays["fitness"], dtype=np.float64)
        self.population = self.genome_type.unpack(
            {k[len("population."):]: v for k, v in arrays.items() if k.startswith("population.")})
