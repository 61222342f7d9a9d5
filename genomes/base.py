"""The genome-type interface that every loop, target and inspection command relies on."""
from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
import torch


@dataclasses.dataclass
class NoParams:
    """For genome types that take no parameters."""


class GenomeType(ABC):
    """How a population of images is encoded, created, varied, rendered and saved.

    A *population* is a NumPy array whose first axis indexes individuals: a float array for
    pixel genomes, an object array of graphs for CPPNs. The engine only ever indexes it
    (``pop[idx]``), concatenates it and hands it back to the genome type, so each type keeps
    whatever representation lets it vary and render a whole batch at once.

    Subclasses set ``name`` and ``Params`` (a dataclass whose fields are the YAML keys under
    ``genome:``, validated by :func:`evofool.schema.from_dict`) and implement the abstract
    methods. ``evofool.genomes.contract.check_genome_type`` tests a subclass against this
    contract.

    Args:
        params: an instance of ``Params``.
        channels: the target's channel count (1 or 3), a default the type may override.
        size: the target's (height, width), likewise.
    """

    name: ClassVar[str] = ""
    Params: ClassVar[type] = NoParams
    supports_crossover: ClassVar[bool] = False

    def __init__(self, params, channels: int, size: tuple[int, int]) -> None:
        self.params = params
        self.channels = channels
        self.size = tuple(size)

    @abstractmethod
    def random(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """A population of ``n`` new random genomes."""

    @abstractmethod
    def mutate(self, population: np.ndarray, rng: np.random.Generator,
               generation: int) -> np.ndarray:
        """Mutated copies of ``population`` (the input is left unchanged)."""

    def crossover(self, first: np.ndarray, second: np.ndarray,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Two children populations from parent populations paired by position."""
        return first.copy(), second.copy()

    @abstractmethod
    def render(self, population: np.ndarray, size: tuple[int, int] | None = None) -> torch.Tensor:
        """Images of the population: float32 tensor (N, C, H, W), pixels in [0, 1].

        ``size`` defaults to the genome's own size.
        """

    def describe(self, genome) -> str:
        """A short human-readable size of one genome, for reports (e.g. "784 genes")."""
        return f"{np.size(genome):,} genes"

    @abstractmethod
    def pack(self, population: np.ndarray) -> dict[str, np.ndarray]:
        """Plain arrays (no Python objects) that ``unpack`` turns back into the population;
        saved with ``np.savez`` so a stranger's archive loads without pickle."""

    @abstractmethod
    def unpack(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """Inverse of :meth:`pack`; raises ``ValueError`` on malformed data."""
