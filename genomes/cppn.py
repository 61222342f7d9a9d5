"""CPPN (indirect) encoding: a small network drawn at every pixel, as in the paper's Fig. 5-8.

A population is a 1-D NumPy object array of ``networkx.DiGraph`` genomes (graph structure,
mutations and JSON: :mod:`evofool.genomes.cppn_graph`). Rendering compiles each graph into
an op list and evaluates it over the whole pixel grid with in-place torch and NumPy ops on
reused planes, one genome after another: on 2 CPU cores this was 1.3 to 4.4 times faster than
one batch across genomes grouped by depth (benchmarks/cppn_render.py), and it makes a
genome's pixels independent of the batch it is rendered in. With ``runtime.render_device``
set to a GPU (or ``runtime.render_batching: by_depth``) the same op lists are evaluated a
depth level at a time for the whole population (:mod:`evofool.genomes.cppn_batched`), a few kernel calls per level
instead of a few per op and genome. In the MNIST run a child costs
about as much to mutate, compile and render (benchmarks/cppn_loop.py) as LeNet takes to
score it, so those three steps work on the graphs' dicts, not through networkx's views.

Inputs. Pixels are sampled at their centres, so a genome is one continuous picture over the
image square, drawn at whatever size is asked (at sizes that are odd multiples of another,
the centre pixel of each block is that size's pixel exactly). ``d`` is the distance from the
centre on coordinates normalized to [-1, 1] (d < sqrt 2) and ``bias`` is 1. ``x`` and ``y``
follow ``coordinates``:

* ``picbreeder`` (default): x, y in [-1, 1] (left/top to right/bottom), as Picbreeder draws.
  Weights up to 10 give a few stripes across the image, so what the classifier sees at 28 px
  is the picture itself, and a 1024 px render is the same picture, sharper (averaged back
  down to 28 px, the MNIST run's elites keep their class and confidence: docs/BENCHMARKS.md).
* ``code`` (the released code, which drives the paper's look): raw integer pixel indices
  ``0..reference_size-1``; at another size, x = (column + 0.5) * reference / size - 0.5,
  which is the column index at the reference size. ``reference_size`` defaults to the
  genome's own size (the target's input size: 28 for LeNet). Weights up to 10 on raw indices
  draw stripes finer than a pixel at the reference size, so the reference picture is a
  (deliberately aliased) sample of a finer pattern: a 1024 px render shows that pattern and,
  downsampled, matches the reference picture only where the genome is smooth at that scale.

Outputs. Each output o becomes |o| clipped to [0, 1]; with ``quantize`` (default) as the
code's ``int(|o| * 255)``, i.e. 8-bit channels. Gray: one output. Colour: three outputs read
as ``color_space``:

* ``hsv`` (default; the paper's text): hue, saturation, value, hue in [0, 1] = a full turn.
* ``hls`` (the released code): the outputs fill an OpenCV 8-bit H, L, S image, every channel
  scaled by 255 although OpenCV's 8-bit hue spans 0-180 (2 degrees per step); converted like
  ``cv2.cvtColor(..., COLOR_HLS2RGB)``, hue values above 180 wrap around (240 is 60), so
  reds to greens come up more often than blues.

The final RGB is rounded to 8 bits when ``quantize`` is on, so a PNG holds exactly the
pixels that were scored.
"""
from __future__ import annotations

import gc
import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

import networkx as nx
import numpy as np
import torch

from evofool.genomes.base import GenomeType
from evofool.genomes.cppn_batched import evaluate_batched
from evofool.genomes.cppn_graph import (ACTIVATIONS, GAUSSIAN, HALF_TANH, SINE, Program,
                                        canonical_json, compile_graph,
                                        genome_from_json, genome_hash, genome_to_json,
                                        grow_graph, mutate_graphs, random_graph)
from evofool.schema import (MAX_ETA, MAX_IMAGE_SIDE, MAX_WEIGHT_LIMIT, non_negative, positive,
                            probability)

