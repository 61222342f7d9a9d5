"""CPPNs with differentiable weights: gradient ascent refines an evolved pattern.

The paper evolves CPPNs and, separately, climbs pixels by gradient (sec. 3.5). Moving a
CPPN's link weights by gradient instead keeps the image a CPPN pattern (its topology and
activations never change) while the classifier's gradient reaches the few dozen numbers
that draw it. Here each graph is evaluated over the pixel grid with ordinary (autograd)
torch operations, the same function as :func:`evofool.genomes.cppn.evaluate_program`
(sources summed, then sine / bipolar sigmoid / Gaussian / clipped linear; |o| clipped to
[0, 1]; HSV or the code's HLS to RGB). The values a model sees still come from the exact
renderer, with this path's gradient passed straight through (as for 8-bit rounding), so a
score is the saved PNG's.

The parameters of a graph are its link weights in a fixed order (links sorted by source and
target id), so they survive a checkpoint, whose JSON may list links in another order.

Ascent redraws the same topologies with new weights at every step, so each topology's link
order and drawing plan are computed once and kept (:class:`_Shapes`): for grown graphs of
~4,600 links they cost more than the drawing's forward pass.
"""
from __future__ import annotations

import itertools
from collections import OrderedDict

import networkx as nx
import numpy as np
import torch

from evofool.genomes.cppn_graph import INPUTS, copy_graphs, evaluation_order

# activation name -> f(p), as the compiled programs compute it
_ACTIVATIONS = {
    "sine": torch.sin,
    "sigmoid": lambda p: torch.tanh(0.5 * p),  # bipolar sigmoid 2 / (1 + e^-p) - 1
    "gaussian": lambda p: torch.exp(-p * p),
    "linear": lambda p: p.clamp(-3.0, 3.0) / 3.0,
}


def links(graph: nx.DiGraph) -> list[tuple]:
    """The graph's links in parameter order."""
    return sorted(graph.edges, key=lambda edge: (str(edge[0]), str(edge[1])))


def link_weights(population: np.ndarray) -> np.ndarray:
    """(N, most links) float32: each graph's weights in parameter order, zero-padded."""
    rows = [np.array([data["weight"] for targets in graph._succ.values()
                      for data in targets.values()], dtype=np.float32)[_shape(graph).order]
            for graph in population]
    weights = np.zeros((len(rows), max((len(r) for r in rows), default=0)), dtype=np.float32)
    for i, row in enumerate(rows):
        weights[i, :len(row)] = row
    return weights


def with_link_weights(population: np.ndarray, weights: np.ndarray, limit: float) -> list:
    """Copies of the graphs with ``weights`` (clipped to [-limit, limit]) on their links."""
    orders = [_shape(graph).order for graph in population]
    copies, edge_data, _ = copy_graphs(population)  # edge dicts graph by graph, link order
    start = 0
    for order, row in zip(orders, np.clip(weights, -limit, limit).tolist()):
        for position, weight in zip((start + order).tolist(), row):
            edge_data[position]["weight"] = weight
        start += len(order)
    return copies


def draw(graph: nx.DiGraph, weights: torch.Tensor, inputs: torch.Tensor,
         channels: int) -> torch.Tensor:
    """Raw outputs (channels, pixels) of ``graph`` with ``weights`` (parameter order) on its
    links; ``inputs``: the (4, pixels) x, y, d, bias planes.

    Level by level (a node one deeper than its deepest source): each level's sums are
    matrix products of a weight matrix per earlier level and that level's values, so a
    grown layer of N nodes fed by M costs one product, not N x M multiply-adds, and
    autograd keeps one plane per node, not one per link."""
    levels, outputs = _shape(graph).plan(graph, weights.device)
    values = [inputs]  # per level: its nodes' planes, in the level's row order
    for size, runs, sources in levels:
        total = None
        for source_level, (rows, columns, link_index) in sources.items():
            matrix = weights.new_zeros((size, len(values[source_level])))
            matrix = matrix.index_put((rows, columns), weights[link_index])
            term = matrix @ values[source_level]
            total = term if total is None else total + term
        if total is None:  # a node without sources sums to zero
            total = inputs.new_zeros((size, inputs.shape[1]))
        values.append(torch.cat([_ACTIVATIONS[name](total[start:stop])
                                 for name, start, stop in runs]))
    zero = torch.zeros_like(inputs[0])
    return torch.stack([values[level][row] if level is not None else zero
                        for level, row in (outputs.get(f"out{c}", (None, None))
                                           for c in range(channels))])


