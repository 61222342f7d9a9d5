"""CPPN genomes: the released code's mutations, pinned pixel semantics, any-size rendering,
safe saving, re-rendering to PNG, and a whole MAP-Elites run."""
import colorsys
import gc
import io
import json
import math

import networkx as nx
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from conftest import REPO, small_experiment
from evofool.archive_store import load_archive
from evofool.config import load_experiment
from evofool.errors import EvofoolError
from evofool.genomes.contract import check_genome_type
from evofool.genomes.cppn import (CppnGenome, CppnParams, as_population, genome_from_json,
                                  genome_hash, genome_to_json)
from evofool.genomes.cppn_graph import (ACTIVATIONS, INPUTS, activate_scalar, canonical_json,
                                        check_graph, compile_graph, copy_graph, mutate_graph)
from evofool.genomes.registry import get_genome_type
from evofool.render import render_to_png, resolution_check, save_genome_json
from evofool.runner import run_experiment


def make_graph(outputs, edges, hidden=None):
    """Inputs x, y, d, bias; ``outputs`` and ``hidden``: {id: activation}; edges (u, v, w)."""
    graph = nx.DiGraph()
    for name in INPUTS:
        graph.add_node(name, kind="input")
    for name, activation in outputs.items():
        graph.add_node(name, kind="output", activation=activation)
    for name, activation in (hidden or {}).items():
        graph.add_node(name, kind="hidden", activation=activation)
    for source, target, weight in edges:
        graph.add_edge(source, target, weight=weight)
    return graph


def read_png(path):
    with Image.open(path) as png:
        return np.asarray(png), png.size, png.mode


def render_one(graph, size=28, channels=1, genome_size=28, **params):
    genome = CppnGenome(CppnParams(**params), channels, (genome_size, genome_size))
    return genome.render(as_population([graph]), size=(size, size))[0]


def grown_population(n=20, steps=30, channels=1, seed=0, size=28, **params):
    genome = CppnGenome(CppnParams(**params), channels, (size, size))
    rng = np.random.default_rng(seed)
    population = genome.random(n, rng)
    for _ in range(steps):
        population = genome.mutate(population, rng, generation=1)
    return genome, population


# --- the genome contract and the initial genome ------------------------------------------

def test_cppn_genome_keeps_the_genome_contract_in_gray_and_both_colour_spaces():
    assert get_genome_type("cppn") is CppnGenome
    check_genome_type(CppnGenome, CppnParams(), channels=1)
    check_genome_type(CppnGenome, CppnParams(), channels=3)
    check_genome_type(CppnGenome, CppnParams(color_space="hls", coordinates="picbreeder"),
                      channels=3, size=(9, 14))


def test_initial_genome_links_every_input_to_every_output_and_has_no_hidden_node():
    genome = CppnGenome(CppnParams(), 3, (28, 28))
    for graph in genome.random(20, np.random.default_rng(0)):
        kinds = dict(graph.nodes(data="kind"))
        assert sorted(kinds.values()).count("hidden") == 0
        assert set(graph.edges) == {(i, f"out{c}") for i in INPUTS for c in range(3)}
        assert all(-10 <= w <= 10 for _, _, w in graph.edges(data="weight"))
        assert all(graph.nodes[f"out{c}"]["activation"] in CppnParams().activations
                   for c in range(3))


# --- mutations -----------------------------------------------------------------------------

def assert_valid(graph, channels, params):
    check_graph(graph, channels)  # kinds, ids, activations, finite weights, acyclic
    assert nx.is_directed_acyclic_graph(graph)
    for node, kind in graph.nodes(data="kind"):
        if kind == "input":
            assert graph.in_degree(node) == 0
        else:
            assert graph.nodes[node]["activation"] in params.activations
        if kind == "output":
            assert graph.out_degree(node) == 0  # sources are never outputs
    assert all(-params.weight_limit <= w <= params.weight_limit
               for _, _, w in graph.edges(data="weight"))


rate = st.floats(0.0, 1.0)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), steps=st.integers(10, 40),
       channels=st.sampled_from([1, 3]), color_space=st.sampled_from(["hsv", "hls"]),
       rates=st.tuples(rate, rate, rate, rate, rate, rate),
       activations=st.lists(st.sampled_from(["sine", "sigmoid", "gaussian", "linear"]),
                            min_size=1, max_size=4, unique=True))