__all__ = ["CppnGenome", "CppnParams", "as_population", "genome_from_json", "genome_hash",
           "genome_to_json"]


def _activation_list(value: list) -> bool:
    return len(value) > 0 and len(set(value)) == len(value) and all(a in ACTIVATIONS for a in value)


@dataclass
class CppnParams:
    """The YAML keys under ``genome:`` for ``type: cppn``; rates are the released code's."""

    channels: int | None = field(default=None, metadata={
        "check": (lambda v: v in (1, 3), "1 or 3")})
    size: int | None = field(default=None, metadata=positive(
        "a positive image size in pixels", at_most=MAX_IMAGE_SIDE))
    coordinates: Literal["picbreeder", "code"] = "picbreeder"
    reference_size: int | None = field(default=None, metadata=positive(
        "a positive size in pixels (null: the genome's own size)", at_most=MAX_IMAGE_SIDE))
    color_space: Literal["hsv", "hls"] = "hsv"
    quantize: bool = True
    activations: list[str] = field(default_factory=lambda: list(ACTIVATIONS), metadata={
        "check": (_activation_list, "a non-empty list of distinct names from "
                  + ", ".join(ACTIVATIONS))})
    weight_limit: float = field(default=10.0, metadata=positive(
        "a number > 0 (weights lie in [-limit, limit])", at_most=MAX_WEIGHT_LIMIT))
    weight_mutation_rate: float = field(default=0.1, metadata=probability())
    weight_mutation_eta: float = field(default=15.0, metadata=non_negative(at_most=MAX_ETA))
    activation_mutation_rate: float = field(default=0.1, metadata=probability())
    add_connection_rate: float = field(default=0.5, metadata=probability())
    delete_connection_rate: float = field(default=0.3, metadata=probability())
    add_node_rate: float = field(default=0.5, metadata=probability())
    delete_node_rate: float = field(default=0.2, metadata=probability())


def as_population(graphs) -> np.ndarray:
    """A 1-D object array of graphs (``np.array`` would try to iterate the graphs)."""
    graphs = list(graphs)
    population = np.empty(len(graphs), dtype=object)
    for i, graph in enumerate(graphs):
        population[i] = graph
    return population


# --- evaluation ---------------------------------------------------------------------------

def coordinate_inputs(height: int, width: int, coordinates: str,
                      reference: tuple[int, int]) -> torch.Tensor:
    """The four input planes (x, y, d, bias) at pixel centres: float32 (4, height * width)."""
    cols, rows = np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64)
    # normalized to [-1, 1]; integer numerators keep aligned sizes exactly equal
    xn, yn = (2 * cols + 1 - width) / width, (2 * rows + 1 - height) / height
    if coordinates == "code":
        ref_h, ref_w = reference
        x = ((2 * cols + 1) * ref_w - width) / (2 * width)
        y = ((2 * rows + 1) * ref_h - height) / (2 * height)
    else:
        x, y = xn, yn
    planes = np.empty((4, height, width), dtype=np.float64)
    planes[0] = x[None, :]
    planes[1] = y[:, None]
    planes[2] = np.sqrt(xn[None, :] ** 2 + yn[:, None] ** 2)
    planes[3] = 1.0
    return torch.from_numpy(planes.reshape(4, -1).astype(np.float32))


