"""What the search loops share: the DEAP toolbox, counters, budget and resumable state."""
from __future__ import annotations

import json
import random
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np
from deap import base

from evofool.archive import Archive
from evofool.genomes.base import GenomeType
from evofool.schema import positive


@dataclass
class Budget:
    """When a run stops: after ``generations`` and/or ``evaluations`` (whichever comes first),
    or, if ``stop_confidence`` is set, once every target class reaches it. For the GA the
    budget applies to each target class in turn."""

    generations: int | None = field(default=None, metadata=positive(
        "a positive integer or null"))
    evaluations: int | None = field(default=None, metadata=positive(
        "a positive integer or null"))
    stop_confidence: float | None = field(default=None, metadata={
        "check": (lambda v: 0 < v <= 1, "a number in (0, 1] or null")})


@dataclass
class GenerationReport:
    """What one generation did, for logs and the progress bar."""

    generation: int
    evaluations: int
    scores: np.ndarray           # (offspring, classes) confidences of this generation's batch
    replaced: int                # archive cells that changed hands


class SearchAlgorithm(ABC):
    """A resumable search loop. Subclasses register their operators on ``self.toolbox`` (DEAP)
    and implement ``start`` (evaluate the initial population) and ``step`` (one generation).

    All randomness comes from ``self.rng`` (NumPy) and Python's ``random`` (which DEAP's
    selection operators use); both are saved in checkpoints, so a resumed run repeats an
    uninterrupted one exactly.
    """

    name = ""

    def __init__(self, params, genome_type: GenomeType, evaluate, class_names: list[str],
                 budget: Budget, seed: int, class_ids: list[int] | None = None) -> None:
        self.params = params
        self.genome_type = genome_type
        self.budget = budget
        self.archive = Archive(class_names, class_ids)
        numpy_seed, python_seed = np.random.SeedSequence(seed).spawn(2)
        self.rng = np.random.Generator(np.random.PCG64(numpy_seed))
        random.seed(int(python_seed.generate_state(1)[0]))
        self.generation = 0
        self.evaluations = 0
        self.toolbox = base.Toolbox()
        self.toolbox.register("population", genome_type.random, rng=self.rng)
        self.toolbox.register("mate", genome_type.crossover, rng=self.rng)
        self.toolbox.register("mutate", genome_type.mutate, rng=self.rng)
        self.toolbox.register("evaluate", evaluate)

    def make_offspring(self, parents: np.ndarray, n: int) -> np.ndarray:
        """``n`` children: parents paired in order, crossed (when the genome type supports it)
        and every child mutated, all as whole-population array operations."""
        first, second = self.toolbox.mate(parents[0::2], parents[1::2])
        children = np.concatenate([first, second])[:n]
        return self.toolbox.mutate(children, generation=self.generation + 1)

    def batch_limit(self, wanted: int) -> int:
        """How many evaluations the next batch may use without overrunning the budget."""
        if self.budget.evaluations is None:
            return wanted
        return max(0, min(wanted, self.budget.evaluations - self.budget_evaluations_used()))

    def budget_evaluations_used(self) -> int:
        return self.evaluations

    @abstractmethod
    def start(self) -> GenerationReport:
        """Create and evaluate the initial population (generation 0)."""

    @abstractmethod
    def step(self) -> GenerationReport:
        """Run one generation."""

    @abstractmethod
    def finished(self) -> bool:
        """Whether the budget is spent."""

    @property
    def total_generations(self) -> int | None:
        """Generations the whole run will take, when the budget says (for progress bars)."""
        return self.budget.generations

    # --- checkpoints ----------------------------------------------------------------------
    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """JSON-able counters and RNG states, and arrays (archive, population) to save."""
        info = {"generation": self.generation, "evaluations": self.evaluations,
                "numpy_rng": self.rng.bit_generator.state,
                "python_random": json.loads(json.dumps(random.getstate()))}
        arrays = {f"archive.{k}": v for k, v in self.archive.to_arrays(self.genome_type.pack).items()}
        return info, arrays

    def load_state(self, info: dict, arrays: dict[str, np.ndarray]) -> None:
        """Restore from :meth:`state`'s output (raises ValueError/KeyError on bad data)."""
        self.generation = int(info["generation"])
        self.evaluations = int(info["evaluations"])
        self.rng.bit_generator.state = info["numpy_rng"]
        version, internal, gauss = info["python_random"]
        random.setstate((version, tuple(internal), gauss))
        archive_arrays = {k[len("archive."):]: v for k, v in arrays.items()
                          if k.startswith("archive.")}
        restored = Archive.from_arrays(self.archive.class_names, archive_arrays,
                                       self.genome_type.unpack, self.archive.class_ids)
        self.archive.__dict__.update(restored.__dict__)
