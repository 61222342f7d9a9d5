"""Perturbations of one real image, bounded in L-inf or L2: Szegedy et al.'s adversarial
examples (paper sec. 1 and 8) searched for by evolution, next to the paper's fooling images.

A genome is a perturbation ``delta``; its image is the start image plus ``delta``, in 8-bit
pixels. ``delta`` lives at full resolution (``basis: full``) or on a ``basis_size`` grid
drawn up to the image with nearest-neighbour sampling (``basis: lowres``), the small search
space that query-efficient black-box attacks use on ImageNet-sized images.

The bound holds for the saved PNG, not only for the floats: L-inf perturbations are rounded
to whole 8-bit levels no larger than ``epsilon``; L2 ones are rounded toward zero.

Mutation follows the bound:

* ``square`` (default), the Square attack's step (Andriushchenko et al., ECCV 2020): a random
  square window is set to a fresh random corner of the ball (+-epsilon per channel) for
  L-inf, or gets a random per-channel shift for L2, which is then projected back onto the
  ball; with ``objective: min_distortion`` half the windows are set back to the start image. The window covers ``square_fraction`` of the pixels at first and shrinks on the
  Square attack's schedule, stretched over ``square_schedule`` generations.
* ``gaussian``: a ``mutation_rate`` share of the genes move by N(0, (sigma * epsilon)^2),
  then the perturbation is projected back onto the ball.

Every archive cell records the distortion of its image (L2 and L-inf in [0, 1] pixel units,
and the number of pixels whose 8-bit value changed). ``objective: min_distortion`` makes a
cell keep, among images at or above ``threshold`` confidence, the least distorted one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from evofool.genomes.base import GenomeType
from evofool.genomes.start_images import START_WORDS, StartImage, load_start_image
from evofool.schema import MAX_IMAGE_SIDE, positive, probability
from evofool.search.archive import Objective

# The Square attack's schedule: the window's share of the image halves after these many of
# its 10,000 iterations (Andriushchenko et al., sec. 3 and their released p_selection).
SQUARE_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)
MEASURES = ("l2", "linf", "changed_pixels")


@dataclass
class PerturbationParams:
    start: str | None = field(default=None, metadata={"check": (
        lambda v: 0 < len(v) <= 4096, START_WORDS)})
    norm: Literal["linf", "l2"] = "linf"
    epsilon: float = field(default=0.1, metadata={"check": (
        lambda v: v > 0, "a number > 0: the bound, in [0, 1] pixel units (8/255 = 0.0314)")})
    basis: Literal["full", "lowres"] = "full"
    basis_size: int = field(default=32, metadata=positive(
        "a positive side in pixels (the low-resolution grid, basis: lowres)",
        at_most=MAX_IMAGE_SIDE))
    mutation: Literal["square", "gaussian"] = "square"
    square_fraction: float = field(default=0.05, metadata={"check": (
        lambda v: 0 < v <= 1, "a number in (0, 1]: the share of the pixels the first "
                              "windows cover (the Square attack's p_init)")})
    square_schedule: int = field(default=1000, metadata=positive(
        "a positive integer: generations over which the window shrinks as over the Square "
        "attack's 10,000 iterations"))
    mutation_rate: float = field(default=0.1, metadata=probability())
    sigma: float = field(default=0.25, metadata={"check": (
        lambda v: v > 0, "a number > 0 (the gaussian step, in units of epsilon)")})
    mnist_dir: str | None = None  # t10k files for start: mnist-test:INDEX
    objective: Literal["confidence", "min_distortion"] = "confidence"
    threshold: float = field(default=0.99, metadata={"check": (
        lambda v: 0 < v <= 1, "a number in (0, 1]: the confidence that counts as fooled")})
    distortion: Literal["l2", "linf", "changed_pixels"] = "l2"

    def __post_init__(self) -> None:
        if self.start is None:
            raise ValueError(f"start is missing: expected {START_WORDS}")
        if self.norm == "linf" and self.epsilon > 1:
            raise ValueError(f"epsilon = {self.epsilon} is larger than the pixel range: an "
                             "L-inf bound is a number in (0, 1]")


class PerturbationGenome(GenomeType):
    """A population is a float32 array (N, C, h, w) of perturbations within the ball."""

    name = "perturbation"
    Params = PerturbationParams
    measure_names = MEASURES

    def __init__(self, params: PerturbationParams, channels: int, size: tuple[int, int],
                 start_pixels: np.ndarray | None = None) -> None:
        """``start_pixels``: uint8 (channels, height, width) to start from instead of what
        ``params.start`` names (which then only labels it), as :mod:`evofool.attacks` does."""
        super().__init__(params, channels, size)
        # The start image travels with every packed population (archives, checkpoints,
        # genome files), so a run's images render where its source is absent (no MNIST
        # files, another machine); a fresh run needs the source (``ready``).
        self.start: StartImage | None = None
        self._start_levels: torch.Tensor | None = None
        self._start_error: str | None = None
        if start_pixels is not None:
            self._adopt_start(np.asarray(start_pixels)[None])
        else:
            try:
                self.start = load_start_image(params.start, channels, self.size,
                                              params.mnist_dir)
                self._start_levels = torch.from_numpy(self.start.pixels).float()[None]
            except ValueError as exc:
                self._start_error = str(exc)
        side = min(params.basis_size, *self.size)
        self.basis_shape = (channels, *self.size) if params.basis == "full" \
            else (channels, side, side)
        self._max_level = np.floor(params.epsilon * 255 + 1e-6)  # L-inf, in 8-bit levels

    def ready(self) -> None:
        if self._start_levels is None:
            raise ValueError(self._start_error)

    def _start(self) -> torch.Tensor:
        """The start image's 8-bit levels, (1, C, H, W) floats."""
        self.ready()
        return self._start_levels

    def _adopt_start(self, pixels) -> None:
        """Take the start image a packed population carries (what its images were made of)."""
        pixels = np.asarray(pixels)
        if pixels.shape != (1, self.channels, *self.size) or pixels.dtype != np.uint8:
            raise ValueError(f"the start image must be uint8 (1, {self.channels}, "
                             f"{self.size[0]}, {self.size[1]}), got {pixels.dtype} "
                             f"{tuple(pixels.shape)}")
        self._start_levels = torch.from_numpy(pixels.astype(np.float32))
        if self.start is None:
            self.start = StartImage(pixels[0].copy(), None, self.params.start)

    # --- the ball -------------------------------------------------------------------------
    def _full(self, delta: torch.Tensor) -> torch.Tensor:
        """The perturbation at the image's size."""
        if tuple(delta.shape[-2:]) != self.size:
            delta = F.interpolate(delta, size=self.size, mode="nearest")
        return delta

    def project(self, delta: np.ndarray) -> np.ndarray:
        """``delta`` moved onto the ball: clipped (L-inf) or scaled down (L2)."""
        eps = self.params.epsilon
        if self.params.norm == "linf":
            return np.clip(delta, -eps, eps).astype(np.float32)
        norms = self._full(torch.from_numpy(np.ascontiguousarray(delta, dtype=np.float32))
                           ).double().flatten(1).norm(dim=1).numpy()
        scale = np.minimum(1.0, eps / np.maximum(norms, 1e-12))
        return (delta * scale.reshape(-1, 1, 1, 1)).astype(np.float32)

    # --- the genome type's methods ----------------------------------------------------------
    def random(self, n: int, rng: np.random.Generator) -> np.ndarray:
        eps = self.params.epsilon
        channels, height, width = self.basis_shape
        if self.params.norm == "linf":  # the Square attack's start: vertical stripes
            signs = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), (n, channels, 1, width))
            return np.ascontiguousarray(np.broadcast_to(eps * signs, (n, *self.basis_shape)))
        noise = rng.standard_normal((n, *self.basis_shape), dtype=np.float32)
        return self.project(noise * np.float32(1e6))  # a random direction, on the sphere

    def window_side(self, generation: int) -> int:
        """The side of the Square attack's window at ``generation`` (at least one cell)."""
        iteration = generation * 10_000 / self.params.square_schedule
        share = self.params.square_fraction * 0.5 ** sum(iteration > h for h in SQUARE_HALVINGS)
        _, height, width = self.basis_shape
        return int(np.clip(round(np.sqrt(share * height * width)), 1, min(height, width)))

    def mutate(self, population: np.ndarray, rng: np.random.Generator,
               generation: int) -> np.ndarray:
        eps = self.params.epsilon
        children = np.array(population, dtype=np.float32)
        n, channels = len(children), self.basis_shape[0]
        if self.params.mutation == "gaussian":
            chosen = rng.random(children.shape) < self.params.mutation_rate
            steps = rng.standard_normal(children.shape, dtype=np.float32)
            return self.project(children + chosen * steps * np.float32(self.params.sigma * eps))
        side = self.window_side(generation)
        _, height, width = self.basis_shape
        tops = rng.integers(0, height - side + 1, n)
        lefts = rng.integers(0, width - side + 1, n)
        if self.params.norm == "linf":
            values = eps * rng.choice(np.array([-1.0, 1.0], dtype=np.float32), (n, channels))
        else:  # a shift of about a window's share of the budget, then back onto the ball
            values = rng.standard_normal((n, channels), dtype=np.float32) * np.float32(
                eps * np.sqrt(side * side / (height * width)) / side)
        # Searching for the least distortion, half the windows go back to the start image.
        restore = rng.random(n) < (0.5 if self.params.objective == "min_distortion" else 0.0)
        for i in range(n):
            window = children[i, :, tops[i]:tops[i] + side, lefts[i]:lefts[i] + side]
            if restore[i]:
                window[...] = 0.0
            elif self.params.norm == "linf":
                if np.all(window == values[i][:, None, None]):  # as Square: always a change
                    values[i] = -values[i]
                window[...] = values[i][:, None, None]
            else:
                window += values[i][:, None, None] * self._scale_per_cell()
        return children if self.params.norm == "linf" else self.project(children)

    def _scale_per_cell(self) -> float:
        """How much one basis cell weighs in the image's L2 norm (cells drawn on k x k
        pixels count k times): steps are sized for the image."""
        _, height, width = self.basis_shape
        return float(np.sqrt(height * width / (self.size[0] * self.size[1])))

    def render(self, population: np.ndarray, size: tuple[int, int] | None = None) -> torch.Tensor:
        images = self._images(torch.from_numpy(np.ascontiguousarray(population,
                                                                     dtype=np.float32)))
        if size is not None and tuple(size) != tuple(images.shape[-2:]):
            images = F.interpolate(images, size=tuple(size), mode="nearest")
        return images

    def _images(self, delta: torch.Tensor) -> torch.Tensor:
        """Start + perturbation in whole 8-bit levels, never past the bound."""
        levels = self._full(delta) * 255.0
        if self.params.norm == "linf":
            levels = levels.round().clamp(-self._max_level, self._max_level)
        else:
            levels = levels.trunc()  # toward zero: each |level| <= |delta|, so the norm too
        return (self._start() + levels).clamp(0, 255) / 255.0

    def measures(self, population: np.ndarray) -> dict[str, np.ndarray]:
        """Per genome: the L2 and L-inf distance of its image from the start image (in [0, 1]
        pixel units) and how many pixels changed at all."""
        result = {name: [] for name in MEASURES}
        start = self._start()
        for first in range(0, len(population), 256):
            images = self.render(population[first:first + 256]) * 255.0
            change = (images - start).round().flatten(2)  # whole levels: (N, C, pixels)
            result["l2"].append(change.flatten(1).double().norm(dim=1).numpy() / 255.0)
            result["linf"].append(change.abs().flatten(1).amax(dim=1).double().numpy() / 255.0)
            result["changed_pixels"].append((change != 0).any(dim=1).sum(dim=1).double().numpy())
        return {name: np.concatenate(parts) if parts else np.zeros(0)
                for name, parts in result.items()}

    def objective(self) -> Objective | None:
        if self.params.objective != "min_distortion":
            return None
        return Objective(measure=self.params.distortion, threshold=self.params.threshold)

    def describe(self, genome) -> str:
        bound = f"{self.params.norm.replace('inf', '-inf').upper()} <= {self.params.epsilon:g}"
        return f"perturbation of {self.params.start} ({bound}, {np.size(genome):,} genes)"

    # --- gradient ascent moves the perturbation: white-box search inside the ball -----------
    differentiable = True

    def parameters(self, population: np.ndarray) -> np.ndarray:
        return np.array(population, dtype=np.float32)

    def render_parameters(self, population: np.ndarray, parameters: torch.Tensor) -> torch.Tensor:
        smooth = (self._start() / 255.0 + self._full(parameters)).clamp(0, 1)
        return smooth + (self._images(parameters.detach()) - smooth).detach()

    def with_parameters(self, population: np.ndarray, parameters: np.ndarray) -> np.ndarray:
        delta = self.project(parameters)
        if self.params.basis == "full":  # beyond [0, 1] a change shows nothing and gets no
            start = self._start().numpy() / 255.0  # gradient: keep it where it can move
            delta = np.clip(delta, -start, 1.0 - start).astype(np.float32)
        return delta

    # --- saving -----------------------------------------------------------------------------
    def pack(self, population: np.ndarray) -> dict[str, np.ndarray]:
        start = self._start().numpy().astype(np.uint8)
        return {"delta": np.asarray(population, dtype=np.float32), "start": start}

    def unpack(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """Inverse of :meth:`pack`: ValueError (one line) unless ``arrays['delta']`` is a float
        array (N, *basis shape) inside the ball, and ``arrays['start']`` the start image
        (which this type then draws on)."""
        delta = arrays.get("delta") if isinstance(arrays, dict) else None
        if "start" not in arrays:
            raise ValueError("perturbation genomes need their start image (array 'start')")
        if (not isinstance(delta, np.ndarray) or delta.ndim != 4
                or tuple(delta.shape[1:]) != self.basis_shape or delta.dtype.kind != "f"):
            got = tuple(delta.shape) if isinstance(delta, np.ndarray) else None
            raise ValueError(f"perturbation genomes must be a float array (N, "
                             f"{', '.join(map(str, self.basis_shape))}), got {got}")
        delta = delta.astype(np.float32)
        if not np.all(np.isfinite(delta)) or not np.allclose(self.project(delta), delta,
                                                             rtol=1e-5, atol=1e-7):
            raise ValueError(f"perturbation genomes must lie within {self.params.norm} "
                             f"epsilon = {self.params.epsilon:g}")
        self._adopt_start(arrays["start"])
        return delta
