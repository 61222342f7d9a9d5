"""CPPN graphs: structure, the released code's mutations, node-link JSON, and compilation.

A CPPN genome is an acyclic ``networkx.DiGraph`` whose nodes carry ``kind`` (``input``,
``output`` or ``hidden``) and, unless they are inputs, ``activation`` (a name from
:data:`ACTIVATIONS`); each edge carries ``weight``. The node ids are fixed for inputs
(:data:`INPUTS`: ``x``, ``y``, ``d``, ``bias``) and outputs (``out0`` for gray, ``out0..out2``
for colour, in channel order); hidden nodes are any other string (mutation names them ``h<k>``).

Semantics (paper.md 4.3, the released code): a node's input is the weighted sum of its
sources (no bias other than the ``bias`` input), its value the activation of that sum; a node
without sources sums to 0. Every choice below that depends on order (mutation, evaluation)
uses the graph's node order and its edge order (``graph.edges``), which ``copy()`` and the
JSON round trip keep, so a genome reloaded from a checkpoint mutates and renders exactly as
the original.

Mutation (``DnnFF::mutate`` of the released code, in this order): each weight by polynomial
mutation in gene space ([0, 1] mapped linearly to [-limit, limit]); each non-input node's
activation resampled; add a connection; delete a connection; add a node (split an edge);
delete a hidden node. Departures, none of which changes what a genome draws: input nodes
have no activation gene and nodes no activation parameter (the code mutates both, unused);
an added connection that already exists is skipped (the code adds a parallel link, which a
DiGraph cannot hold); a weight outside [-limit, limit] (possible only in a hand-written JSON
genome) is clipped into it when the genome is mutated.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import networkx as nx
import numpy as np

from evofool.genomes.direct import polynomial_mutation

if TYPE_CHECKING:
    from evofool.genomes.cppn import CppnParams

INPUTS = ("x", "y", "d", "bias")
#: The released code's activation set; the index is the id in compiled programs.
#: sine sin(p); bipolar sigmoid 2/(1+e^-p)-1; Gaussian exp(-p^2); linear clip(p,-3,3)/3.
ACTIVATIONS = ("sine", "sigmoid", "gaussian", "linear")
ACTIVATION_IDS = {name: i for i, name in enumerate(ACTIVATIONS)}
KINDS = ("input", "output", "hidden")


def output_id(channel: int) -> str:
    return f"out{channel}"


def gene_to_weight(gene: float, limit: float) -> float:
    """The code's weight gene in [0, 1] -> weight in [-limit, limit]."""
    return (2.0 * float(gene) - 1.0) * limit


def weight_to_gene(weight: float, limit: float) -> float:
    return (float(weight) / limit + 1.0) / 2.0


# --- creation and mutation ----------------------------------------------------------------

def random_graph(channels: int, rng: np.random.Generator,
                 activations: tuple[str, ...] | list[str] = ACTIVATIONS,
                 weight_limit: float = 10.0) -> nx.DiGraph:
    """The code's initial genome: no hidden nodes, every input linked to every output with a
    random weight, a random activation on every output."""
    graph = nx.DiGraph()
    for name in INPUTS:
        graph.add_node(name, kind="input")
    outputs = [output_id(c) for c in range(channels)]
    for name, pick in zip(outputs, rng.integers(len(activations), size=channels)):
        graph.add_node(name, kind="output", activation=activations[pick])
    genes = iter(rng.random(len(INPUTS) * channels))
    for source in INPUTS:
        for target in outputs:
            graph.add_edge(source, target, weight=gene_to_weight(next(genes), weight_limit))
    return graph


def mutate_graph(graph: nx.DiGraph, params: "CppnParams", rng: np.random.Generator) -> nx.DiGraph:
    """A mutated copy of ``graph`` (the input is not modified); all randomness from ``rng``."""
    graph = graph.copy()  # new node and edge attribute dicts; the parent stays intact
    _mutate_weights(graph, params, rng)
    _mutate_activations(graph, params, rng)
    if rng.random() < params.add_connection_rate:
        _add_connection(graph, params.weight_limit, rng)
    if rng.random() < params.delete_connection_rate and graph.number_of_edges():
        edges = list(graph.edges)
        graph.remove_edge(*edges[rng.integers(len(edges))])
    if rng.random() < params.add_node_rate and graph.number_of_edges():
        _split_edge(graph, params.activations, rng)
    if rng.random() < params.delete_node_rate:
        hidden = [n for n, kind in graph.nodes(data="kind") if kind == "hidden"]
        if hidden:
            graph.remove_node(hidden[rng.integers(len(hidden))])
    return graph