def evaluate_program(program: Program, planes: list[torch.Tensor],
                     arrays: list[np.ndarray]) -> None:
    """Run ``program`` in place on ``planes`` (its registers): the x, y, d input planes, then
    one output plane per channel (which receive the raw output values, before |o|), then at
    least ``program.registers - 3 - channels`` scratch planes, all float32 of one length on
    the CPU; ``arrays``: the same planes as NumPy arrays (``plane.numpy()``, sharing memory).
    No op allocates memory. Run it under ``np.errstate(over="ignore", invalid="ignore")``:
    large sums overflow to inf, as in torch (which does not warn).

    A node is f(w0 * s0 + w1 * s1 + ... + constant) in float32, summed left to right with one
    rounding per step, f as the op code says. At 28 x 28 pixels an op is mostly call
    overhead, about 1 to 2 us in torch and half a microsecond in NumPy, so each step goes to
    the cheaper library: NumPy for the exactly rounded w0 * s0, + constant, squaring,
    negation, division and for sin, tanh and exp (a Python float meets a float32 array as a
    float32 in NumPy 2, as in torch); torch for the fused multiply-adds p + w * s (torch's
    ``add`` with ``alpha`` rounds once, two NumPy ops would round twice) and for clamp.
    NumPy's float32 sin, tanh and exp give the same bits for an element whatever the array's
    length or alignment (checked over lengths 1-1000), so a pixel does not depend on the
    image size it is rendered at."""
    for target, sources, weights, constant, code in program.ops:
        plane = planes[target]
        array = arrays[target]
        np.multiply(arrays[sources[0]], weights[0], out=array)
        for i in range(1, len(sources)):
            plane.add_(planes[sources[i]], alpha=weights[i])
        if constant:
            np.add(array, constant, out=array)
        if code == SINE:
            np.sin(array, out=array)
        elif code == HALF_TANH:
            np.tanh(array, out=array)  # bipolar sigmoid: its inputs were halved at compile time
        elif code == GAUSSIAN:
            np.square(array, out=array)
            np.negative(array, out=array)
            np.exp(array, out=array)
        else:  # linear: clip(p, -3, 3) / 3
            plane.clamp_(-3.0, 3.0)
            np.divide(array, 3.0, out=array)
    for channel, constant in enumerate(program.constants):
        if constant is not None:
            planes[3 + channel].fill_(constant)


# --- colour (in place on (B, 3, pixels) planes) --------------------------------------------

_HSV_N = torch.tensor([5.0, 3.0, 1.0]).view(1, 3, 1)
_HLS_N = torch.tensor([0.0, 8.0, 4.0]).view(1, 3, 1)


def _work(image: torch.Tensor, work: torch.Tensor | None) -> torch.Tensor:
    if work is None:
        return torch.empty((image.shape[0], 7, image.shape[2]), device=image.device)
    return work[:image.shape[0], :, :image.shape[2]]


def _rsub(tensor: torch.Tensor, value: float, out: torch.Tensor) -> torch.Tensor:
    """``value - tensor`` into ``out``."""
    return torch.neg(tensor, out=out).add_(value)


def hsv_to_rgb_(image: torch.Tensor, work: torch.Tensor | None = None) -> torch.Tensor:
    """(B, 3, P) hue (a full turn = 1), saturation, value in [0, 1] -> RGB, in place.
    ``work``: optional scratch of at least (B, 7, P)."""
    work = _work(image, work)
    hue, saturation, value = image[:, 0:1], image[:, 1:2], image[:, 2:3]
    k, scale = work[:, 0:3], work[:, 6:7]
    torch.mul(hue, 6.0, out=scale)
    torch.add(_HSV_N.to(image.device), scale, out=k)
    k.remainder_(6.0)
    torch.minimum(k, _rsub(k, 4.0, work[:, 3:6]), out=k)
    k.clamp_(0.0, 1.0)
    torch.mul(value, saturation, out=scale)
    k.mul_(scale)
    torch.sub(value, k, out=k)
    return image.copy_(k)


