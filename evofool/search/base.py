"""The ask/tell shape every search algorithm has, on a DEAP toolbox.

One generation (README "How a generation flows")::

    candidates = algorithm.ask()                 # genomes, from the toolbox's operators
    scores = algorithm.score(candidates)         # toolbox.map(toolbox.evaluate, chunks)
    report = algorithm.tell(candidates, scores)  # archive.add: a status per candidate

``toolbox.map`` is the one place where evaluation can run elsewhere (a process pool, Ray
actors): register any ``map``-like callable on it. Counters and random streams advance only
when ``tell`` completes: ``ask`` always starts from the state of the last ``tell``, so a
generation interrupted before its ``tell`` is simply asked again, with the same candidates,
and a checkpoint taken at any moment holds a whole number of generations.
"""
from __future__ import annotations

import json
import random
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np
from deap import base

from evofool.genomes.base import GenomeType, NoParams
from evofool.schema import positive
from evofool.search.archive import AddResult, Archive


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
    """What one ``tell`` did, for logs, progress bars and emitters that adapt."""

    step: int                    # 0, 1, 2, ... over the whole run; never resets
    generation: int              # the algorithm's own count (the GA restarts it per class)
    evaluations: int             # candidates scored in the whole run so far
    scores: np.ndarray           # (candidates, classes) confidences of this batch
    added: AddResult             # what the archive did with each candidate
    target_class: int | None = None  # the class id a one-class search aimed at (GA)
    candidates: np.ndarray | None = None  # the batch told (for hooks that keep images)