def _mutate_weights(graph: nx.DiGraph, params: "CppnParams", rng: np.random.Generator) -> None:
    edges = list(graph.edges(data="weight"))
    if not edges:
        return
    limit = params.weight_limit
    genes = np.array([weight_to_gene(w, limit) for _, _, w in edges], dtype=np.float64)
    mutated = polynomial_mutation(genes, params.weight_mutation_rate,
                                  params.weight_mutation_eta, rng)
    for i in np.flatnonzero(mutated != genes):  # untouched weights keep their exact value
        source, target, _ = edges[i]
        graph.edges[source, target]["weight"] = gene_to_weight(mutated[i], limit)


def _mutate_activations(graph: nx.DiGraph, params: "CppnParams", rng: np.random.Generator) -> None:
    nodes = [n for n, kind in graph.nodes(data="kind") if kind != "input"]
    chosen = np.flatnonzero(rng.random(len(nodes)) < params.activation_mutation_rate)
    picks = rng.integers(len(params.activations), size=len(chosen))
    for i, pick in zip(chosen, picks):
        graph.nodes[nodes[i]]["activation"] = params.activations[pick]


def _add_connection(graph: nx.DiGraph, limit: float, rng: np.random.Generator) -> None:
    """Random source (not an output) -> random target that is neither an input nor the
    source or one of its ancestors, so the graph stays acyclic."""
    sources = [n for n, kind in graph.nodes(data="kind") if kind != "output"]
    source = sources[rng.integers(len(sources))]
    ancestors = nx.ancestors(graph, source)
    targets = [n for n, kind in graph.nodes(data="kind")
               if kind != "input" and n != source and n not in ancestors]
    if not targets:
        return
    target = targets[rng.integers(len(targets))]
    if not graph.has_edge(source, target):  # the code would add a parallel link
        graph.add_edge(source, target, weight=gene_to_weight(rng.random(), limit))


def _split_edge(graph: nx.DiGraph, activations, rng: np.random.Generator) -> None:
    """Replace a random edge u->v by u->h->v; both new edges carry the old weight."""
    edges = list(graph.edges(data="weight"))
    source, target, weight = edges[rng.integers(len(edges))]
    number = len(graph)
    while f"h{number}" in graph:
        number += 1
    hidden = f"h{number}"
    graph.remove_edge(source, target)
    graph.add_node(hidden, kind="hidden", activation=activations[rng.integers(len(activations))])
    graph.add_edge(source, hidden, weight=weight)
    graph.add_edge(hidden, target, weight=weight)


# --- validation and JSON ------------------------------------------------------------------

