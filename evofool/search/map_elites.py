"""MAP-Elites as the paper runs it: one cell per class, every child offered to every cell.

Per generation (paper.md 4.1): draw parents uniformly from the filled cells (an elite that
holds k cells is drawn k times as often), pair them, cross (direct encoding with SBX only)
and mutate; the whole batch is scored, and each child takes every cell whose champion it
beats. Generation 0 is ``init_size`` random genomes (and so is any generation while the
archive is still empty: a model that scored everything NaN leaves nothing to vary).

``emitters`` mixes other ways to propose children into the same generation (CMA-ME,
Fontaine et al., GECCO 2020): each emitter of the list asks for a batch, the batches are
scored together and offered to every cell, and each emitter hears how its own did
(:mod:`evofool.search.emitters`). Without it, the one emitter is the paper's mutation of
``offspring`` children.

``stepping_stones`` keeps a cell for every class of the model, not only the experiment's
``model.classes``, and draws parents from all of them, as the paper's 1,000-class ImageNet
run did: a pattern that fits one class can be the parent of another's champion. The
archive that is saved, reported and montaged is still the listed classes'; the others live
in the checkpoint.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from evofool.schema import MAX_POPULATION, from_dict, positive
from evofool.search.archive import AddResult, Archive
from evofool.search.base import SearchAlgorithm, arrays_under
from evofool.search.emitters.base import get_emitter


@dataclass
class MapElitesParams:
    init_size: int = field(default=200, metadata=positive(
        "a positive integer (random genomes of generation 0)", at_most=MAX_POPULATION))
    offspring: int = field(default=200, metadata=positive(
        "a positive integer (children per generation; the paper's pop::size)",
        at_most=MAX_POPULATION))
    # [{type: mutation, batch: 100}, {type: cma, ...}, ...]; null: [{type: mutation,
    # batch: offspring}]. Each entry is checked against its emitter's keys when the
    # experiment is read (evofool.config).
    emitters: list[dict] | None = field(default=None, metadata={"check": (
        lambda v: 0 < len(v) <= 64 and all(isinstance(e, dict) for e in v),
        "a list of 1 to 64 mappings, each with an emitter 'type' (mutation, cma, es) and "
        "its keys, or null")})
    stepping_stones: bool = False


def emitter_entries(params: MapElitesParams) -> list[dict]:
    """The emitters a search runs, as ``{"type": name, **keys}`` entries."""
    return params.emitters or [{"type": "mutation", "batch": params.offspring}]


class MapElites(SearchAlgorithm):
    name = "map_elites"
    Params = MapElitesParams

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.stones: Archive | None = None  # every model class's cell (stepping_stones)
        self.toolbox.register("select", self._parents)
        self.emitters = []
        for i, entry in enumerate(emitter_entries(self.params)):
            keys = dict(entry)
            cls = get_emitter(keys.pop("type"))
            self.emitters.append(cls(from_dict(cls.Params, keys, f"algorithm.emitters[{i}]"),
                                     self))
        self._batch_sizes: list[int] = []

    @property
    def wants_all_classes(self) -> bool:
        return self.params.stepping_stones

    def _parents(self, n: int) -> np.ndarray:
        archive = self.stones if self.stones is not None else self.archive
        return archive.sample_parents(n, self.rng)

    def propose(self) -> np.ndarray:
        if not self.archive.filled.any():  # generation 0, or nothing scored finite so far
            self._batch_sizes = []
            return self.toolbox.population(self.batch_limit(self.params.init_size))
        limit = self.batch_limit(MAX_POPULATION)
        batches, self._batch_sizes = [], []
        for emitter in self.emitters:
            batch = emitter.ask(limit) if limit > 0 else None
            size = 0 if batch is None else len(batch)
            self._batch_sizes.append(size)
            if size:
                batches.append(batch)
                limit -= size
        if not batches:  # every emitter rests this generation: the paper's mutation
            self._batch_sizes = []
            n = self.batch_limit(self.params.offspring)
            return self.make_offspring(self.toolbox.select(n + n % 2), n)
        return np.concatenate(batches) if len(batches) > 1 else batches[0]

    def incorporate(self, candidates: np.ndarray, scores: np.ndarray) -> AddResult:
        if self.params.stepping_stones:
            if self.stones is None:
                self.stones = Archive([str(c) for c in range(scores.shape[1])])
            self.stones.add(candidates, scores, self.steps, self.evaluations)
            scores = scores[:, self.archive.class_ids]
        added = self.archive.add(candidates, scores, self.steps, self.evaluations)
        start = 0
        for emitter, size in zip(self.emitters, self._batch_sizes):
            if size:
                part = slice(start, start + size)
                emitter.tell(candidates[part], scores[part],
                             AddResult(added.status[part], added.cells, added.nonfinite))
                start += size
        return added

    def finished(self) -> bool:
        return self.budget_spent(self.generation, self.evaluations, slice(None))

    def log_fields(self) -> dict:
        fields = {}
        if len(self.emitters) > 1 or self.emitters[0].name != "mutation":
            fields["emitter_batches"] = list(self._batch_sizes)
        for i, emitter in enumerate(self.emitters):
            fields.update({f"emitter{i}_{k}": v for k, v in emitter.log_fields().items()})
        if self.stones is not None:
            fields["stones_filled"] = int(self.stones.filled.sum())
            fields["stones_above_0.99"] = self.stones.coverage(0.99)
        return fields

    # --- checkpoints -------------------------------------------------------------------------
    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        info, arrays = super().state()
        info["emitters"] = []
        for i, emitter in enumerate(self.emitters):
            emitter_info, emitter_arrays = emitter.state()
            info["emitters"].append(emitter_info)
            arrays.update({f"emitter{i}.{k}": v for k, v in emitter_arrays.items()})
        if self.stones is not None:
            arrays.update({f"stones.{k}": v for k, v in
                           self.stones.to_arrays(self.genome_type.pack).items()})
        return info, arrays

    def load_state(self, info: dict, arrays: dict[str, np.ndarray]) -> None:
        super().load_state(info, arrays)
        saved = info.get("emitters", [{}] * len(self.emitters))
        if len(saved) != len(self.emitters):
            raise ValueError(f"the checkpoint has {len(saved)} emitters, the experiment "
                             f"{len(self.emitters)}")
        for i, (emitter, emitter_info) in enumerate(zip(self.emitters, saved)):
            emitter.load_state(emitter_info, arrays_under(arrays, f"emitter{i}."))
        stones = arrays_under(arrays, "stones.")
        self.stones = None
        if stones:
            width = len(np.asarray(stones["confidence"]))
            self.stones = Archive.from_arrays([str(c) for c in range(width)], stones,
                                              self.genome_type.unpack)