def hls8_to_rgb_(image: torch.Tensor, work: torch.Tensor | None = None) -> torch.Tensor:
    """The released code's colour, in place: (B, 3, P) planes in [0, 1] fill an OpenCV 8-bit
    H, L, S image (each times 255, hue in OpenCV's 0-180 scale, so hue wraps above 180);
    -> RGB in [0, 1] as ``cv2.cvtColor(image, cv2.COLOR_HLS2RGB)`` computes it before rounding
    to 8 bits (checked equal on 65,536 random 8-bit colours against OpenCV 5.0)."""
    work = _work(image, work)
    hue8, lightness, saturation = image[:, 0:1], image[:, 1:2], image[:, 2:3]
    k, sextant = work[:, 0:3], work[:, 6:7]
    torch.mul(hue8, 255.0, out=sextant)
    sextant.mul_(6.0 / 180.0).remainder_(6.0)  # OpenCV's hue wrap
    sextant.mul_(2.0)
    torch.add(_HLS_N.to(image.device), sextant, out=k)
    k.remainder_(12.0)
    upper = _rsub(k, 9.0, work[:, 3:6])
    k.sub_(3.0)
    torch.minimum(k, upper, out=k)
    k.clamp_(-1.0, 1.0)
    chroma = work[:, 3:4]  # a = s * min(l, 1 - l); the 'upper' planes are dead now
    _rsub(lightness, 1.0, chroma)
    torch.minimum(lightness, chroma, out=chroma)
    chroma.mul_(saturation)
    k.mul_(chroma)
    torch.sub(lightness, k, out=k)
    return image.copy_(k)


# --- the genome type ----------------------------------------------------------------------

@contextmanager
def gc_paused(collect_young_first: bool = False):
    """Python's cyclic garbage collector paused for the block (left as it was found).

    A mutated population is about 40 container objects per child (a DiGraph is a dict of
    dicts), alive from mutation to the archive update. With the collector running, mutating
    200 children triggers a dozen young collections, which move the live children to older
    generations, and the growth of the oldest generation triggers a full collection of every
    object in the process every few dozen generations (about 200,000 objects with torch
    loaded: 95 ms on 2 cores). Paused, the allocations are collected once, after the block.

    ``collect_young_first`` (at the start of a mutation, when the previous generation's
    children are gone, freed by reference counting): collect generations 0 and 1 first, which
    costs little then and restarts the count that would otherwise trigger a generation-1
    collection, and with it a move to the oldest generation, while the new children live.
    In the MNIST run the collector took about 6 ms a generation without these (a fifth of
    the loop), 1 to 2 ms with them."""
    enabled = gc.isenabled()
    if enabled and collect_young_first:
        gc.collect(1)
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


_PIXELS_PER_PASS = 1 << 20  # larger renders are evaluated in slices of this many pixels
_VALUES_PER_PASS = 1 << 25  # by_depth: floats in a chunk's value table (128 MiB)
_SMALL_IMAGE = 64 * 64      # up to this many pixels, |o| and colour run on the whole batch
#: Bounds on packed genomes read back (archives and checkpoints may come from strangers):
#: characters of one genome's JSON text, and nodes and edges of all genomes of one unpack.
MAX_TEXT_CHARS = 64 << 20
MAX_TOTAL_NODES = 2_000_000
MAX_TOTAL_EDGES = 10_000_000