def check_graph(graph: nx.DiGraph, channels: int | None = None) -> None:
    """Raise ValueError (one line) unless ``graph`` is a renderable CPPN."""
    if not isinstance(graph, nx.DiGraph) or graph.is_multigraph():
        raise ValueError(f"a CPPN genome must be a networkx DiGraph, got {type(graph).__name__}")
    outputs = []
    for node, data in graph.nodes(data=True):
        kind = data.get("kind")
        if kind not in KINDS:
            raise ValueError(f"node {node!r} has kind {kind!r} "
                             f"(expected one of {', '.join(KINDS)})")
        if kind == "input":
            if node not in INPUTS:
                raise ValueError(f"input node {node!r} is not one of {', '.join(INPUTS)}")
            continue
        if data.get("activation") not in ACTIVATION_IDS:
            raise ValueError(f"node {node!r} has unknown activation {data.get('activation')!r} "
                             f"(known: {', '.join(ACTIVATIONS)})")
        if kind == "output":
            outputs.append(node)
        elif node in INPUTS or str(node).startswith("out"):
            raise ValueError(f"hidden node {node!r} uses a reserved id")
    missing = [n for n in INPUTS if n not in graph or graph.nodes[n].get("kind") != "input"]
    if missing:
        raise ValueError(f"input node(s) {', '.join(missing)} missing")
    n_out = len(outputs)
    if n_out not in (1, 3) or sorted(outputs) != [output_id(c) for c in range(n_out)]:
        raise ValueError(f"outputs must be out0 (gray) or out0, out1, out2 (colour), "
                         f"got {', '.join(map(str, sorted(outputs, key=str))) or 'none'}")
    if channels is not None and n_out != channels:
        raise ValueError(f"{n_out} output(s) for a {channels}-channel genome type")
    for source, target, weight in graph.edges(data="weight"):
        if graph.nodes[target]["kind"] == "input":
            raise ValueError(f"edge {source!r} -> {target!r} ends at an input node")
        if (not isinstance(weight, (int, float)) or isinstance(weight, bool)
                or not math.isfinite(weight)):
            raise ValueError(f"edge {source!r} -> {target!r} has weight {weight!r} "
                             "(expected a finite number)")
    if not nx.is_directed_acyclic_graph(graph):
        cycle = [u for u, _ in nx.find_cycle(graph)]
        raise ValueError("the graph has a cycle: " + " -> ".join(map(repr, cycle + cycle[:1])))


def genome_to_json(graph: nx.DiGraph) -> dict:
    """networkx node-link data (``nx.node_link_graph(data, edges="edges")`` reads it)."""
    nodes = []
    for node, data in graph.nodes(data=True):
        entry = {"id": node, "kind": data["kind"]}
        if data["kind"] != "input":
            entry["activation"] = data["activation"]
        nodes.append(entry)
    edges = [{"source": u, "target": v, "weight": float(w)}
             for u, v, w in graph.edges(data="weight")]
    return {"directed": True, "multigraph": False, "graph": {}, "nodes": nodes, "edges": edges}


def genome_from_json(data: Any, channels: int | None = None) -> nx.DiGraph:
    """Inverse of :func:`genome_to_json` (also accepts networkx's older ``links`` key);
    raises ValueError with one line on anything that would not render."""
    if not isinstance(data, dict):
        raise ValueError(f"a CPPN genome must be a JSON object, got {type(data).__name__}")
    if data.get("directed", True) is not True or data.get("multigraph", False) is not False:
        raise ValueError("a CPPN genome must be a directed graph without parallel edges")
    nodes = data.get("nodes")
    edges = data.get("edges", data.get("links"))
    if not isinstance(nodes, list) or not isinstance(edges, list):
        raise ValueError("a CPPN genome needs lists 'nodes' and 'edges'")
    graph = nx.DiGraph()
    for i, node in enumerate(nodes):
        if not isinstance(node, dict) or not isinstance(node.get("id"), str):
            raise ValueError(f"node {i} is not an object with a string 'id'")
        if node["id"] in graph:
            raise ValueError(f"node id {node['id']!r} appears twice")
        kind = node.get("kind")
        if kind not in KINDS:
            raise ValueError(f"node {node['id']!r} has kind {kind!r} "
                             f"(expected one of {', '.join(KINDS)})")
        attrs = {"kind": kind}
        if kind != "input":
            attrs["activation"] = node.get("activation")
        graph.add_node(node["id"], **attrs)
    for i, edge in enumerate(edges):
        if not isinstance(edge, dict) or not all(k in edge for k in ("source", "target", "weight")):
            raise ValueError(f"edge {i} is not an object with 'source', 'target' and 'weight'")
        source, target = edge["source"], edge["target"]
        for end in (source, target):
            if not isinstance(end, str) or end not in graph:
                raise ValueError(f"edge {i} names unknown node {end!r}")
        if source == target or graph.has_edge(source, target):
            raise ValueError(f"edge {i} ({source!r} -> {target!r}) is a "
                             f"{'self-loop' if source == target else 'duplicate'}")
        graph.add_edge(source, target, weight=edge["weight"])
    check_graph(graph, channels)
    for u, v, w in graph.edges(data="weight"):
        graph.edges[u, v]["weight"] = float(w)
    return graph


