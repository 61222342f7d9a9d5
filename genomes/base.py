"""The genome-type interface that every loop, target and inspection command relies on."""
from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
import torch

from evofool.errors import one_line


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

    # --- optional: gradient ascent (evofool.search.gradient_ascent) -------------------------
    # A differentiable type exposes continuous parameters (pixels, CPPN weights) and renders
    # from them with torch operations, so a target's gradient reaches them.
    differentiable: ClassVar[bool] = False
    pixel_parameters: ClassVar[bool] = False  # the parameters are the image's pixels

    def parameters(self, population: np.ndarray) -> np.ndarray:
        """The numbers gradient ascent moves: float32 array (N, ...)."""
        raise NotImplementedError(f"genome type '{self.name}' has no differentiable render")

    def render_parameters(self, population: np.ndarray, parameters: torch.Tensor) -> torch.Tensor:
        """:meth:`render` of ``population`` with ``parameters`` in place of its own, as torch
        operations that gradients flow through (rounding to 8 bits passes them straight)."""
        raise NotImplementedError(f"genome type '{self.name}' has no differentiable render")

    def with_parameters(self, population: np.ndarray, parameters: np.ndarray) -> np.ndarray:
        """A new population: ``population`` with ``parameters``, clipped to their range."""
        raise NotImplementedError(f"genome type '{self.name}' has no differentiable render")

    def grown(self, population: np.ndarray, size: int, rng: np.random.Generator,
              layers: int = 1, activations: list[str] | None = None) -> np.ndarray:
        """``population`` with more parameters per genome that leave every image as it is (a
        CPPN's ``layers`` new layers of ``size`` hidden nodes, with ``activations``), for
        gradient ascent's ``grow``."""
        raise NotImplementedError(f"genome type '{self.name}' cannot grow")

    def ready(self) -> None:
        """Raise ValueError (one line) when this type cannot make new genomes here (a
        perturbation whose start image cannot be read); called before a run starts. Saved
        genomes may still render: their files carry what they need."""

    def place(self, device: torch.device, batching: str = "auto") -> None:
        """Where and how ``render`` should work (``runtime.render_device``,
        ``runtime.render_batching``): a runtime choice, never saved with a genome, so an
        archive renders wherever it is opened (on the CPU unless told otherwise). Types with
        one way to render ignore it; a type that cannot honour it raises ValueError."""

    # --- optional: per-image measures an archive keeps per cell (a perturbation's
    # distortion), and an objective over them (evofool.search.archive.Objective)
    measure_names: ClassVar[tuple[str, ...]] = ()

    def measures(self, population: np.ndarray) -> dict[str, np.ndarray]:
        """``{name: (N,) float array}`` for each of ``measure_names``."""
        return {}

    def objective(self):
        """An :class:`~evofool.search.archive.Objective` when the most confident image is
        not simply the best (``objective: min_distortion``), else None."""
        return None

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

    def to_json(self, genome) -> dict:
        """One genome (``population[i]``) as a JSON-able dict: the one format of genome files
        (``evofool render``, ``archive export``, plugins). By default the arrays :meth:`pack`
        makes of a population of just this genome, each ``{"dtype", "shape", "data"}`` with
        the data flat; floats are exact (JSON keeps a double's shortest repr). A genome that
        is an array (not an object) joins a population as ``genome[None]``, i.e.
        ``population[i:i + 1]``; anything else as a 1-element object array. Override for a
        readable form (CPPNs write their graph) or an object population of arrays."""
        if isinstance(genome, (np.ndarray, np.generic)) and genome.dtype != object:
            population = np.asarray(genome)[None]
        else:
            population = np.empty(1, dtype=object)
            population[0] = genome
        encoded = {}
        for name, array in self.pack(population).items():
            array = np.asarray(array)
            if array.dtype.kind not in "biufU":
                raise ValueError(f"array '{name}' has dtype {array.dtype}: a genome file holds "
                                 "only booleans, numbers and strings")
            if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
                raise ValueError(f"array '{name}' holds NaN or infinity, which JSON cannot")
            encoded[str(name)] = {"dtype": str(array.dtype), "shape": list(array.shape),
                                  "data": array.ravel().tolist()}
        return encoded

    def from_json(self, data, max_elements: int = 50_000_000) -> np.ndarray:
        """A population of one genome from :meth:`to_json`'s dict (through :meth:`unpack`);
        ``ValueError`` of one line on anything else, and on more than ``max_elements``
        numbers in all (a hostile file must not exhaust memory)."""
        if not isinstance(data, dict) or not data:
            raise ValueError("genome data must be a non-empty object of named arrays")
        if len(data) > 1000:
            raise ValueError(f"genome data holds {len(data):,} arrays, expected at most 1,000")
        arrays, total = {}, 0
        for name, entry in data.items():
            if len(name) > 200 or not name.isprintable():
                raise ValueError(f"an array is named {name[:40]!r}..., expected a short "
                                 "printable name")
            if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data"}:
                raise ValueError(f"array '{name}' must be an object with exactly the keys "
                                 "'dtype', 'shape' and 'data'")
            try:
                dtype = (np.dtype(entry["dtype"]) if isinstance(entry["dtype"], str)
                         and len(entry["dtype"]) <= 32 else None)
            except (TypeError, ValueError, SyntaxError, OverflowError):
                dtype = None
            if dtype is None or dtype.kind not in "biufU" or dtype.names or dtype.subdtype:
                shown = repr(entry["dtype"])
                shown = shown if len(shown) <= 40 else shown[:37] + "..."
                raise ValueError(f"array '{name}' has dtype {shown}: expected a "
                                 "boolean, number or string dtype such as 'float32'")
            shape = entry["shape"]
            if (not isinstance(shape, list) or len(shape) > 32 or not all(
                    isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)):
                shown = repr(shape)
                shown = shown if len(shown) <= 60 else shown[:57] + "..."
                raise ValueError(f"array '{name}' has shape {shown}: expected a list of at "
                                 "most 32 integers >= 0")
            size = 1
            for side in shape:
                size *= side
            total += size * max(1, dtype.itemsize // 8)  # a long string counts as many
            if total > max_elements:
                raise ValueError(f"genome data holds more than {max_elements:,} numbers")
            values = entry["data"]
            if not isinstance(values, list) or len(values) != size:
                raise ValueError(f"array '{name}' must have a flat list of {size} values as "
                                 f"its data (shape {shape})")
            try:
                source = np.asarray(values)
            except (ValueError, TypeError, OverflowError):
                source = None
            allowed = {"b": "b", "i": "iu", "u": "iu", "f": "iuf", "U": "U"}[dtype.kind]
            if size and (source is None or source.ndim != 1 or source.dtype.kind not in allowed):
                raise ValueError(f"array '{name}' of dtype {dtype} holds values of another "
                                 "type (or nested lists)")
            try:
                array = (source if size else np.zeros(0)).astype(dtype).reshape(shape)
            except (ValueError, TypeError, OverflowError) as exc:
                raise ValueError(f"array '{name}': {str(exc).splitlines()[0]}") from None
            if dtype.kind in "iuU" and size and not np.array_equal(array.ravel(), source):
                raise ValueError(f"array '{name}' has values that {dtype} cannot hold")
            if dtype.kind == "f" and not np.all(np.isfinite(array)):
                raise ValueError(f"array '{name}' holds NaN, infinity or numbers out of the "
                                 f"range of {dtype}")
            arrays[str(name)] = array
        try:
            population = self.unpack(arrays)
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            message = one_line(exc)
            if not isinstance(exc, ValueError):
                message = f"{type(exc).__name__}: {message}"
            raise ValueError(f"genome data does not unpack ({message})") from None
        if len(population) != 1:
            raise ValueError(f"genome data holds {len(population)} genomes, expected one")
        return population
