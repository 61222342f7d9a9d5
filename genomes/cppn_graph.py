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

A population is mutated at once (:func:`mutate_graphs`): the same operators, rates and
distributions as one child at a time, with the random numbers drawn in a few arrays for all
the children (a uniform choice among k items is the item at floor(u * k)); the stream
therefore differs from mutating the children one by one, and is fixed by the seed.
"""
from __future__ import annotations

import hashlib
import json
import math
from itertools import islice
from typing import TYPE_CHECKING, Any, NamedTuple

import networkx as nx
import numpy as np

from evofool.genomes.variation import polynomial_mutation

if TYPE_CHECKING:
    from evofool.genomes.cppn import CppnParams

INPUTS = ("x", "y", "d", "bias")
#: The released code's activation set; the index is the id in compiled programs.
#: sine sin(p); bipolar sigmoid 2/(1+e^-p)-1; Gaussian exp(-p^2); linear clip(p,-3,3)/3.
ACTIVATIONS = ("sine", "sigmoid", "gaussian", "linear")
ACTIVATION_IDS = {name: i for i, name in enumerate(ACTIVATIONS)}
KINDS = ("input", "output", "hidden")
#: The most nodes and edges a genome read from JSON may have (checked before the graph is
#: built: a genome file or archive may come from a stranger). Evolved CPPNs have hundreds.
MAX_NODES = 100_000
MAX_EDGES = 1_000_000
MAX_ID_LENGTH = 256  # characters of a node id


def output_id(channel: int) -> str:
    return f"out{channel}"


_OUTPUT_IDS = tuple(output_id(c) for c in range(3))


def _output_ids(nodes: dict) -> tuple[str, ...]:
    """The output node ids of a valid graph (``graph._node``), in channel order."""
    return _OUTPUT_IDS if _OUTPUT_IDS[1] in nodes else _OUTPUT_IDS[:1]


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


def copy_graph(graph: nx.DiGraph) -> nx.DiGraph:
    """``graph.copy()`` four times faster: the same nodes, edges and order (predecessor
    dicts included), fresh node and edge attribute dicts (shallow copies, as ``copy()``
    makes) and a shallow copy of the graph attributes."""
    return copy_graphs([graph])[0][0]


#: The attributes of a new DiGraph: while they are these, a copy of a plain DiGraph is made
#: without calling its constructor (networkx's dispatch machinery costs a microsecond).
_PLAIN_DIGRAPH = set(nx.DiGraph().__dict__) == {"graph", "_node", "_adj", "_succ", "_pred",
                                                 "__networkx_cache__"}


def copy_graphs(graphs) -> tuple[list[nx.DiGraph], list[dict], list[dict]]:
    """Copies as :func:`copy_graph` makes them; with, in order, the copies' edge attribute
    dicts (graph by graph, ``graph.edges`` order) and their non-input nodes' attribute dicts,
    collected on the way for the mutations. Fills each copy's dicts directly (networkx keeps
    a DiGraph in ``_node``, ``_succ`` (= ``_adj``) and ``_pred``)."""
    children: list[nx.DiGraph] = []
    edge_data: list[dict] = []
    node_data: list[dict] = []
    keep_edge, keep_node = edge_data.append, node_data.append
    for graph in graphs:
        nodes = {}
        for node, data in graph._node.items():
            data = nodes[node] = data.copy()
            if data["kind"] != "input":
                keep_node(data)
        succ: dict = {}
        pred: dict = {node: {} for node in graph._pred}
        for source, targets in graph._succ.items():
            out = succ[source] = {}
            for target, data in targets.items():
                out[target] = pred[target][source] = data = data.copy()
                keep_edge(data)
        cls = graph.__class__
        if cls is nx.DiGraph and _PLAIN_DIGRAPH:
            copy = object.__new__(cls)
            copy.__dict__.update(graph=graph.graph.copy(), _node=nodes, _adj=succ, _succ=succ,
                                 _pred=pred, __networkx_cache__={})
        else:  # a new graph has no cached views yet: its __dict__ can take the dicts
            copy = cls()
            copy.graph.update(graph.graph)
            copy.__dict__.update(_node=nodes, _adj=succ, _succ=succ, _pred=pred)
        children.append(copy)
    return children, edge_data, node_data


#: Random numbers drawn per child for its structural mutations, in one array for the whole
#: population: per operator, the uniform that decides it and those that pick within it.
_ADD_CONNECTION, _SOURCE, _TARGET, _NEW_WEIGHT, _DELETE_CONNECTION, _DELETED_EDGE, \
    _ADD_NODE, _SPLIT_EDGE, _NEW_ACTIVATION, _DELETE_NODE, _DELETED_NODE = range(11)
_UNIFORMS = 11


def _pick(items: list, u: float):
    """The item at floor(u * len) for a uniform u in [0, 1): a uniform choice. (In binary64
    u * k < k for every u < 1 and integer k < 2^53; the min() is only a guard.)"""
    return items[min(int(u * len(items)), len(items) - 1)]


def mutate_graph(graph: nx.DiGraph, params: "CppnParams", rng: np.random.Generator) -> nx.DiGraph:
    """A mutated copy of ``graph`` (the input is not modified); all randomness from ``rng``."""
    return mutate_graphs([graph], params, rng)[0]


def mutate_graphs(graphs, params: "CppnParams", rng: np.random.Generator) -> list[nx.DiGraph]:
    """A mutated copy of each graph (the inputs are not modified); all randomness from ``rng``.

    Each child gets the released code's mutations in its order (module docstring), with the
    same rates and distributions as one child at a time; the random numbers are drawn for the
    whole population at once (all weights in one polynomial mutation, all activation
    resamplings, then a row of uniforms per child for the structural operators), so a
    child's draws depend on its position in the population. Deterministic under ``rng``.
    """
    children, edge_data, node_data = copy_graphs(graphs)
    if not children:
        return children
    _mutate_weights(edge_data, params, rng)
    _mutate_activations(node_data, params, rng)
    uniforms = rng.random((len(children), _UNIFORMS)).tolist()
    for child, u in zip(children, uniforms):
        if u[_ADD_CONNECTION] < params.add_connection_rate:
            _add_connection(child, params.weight_limit, u)
        if u[_DELETE_CONNECTION] < params.delete_connection_rate:
            edge = _pick_edge(child, u[_DELETED_EDGE])
            if edge is not None:
                _remove_edge(child, *edge)
        if u[_ADD_NODE] < params.add_node_rate:
            edge = _pick_edge(child, u[_SPLIT_EDGE])
            if edge is not None:
                _split_edge(child, *edge, _pick(params.activations, u[_NEW_ACTIVATION]))
        if u[_DELETE_NODE] < params.delete_node_rate:
            hidden = [node for node, data in child._node.items() if data["kind"] == "hidden"]
            if hidden:
                child.remove_node(_pick(hidden, u[_DELETED_NODE]))
    return children


# Structural edits of a child made by copy_graphs, on its dicts as networkx's add_edge,
# remove_edge and add_node make them (same dict orders; a fresh copy has no cached views).

def _pick_edge(graph: nx.DiGraph, u: float) -> tuple | None:
    """``_pick(list(graph.edges), u)`` without the list; None if the graph has no edge."""
    succ = graph._succ
    count = sum(map(len, succ.values()))
    if not count:
        return None
    k = min(int(u * count), count - 1)
    for source, targets in succ.items():
        if k < len(targets):
            return source, next(islice(targets, k, None))
        k -= len(targets)
    return None  # not reached


def _add_edge(graph: nx.DiGraph, source, target, weight: float) -> None:
    graph._succ[source][target] = graph._pred[target][source] = {"weight": weight}


def _remove_edge(graph: nx.DiGraph, source, target) -> dict:
    del graph._pred[target][source]
    return graph._succ[source].pop(target)


def _mutate_weights(edge_data: list[dict], params: "CppnParams",
                    rng: np.random.Generator) -> None:
    """Each weight (of all the graphs' edges, in one call) by polynomial mutation of its gene."""
    if not edge_data:
        return
    limit = params.weight_limit
    weights = np.fromiter([data["weight"] for data in edge_data], dtype=np.float64,
                          count=len(edge_data))
    genes = (weights / limit + 1.0) / 2.0  # weight_to_gene, elementwise
    mutated = polynomial_mutation(genes, params.weight_mutation_rate,
                                  params.weight_mutation_eta, rng)
    changed = np.flatnonzero(mutated != genes)  # untouched weights keep their exact value
    for i, weight in zip(changed.tolist(), ((2.0 * mutated[changed] - 1.0) * limit).tolist()):
        edge_data[i]["weight"] = weight  # gene_to_weight, elementwise


def _mutate_activations(node_data: list[dict], params: "CppnParams",
                        rng: np.random.Generator) -> None:
    """Each non-input node's activation resampled with the activation mutation rate."""
    chosen = np.flatnonzero(rng.random(len(node_data)) < params.activation_mutation_rate)
    picks = rng.integers(len(params.activations), size=len(chosen))
    for i, pick in zip(chosen.tolist(), picks.tolist()):
        node_data[i]["activation"] = params.activations[pick]


def _ancestors(pred: dict, node) -> set:
    """``nx.ancestors`` on the predecessor dicts."""
    seen: set = set()
    stack = [node]
    while stack:
        for source in pred[stack.pop()]:
            if source not in seen:
                seen.add(source)
                stack.append(source)
    return seen


def _add_connection(graph: nx.DiGraph, limit: float, u: list[float]) -> None:
    """Random source (not an output) -> random target that is neither an input nor the
    source or one of its ancestors, so the graph stays acyclic."""
    nodes = graph._node
    source = _pick([n for n, data in nodes.items() if data["kind"] != "output"], u[_SOURCE])
    ancestors = _ancestors(graph._pred, source)
    targets = [n for n, data in nodes.items()
               if data["kind"] != "input" and n != source and n not in ancestors]
    if not targets:
        return
    target = _pick(targets, u[_TARGET])
    if target not in graph._succ[source]:  # the code would add a parallel link
        _add_edge(graph, source, target, gene_to_weight(u[_NEW_WEIGHT], limit))


def _split_edge(graph: nx.DiGraph, source, target, activation: str) -> None:
    """Replace the edge source -> target by source -> h -> target, h a new hidden node with
    ``activation``; both new edges carry the old weight."""
    weight = _remove_edge(graph, source, target)["weight"]
    number = len(graph._node)
    while f"h{number}" in graph._node:
        number += 1
    hidden = f"h{number}"
    graph._succ[hidden] = {}
    graph._pred[hidden] = {}
    graph._node[hidden] = {"kind": "hidden", "activation": activation}
    _add_edge(graph, source, hidden, weight)
    _add_edge(graph, hidden, target, weight)



def grow_graph(graph: nx.DiGraph, nodes: int, activations, input_weights: np.ndarray,
               rng: np.random.Generator, layers: int = 1) -> nx.DiGraph:
    """A copy of ``graph`` with ``layers`` more layers of ``nodes`` hidden nodes each, every
    node with a random activation of ``activations``. The first layer is fed by every input
    with weights drawn uniformly in +-``input_weights`` (one bound per input: x, y, d,
    bias); a later layer by the bias and every node of the layer before, uniformly in
    +-sqrt(6 / nodes) (SIREN's bound, Sitzmann et al. 2020: sums of unit scale); the last
    layer feeds every output with weight 0. The image is exactly the same; a gradient has
    more numbers to move it by (evolution's add-node mutation grows one node at a time)."""
    graph = copy_graph(graph)
    outputs = [n for n, data in graph._node.items() if data["kind"] == "output"]
    number = len(graph._node)
    sources: list = list(INPUTS)
    bounds = np.asarray(input_weights, dtype=np.float64)
    for _ in range(layers):
        picks = rng.integers(len(activations), size=nodes)
        weights = rng.uniform(-1.0, 1.0, size=(nodes, len(sources))) * bounds
        layer = []
        for pick, row in zip(picks.tolist(), weights.tolist()):
            while f"h{number}" in graph._node:
                number += 1
            hidden = f"h{number}"
            graph._succ[hidden], graph._pred[hidden] = {}, {}
            graph._node[hidden] = {"kind": "hidden", "activation": activations[pick]}
            for source, weight in zip(sources, row):
                _add_edge(graph, source, hidden, weight)
            layer.append(hidden)
        sources = ["bias", *layer]
        bounds = np.full(len(sources), np.sqrt(6.0 / nodes))
    for hidden in sources[1:]:
        for target in outputs:
            _add_edge(graph, hidden, target, 0.0)
    return graph


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
    raises ValueError with one line on anything that would not render. At most
    :data:`MAX_NODES` nodes and :data:`MAX_EDGES` edges (checked before building the
    graph), node ids strings of at most :data:`MAX_ID_LENGTH` characters, weights finite
    numbers."""
    if not isinstance(data, dict):
        raise ValueError(f"a CPPN genome must be a JSON object, got {type(data).__name__}")
    if data.get("directed", True) is not True or data.get("multigraph", False) is not False:
        raise ValueError("a CPPN genome must be a directed graph without parallel edges")
    nodes = data.get("nodes")
    edges = data.get("edges", data.get("links"))
    if not isinstance(nodes, list) or not isinstance(edges, list):
        raise ValueError("a CPPN genome needs lists 'nodes' and 'edges'")
    if len(nodes) > MAX_NODES or len(edges) > MAX_EDGES:
        raise ValueError(f"a CPPN genome of {len(nodes):,} nodes and {len(edges):,} edges: "
                         f"expected at most {MAX_NODES:,} nodes and {MAX_EDGES:,} edges")
    graph = nx.DiGraph()
    for i, node in enumerate(nodes):
        if not isinstance(node, dict) or not isinstance(node.get("id"), str):
            raise ValueError(f"node {i} is not an object with a string 'id'")
        if not 0 < len(node["id"]) <= MAX_ID_LENGTH:
            raise ValueError(f"node {i} has an id of {len(node['id']):,} characters, expected "
                             f"1 to {MAX_ID_LENGTH}")
        if node["id"] in graph:
            raise ValueError(f"node id {node['id']!r} appears twice")
        kind = node.get("kind")
        if kind not in KINDS:
            raise ValueError(f"node {node['id']!r} has kind {_short(kind)} "
                             f"(expected one of {', '.join(KINDS)})")
        attrs = {"kind": kind}
        if kind != "input":
            activation = node.get("activation")
            if not isinstance(activation, str) or activation not in ACTIVATION_IDS:
                raise ValueError(f"node {node['id']!r} has unknown activation "
                                 f"{_short(activation)} (known: {', '.join(ACTIVATIONS)})")
            attrs["activation"] = activation
        graph.add_node(node["id"], **attrs)
    for i, edge in enumerate(edges):
        if not isinstance(edge, dict) or not all(k in edge for k in ("source", "target", "weight")):
            raise ValueError(f"edge {i} is not an object with 'source', 'target' and 'weight'")
        source, target = edge["source"], edge["target"]
        for end in (source, target):
            if not isinstance(end, str) or end not in graph:
                raise ValueError(f"edge {i} names unknown node {_short(end)}")
        if source == target or graph.has_edge(source, target):
            raise ValueError(f"edge {i} ({source!r} -> {target!r}) is a "
                             f"{'self-loop' if source == target else 'duplicate'}")
        weight = edge["weight"]
        if not _finite_number(weight):
            raise ValueError(f"edge {i} ({source!r} -> {target!r}) has weight "
                             f"{_short(weight)} (expected a finite number)")
        graph.add_edge(source, target, weight=weight)
    check_graph(graph, channels)
    for u, v, w in graph.edges(data="weight"):
        graph.edges[u, v]["weight"] = float(w)
    return graph


def _finite_number(value: Any) -> bool:
    """A JSON number that is a finite float (an integer too large for a float is not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return -1e308 < value < 1e308 if isinstance(value, int) else math.isfinite(value)


def _short(value: Any, limit: int = 40) -> str:
    """``repr`` of a value from a file, cut short for a one-line message."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


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


class Program(NamedTuple):
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


def evaluation_order(graph: nx.DiGraph) -> list:
    """The non-input nodes that reach an output, in depth-first post-order from the outputs
    (out0 first), each node's sources visited in node order: every node after its sources."""
    nodes, pred = graph._node, graph._pred
    position = None  # node positions, needed only where a node has several pending sources
    done = dict.fromkeys(INPUTS)
    order = []
    for output in _output_ids(nodes):
        stack = [output]
        while stack:
            node = stack[-1]
            if node in done:
                stack.pop()
                continue
            pending = [source for source in pred[node] if source not in done]
            if not pending:
                stack.pop()
                done[node] = None
                order.append(node)
            elif len(pending) == 1:
                stack.append(pending[0])
            else:
                if position is None:
                    position = {n: i for i, n in enumerate(nodes)}
                pending.sort(key=position.__getitem__, reverse=True)  # lowest position on top
                stack += pending
    return order


def compile_graph(graph: nx.DiGraph) -> Program:
    """The op list of a (valid) graph; depends only on node order, edges and attributes.

    Nodes are evaluated in :func:`evaluation_order`; a node's sources are summed in node
    order, so the order of evaluation never changes a pixel. Works on the graph's dicts:
    this runs once per child in the evolution loop, where networkx's views and sorts cost
    five times as much."""
    nodes, pred = graph._node, graph._pred
    order = evaluation_order(graph)
    last_use = {}  # each value's last reader, to free its register after that step
    for step, node in enumerate(order):
        for source in pred[node]:
            last_use[source] = step
    outputs = _output_ids(nodes)
    position = None
    constant = {"bias": 1.0}  # nodes whose value is the same at every pixel
    register = {"x": 0, "y": 1, "d": 2}  # and every other node that is not constant
    count = 3
    for node in outputs:
        register[node] = count
        count += 1
    scratch = count  # the registers of hidden nodes start here
    free: list[int] = []
    ops = []
    for step, node in enumerate(order):
        edges = pred[node]
        if len(edges) == 1:  # most nodes: a short way through
            (source, data), = edges.items()
            sources = edges
            reg = register.get(source)
            if reg is None:
                planes = None
                offset = data["weight"] * constant[source] + 0.0  # as math.fsum of one term
            else:
                planes = (reg,)
                weights = (float(data["weight"]),)
                offset = 0.0
        else:
            planes, weights, terms = [], [], []
            if position is None:
                position = {n: i for i, n in enumerate(nodes)}
            sources = sorted(edges, key=position.__getitem__)
            for source in sources:
                reg = register.get(source)
                if reg is None:
                    terms.append(edges[source]["weight"] * constant[source])
                else:
                    planes.append(reg)
                    weights.append(float(edges[source]["weight"]))
            offset = math.fsum(terms) if len(terms) > 1 else (terms[0] + 0.0 if terms else 0.0)
        code = ACTIVATION_IDS[nodes[node]["activation"]]
        if not planes:
            constant[node] = activate_scalar(code, offset)
            continue
        target = register.get(node)
        if target is None:  # a hidden node: any free scratch plane
            if free:
                target = free.pop()
            else:
                target, count = count, count + 1
            register[node] = target
        if code == HALF_TANH:
            weights, offset = [0.5 * w for w in weights], 0.5 * offset
        ops.append((target, tuple(planes), tuple(weights), offset, code))
        for source in sources:  # freed after the target was chosen: no aliasing
            if last_use[source] == step:
                reg = register.get(source)
                if reg is not None and reg >= scratch:
                    free.append(reg)
    return Program(tuple(ops), tuple([constant.get(n) for n in outputs]), count)