def arrays_under(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The checkpoint arrays whose names start with ``prefix``, named without it."""
    return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}


def _chunks(candidates: np.ndarray, size: int) -> list[np.ndarray]:
    return [candidates[i:i + size] for i in range(0, len(candidates), size)]


class SearchAlgorithm(ABC):
    """A resumable ask/tell search over one genome type, filling an :class:`Archive`.

    Subclasses (one file each; registered by name, entry point or ``module:Class``: see
    :mod:`evofool.search.registry`) set ``name`` and ``Params`` (a dataclass: the YAML keys
    under ``algorithm:``) and implement:

    * ``propose()``: the next batch of candidates (a population array), drawn with
      ``self.rng`` / Python's ``random`` and the operators on ``self.toolbox``;
    * ``incorporate(candidates, scores)``: offer them to ``self.archive`` (and update any
      population of their own), returning the archive's :class:`AddResult`;
    * ``finished()``.

    ``propose`` must not change anything but the random streams and scratch kept for the
    matching ``incorporate``; the base class rewinds the streams before each ``ask`` and
    saves them after each ``tell``. ``evofool.search.contract.check_algorithm`` checks a
    subclass against this contract.

    Args:
        params: an instance of ``Params``.
        genome_type: the genome type (its ``random``, ``crossover``, ``mutate`` become the
            toolbox's ``population``, ``mate``, ``mutate``).
        class_names, class_ids: the archive's cells.
        budget: when to stop.
        seed: the one seed of the run.
        evaluate: ``chunk of candidates -> (len(chunk), classes) scores`` (the toolbox's
            ``evaluate``; :class:`evofool.search.evaluation.ChunkEvaluator` in a run).
        chunk_size: candidates per ``evaluate`` call.
    """

    name = ""
    Params: type = NoParams
    # score() returns every model class's confidence, not only the archive's cells' (the
    # evaluator is built with all_classes=True; MapElites' stepping stones)
    wants_all_classes = False
    evaluation_cost = 1     # evaluations per candidate told (a forward pass of one image: 1)
    remote_scoring = True   # score() goes through toolbox.map, so Ray workers may do it

    def __init__(self, params, genome_type: GenomeType, class_names: list[str],
                 budget: Budget, seed: int, class_ids: list[int] | None = None,
                 evaluate=None, chunk_size: int = 1000) -> None:
        self.params = params
        self.genome_type = genome_type
        self.budget = budget
        measure_names = tuple(getattr(genome_type, "measure_names", ()))
        self.archive = Archive(class_names, class_ids,
                               measure=genome_type.measures if measure_names else None,
                               measure_names=measure_names, objective=genome_type.objective())
        self.chunk_size = chunk_size
        numpy_seed, python_seed = np.random.SeedSequence(seed).spawn(2)
        self.rng = np.random.Generator(np.random.PCG64(numpy_seed))
        random.seed(int(python_seed.generate_state(1)[0]))
        self.steps = 0           # completed tells
        self.evaluations = 0     # candidates told
        self.toolbox = base.Toolbox()
        self.toolbox.register("population", genome_type.random, rng=self.rng)
        self.toolbox.register("mate", genome_type.crossover, rng=self.rng)
        self.toolbox.register("mutate", genome_type.mutate, rng=self.rng)
        if evaluate is not None:
            self.toolbox.register("evaluate", evaluate)
        # toolbox.map is DEAP's builtin map until someone registers a parallel one
        self._commit_random_state()

    # --- the ask/tell cycle ---------------------------------------------------------------
    def ask(self) -> np.ndarray:
        """The next batch of candidates; the same batch until it is told."""
        self._rewind_random_state()
        return self.propose()

    def score(self, candidates: np.ndarray) -> np.ndarray:
        """Scores of ``candidates``: ``toolbox.map(toolbox.evaluate, chunks)``, in order."""
        results = list(self.toolbox.map(self.toolbox.evaluate,
                                        _chunks(candidates, self.chunk_size)))
        return results[0] if len(results) == 1 else np.concatenate(results)

    def tell(self, candidates: np.ndarray, scores: np.ndarray) -> GenerationReport:
        """Hand back the scores of the last ``ask``; counters and random streams advance here."""
        scores = np.asarray(scores)
        columns = len(self.archive)
        if self.wants_all_classes:  # every model class: at least up to the largest listed id
            columns = max(scores.shape[-1], max(self.archive.class_ids) + 1)
        if scores.shape != (len(candidates), columns):
            raise ValueError(f"scores of shape {scores.shape} for {len(candidates)} candidates "
                             f"and {columns} classes")
        batch = self.describe_batch()
        added = self.incorporate(candidates, scores)
        if self.wants_all_classes:  # logs and hooks see the archive's classes only
            scores = scores[:, self.archive.class_ids]
        self.steps += 1
        self.evaluations += self.evaluation_cost * len(candidates)
        self._commit_random_state()
        return GenerationReport(step=self.steps - 1, evaluations=self.evaluations,
                                scores=scores, added=added, candidates=candidates, **batch)

    def step(self) -> GenerationReport:
        """One whole generation: ask, score, tell."""
        candidates = self.ask()
        return self.tell(candidates, self.score(candidates))

    # --- what subclasses write ------------------------------------------------------------
    @abstractmethod
    def propose(self) -> np.ndarray:
        """The candidates of the next generation (see the class docstring)."""

    @abstractmethod
    def incorporate(self, candidates: np.ndarray, scores: np.ndarray) -> AddResult:
        """Take in a scored batch (``self.steps``/``self.evaluations`` still count the
        batches before it)."""

    @abstractmethod
    def finished(self) -> bool:
        """Whether the budget is spent."""

    def describe_batch(self) -> dict:
        """Log fields of the batch being told: its ``generation`` (and ``target_class``)."""
        return {"generation": self.steps}

    def log_fields(self) -> dict:
        """Extra per-generation log fields an algorithm keeps (JSON-able)."""
        return {}

    def class_notes(self) -> list[dict] | None:
        """Extra per-class fields for archive.json (one JSON-able dict per cell), or None."""
        return None

    @property
    def generation(self) -> int:
        """The last completed generation (0: the initial population; -1: none yet)."""
        return self.steps - 1

    @property
    def total_steps(self) -> int | None:
        """Tells the whole run will take, when the budget says (for progress bars)."""
        return None if self.budget.generations is None else self.budget.generations + 1

    # --- helpers for subclasses -----------------------------------------------------------
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

    def budget_spent(self, generation: int, evaluations: int, cells) -> bool:
        """The budget test every algorithm shares: generations, evaluations, confidence."""
        budget = self.budget
        return ((budget.generations is not None and generation >= budget.generations)
                or (budget.evaluations is not None and evaluations >= budget.evaluations)
                or (budget.stop_confidence is not None
                    and bool(np.all(self.archive.filled[cells]
                                    & (self.archive.confidence[cells] >= budget.stop_confidence)))))

    # --- random streams and checkpoints ---------------------------------------------------
    def _commit_random_state(self) -> None:
        self._random_state = (self.rng.bit_generator.state, random.getstate())

    def _rewind_random_state(self) -> None:
        self.rng.bit_generator.state = self._random_state[0]
        random.setstate(self._random_state[1])

    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """JSON-able counters and random states as of the last ``tell``, and arrays (archive,
        population) to save."""
        numpy_state, python_state = self._random_state
        info = {"steps": self.steps, "evaluations": self.evaluations, "numpy_rng": numpy_state,
                "python_random": json.loads(json.dumps(python_state))}
        arrays = {f"archive.{k}": v for k, v in self.archive.to_arrays(self.genome_type.pack).items()}
        return info, arrays

    def load_state(self, info: dict, arrays: dict[str, np.ndarray]) -> None:
        """Restore from :meth:`state`'s output (raises ValueError/KeyError on bad data)."""
        self.steps = int(info["steps"])
        self.evaluations = int(info["evaluations"])
        version, internal, gauss = info["python_random"]
        self._random_state = (info["numpy_rng"], (version, tuple(internal), gauss))
        self._rewind_random_state()
        archive_arrays = arrays_under(arrays, "archive.")
        restored = Archive.from_arrays(self.archive.class_names, archive_arrays,
                                       self.genome_type.unpack, self.archive.class_ids)
        restored.measure, restored.objective = self.archive.measure, self.archive.objective
        self.archive.__dict__.update(restored.__dict__)
