"""Direct encoding: one gene per pixel channel, as in the paper's MNIST and ImageNet runs.

Paper (sec. 2.2 / paper.md 4.2): each number starts uniform in [0, 255]; each is chosen for
mutation with a rate that starts at 0.1 and halves every 1000 generations; chosen numbers
get polynomial mutation with strength 15. Genes here are floats in [0, 1] (the released
code's representation); ``quantize`` renders them as the paper's 8-bit integers, so a saved
PNG holds exactly the pixels that were scored.

The released code differs (paper.md section 11) and each difference is an option:
``rate_halving_every: 0`` keeps the rate constant, ``crossover: sbx`` adds simulated binary
crossover (rate 0.5, eta 10), and ``sbx_zero_equal_genes: true`` reproduces its quirk of
leaving genes that are equal in both parents at 0. ``polynomial: bounded`` swaps the code's
polynomial mutation for Deb's bounded variant (DEAP's ``mutPolynomialBounded``); both
operators live in :mod:`evofool.genomes.variation`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from evofool.genomes.base import GenomeType
from evofool.genomes.variation import polynomial_mutation, simulated_binary_crossover
from evofool.schema import MAX_ETA, MAX_IMAGE_SIDE, non_negative, positive, probability


@dataclass
class DirectParams:
    channels: int | None = field(default=None, metadata={"check": (lambda v: v in (1, 3), "1 or 3")})
    size: int | None = field(default=None, metadata=positive(
        "a positive image size in pixels", at_most=MAX_IMAGE_SIDE))
    mutation_rate: float = field(default=0.1, metadata=probability())
    mutation_eta: float = field(default=15.0, metadata=non_negative(at_most=MAX_ETA))
    polynomial: Literal["sferes", "bounded"] = "sferes"
    rate_halving_every: int = field(default=1000, metadata=non_negative(
        "an integer >= 0 (0 keeps the rate constant, as the released code does)"))
    crossover: Literal["none", "sbx"] = "none"
    crossover_rate: float = field(default=0.5, metadata=probability())
    crossover_eta: float = field(default=10.0, metadata=non_negative(at_most=MAX_ETA))
    sbx_zero_equal_genes: bool = False
    quantize: bool = True


class DirectGenome(GenomeType):
    """Pixels as genes: a population is a float32 array (N, C, H, W) with values in [0, 1]."""

    name = "direct"
    Params = DirectParams

    def __init__(self, params: DirectParams, channels: int, size: tuple[int, int]) -> None:
        channels = params.channels or channels
        size = (params.size, params.size) if params.size else size
        super().__init__(params, channels, size)
        self.supports_crossover = params.crossover == "sbx"

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, *self.size)

    def mutation_rate(self, generation: int) -> float:
        """The paper's schedule: the starting rate halves every ``rate_halving_every`` gens."""
        halving = self.params.rate_halving_every
        return self.params.mutation_rate * 0.5 ** (generation // halving if halving else 0)

    def random(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.random((n, *self.shape), dtype=np.float32)

    def mutate(self, population: np.ndarray, rng: np.random.Generator,
               generation: int) -> np.ndarray:
        return polynomial_mutation(population, self.mutation_rate(generation),
                                   self.params.mutation_eta, rng,
                                   bounded=self.params.polynomial == "bounded")

    def crossover(self, first: np.ndarray, second: np.ndarray,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """SBX on a ``crossover_rate`` share of the pairs; the other pairs are copied."""
        if not self.supports_crossover:
            return first.copy(), second.copy()
        child1, child2 = simulated_binary_crossover(
            first, second, self.params.crossover_eta, rng, self.params.sbx_zero_equal_genes)
        keep = rng.random(len(first)) >= self.params.crossover_rate
        child1[keep], child2[keep] = first[keep], second[keep]
        return child1, child2

    def render(self, population: np.ndarray, size: tuple[int, int] | None = None) -> torch.Tensor:
        images = self._quantized(torch.from_numpy(np.ascontiguousarray(population,
                                                                        dtype=np.float32)))
        if size is not None and tuple(size) != tuple(images.shape[-2:]):
            images = F.interpolate(images, size=tuple(size), mode="nearest")
        return images

    def _quantized(self, pixels: torch.Tensor) -> torch.Tensor:
        """The paper's 8-bit pixels (exactly what a PNG holds), or the floats themselves."""
        if not self.params.quantize:
            return pixels
        return torch.floor(pixels * 255.0).clamp(0, 255) / 255.0

    # Gradient ascent moves the pixels themselves.
    differentiable = True
    pixel_parameters = True

    def parameters(self, population: np.ndarray) -> np.ndarray:
        return np.array(population, dtype=np.float32)

    def render_parameters(self, population: np.ndarray, parameters: torch.Tensor) -> torch.Tensor:
        # Straight-through rounding: the model sees the 8-bit image, the gradient reaches
        # the float pixels, which keep accumulating steps smaller than one 8-bit level.
        return parameters + (self._quantized(parameters) - parameters).detach()

    def with_parameters(self, population: np.ndarray, parameters: np.ndarray) -> np.ndarray:
        return np.clip(parameters, 0.0, 1.0).astype(np.float32)

    def pack(self, population: np.ndarray) -> dict[str, np.ndarray]:
        return {"pixels": np.asarray(population, dtype=np.float32)}

    def unpack(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """Inverse of :meth:`pack`: ValueError (one line) unless ``arrays['pixels']`` is a
        float array (N, channels, height, width) of values in [0, 1] (NaN is not)."""
        pixels = arrays.get("pixels") if isinstance(arrays, dict) else None
        if (not isinstance(pixels, np.ndarray) or pixels.ndim != 4
                or tuple(pixels.shape[1:]) != self.shape):
            got = tuple(pixels.shape) if isinstance(pixels, np.ndarray) else None
            raise ValueError(f"direct genomes must be an array (N, {', '.join(map(str, self.shape))}), "
                             f"got {got}")
        if pixels.dtype.kind != "f" or not np.all((pixels >= 0) & (pixels <= 1)):
            raise ValueError("direct genomes must be floats in [0, 1]")
        return pixels.astype(np.float32)