@pytest.mark.long
def test_every_mutation_chain_keeps_a_valid_acyclic_renderable_graph(
        seed, steps, channels, color_space, rates, activations):
    params = CppnParams(
        color_space=color_space, activations=activations, weight_mutation_rate=rates[0],
        activation_mutation_rate=rates[1], add_connection_rate=rates[2],
        delete_connection_rate=rates[3], add_node_rate=rates[4], delete_node_rate=rates[5])
    genome = CppnGenome(params, channels, (6, 6))
    rng = np.random.default_rng(seed)
    population = genome.random(3, rng)
    for _ in range(steps):  # 120 chains x 3 genomes x 25 steps: about 9,000 mutations
        before = [canonical_json(g) for g in population]
        children = genome.mutate(population, rng, generation=1)
        assert [canonical_json(g) for g in population] == before, "a parent was modified"
        for child in children:
            assert_valid(child, channels, params)
        images = genome.render(children)
        assert torch.isfinite(images).all()
        assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0
        population = children


def test_mutation_is_deterministic_under_a_seed_and_after_a_json_round_trip():
    genome, population = grown_population(n=10, steps=20, seed=3)
    restored = genome.unpack(genome.pack(population))

    def chain(pop, seed):
        rng = np.random.default_rng(seed)
        for _ in range(15):
            pop = genome.mutate(pop, rng, generation=1)
        return [canonical_json(g) for g in pop]

    assert chain(population, 7) == chain(population, 7) == chain(restored, 7)
    assert chain(population, 7) != chain(population, 8)


def test_add_node_splits_an_edge_and_both_new_edges_carry_its_weight():
    params = CppnParams(weight_mutation_rate=0, activation_mutation_rate=0,
                        add_connection_rate=0, delete_connection_rate=0, add_node_rate=1,
                        delete_node_rate=0)
    graph = make_graph({"out0": "sine"}, [("x", "out0", 2.5)])
    child = mutate_graph(graph, params, np.random.default_rng(0))
    (hidden,) = [n for n, kind in child.nodes(data="kind") if kind == "hidden"]
    assert set(child.edges(data="weight")) == {("x", hidden, 2.5), (hidden, "out0", 2.5)}
    assert set(graph.edges) == {("x", "out0")}  # the parent is intact


def test_weight_mutation_moves_about_a_tenth_of_weights_in_gene_space():
    params = CppnParams(add_connection_rate=0, delete_connection_rate=0, add_node_rate=0,
                        delete_node_rate=0, activation_mutation_rate=0)
    genome = CppnGenome(params, 3, (8, 8))
    rng = np.random.default_rng(1)
    parents = genome.random(300, rng)
    children = genome.mutate(parents, rng, generation=1)
    old = np.array([w for g in parents for _, _, w in g.edges(data="weight")])
    new = np.array([w for g in children for _, _, w in g.edges(data="weight")])
    changed = old != new
    assert 0.08 < changed.mean() < 0.12
    steps = np.abs(new - old)[changed]
    assert 0.5 < np.median(steps) < 1.2  # paper.md: median step about 0.85 weight units


