"""The differentiable CPPN drawing that carries gradient ascent's gradient to link weights."""
import numpy as np
import torch

from evofool.genomes.cppn import CppnGenome, CppnParams, coordinate_inputs
from evofool.genomes.cppn_gradient import draw, hsv_to_rgb, link_weights, links


def evolved_and_grown(size: int, grow: int, layers: int, seed: int = 0):
    """Mutated random CPPNs (a few evolved-looking hidden nodes), then grown layers with
    random output weights, so that every link shapes the image."""
    genome = CppnGenome(CppnParams(quantize=False), channels=3, size=(size, size))
    rng = np.random.default_rng(seed)
    population = genome.random(3, rng)
    for generation in range(1, 4):
        population = genome.mutate(population, rng, generation=generation)
    grown = genome.grown(population, grow, rng, layers=layers)
    weights = link_weights(grown)
    weights += rng.uniform(-0.5, 0.5, weights.shape).astype(np.float32) * (weights == 0)
    return genome, genome.with_parameters(grown, weights)


def drawn(graphs, size: int) -> torch.Tensor:
    """The graphs' differentiable drawings as RGB images (N, 3, size, size)."""
    inputs = coordinate_inputs(size, size, "picbreeder", (size, size))
    raw = torch.stack([draw(graph, torch.from_numpy(row), inputs, 3)
                       for graph, row in zip(graphs, link_weights(graphs))])
    return hsv_to_rgb(raw.abs().clamp(max=1.0)).clamp(0.0, 1.0).view(-1, 3, size, size)


def test_the_drawing_is_the_exact_render():
    genome, population = evolved_and_grown(size=24, grow=6, layers=3)
    assert torch.allclose(drawn(population, 24), genome.render(population), atol=1e-5)


def test_the_drawing_s_gradient_is_its_derivative():
    """Every link weight's gradient, evolved or grown, against finite differences (float64)."""
    _, population = evolved_and_grown(size=6, grow=2, layers=2, seed=1)
    inputs = coordinate_inputs(6, 6, "picbreeder", (6, 6)).double()
    for graph, row in zip(population, link_weights(population)):
        weights = torch.from_numpy(row[:graph.number_of_edges()]).double().requires_grad_(True)
        assert torch.autograd.gradcheck(lambda w: draw(graph, w, inputs, 3), (weights,),
                                         fast_mode=True)


def test_a_graph_edited_after_it_was_drawn_is_drawn_as_it_is_now():
    """Plans are kept per topology: a link added or an activation changed in a copy of a
    graph that was drawn before must give the copy's own drawing, not the kept one."""
    genome, population = evolved_and_grown(size=16, grow=4, layers=1, seed=2)
    first = population[0]
    assert torch.allclose(drawn([first], 16), genome.render([first]), atol=1e-5)
    linked, switched = first.copy(), first.copy()
    hidden = [node for node, data in first.nodes(data=True) if data["kind"] == "hidden"]
    source, output = next((source, output) for output in ("out0", "out1", "out2")
                          for source in ("x", "y", "d", "bias", *hidden)
                          if not first.has_edge(source, output))
    linked.add_edge(source, output, weight=2.5)  # a new link, no new node
    switched.nodes[hidden[0]]["activation"] = next(
        name for name in ("sine", "gaussian") if name != first.nodes[hidden[0]]["activation"])
    edited = [linked, switched]
    assert not torch.allclose(genome.render(edited), genome.render([first, first]), atol=1e-3)
    assert torch.allclose(drawn(edited, 16), genome.render(edited), atol=1e-5)


def test_parameters_follow_links_not_the_order_they_were_added_in():
    """A checkpoint's JSON may list links in another order than the graph was built in; the
    same links must give the same parameter vector, and setting it must weight the same
    links."""
    genome, population = evolved_and_grown(size=8, grow=3, layers=1, seed=4)
    graph = population[0]
    rebuilt = type(graph)()
    rebuilt.add_nodes_from(graph.nodes(data=True))
    rebuilt.add_edges_from(reversed(list(graph.edges(data=True))))
    assert list(rebuilt.edges) != list(graph.edges)
    assert np.array_equal(link_weights([rebuilt]), link_weights([graph]))
    weights = (np.arange(graph.number_of_edges(), dtype=np.float32)[None] + 1) / 10
    expected = dict(zip(links(graph), weights[0].tolist()))
    for built in (graph, rebuilt):
        weighted = genome.with_parameters([built], weights)[0]
        assert {edge: weighted.edges[edge]["weight"] for edge in expected} == expected