class CppnGenome(GenomeType):
    """CPPN genomes (paper.md 4.3): a population is an object array of DiGraphs.

    Example::

        genome = CppnGenome(CppnParams(), channels=1, size=(28, 28))
        rng = np.random.default_rng(0)
        population = genome.random(200, rng)
        children = genome.mutate(population, rng, generation=1)
        images = genome.render(children)              # (200, 1, 28, 28) float32 in [0, 1]
        big = genome.render(children[:1], size=(1024, 1024))
    """

    name = "cppn"
    Params = CppnParams
    supports_crossover = False  # the code's CPPN "crossover" copies the parents

    def __init__(self, params: CppnParams, channels: int, size: tuple[int, int]) -> None:
        channels = params.channels or channels
        size = (params.size, params.size) if params.size else size
        super().__init__(params, channels, size)
        ref = params.reference_size
        self.reference = (ref, ref) if ref else tuple(self.size)
        self._inputs: dict[tuple[int, int], torch.Tensor] = {}
        self.device = torch.device("cpu")
        self.by_depth = False

    def place(self, device: torch.device, batching: str = "auto") -> None:
        """Render on ``device``: a population at a time by depth level on a GPU (or with
        ``batching: by_depth``), genome by genome on the CPU (``auto``, ``per_genome``)."""
        device = torch.device(device)
        if batching == "per_genome" and device.type != "cpu":
            raise ValueError(f"render_batching per_genome runs on the CPU only, not on "
                             f"'{device}' (use auto or by_depth)")
        self.device = device
        self.by_depth = batching == "by_depth" or device.type != "cpu"
        self._inputs.clear()

    def random(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return as_population(random_graph(self.channels, rng, self.params.activations,
                                          self.params.weight_limit) for _ in range(n))

    def mutate(self, population: np.ndarray, rng: np.random.Generator,
               generation: int) -> np.ndarray:
        with gc_paused(collect_young_first=True):
            return as_population(mutate_graphs(population, self.params, rng))

    def inputs(self, height: int, width: int) -> torch.Tensor:
        """The (x, y, d) planes at this size, (3, height * width), cached where they are
        drawn (``self.device`` when batching by depth, else the CPU)."""
        key = (height, width)
        if key not in self._inputs:
            if len(self._inputs) >= 4:
                self._inputs.clear()
            planes = coordinate_inputs(height, width, self.params.coordinates, self.reference)
            self._inputs[key] = planes[:3].contiguous().to(
                self.device if self.by_depth else "cpu")
        return self._inputs[key]

    def render(self, population: np.ndarray, size: tuple[int, int] | None = None) -> torch.Tensor:
        with gc_paused():  # compiling allocates a few dozen containers per genome
            return self._render(population, size)

    def _render(self, population: np.ndarray, size: tuple[int, int] | None) -> torch.Tensor:
        height, width = tuple(size) if size is not None else tuple(self.size)
        pixels = height * width
        # compiled on every call: in the evolution loop every child is new (a cache keyed by
        # the genome's content cost more to look up than the 10-40 us it saved on rare hits)
        programs = [compile_graph(graph) for graph in population]
        for i, program in enumerate(programs):
            if program.channels != self.channels:
                raise ValueError(f"genome {i} has {program.channels} output(s), "
                                 f"expected {self.channels}")
        if self.by_depth:
            return self._render_by_depth(programs, height, width)
        channels = self.channels
        chunk = max(1, min(pixels, _PIXELS_PER_PASS))
        registers = max((p.registers for p in programs), default=0)
        scratch = torch.empty((max(registers - 3 - channels, 0), chunk))
        inputs = self.inputs(height, width)
        images = torch.empty((len(programs), channels, pixels))
        whole_batch = pixels <= _SMALL_IMAGE  # else finish each image while it is in cache
        work = torch.empty((1, 7, chunk)) if channels == 3 and not whole_batch else None
        inputs_np, scratch_np, images_np = inputs.numpy(), scratch.numpy(), images.numpy()
        for start in range(0, pixels, chunk):  # one pass unless above _PIXELS_PER_PASS
            stop = min(start + chunk, pixels)
            # the registers (x, y, d, this genome's output planes, scratch planes), as tensors
            # and as arrays; each genome's output planes made as views in one call per channel
            planes = [*inputs[:, start:stop], *([None] * channels), *scratch[:, :stop - start]]
            arrays = [*inputs_np[:, start:stop], *([None] * channels),
                      *scratch_np[:, :stop - start]]
            outputs = [images[:, c, start:stop].unbind(0) for c in range(channels)]
            outputs_np = [list(images_np[:, c, start:stop]) for c in range(channels)]
            # inference mode: in-place torch ops on views made outside it, 6% faster
            with np.errstate(over="ignore", invalid="ignore"), torch.inference_mode():
                for i, program in enumerate(programs):
                    for c in range(channels):
                        planes[3 + c] = outputs[c][i]
                        arrays[3 + c] = outputs_np[c][i]
                    evaluate_program(program, planes, arrays)
                    if not whole_batch:
                        self._finish(images[i:i + 1, :, start:stop], work)
        if whole_batch:
            self._finish(images, None)
        return images.view(len(programs), channels, height, width)

    def _render_by_depth(self, programs: list[Program], height: int,
                         width: int) -> torch.Tensor:
        """All genomes at once, level by level, on ``self.device``
        (:mod:`evofool.genomes.cppn_batched`), in chunks that keep the value table and the
        colour conversion's scratch under _VALUES_PER_PASS floats each."""
        pixels = height * width
        inputs = self.inputs(height, width)
        images = torch.empty((len(programs), self.channels, pixels), device=self.device)
        most_genomes = max(1, _VALUES_PER_PASS // (7 * pixels))
        start = 0
        with torch.inference_mode():
            while start < len(programs):
                stop, rows = start + 1, 4 + len(programs[start].ops)
                while (stop < len(programs) and stop - start < most_genomes
                       and (rows + len(programs[stop].ops)) * pixels <= _VALUES_PER_PASS):
                    rows += len(programs[stop].ops)
                    stop += 1
                evaluate_batched(programs[start:stop], inputs, images[start:stop])
                self._finish(images[start:stop], None)
                start = stop
        return images.view(len(programs), self.channels, height, width)

    def _finish(self, images: torch.Tensor, work: torch.Tensor | None) -> None:
        """Raw outputs (B, C, P) -> pixels, in place: |o| clipped to [0, 1] (8-bit as the
        code's int(|o| * 255) when quantizing), then the colour space's conversion to RGB.
        Only exactly rounded operations: the result does not depend on the batch shape."""
        images.abs_().clamp_(max=1.0)
        if self.params.quantize:
            images.mul_(255.0).floor_().div_(255.0)
        if self.channels == 3:
            convert = hsv_to_rgb_ if self.params.color_space == "hsv" else hls8_to_rgb_
            convert(images, work).clamp_(0.0, 1.0)
            if self.params.quantize:
                images.mul_(255.0).round_().div_(255.0)

    # Gradient ascent moves the link weights (topology and activations stay):
    # :mod:`evofool.genomes.cppn_gradient`.
    differentiable = True

    def parameters(self, population: np.ndarray) -> np.ndarray:
        from evofool.genomes.cppn_gradient import link_weights
        return link_weights(population)

    def with_parameters(self, population: np.ndarray, parameters: np.ndarray) -> np.ndarray:
        from evofool.genomes.cppn_gradient import with_link_weights
        return as_population(with_link_weights(population, parameters,
                                               self.params.weight_limit))

    def grown(self, population: np.ndarray, size: int, rng: np.random.Generator,
              layers: int = 1, activations: list[str] | None = None) -> np.ndarray:
        """Each graph with ``layers`` layers of ``size`` more hidden nodes
        (:func:`grow_graph`), each with an activation drawn from ``activations`` (default:
        the genome's). The first layer's input weights span +-weight_limit over the largest
        coordinate, so with ``code`` coordinates (up to the image size) its waves are as
        wide as with ``picbreeder`` ones."""
        planes = coordinate_inputs(*self.reference, self.params.coordinates, self.reference)
        bounds = self.params.weight_limit / np.maximum(1.0, planes.abs().amax(dim=1).numpy())
        activations = activations or self.params.activations
        return as_population(grow_graph(graph, size, activations, bounds, rng, layers)
                             for graph in population)

    def render_parameters(self, population: np.ndarray, parameters: torch.Tensor) -> torch.Tensor:
        """The exact render of ``population`` (whose weights are ``parameters``), with the
        gradient of the differentiable drawing passed straight through; both on
        ``self.device`` (``runtime.render_device``)."""
        from evofool.genomes.cppn_gradient import draw, hls8_to_rgb, hsv_to_rgb
        height, width = self.size
        inputs = coordinate_inputs(height, width, self.params.coordinates,
                                   self.reference).to(self.device)
        raw = torch.stack([draw(graph, row.to(self.device), inputs, self.channels)
                           for graph, row in zip(population, parameters)])
        images = raw.abs().clamp(max=1.0)
        if self.channels == 3:
            convert = hsv_to_rgb if self.params.color_space == "hsv" else hls8_to_rgb
            images = convert(images).clamp(0.0, 1.0)
        images = images.view(len(population), self.channels, height, width)
        exact = self.render(population).to(images.device)
        return images + (exact - images).detach()

    def describe(self, genome: nx.DiGraph) -> str:
        hidden = sum(1 for _, kind in genome.nodes(data="kind") if kind == "hidden")
        return f"{hidden} hidden nodes, {genome.number_of_edges()} links"

    def pack(self, population: np.ndarray) -> dict[str, np.ndarray]:
        """One compact JSON text per genome, in a unicode array (loads without pickle)."""
        return {"graphs": np.array([canonical_json(g) for g in population], dtype=str)}

    def unpack(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """Inverse of :meth:`pack`; ValueError (one line) on malformed data, including a
        genome text over MAX_TEXT_CHARS, JSON nested too deeply, and more than MAX_NODES /
        MAX_EDGES per genome (:func:`genome_from_json`) or MAX_TOTAL_NODES /
        MAX_TOTAL_EDGES in all (a stranger's archive must not exhaust memory)."""
        texts = arrays.get("graphs") if isinstance(arrays, dict) else None
        if (not isinstance(texts, np.ndarray) or texts.ndim != 1
                or texts.dtype.kind != "U"):
            raise ValueError("cppn genomes must be a 1-D unicode array 'graphs' of JSON texts")
        if texts.dtype.itemsize // 4 > MAX_TEXT_CHARS:
            raise ValueError(f"cppn genome texts of up to {texts.dtype.itemsize // 4:,} "
                             f"characters, expected at most {MAX_TEXT_CHARS:,}")
        graphs, nodes, edges = [], 0, 0
        for i, text in enumerate(texts):
            try:
                try:
                    data = parse_json(str(text))
                except RecursionError:
                    raise ValueError("JSON nested too deeply") from None
                if isinstance(data, dict):
                    nodes += len(data["nodes"]) if isinstance(data.get("nodes"), list) else 0
                    links = data.get("edges", data.get("links"))
                    edges += len(links) if isinstance(links, list) else 0
                    if nodes > MAX_TOTAL_NODES or edges > MAX_TOTAL_EDGES:
                        raise ValueError(f"the genomes up to here have {nodes:,} nodes and "
                                         f"{edges:,} edges, expected at most "
                                         f"{MAX_TOTAL_NODES:,} and {MAX_TOTAL_EDGES:,} in all")
                graphs.append(genome_from_json(data, self.channels))
            except ValueError as exc:
                raise ValueError(f"cppn genome {i}: {exc}") from None
        return as_population(graphs)

    def to_json(self, genome: nx.DiGraph) -> dict:
        """The graph as readable node-link data (:func:`genome_to_json`), not packed text;
        checked to load back, so a bad graph fails when saved rather than when opened."""
        data = genome_to_json(genome)
        genome_from_json(data, self.channels)
        return data

    def from_json(self, data) -> np.ndarray:
        """A population of one genome from its node-link data (:func:`genome_from_json`:
        ValueError of one line, at most MAX_NODES nodes and MAX_EDGES edges)."""
        return as_population([genome_from_json(data, self.channels)])


def parse_json(text: str):
    """``json.loads`` with a one-line ValueError."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"malformed JSON ({exc.msg} at line {exc.lineno}, "
                         f"column {exc.colno})") from None