def test_activations_and_structural_operators_fire_at_their_rates():
    """The population is mutated with a few arrays of random numbers: each operator still
    fires at its rate, independently per child, and picks uniformly."""
    off = dict(weight_mutation_rate=0, activation_mutation_rate=0, add_connection_rate=0,
               delete_connection_rate=0, add_node_rate=0, delete_node_rate=0)
    _, grown = grown_population(n=80, steps=15, seed=11)
    grown = [g for g in grown if g.number_of_edges() and
             any(kind == "hidden" for _, kind in g.nodes(data="kind"))]
    assert len(grown) >= 40
    parents = as_population(grown[:40] * 50)  # 2,000 children of parents with hidden nodes

    def children(**rates):
        return CppnGenome(CppnParams(**{**off, **rates}), 1, (28, 28)).mutate(
            parents, np.random.default_rng(12), generation=1)

    def kinds(graph):
        return dict(graph.nodes(data="activation"))

    pairs = [(kinds(p), kinds(c)) for p, c in zip(parents, children(activation_mutation_rate=0.1))]
    resampled = [c[n] for p, c in pairs for n in c if n not in INPUTS]
    changed = np.mean([p[n] != c[n] for p, c in pairs for n in c if n not in INPUTS])
    assert 0.06 < changed < 0.09  # 0.1 resampled, a quarter of them to the same activation
    assert all(abs(resampled.count(a) / len(resampled) - 0.25) < 0.1 for a in ACTIVATIONS)

    new_hidden = [len(c) - len(p) for p, c in zip(parents, children(add_node_rate=0.5))]
    assert set(new_hidden) <= {0, 1} and 0.45 < np.mean(new_hidden) < 0.55
    lost = [p.number_of_edges() - c.number_of_edges()
            for p, c in zip(parents, children(delete_connection_rate=0.3))]
    assert set(lost) <= {0, 1} and 0.26 < np.mean(lost) < 0.34
    gained = [c.number_of_edges() - p.number_of_edges()
              for p, c in zip(parents, children(add_connection_rate=0.5))]
    assert set(gained) <= {0, 1} and 0.3 < np.mean(gained) <= 0.5  # existing links are skipped
    deleted = [len(p) - len(c) for p, c in zip(parents, children(delete_node_rate=0.2))]
    assert set(deleted) <= {0, 1} and 0.16 < np.mean(deleted) < 0.24
    # the deleted connection is uniform over the parent's edges: mean position 1/2
    positions = []
    for parent, child in zip(parents, children(delete_connection_rate=1)):
        edges = list(parent.edges)
        (gone,) = set(edges) - set(child.edges)
        positions.append((edges.index(gone) + 0.5) / len(edges))
    assert 0.46 < np.mean(positions) < 0.54


def test_a_uniform_pick_never_runs_past_the_last_item():
    from evofool.genomes.cppn_graph import _pick, _pick_edge
    below_one = float(np.nextafter(1.0, 0.0))  # the largest uniform
    assert _pick([0, 1, 2], below_one) == 2 and _pick([0, 1, 2], 0.0) == 0
    graph = make_graph({"out0": "sine"}, [("x", "out0", 1.0), ("y", "out0", 1.0),
                                          ("d", "out0", 1.0)])
    assert _pick_edge(graph, below_one) == ("d", "out0")
    assert [_pick_edge(graph, u) for u in (0.0, 0.34, 0.67)] == list(graph.edges)
    assert _pick_edge(make_graph({"out0": "sine"}, []), 0.5) is None


def test_copy_graph_is_graph_copy_with_fresh_attribute_dicts():
    class Tagged(nx.DiGraph):
        pass

    _, population = grown_population(n=6, steps=20, channels=3, seed=6)
    tagged = Tagged(population[0])
    tagged.graph["note"] = "kept"
    for graph in [*population, tagged]:
        copy, expected = copy_graph(graph), graph.copy()
        assert type(copy) is type(graph) and copy.graph == expected.graph
        assert list(copy.nodes(data=True)) == list(expected.nodes(data=True))
        assert list(copy.edges(data=True)) == list(expected.edges(data=True))
        assert [list(copy.pred[n]) for n in copy] == [list(expected.pred[n]) for n in expected]
        assert all(copy.nodes[n] is not graph.nodes[n] for n in graph)
        assert all(copy.edges[e] is not graph.edges[e] and copy.edges[e] is copy.pred[e[1]][e[0]]
                   for e in graph.edges)
        copy.add_edge("x", "new", weight=1.0)
        copy.nodes["out0"]["activation"] = "changed"
        assert "new" not in graph and graph.nodes["out0"]["activation"] != "changed"


def test_mutation_and_rendering_leave_the_garbage_collector_as_they_found_it():
    genome, population = grown_population(n=4, steps=3)
    for enabled in (True, False):
        (gc.enable if enabled else gc.disable)()
        try:
            genome.render(genome.mutate(population, np.random.default_rng(0), generation=1))
            assert gc.isenabled() is enabled
        finally:
            gc.enable()


# --- pixel semantics (golden images) -------------------------------------------------------

@pytest.mark.parametrize("activation,expected", [
    ("sine", lambda w: abs(math.sin(w))),
    ("sigmoid", lambda w: abs(2 / (1 + math.exp(-w)) - 1)),
    ("gaussian", lambda w: math.exp(-w * w)),
    ("linear", lambda w: abs(min(max(w, -3), 3) / 3)),
])
def test_bias_only_graph_draws_its_activation_of_the_weight_everywhere(activation, expected):
    for w in (-2.2, 0.7, 1.3):
        graph = make_graph({"out0": activation}, [("bias", "out0", w)])
        image = render_one(graph, quantize=False)
        assert torch.allclose(image, torch.full_like(image, expected(w)), atol=1e-6)
        quantized = render_one(graph)  # the code's int(|o| * 255)
        assert torch.all(quantized * 255 == math.floor(expected(w) * 255))