class _Shape:
    """What a topology fixes: ``order``, the positions (in the graph's own link order) of its
    links in parameter order; and, per device, :func:`_levels`'s plan of its drawing."""

    def __init__(self, graph: nx.DiGraph) -> None:
        position = {(source, target): i for i, (source, target) in enumerate(graph.edges)}
        self.order = np.array([position[edge] for edge in links(graph)], dtype=np.int64)
        self.plans: dict[str, tuple] = {}

    def plan(self, graph: nx.DiGraph, device: torch.device) -> tuple:
        plan = self.plans.get(str(device))
        if plan is None:
            plan = self.plans[str(device)] = _levels(graph, device)
        return plan


class _Shapes:
    """The last few hundred topologies' :class:`_Shape`. A topology is the nodes (in order,
    with kind and activation) and the links in the graph's own order, which copies keep;
    what it fixes depends on nothing else, so a hit is exact."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.shapes: OrderedDict[tuple, _Shape] = OrderedDict()

    def get(self, graph: nx.DiGraph) -> _Shape:
        key = (tuple((node, data["kind"], data.get("activation"))
                     for node, data in graph._node.items()),
               tuple((source, tuple(targets)) for source, targets in graph._succ.items()))
        shape = self.shapes.get(key)
        if shape is None:
            shape = self.shapes[key] = _Shape(graph)
            if len(self.shapes) > self.size:
                self.shapes.popitem(last=False)
        else:
            self.shapes.move_to_end(key)
        return shape


_SHAPES = _Shapes(size=256)


def _shape(graph: nx.DiGraph) -> _Shape:
    """``graph``'s link order and drawing plans (kept for its topology)."""
    return _SHAPES.get(graph)


def _levels(graph: nx.DiGraph, device: torch.device) -> tuple[list[tuple], dict]:
    """The plan of :func:`draw`: per level after the inputs (level 0), its number of nodes
    (those that reach an output, sorted by activation), its runs of one activation
    (:func:`_runs`) and, for each earlier level that feeds it, index tensors of the links
    between them (rows in this level, rows in that one, link numbers); and each output
    node's (level, row)."""
    pred, nodes = graph._pred, graph._node
    depth = dict.fromkeys(INPUTS, 0)
    for node in evaluation_order(graph):
        depth[node] = 1 + max((depth[source] for source in pred[node]), default=0)
    levels: list[list] = [list(INPUTS)] + [[] for _ in range(max(depth.values()))]
    for node, level in depth.items():
        if level:
            levels[level].append(node)
    for level in levels[1:]:
        level.sort(key=lambda node: nodes[node]["activation"])
    row = {node: i for level in levels for i, node in enumerate(level)}
    pending: list[dict] = [{} for _ in levels]
    for number, (source, target) in enumerate(links(graph)):
        if target in depth and source in depth:
            entry = pending[depth[target]].setdefault(depth[source], ([], [], []))
            for part, value in zip(entry, (row[target], row[source], number)):
                part.append(value)
    plan = [(len(level), _runs(level, nodes),
             {source: tuple(torch.tensor(part, device=device) for part in entry)
              for source, entry in sorted(block.items())})
            for level, block in zip(levels[1:], pending[1:])]
    return plan, {node: (depth[node], row[node]) for node in depth
                  if nodes[node]["kind"] == "output"}


def _runs(level: list, nodes: dict) -> list[tuple[str, int, int]]:
    """(activation, start, stop) of each run of nodes of one activation in a sorted level."""
    runs, start = [], 0
    for name, group in itertools.groupby(nodes[node]["activation"] for node in level):
        stop = start + sum(1 for _ in group)
        runs.append((name, start, stop))
        start = stop
    return runs


def hsv_to_rgb(image: torch.Tensor) -> torch.Tensor:
    """(B, 3, P) hue (a full turn = 1), saturation, value -> RGB (what ``hsv_to_rgb_``
    computes in place, here with gradients)."""
    hue, saturation, value = image[:, 0:1], image[:, 1:2], image[:, 2:3]
    k = (torch.tensor([5.0, 3.0, 1.0], device=image.device).view(1, 3, 1) + hue * 6.0) % 6.0
    k = torch.minimum(k, 4.0 - k).clamp(0.0, 1.0)
    return value - value * saturation * k


def hls8_to_rgb(image: torch.Tensor) -> torch.Tensor:
    """The released code's HLS colour (``hls8_to_rgb_``), with gradients."""
    hue8, lightness, saturation = image[:, 0:1], image[:, 1:2], image[:, 2:3]
    sextant = ((hue8 * 255.0 * (6.0 / 180.0)) % 6.0) * 2.0
    k = (torch.tensor([0.0, 8.0, 4.0], device=image.device).view(1, 3, 1) + sextant) % 12.0
    k = torch.minimum(k - 3.0, 9.0 - k).clamp(-1.0, 1.0)
    chroma = torch.minimum(lightness, 1.0 - lightness) * saturation
    return lightness - k * chroma