def canonical_json(graph: nx.DiGraph) -> str:
    """Compact JSON text of the genome; equal text means equal genome (order included)."""
    return json.dumps(genome_to_json(graph), separators=(",", ":"), sort_keys=True)


def genome_hash(graph: nx.DiGraph) -> str:
    """A stable hash of the genome (SHA-1 of its canonical JSON), equal across processes."""
    return hashlib.sha1(canonical_json(graph).encode("utf-8")).hexdigest()


# --- compilation --------------------------------------------------------------------------

def activate_scalar(activation: int, p: float) -> float:
    """Activation ``activation`` (an index into ACTIVATIONS) of a Python float: the value of a
    node that is the same at every pixel."""
    if activation == 0:
        return math.sin(p)
    if activation == 1:
        return math.tanh(0.5 * p)  # 2 / (1 + e^-p) - 1
    if activation == 2:
        return math.exp(-p * p)
    return min(max(p, -3.0), 3.0) / 3.0


#: Op codes of compiled programs. A bipolar sigmoid 2 / (1 + e^-p) - 1 equals tanh(p / 2):
#: its weights and constant are halved at compile time (exact in binary floating point) and
#: the op is a plain tanh.
SINE, HALF_TANH, GAUSSIAN, LINEAR = range(4)


@dataclass(frozen=True)
class Program:
    """A graph compiled for evaluation over a pixel grid.

    Registers are planes of pixels: 0, 1, 2 hold the inputs x, y, d; the next ``channels``
    are the output planes (out0, out1, ...); the rest are scratch planes, reused once their
    value is dead. Each op is ``(register, sources, weights, constant, code)``: register =
    f(sum of weight * source register, in order, plus constant), f given by the op code.
    Nodes whose value is the same at every pixel (fed only by ``bias`` and other such nodes)
    are folded into constants; only nodes that reach an output are kept. ``constants`` holds,
    per output, None or its value where the output itself is constant.
    """

    ops: tuple[tuple[int, tuple[int, ...], tuple[float, ...], float, int], ...]
    constants: tuple[float | None, ...]
    registers: int

    @property
    def channels(self) -> int:
        return len(self.constants)


def compile_graph(graph: nx.DiGraph) -> Program:
    """The op list of a (valid) graph; depends only on node order, edges and attributes."""
    position = {node: i for i, node in enumerate(graph.nodes)}
    outputs = [n for n, kind in graph.nodes(data="kind") if kind == "output"]
    outputs.sort(key=lambda n: int(n[3:]))
    needed = set(outputs)
    for node in outputs:
        needed |= nx.ancestors(graph, node)
    order = [n for n in nx.lexicographical_topological_sort(graph, key=position.__getitem__)
             if n in needed and graph.nodes[n]["kind"] != "input"]
    constant = {"bias": 1.0}
    register = {"x": 0, "y": 1, "d": 2}
    register.update({node: 3 + c for c, node in enumerate(outputs)})
    last_use: dict = {}
    for step, node in enumerate(order):
        for source in graph.pred[node]:
            last_use[source] = step
    free: list[int] = []
    count = 3 + len(outputs)
    ops = []
    for step, node in enumerate(order):
        sources = sorted(graph.pred[node], key=position.__getitem__)
        code = ACTIVATION_IDS[graph.nodes[node]["activation"]]
        offset = math.fsum(graph.edges[s, node]["weight"] * constant[s]
                           for s in sources if s in constant)
        planes = [s for s in sources if s not in constant]
        if not planes:
            constant[node] = activate_scalar(code, offset)
            continue
        if node not in register:  # a hidden node: any free scratch plane
            if free:
                register[node] = free.pop()
            else:
                register[node], count = count, count + 1
        weights = [float(graph.edges[s, node]["weight"]) for s in planes]
        if code == HALF_TANH:
            weights, offset = [0.5 * w for w in weights], 0.5 * offset
        ops.append((register[node], tuple(register[s] for s in planes), tuple(weights),
                    offset, code))
        for source in planes:  # freed after the target was chosen: no aliasing
            if last_use.get(source) == step and graph.nodes[source]["kind"] == "hidden":
                free.append(register[source])
    return Program(tuple(ops), tuple(constant.get(n) for n in outputs), count)