def test_x_ramp_uses_raw_pixel_indices_at_the_reference_size_at_any_size():
    graph = make_graph({"out0": "linear"}, [("x", "out0", 1 / 9)])  # clip(x/9, -3, 3)/3
    at_28 = render_one(graph, quantize=False, coordinates="code")[0]
    assert torch.allclose(at_28, (torch.arange(28.0) / 27).expand(28, 28), atol=1e-6)
    at_56 = render_one(graph, size=56, quantize=False, coordinates="code")[0]
    x = (torch.arange(56.0) + 0.5) * 28 / 56 - 0.5  # pixel centres on the 28-pixel grid
    assert torch.allclose(at_56, (x / 27).clamp(max=1).abs().expand(56, 56), atol=1e-6)
    # reference_size: the grid whose pixel indices x counts, whatever the genome's size
    coarse = render_one(graph, quantize=False, coordinates="code", reference_size=10)[0]
    x = (torch.arange(28.0) + 0.5) * 10 / 28 - 0.5
    assert torch.allclose(coarse, (x / 27).abs().expand(28, 28), atol=1e-6)


def test_picbreeder_coordinates_span_minus_one_to_one_and_d_is_the_distance_from_centre():
    graph = make_graph({"out0": "linear"}, [("x", "out0", 3.0)])  # |clip(3x)/3| = |x|
    image = render_one(graph, size=10, coordinates="picbreeder", quantize=False)[0]
    x = (2 * np.arange(10) + 1 - 10) / 10
    assert np.allclose(image.numpy(), np.abs(x)[None, :].repeat(10, 0), atol=1e-6)
    ring = make_graph({"out0": "gaussian"}, [("d", "out0", 2.0)])
    image = render_one(ring, size=10, quantize=False)[0].numpy()
    d = np.sqrt(x[None, :] ** 2 + x[:, None] ** 2)
    assert np.allclose(image, np.exp(-(2 * d) ** 2), atol=1e-6)


def test_a_hidden_chain_computes_weighted_sums_in_topological_order():
    graph = make_graph({"out0": "sigmoid"},
                       [("x", "h1", 0.7), ("h1", "out0", 2.5), ("bias", "out0", -0.4),
                        ("d", "out0", 1.3), ("y", "h2", 1.0), ("h2", "out0", 0.0)],
                       hidden={"h1": "sine", "h2": "gaussian"})
    image = render_one(graph, quantize=False, coordinates="code")[0].numpy().astype(np.float64)
    x = np.arange(28.0)
    xn = (2 * x + 1 - 28) / 28
    d = np.sqrt(xn[None, :] ** 2 + xn[:, None] ** 2)
    p = 2.5 * np.sin(0.7 * x)[None, :] - 0.4 + 1.3 * d
    assert np.allclose(image, np.abs(2 / (1 + np.exp(-p)) - 1), atol=2e-6)


def reference_program(graph):
    """compile_graph spelled plainly: the nodes that reach an output in depth-first
    post-order from the outputs, sources in node order, registers reused once dead."""
    position = {node: i for i, node in enumerate(graph.nodes)}
    outputs = sorted((n for n, k in graph.nodes(data="kind") if k == "output"),
                     key=lambda n: int(n[3:]))
    order, done = [], {"x", "y", "d", "bias"}

    def visit(node):
        if node not in done:
            for source in sorted(graph.pred[node], key=position.__getitem__):
                visit(source)
            done.add(node)
            order.append(node)

    for output in outputs:
        visit(output)
    last_use = {s: step for step, n in enumerate(order) for s in graph.pred[n]}
    constant, register = {"bias": 1.0}, {"x": 0, "y": 1, "d": 2}
    register.update({n: 3 + c for c, n in enumerate(outputs)})
    free, count, ops = [], 3 + len(outputs), []
    for step, node in enumerate(order):
        sources = sorted(graph.pred[node], key=position.__getitem__)
        code = ACTIVATIONS.index(graph.nodes[node]["activation"])
        offset = math.fsum(graph.edges[s, node]["weight"] * constant[s]
                           for s in sources if s in constant)
        planes = [s for s in sources if s not in constant]
        if not planes:
            constant[node] = activate_scalar(code, offset)
            continue
        if node not in register:
            register[node], count = (free.pop(), count) if free else (count, count + 1)
        weights = [graph.edges[s, node]["weight"] for s in planes]
        if code == 1:  # bipolar sigmoid: tanh of the halved sum
            weights, offset = [0.5 * w for w in weights], 0.5 * offset
        ops.append((register[node], tuple(register[s] for s in planes), tuple(weights),
                    offset, code))
        free += [register[s] for s in planes
                 if last_use[s] == step and graph.nodes[s]["kind"] == "hidden"]
    return ops, [constant.get(n) for n in outputs], count


def reference_pixels(genome, population):
    """Raw outputs by plain ops (p = w0 * s0; p += w * s fused in torch; p += c; NumPy's
    sin, tanh and exp), then the genome type's |o|, 8 bits and colour."""
    inputs = genome.inputs(*genome.size)
    images = torch.empty((len(population), genome.channels, inputs.shape[1]))
    for image, graph in zip(images, population):
        ops, constants, count = reference_program(graph)
        planes = [*inputs, *image, *torch.empty((count, inputs.shape[1]))]
        for target, sources, weights, offset, code in ops:
            plane = torch.mul(planes[sources[0]], weights[0], out=planes[target])
            for source, weight in zip(sources[1:], weights[1:]):
                plane.add_(planes[source], alpha=weight)
            if offset:
                plane.add_(offset)
            array = plane.numpy()
            if code == 0:
                np.sin(array, out=array)
            elif code == 1:
                np.tanh(array, out=array)
            elif code == 2:
                np.exp(-np.square(array), out=array)
            else:
                plane.clamp_(-3.0, 3.0).div_(3.0)
        for c, value in enumerate(constants):
            if value is not None:
                image[c] = value
    genome._finish(images, None)
    return images.view(len(population), genome.channels, *genome.size)


@pytest.mark.parametrize("channels,params", [(1, {}), (3, {}), (3, {"color_space": "hls"}),
                                             (1, {"quantize": False})])
def test_compiled_programs_and_pixels_match_a_plain_reference(channels, params):
    genome, population = grown_population(n=40, steps=40, channels=channels, seed=channels,
                                          **params)
    for graph in population:
        program = compile_graph(graph)
        ops, constants, count = reference_program(graph)
        assert (list(program.ops), list(program.constants), program.registers) == \
            (ops, constants, count)
    assert torch.equal(genome.render(population), reference_pixels(genome, population))


def colour_graph(values):
    """Three linear outputs fed by bias so that int(|o| * 255) == each of ``values``."""
    return make_graph({f"out{c}": "linear" for c in range(3)},
                      [("bias", f"out{c}", 3 * (v + 0.5) / 255) for c, v in enumerate(values)])


def test_hls_colour_matches_opencv_8_bit_conversion_including_the_hue_wrap():
    # reference values from cv2.cvtColor(np.uint8 HLS, cv2.COLOR_HLS2RGB), OpenCV 5.0
    for hls, rgb in [((60, 128, 255), (1, 255, 1)), ((240, 128, 255), (1, 255, 1)),
                     ((180, 100, 200), (178, 22, 22)), ((0, 50, 0), (50, 50, 50)),
                     ((90, 0, 255), (0, 0, 0))]:
        image = render_one(colour_graph(hls), size=4, channels=3, color_space="hls")
        assert torch.all(torch.round(image * 255) == torch.tensor(rgb).view(3, 1, 1)), hls


def test_hsv_colour_follows_the_standard_conversion():
    for hsv in [(85, 255, 255), (0, 128, 200), (200, 30, 90), (255, 255, 255)]:
        image = render_one(colour_graph(hsv), size=4, channels=3)
        expected = np.round(np.array(colorsys.hsv_to_rgb(*(v / 255 for v in hsv))) * 255)
        assert np.array_equal(torch.round(image[:, 0, 0] * 255).numpy(), expected), hsv


# --- the same picture at any size ----------------------------------------------------------

@pytest.mark.parametrize("coordinates", ["picbreeder", "code"])
def test_odd_multiples_of_the_size_contain_the_original_pixels(coordinates):
    for channels in (1, 3):
        genome, population = grown_population(n=8, steps=25, channels=channels, seed=channels,
                                              coordinates=coordinates)
        at_28 = genome.render(population)
        for k in (3, 37):  # 84 and 1036 pixels: each block's centre pixel is a 28-px pixel
            big = genome.render(population[:4] if k == 37 else population, size=(28 * k,) * 2)
            centres = big[:, :, k // 2::k, k // 2::k]
            # the inputs are equal exactly; the pixels were bit-identical on the development
            # machine, but a CPU's vector and scalar sin/exp may differ in the last bit
            assert (centres - at_28[:len(big)]).abs().max() <= 1 / 255 + 1e-6
            assert (centres != at_28[:len(big)]).float().mean() < 0.005


def test_a_1024_render_averaged_down_to_28_matches_the_28_render_of_a_smooth_genome():
    genome, population = grown_population(n=6, steps=20, seed=2, coordinates="picbreeder",
                                          weight_limit=2.0, quantize=False)
    small = genome.render(population)
    big = genome.render(population, size=(1024, 1024))
    assert tuple(big.shape) == (6, 1, 1024, 1024)
    assert (F.adaptive_avg_pool2d(big, 28) - small).abs().mean() < 0.01


# --- saving --------------------------------------------------------------------------------

def test_json_round_trip_keeps_graph_order_and_pixels():
    genome, population = grown_population(n=10, steps=25, channels=3, seed=4)
    for graph in population:
        data = json.loads(json.dumps(genome_to_json(graph)))
        again = genome_from_json(data)
        assert list(again.nodes(data=True)) == list(graph.nodes(data=True))
        assert list(again.edges(data=True)) == list(graph.edges(data=True))
        assert genome_hash(again) == genome_hash(graph)
        assert nx.utils.graphs_equal(nx.node_link_graph(data, edges="edges"), graph)
    arrays = genome.pack(population)
    assert arrays["graphs"].dtype.kind == "U"
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as loaded:
        restored = genome.unpack({"graphs": loaded["graphs"]})
    assert torch.equal(genome.render(restored), genome.render(population))


def bad_genomes():
    good = genome_to_json(make_graph({"out0": "sine"}, [("x", "out0", 1.0)],
                                     hidden={"h1": "sine"}))
    cases = {}

    def variant(name, change):
        data = json.loads(json.dumps(good))
        change(data)
        cases[name] = data

    variant("cycle", lambda d: d["edges"].extend([{"source": "x", "target": "h1", "weight": 1},
                                                  {"source": "h1", "target": "out0", "weight": 1},
                                                  {"source": "out0", "target": "h1", "weight": 1}]))
    variant("unknown activation", lambda d: d["nodes"][4].update(activation="relu"))
    variant("edge into an input", lambda d: d["edges"].append(
        {"source": "h1", "target": "y", "weight": 1.0}))
    variant("missing input", lambda d: d["nodes"].pop(1))
    variant("missing output", lambda d: d["nodes"].pop(4))
    variant("missing kind", lambda d: d["nodes"][5].pop("kind"))
    variant("missing weight", lambda d: d["edges"][0].pop("weight"))
    variant("unknown node", lambda d: d["edges"].append(
        {"source": "z", "target": "out0", "weight": 1.0}))
    variant("infinite weight", lambda d: d["edges"][0].update(weight=float("inf")))
    variant("not a graph", lambda d: d.pop("nodes"))
    return cases


def test_unpack_rejects_each_kind_of_broken_genome_with_one_line():
    genome = CppnGenome(CppnParams(), 1, (28, 28))
    texts = {name: json.dumps(data) for name, data in bad_genomes().items()}
    texts["malformed JSON"] = '{"nodes": ['
    colour = CppnGenome(CppnParams(), 3, (8, 8)).random(1, np.random.default_rng(0))[0]
    texts["three outputs for gray"] = json.dumps(genome_to_json(colour))
    for name, text in texts.items():
        with pytest.raises(ValueError) as error:
            genome.unpack({"graphs": np.array([text])})
        message = str(error.value)
        assert message.startswith("cppn genome 0: ") and "\n" not in message, name
    with pytest.raises(ValueError, match="unicode array"):
        genome.unpack({"graphs": np.zeros(3)})
    assert "cycle" in str(pytest.raises(ValueError, genome_from_json, bad_genomes()["cycle"]).value)


def test_yaml_params_are_validated_with_one_line_errors(tmp_path):
    for key, value, words in [("color_space", "rgb", "color_space"),
                              ("activations", ["sine", "relu"], "activations"),
                              ("add_node_rate", 1.5, "add_node_rate")]:
        path = small_experiment(tmp_path, genome={"type": "cppn", key: value})
        with pytest.raises(EvofoolError, match=words):
            load_experiment(path)
    for key, value, words in [("render_device", "gpu", "runtime.render_device = 'gpu'"),
                              ("render_batching", "layered", "runtime.render_batching")]:
        path = small_experiment(tmp_path, genome={"type": "cppn"},
                                runtime={"device": "cpu", key: value})
        with pytest.raises(EvofoolError, match=words):
            load_experiment(path)


def test_render_placement_is_runtime_not_genome_and_old_spellings_still_read(tmp_path):
    path = small_experiment(tmp_path, genome={"type": "cppn", "render_device": "cpu",
                                              "batching": "by_depth"})
    experiment = load_experiment(path)
    assert experiment.runtime.render_device == "cpu"
    assert experiment.runtime.render_batching == "by_depth"
    assert "batching" not in experiment.to_dict()["genome"]
    both = small_experiment(tmp_path, genome={"type": "cppn", "batching": "by_depth"},
                            runtime={"render_batching": "auto"})
    with pytest.raises(EvofoolError, match="both 'genome.batching' and 'runtime.render_batching'"):
        load_experiment(both)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_a_cuda_render_device_without_a_gpu_is_a_one_line_error(tmp_path):
    path = small_experiment(tmp_path, genome={"type": "cppn"},
                            runtime={"device": "cpu", "render_device": "cuda"})
    with pytest.raises(EvofoolError, match="runtime.render_device 'cuda' was asked for but no "
                                           "CUDA GPU is available"):
        run_experiment(load_experiment(path))


# --- the by-depth (GPU) strategy -----------------------------------------------------------

@pytest.mark.parametrize("channels,params", [(1, {}), (3, {}), (3, {"color_space": "hls"})])
def test_by_depth_batching_draws_the_per_genome_pictures(channels, params):
    # the same op lists regrouped across genomes: other rounding, so a few pixels in a
    # thousand differ, by one 8-bit step mostly (more where the picture is steep; a colour
    # step moves all three channels)
    genome, population = grown_population(n=60, steps=40, channels=channels, seed=7,
                                          **params)
    by_depth = CppnGenome(CppnParams(**params), channels, (28, 28))
    by_depth.place(torch.device("cpu"), "by_depth")
    for size in ((28, 28), (96, 64)):
        expected, got = genome.render(population, size=size), by_depth.render(population, size=size)
        assert got.shape == expected.shape and got.dtype == torch.float32
        differ = (got - expected).abs()
        assert (differ > 0).float().mean() < 0.01 and differ.mean() < 5e-4


def test_by_depth_batching_keeps_constant_outputs_and_chunks_large_renders(monkeypatch):
    import evofool.genomes.cppn as cppn_module
    constant = make_graph({"out0": "linear"}, [("bias", "out0", 1.5)])  # |clip(1.5)/3| = 0.5
    genome, population = grown_population(n=7, steps=30, seed=3)
    population = as_population([constant, *population])
    by_depth = CppnGenome(CppnParams(), 1, (28, 28))
    by_depth.place(torch.device("cpu"), "by_depth")
    monkeypatch.setattr(cppn_module, "_VALUES_PER_PASS", 28 * 28 * 8)  # a chunk per genome
    chunked = by_depth.render(population)
    assert torch.all(chunked[0] == math.floor(0.5 * 255) / 255)
    monkeypatch.undo()
    assert torch.equal(chunked, by_depth.render(population))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_rendering_on_a_gpu_draws_the_cpu_pictures():
    genome, population = grown_population(n=50, steps=40, channels=3, seed=8)
    on_gpu = CppnGenome(CppnParams(), 3, (28, 28))
    on_gpu.place(torch.device("cuda"))
    images = on_gpu.render(population)
    assert images.device.type == "cuda"
    assert ((images.cpu() - genome.render(population)).abs() > 0).float().mean() < 0.005


# --- re-rendering to PNG, and a whole run ---------------------------------------------------

def test_a_genome_json_file_renders_to_a_png_of_any_size(tmp_path):
    genome, population = grown_population(n=1, steps=10, channels=3, seed=5, size=28)
    path = tmp_path / "elite.json"
    save_genome_json(path, genome, "cppn", {"channels": 3}, population[0])
    content = json.loads(path.read_text())
    assert set(content) == {"format_version", "genome", "image", "genome_data"}
    assert render_to_png(path, tmp_path / "big.png", 100) == [tmp_path / "big.png"]
    _, png_size, mode = read_png(tmp_path / "big.png")
    assert png_size == (100, 100) and mode == "RGB"
    render_to_png(path, tmp_path / "same.png", 28)
    expected = np.round(genome.render(population)[0].permute(1, 2, 0).numpy() * 255)
    assert np.array_equal(read_png(tmp_path / "same.png")[0], expected)


def test_bad_genome_files_are_one_line_errors_naming_the_file(tmp_path):
    files = {"malformed.json": "{not json"}
    for name, data in bad_genomes().items():
        files[name.replace(" ", "_") + ".json"] = json.dumps(
            {"format_version": 1, "genome": {"type": "cppn"},
             "image": {"channels": 1, "size": [28, 28]}, "graph": data})
    files["no_type.json"] = json.dumps({"format_version": 1, "genome": {"type": "nope"},
                                        "image": {"channels": 1, "size": [28, 28]},
                                        "graph": {}})
    for name, text in files.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(EvofoolError) as error:
            render_to_png(tmp_path / name, tmp_path / "out.png", 28)
        message = str(error.value)
        assert name in message and "\n" not in message, message
    assert not (tmp_path / "out.png").exists()


def test_a_short_cppn_map_elites_run_saves_an_archive_that_reloads_and_rerenders(tmp_path):
    path = small_experiment(tmp_path, genome={"type": "cppn"})
    result = run_experiment(load_experiment(path))
    assert result.evaluations == 40 + 6 * 40
    archive, genome_type, content = load_archive(tmp_path / "run")
    assert isinstance(genome_type, CppnGenome) and archive.filled.sum() >= 1
    filled = np.flatnonzero(archive.filled)
    images = genome_type.render(archive.genomes[filled])
    for cell, image in zip(filled, images):
        row = content["classes"][cell]
        png = read_png(tmp_path / "run" / "archive" / row["png"])[0]
        assert np.array_equal(png, np.round(image[0].numpy() * 255))
        assert abs(row["png_confidence"] - row["confidence"]) < 1e-6  # the PNG is what scored

    cls = int(filled[0])
    out = render_to_png(tmp_path / "run", tmp_path / "one.png", 64, cls=cls)
    assert read_png(out[0])[1] == (64, 64)
    folder = render_to_png(tmp_path / "run" / "archive" / "archive.json", tmp_path / "all", 56)
    assert len(folder) == len(filled) and all(p.parent == tmp_path / "all" for p in folder)
    with pytest.raises(EvofoolError, match="out of range"):
        render_to_png(tmp_path / "run", tmp_path / "x.png", 28, cls=10)


def test_the_shipped_mnist_cppn_run_elites_rendered_at_1024_are_the_pictures_that_scored(
        tmp_path):
    # the shipped experiment, cut to 20 generations: each elite drawn at 1024 px and averaged
    # back down to 28 px is nearly the same image, and most keep the model's verdict (a ridge
    # thinner than a 28 px pixel is sampled at full height there but dimmed by averaging:
    # seed 0's "3" elite here goes from 0.99996 to 0.11; docs/BENCHMARKS.md)
    experiment = load_experiment(REPO / "experiments" / "mnist_cppn_mapelites.yaml", [
        "budget.generations=20", "device=cpu", f"output_dir={tmp_path / 'run'}",
        "log.progress=false"])
    run_experiment(experiment)
    rows = resolution_check(tmp_path / "run", size=1024, device="cpu")
    assert len(rows) == 10
    assert all(row["mean_abs_pixel_difference"] < 0.08 for row in rows), rows
    kept = [row["large_confidence"] >= 0.99 for row in rows if row["confidence"] >= 0.99]
    assert len(kept) >= 8 and sum(kept) >= len(kept) - 2, rows
